"""Executable names, atomic placement in the output folder, and checksums beside them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hatch_pyaket.fetch import sha256_file
from hatch_pyaket.targets import Target

CHECKSUMS = "SHA256SUMS"


@dataclass(frozen=True)
class Artifact:
    path: Path
    target: str
    entry: str
    tool: str
    size: int
    sha256: str


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


def record(path: Path, target: Target, entry: str, tool: str) -> Artifact:
    return Artifact(path, target.name, entry, tool, path.stat().st_size, sha256_file(path))


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
    content = "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{CHECKSUMS}.")
    with os.fdopen(fd, "w", newline="\n") as handle:
        handle.write(content)
    os.replace(temp_name, path)
    return path
