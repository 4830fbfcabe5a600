"""Executable names, atomic placement in the output folder, and checksums beside them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hatch_pyaket.fetch import sha256_file
from hatch_pyaket.targets import Target

CHECKSUMS = "SHA256SUMS"
MANIFEST = "pyaket-manifest.json"


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
        }


def executable_name(base: str, version: str, target: Target) -> str:
    """`<app or script>-<version>-<target><.exe if the target is Windows>`."""
    return f"{base}-{version}-{target.name}{target.exe_suffix}"


def place(built: Path, destination: Path) -> None:
    """Copy into place through a temporary file, so a failure never leaves a half-written executable."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    os.close(fd)
    try:
        shutil.copyfile(built, temp_name)
        os.chmod(temp_name, 0o755)
        os.replace(temp_name, destination)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def record(path: Path, target: Target, entry: str, tool: str, **facts: object) -> Artifact:
    return Artifact(path, target.name, entry, tool, path.stat().st_size, sha256_file(path), **facts)  # type: ignore[arg-type]


def _write_atomic(path: Path, content: str) -> None:
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="\n") as handle:
        handle.write(content)
    os.chmod(temp_name, 0o644)  # published beside the executables: readable like them
    os.replace(temp_name, path)


def write_checksums(folder: Path, artifacts: Iterable[Artifact]) -> Path:
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
    _write_atomic(path, "".join(f"{entries[name]}  {name}\n" for name in sorted(entries)))
    return path


def write_manifest(folder: Path, app: str, version: str, artifacts: Iterable[Artifact]) -> Path:
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
