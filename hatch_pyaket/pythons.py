"""An embedded Python for the first run: a python-build-standalone `install_only` archive.

Either a local archive the user names, or one chosen from a python-build-standalone release's
SHA256SUMS listing for the target and Python version, downloaded (sha256-checked) into the cache.
"""

from __future__ import annotations

import os
import re
import tarfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from hatch_pyaket import fetch, progress
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target

# A release that has 3.11 to 3.15 (and 3.16.0a2) for every triple we build; the newest uv 0.13.9 knows.
DEFAULT_PBS_RELEASE = "20261110"
PBS_DOWNLOADS = "https://github.com/astral-sh/python-build-standalone/releases/download"
# Preferred first: the stripped build lacks only debug symbols and is about half the size.
FLAVORS = ("install_only_stripped", "install_only")

_SETTING = "embed-python in [tool.hatch.build.hooks.pyaket]"
_ASSET_RE = re.compile(
    r"^cpython-(?P<version>[0-9][^+]*)\+(?P<release>[0-9]+)-(?P<triple>.+)"
    r"-(?P<flavor>install_only(?:_stripped)?)\.tar\.gz$"
)
_REQUEST_RE = re.compile(r"^\d+\.\d+(\.\d+((a|b|rc)\d+)?)?$")


@dataclass(frozen=True)
class Asset:
    filename: str
    version: Version
    triple: str
    flavor: str
    sha256: str


def pbs_triple(target: Target) -> str:
    """The python-build-standalone triple whose build runs on `target`."""
    if target.os == "windows":
        # No windows-gnu builds exist; the MSVC build runs under a windows-gnu launcher all the same.
        return f"{target.arch}-pc-windows-msvc"
    triple = target.triple
    for ours, theirs in (("powerpc64le-", "ppc64le-"), ("riscv64gc-", "riscv64-")):
        if triple.startswith(ours):
            triple = theirs + triple[len(ours) :]
    return triple


def interpreter_path(target: Target) -> str:
    """The interpreter inside an unpacked install_only archive, with `/` separators."""
    return "python/python.exe" if target.os == "windows" else "python/bin/python3"


def mirror(environ: Mapping[str, str] | None = None) -> str:
    """Where releases are downloaded from: `HATCH_PYAKET_PYTHON_MIRROR` (the part before `/<release>/`)."""
    environ = os.environ if environ is None else environ
    return (environ.get("HATCH_PYAKET_PYTHON_MIRROR") or PBS_DOWNLOADS).rstrip("/")


def parse_sums(text: str) -> list[Asset]:
    """The install_only archives of a release's SHA256SUMS (`<sha256>  <filename>` lines)."""
    assets: list[Asset] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            continue
        digest, filename = parts[0].lower(), parts[1].lstrip("*")
        match = _ASSET_RE.match(filename)
        if not match:
            continue
        try:
            version = Version(match["version"])
        except InvalidVersion:
            continue
        assets.append(Asset(filename, version, match["triple"], match["flavor"], digest))
    return assets


_HINT = (
    "set HATCH_PYAKET_PYTHON_MIRROR to a reachable mirror of the python-build-standalone releases, "
    f"or set {_SETTING} to the path of an install_only .tar.gz"
)


def _read_text(url: str) -> str:
    with fetch.open_url(url, hint=_HINT) as response:
        return response.read().decode("utf-8", "replace")


def choose(assets: list[Asset], target: Target, python_version: str, release: str) -> Asset:
    """The asset for `target` and `python_version` ("3.12": the highest final 3.12.x; "3.12.7": exactly it)."""
    request = python_version.strip()
    if not _REQUEST_RE.match(request):
        raise BuildError(
            f"embedding a Python needs one version like '3.12' or '3.12.7', not {python_version!r}; "
            f"set python in [tool.hatch.build.hooks.pyaket] to one, or set {_SETTING} to a local archive"
        )
    triple = pbs_triple(target)
    mine = [a for a in assets if a.triple == triple]
    wanted = Version(request)
    if request.count(".") == 1:
        matches = [a for a in mine if a.version.release[:2] == wanted.release[:2] and not a.version.is_prerelease]
    else:
        matches = [a for a in mine if a.version == wanted]
    if not matches:
        versions = sorted({a.version for a in mine})
        has = f"it has {', '.join(str(v) for v in versions)} for it" if versions else "it has no build for it at all"
        raise BuildError(
            f"python-build-standalone release {release} has no Python {request} for {target.name} ({triple}); "
            f"{has}. Set python to one of those, pick another release with HATCH_PYAKET_PYTHON_RELEASE, "
            f"or set {_SETTING} to a local install_only archive"
        )
    newest = max(a.version for a in matches)
    rank = {flavor: i for i, flavor in enumerate(FLAVORS)}
    return min((a for a in matches if a.version == newest), key=lambda a: (rank[a.flavor], a.filename))


def _check_local(path: Path, target: Target) -> None:
    member = interpreter_path(target)
    try:
        with tarfile.open(path, "r:gz") as archive:
            for info in archive:
                if info.name.lstrip("./") == member:
                    return
    except (OSError, tarfile.TarError, EOFError) as error:
        raise BuildError(f"{_SETTING} = {str(path)!r} is not a readable .tar.gz: {error}") from None
    raise BuildError(
        f"{_SETTING} = {str(path)!r} holds no {member}; it must be a python-build-standalone install_only "
        f"archive built for {target.name}"
    )


def python_archive(
    source: str,
    target: Target,
    python_version: str,
    *,
    cache: Path,
    environ: Mapping[str, str] | None = None,
    report: progress.Report | None = None,
) -> Path:
    """The install_only archive to embed for `target`: `source` is a local .tar.gz path, or "download"."""
    environ = os.environ if environ is None else environ
    if source != "download":
        path = Path(source)
        if not path.is_file():
            raise BuildError(
                f"{_SETTING} = {source!r}: no such file; give the path of a python-build-standalone install_only "
                'archive (.tar.gz), or "download" to fetch one'
            )
        if not path.name.endswith((".tar.gz", ".tgz")):
            raise BuildError(f"{_SETTING} = {source!r} is not a .tar.gz; install_only archives are gzip tarballs")
        _check_local(path, target)
        return path
    release = environ.get("HATCH_PYAKET_PYTHON_RELEASE") or DEFAULT_PBS_RELEASE
    base = f"{mirror(environ)}/{release}"
    assets = parse_sums(_read_text(f"{base}/SHA256SUMS"))
    asset = choose(assets, target, python_version, release)
    remote = fetch.RemoteFile(asset.filename, f"{base}/{urllib.parse.quote(asset.filename)}", asset.sha256)
    return fetch.download(remote, cache / "pythons" / asset.filename, hint=_HINT, report=report)
