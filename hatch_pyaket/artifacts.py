"""Executable names, atomic placement in the output folder, and the index files beside them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hatch_pyaket import fsio
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target

CHECKSUMS = "SHA256SUMS"
MANIFEST = "pyaket-manifest.json"
SBOM_SUFFIX = ".cdx.json"
SIGNATURE_SUFFIX = ".minisig"  # SHA256SUMS.minisig, for self-updating launchers (update_signing.py)


@dataclass(frozen=True)
class Artifact:
    path: Path
    target: str
    entry: str
    tool: str
    size: int
    sha256: str
    python: str = ""
    uv_version: str = ""
    offline: bool = False
    embedded_python: bool = False
    # How the file looked right after this build placed it; () when unknown.
    identity: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # Its CycloneDX SBOM (sbom.py), written beside it by write_indexes; "" when turned off.
    sbom: str = field(default="", compare=False, repr=False)

    @property
    def sbom_path(self) -> Path:
        return self.path.with_name(self.path.name + SBOM_SUFFIX)

    def describe(self) -> dict[str, object]:
        return {
            "file": self.path.name,
            "target": self.target,
            "entry": self.entry,
            "size": self.size,
            "sha256": self.sha256,
            "toolchain": self.tool,
            "python": self.python,
            "uv_version": self.uv_version,
            "offline": self.offline,
            "embedded_python": self.embedded_python,
            "sbom": self.sbom_path.name if self.sbom else None,
        }


def executable_name(base: str, version: str, target: Target) -> str:
    """`<app or script>-<version>-<target><.exe if the target is Windows>`."""
    return f"{base}-{version}-{target.name}{target.exe_suffix}"


@dataclass(frozen=True)
class Placed:
    """An executable as this build put it in the output folder."""

    path: Path
    size: int
    sha256: str
    identity: tuple[int, int, int]  # (inode, size, mtime_ns) right after the rename: still ours if unchanged


def file_identity(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _scan(path: Path, needle: bytes) -> tuple[str, bool]:
    """The sha256 of `path`, and whether `needle` occurs in it, in one pass."""
    digest = hashlib.sha256()
    found = not needle
    tail = b""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            if not found:
                window = tail + block
                found = needle in window
                tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    return digest.hexdigest(), found


def place(built: Path, destination: Path, *, payload_hash: str = "", label: str = "") -> Placed:
    """Copy `built` into place through a temporary file, so a failure never leaves a half-written executable.

    With `payload_hash` (the staged manifest's, which build.rs embeds as a string), the copy must
    contain it: otherwise another build replaced cargo's output after this one staged its payload,
    and the executable would run someone else's app. `destination` is then left as it was.
    """
    facts: dict[str, object] = {}

    def check(temp: Path) -> None:
        sha256, found = _scan(temp, payload_hash.encode())
        if not found:
            raise BuildError(
                f"the executable built for {label or destination.name} does not embed this build's payload "
                f"(payload_hash {payload_hash[:12]}); another build replaced {built} while this one was using it. "
                "Build again; if it happens again, give each build its own HATCH_PYAKET_CACHE_DIR (or CARGO_TARGET_DIR)"
            )
        facts["sha256"] = sha256
        facts["identity"] = file_identity(temp)

    fsio.copy_atomic(built, destination, mode=0o755, check=check)
    identity = facts["identity"]
    assert isinstance(identity, tuple)
    return Placed(destination, identity[1], str(facts["sha256"]), identity)


def record(placed: Placed, target: Target, entry: str, tool: str, **facts: object) -> Artifact:
    return Artifact(
        placed.path,
        target.name,
        entry,
        tool,
        placed.size,
        placed.sha256,
        identity=placed.identity,
        **facts,  # type: ignore[arg-type]
    )


def _write_atomic(path: Path, content: str) -> None:
    # Published beside the executables: readable like them.
    fsio.write_atomic(path, content, mode=0o644)


# Output folders share this many lock files (by a hash of their path), so the cache does not gain one
# per folder ever built into (the binary target builds into a new temporary folder each time); two
# folders sharing one only wait the few milliseconds of a merge for each other.
_OUTPUT_LOCKS = 64


def _lock_path(cache: Path, folder: Path) -> Path:
    """The lock for merging `folder`'s index files; kept in the cache, since the folder is published."""
    stripe = int(hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8], 16) % _OUTPUT_LOCKS
    return cache / "locks" / f"output-{stripe:02d}.lock"


