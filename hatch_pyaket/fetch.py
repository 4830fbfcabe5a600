"""Downloads with sha256 checks and a cache: uv's PyPI wheels here; pythons.py and locking.py use it for
python-build-standalone archives and dependency wheels. The cache dir: `HATCH_PYAKET_CACHE_DIR`, else the user's
cache dir (`~/.cache/hatch-pyaket`, `~/Library/Caches/hatch-pyaket`, `%LOCALAPPDATA%\\hatch-pyaket\\Cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from hatch_pyaket import fsio, progress
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target

PYPI_SIMPLE = "https://pypi.org/simple"
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`HATCH_PYAKET_CACHE_DIR`, else the platform's per-user cache folder."""
    environ = os.environ if environ is None else environ
    if environ.get("HATCH_PYAKET_CACHE_DIR"):
        return Path(environ["HATCH_PYAKET_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "hatch-pyaket" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "hatch-pyaket"
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hatch-pyaket"


def index_url(environ: Mapping[str, str] | None = None) -> str:
    """The simple index to fetch uv from: ours, then uv's and pip's settings, then PyPI."""
    environ = os.environ if environ is None else environ
    for name in ("HATCH_PYAKET_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if environ.get(name):
            return environ[name].rstrip("/")
    return PYPI_SIMPLE


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str
    sha256: str


class _LinkParser(HTMLParser):
    """PEP 503 pages: one anchor per file, the sha256 in the URL fragment."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.files: list[RemoteFile] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag != "a" or not href:
            return
        url, _, fragment = urllib.parse.urljoin(self.base, href).partition("#")
        if fragment.startswith("sha256="):
            filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            self.files.append(RemoteFile(filename, url, fragment.split("=", 1)[1]))


INDEX_HINT = (
    'set HATCH_PYAKET_INDEX_URL to a reachable index, or uv = "path" in [tool.hatch.build.hooks.pyaket] '
    "to use a uv from PATH at run time"
)


def open_url(url: str, accept: str | None = None, *, hint: str = INDEX_HINT):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        return urllib.request.urlopen(request, timeout=60)
    except (urllib.error.URLError, OSError) as error:
        raise BuildError(f"could not download {url}: {error}; {hint}") from None


def project_files(project: str, index: str) -> list[RemoteFile]:
    """The files an index lists for a project, with their sha256 (JSON API, or HTML)."""
    url = f"{index}/{project}/"
    with open_url(url, f"{_SIMPLE_JSON}, text/html;q=0.1") as response:
        body = response.read()
        content_type = response.headers.get("Content-Type", "")
        final_url = response.geturl()
    if _SIMPLE_JSON in content_type or body.lstrip().startswith(b"{"):
        data = json.loads(body)
        return [
            RemoteFile(f["filename"], urllib.parse.urljoin(final_url, f["url"]), f["hashes"]["sha256"])
            for f in data.get("files", [])
            if "sha256" in f.get("hashes", {})
        ]
    parser = _LinkParser(final_url)
    parser.feed(body.decode("utf-8", "replace"))
    return parser.files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    remote: RemoteFile, destination: Path, *, hint: str = INDEX_HINT, report: progress.Report | None = None
) -> Path:
    """Download to `destination` (atomically), refusing content whose sha256 differs from the index's.

    With `report`, says how far it got (bytes of the total, every few seconds and at each quarter)."""
    if destination.is_file() and sha256_file(destination) == remote.sha256:
        return destination
    with fsio.replacing(destination) as pending, open_url(remote.url, hint=hint) as response:
        length = response.headers.get("Content-Length", "")
        shown = progress.Download(remote.filename, int(length) if length.isdigit() else None, report)
        digest = hashlib.sha256()
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
            pending.file.write(block)
            shown.add(len(block))
        shown.finish()
        if digest.hexdigest() != remote.sha256:
            raise BuildError(
                f"{remote.url} does not match its published sha256 (expected {remote.sha256}, "
                f"got {digest.hexdigest()}); refusing to use it; {hint}"
            )
    return destination


def uv_wheel(target: Target, version: str, index: str) -> RemoteFile:
    """Choose the uv wheel built for `target` among the release's files."""
    candidates: list[tuple[int, RemoteFile]] = []
    for remote in project_files("uv", index):
        if not remote.filename.endswith(".whl"):
            continue
        try:
            _, wheel_version, _, tags = parse_wheel_filename(remote.filename)
        except InvalidWheelFilename:
            continue
        if str(wheel_version) != version:
            continue
        ranks = [target.uv_platform_rank(t.platform) for t in tags if target.uv_platform_matches(t.platform)]
        if ranks:
            candidates.append((min(ranks), remote))
    if not candidates:
        raise BuildError(
            f"uv {version} has no wheel for {target.name} on {index}; choose another uv-version, "
            'or set uv = "path" to use a uv from PATH at run time'
        )
    candidates.sort(key=lambda item: (item[0], item[1].filename))
    return candidates[0][1]


def uv_binary(
    target: Target, version: str, environ: Mapping[str, str] | None = None, report: progress.Report | None = None
) -> Path:
    """The uv executable for `target`, taken from its PyPI wheel; cached by the wheel's sha256."""
    environ = os.environ if environ is None else environ
    cache = cache_dir(environ) / "uv"
    index = index_url(environ)
    exe_name = "uv.exe" if target.os == "windows" else "uv"
    # The choice of wheel is remembered per index, so later builds (and offline ones) skip the index.
    index_key = hashlib.sha256(index.encode()).hexdigest()[:12]
    choice = cache / "choices" / index_key / f"{version}-{target.triple}.json"
    if choice.is_file():
        remembered = RemoteFile(**json.loads(choice.read_text()))
        binary = cache / "bin" / remembered.sha256 / exe_name
        if binary.is_file():
            return binary
    remote = uv_wheel(target, version, index)
    binary = cache / "bin" / remote.sha256 / exe_name
    if binary.is_file():
        _remember(choice, remote)
        return binary
    wheel = download(remote, cache / "wheels" / remote.filename, report=report)
    member = f"uv-{version}.data/scripts/{exe_name}"
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            fsio.write_stream(binary, source, mode=0o755)
    except KeyError:
        raise BuildError(f"{remote.filename} holds no {member}; is it a uv wheel?") from None
    _remember(choice, remote)
    return binary


def _remember(path: Path, remote: RemoteFile) -> None:
    fsio.write_atomic(path, json.dumps(remote.__dict__, sort_keys=True))
