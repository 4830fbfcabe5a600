"""Assembling what one launcher embeds: the manifest and the files' zstd frames, byte-stable.

The launcher crate's build.rs reads this folder (see docs/payload-contract.md): `manifest.json` (the
contract: what the launcher knows about the app), `frames.json` (where each file's frames are) and
`blobs/` (compress.py). Files are written only when their content changes, so cargo sees an unchanged
payload as unchanged and does not rebuild.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hatch_pyaket import compress, fsio
from hatch_pyaket.errors import BuildError
from hatch_pyaket.fetch import sha256_file

SCHEMA = 1

# The launcher's side of this contract is the pyaket-manifest crate (rust_template/manifest); the table in
# docs/payload-contract.md lists the fields, and tests (tests/unit/test_manifest_golden.py, the crate's
# tests/contract.rs) fail when the three disagree.
ENTRY_KINDS = ("script", "module", "code")
# Fields that decide what gets installed; two launchers agreeing on them share one installed venv,
# so several scripts of one app (which differ only in their entry) install once. `payload_hash` covers them,
# the files' sha256 and the fields of INSTALL_FIELDS_WHEN_NOT_EMPTY that are not empty; `manifest_hash` covers all.
INSTALL_FIELDS = (
    "app",
    "version",
    "install_name",
    "vendor",
    "target",
    "python",
    "wheel",
    "uv",
    "uv_version",
    "lock",
    "wheels",
    "python_archive",
    "python_interpreter",
    "files",
)
# Absent when empty, so that payloads from before the field existed kept their install dir.
INSTALL_FIELDS_WHEN_NOT_EMPTY = ("extras",)


@dataclass(frozen=True)
class PayloadSpec:
    app: str
    version: str
    install_name: str
    vendor: str
    target: str
    entry_kind: str
    entry_value: str
    python: str
    wheel: Path
    uv: Path | None
    uv_version: str
    self_command: str | None
    keep_versions: int
    gui: bool
    lock: Path | None = None  # hash-pinned requirements file
    wheels: tuple[Path, ...] = ()  # every dependency, for an install without an index
    python_archive: Path | None = None  # an install_only Python build
    python_interpreter: str = ""  # the interpreter's path inside that archive
    extras: tuple[str, ...] = ()  # the app's extras, installed with its wheel (normalized, sorted)
    entry_name: str = ""  # the executable's base name (script or project name); the launcher derives argv[0] from it
    # Self-update (update_config.py), all "" when not configured: the release folder's URL, the minisign
    # public key's base64 line, and this executable's published name with "{version}" for the version.
    update_url: str = ""
    update_public_key: str = ""
    update_file: str = ""

    @property
    def lock_key(self) -> str | None:
        return "requirements.txt" if self.lock else None

    @property
    def wheel_keys(self) -> list[str]:
        return [f"wheels/{wheel.name}" for wheel in self.wheels]

    @property
    def python_key(self) -> str | None:
        return "python.tar.gz" if self.python_archive else None


def _files(spec: PayloadSpec) -> dict[str, tuple[Path, bool]]:
    files: dict[str, tuple[Path, bool]] = {spec.wheel.name: (spec.wheel, False)}
    if spec.uv is not None:
        files[spec.uv.name] = (spec.uv, True)
    if spec.lock is not None:
        files["requirements.txt"] = (spec.lock, False)
    for key, wheel in zip(spec.wheel_keys, spec.wheels):
        files[key] = (wheel, False)
    if spec.python_archive is not None:
        files["python.tar.gz"] = (spec.python_archive, False)
    return files


def manifest(spec: PayloadSpec, digests: Mapping[str, str], sizes: Mapping[str, int]) -> dict[str, object]:
    if spec.entry_kind not in ENTRY_KINDS:
        raise BuildError(f"entry kind {spec.entry_kind!r} is not one of {', '.join(ENTRY_KINDS)} (a hatch-pyaket bug)")
    if bool(spec.python_archive) != bool(spec.python_interpreter):
        raise BuildError("python_interpreter must be given exactly with python_archive (a hatch-pyaket bug)")
    files = _files(spec)
    data: dict[str, object] = {
        "schema": SCHEMA,
        "app": spec.app,
        "version": spec.version,
        "install_name": spec.install_name,
        "vendor": spec.vendor,
        "target": spec.target,
        "entry": {"kind": spec.entry_kind, "value": spec.entry_value, "name": spec.entry_name},
        "python": spec.python,
        "wheel": spec.wheel.name,
        "uv": spec.uv.name if spec.uv is not None else None,
        "uv_version": spec.uv_version,
        "lock": spec.lock_key,
        "wheels": spec.wheel_keys,
        "python_archive": spec.python_key,
        "python_interpreter": spec.python_interpreter or None,
        "self_command": spec.self_command,
        "keep_versions": spec.keep_versions,
        "gui": spec.gui,
        "extras": sorted(spec.extras),
        "update": (
            {"url": spec.update_url, "public_key": spec.update_public_key, "file": spec.update_file}
            if spec.update_url
            else None
        ),
        "files": {
            key: {"sha256": digests[key], "size": sizes[key], "executable": files[key][1]} for key in sorted(files)
        },
    }
    identity = {name: data[name] for name in INSTALL_FIELDS if name != "files"}
    identity.update({name: data[name] for name in INSTALL_FIELDS_WHEN_NOT_EMPTY if data[name]})
    identity["files"] = {key: digests[key] for key in sorted(files)}
    data["payload_hash"] = hashlib.sha256(_canonical(identity)).hexdigest()
    # Every field and file, payload_hash included: the launcher recomputes it from what it embeds, so
    # a flipped byte in the entry, the python request or the vendor fails `PYAKET_SELF=check` and a first run.
    data["manifest_hash"] = hashlib.sha256(_canonical(data)).hexdigest()
    return data


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


FRAMES = "frames.json"
BLOBS = "blobs"


def _sources(spec: PayloadSpec) -> list[compress.Source]:
    # The app's wheel and lock change with every build: caching their blobs would only fill the cache.
    per_build = {spec.wheel.name, spec.lock_key}
    return [compress.Source(key, path, share=key not in per_build) for key, (path, _) in sorted(_files(spec).items())]


def stage(
    spec: PayloadSpec,
    folder: Path,
    *,
    blob_cache: Path | None = None,
    zstd_level: int | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Write the payload folder for `spec`; return its manifest.

    `blob_cache`: where the blobs of files that outlive one build are shared; `zstd_level`: default from
    PYAKET_ZSTD_LEVEL (compress.level).
    """
    files = _files(spec)
    digests = {key: sha256_file(source) for key, (source, _) in files.items()}
    sizes = {key: source.stat().st_size for key, (source, _) in files.items()}
    data = manifest(spec, digests, sizes)
    folder.mkdir(parents=True, exist_ok=True)
    level = compress.level() if zstd_level is None else zstd_level
    blobs = compress.embed(_sources(spec), folder / BLOBS, zstd_level=level, cache=blob_cache, report=report)
    frames = {
        "schema": SCHEMA,
        "files": {key: {**blob.record(), "blob": f"{BLOBS}/{blob.name}"} for key, blob in sorted(blobs.items())},
    }
    fsio.write_if_changed(folder / FRAMES, json.dumps(frames, indent=1, sort_keys=True).encode() + b"\n")
    fsio.write_if_changed(folder / "manifest.json", json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
    keep = {"manifest.json", FRAMES}
    for blob in blobs.values():
        keep |= {f"{BLOBS}/{blob.name}", f"{BLOBS}/{blob.name}{compress.RECORD_SUFFIX}"}
    for path in sorted(folder.rglob("*"), reverse=True):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return data


def staged_file(folder: Path, key: str) -> bytes:
    """The content of the file `key` that a payload folder embeds, decompressed (tests, inspection)."""
    record = json.loads((folder / FRAMES).read_text())["files"][key]
    blob = compress.Blob.from_record({**record, "blob": Path(record["blob"]).name})
    return compress.decompress(folder / BLOBS, blob)