def write_indexes(
    folder: Path,
    app: str,
    version: str,
    made: list[Artifact],
    *,
    cache: Path,
    report: Callable[[str], None],
    sign_checksums: Callable[[Path], object] | None = None,
) -> None:
    """SHA256SUMS and pyaket-manifest.json, merged under a lock with what other builds wrote there.

    An executable another build replaced since this one placed it is left out: that build places
    before it merges, so its entry (under this same lock) is the one that matches the file.
    `sign_checksums` (update_signing.py) writes `SHA256SUMS.minisig` for the merged file, under the
    same lock; without it a signature left there is removed, since it no longer matches.
    """
    doing = f"updating {CHECKSUMS} and {MANIFEST} in {folder} ({app} {version})"
    with fsio.locked(_lock_path(cache, folder), what=f"the output folder {folder}", doing=doing, report=report):
        ours = []
        for artifact in made:
            if _still_ours(artifact):
                ours.append(artifact)
            else:
                report(
                    f"pyaket: WARNING: {artifact.path} was replaced by another build after this one placed it; "
                    "its checksum and manifest entry are left to that build"
                )
        if not ours:
            return
        sboms = _write_sboms(ours)
        checksums = _write_checksums(folder, ours, sboms)
        signature = folder / (CHECKSUMS + SIGNATURE_SUFFIX)
        if sign_checksums is not None:
            sign_checksums(checksums)
        elif signature.exists():
            signature.unlink()
            report(f"pyaket: removed {signature}: it signed the previous {CHECKSUMS} (this build has no key to sign)")
        _write_manifest(folder, app, version, ours)


def _still_ours(artifact: Artifact) -> bool:
    if not artifact.identity:
        return True
    try:
        return file_identity(artifact.path) == artifact.identity
    except OSError:
        return False


def _write_sboms(artifacts: Iterable[Artifact]) -> dict[str, str]:
    """Each executable's SBOM beside it (under the output lock, so it describes the executable that is
    there); one left by an earlier build is removed when this build makes none. Name -> sha256."""
    digests = {}
    for artifact in artifacts:
        if artifact.sbom:
            _write_atomic(artifact.sbom_path, artifact.sbom)
            digests[artifact.sbom_path.name] = hashlib.sha256(artifact.sbom.encode()).hexdigest()
        else:
            artifact.sbom_path.unlink(missing_ok=True)
    return digests


def _write_checksums(folder: Path, artifacts: Iterable[Artifact], extra: Mapping[str, str] | None = None) -> Path:
    """`SHA256SUMS` in `sha256sum -c` format, merged with entries already there for other files."""
    path = folder / CHECKSUMS
    entries: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name and (folder / name).is_file():
                entries[name] = digest
    for artifact in artifacts:
        entries[artifact.path.name] = artifact.sha256
    entries.update(extra or {})
    _write_atomic(path, "".join(f"{entries[name]}  {name}\n" for name in sorted(entries)))
    return path


def _write_manifest(folder: Path, app: str, version: str, artifacts: Iterable[Artifact]) -> Path:
    """`pyaket-manifest.json`: what each executable is (target, size, sha256, toolchain, Python, uv),
    merged with the entries of other executables still in the folder."""
    path = folder / MANIFEST
    entries: dict[str, dict[str, object]] = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
            for item in previous.get("executables", []):
                if (folder / str(item.get("file"))).is_file():
                    entries[str(item["file"])] = item
        except (ValueError, AttributeError):
            pass  # a damaged manifest is rewritten from what this build knows
    for artifact in artifacts:
        entries[artifact.path.name] = artifact.describe()
    data = {"app": app, "version": version, "executables": [entries[name] for name in sorted(entries)]}
    _write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
