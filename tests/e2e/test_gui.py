"""GUI apps: the Windows GUI subsystem, first-run progress in a log file that `PYAKET_SELF=info` shows, and
Windows version information and icon resources."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import HOST_TRIPLE, build, installed_versions, manage, run
from tests.example import copy_example
from tests.unit.test_winres import make_icon

pytestmark = pytest.mark.e2e

WINDOWS = "x86_64-pc-windows-gnu"
SUBSYSTEM_GUI = 2
SUBSYSTEM_CONSOLE = 3
RT_ICON, RT_GROUP_ICON, RT_VERSION = 3, 14, 16
DESCRIPTION = "A small CLI that shows what it receives; built into standalone executables by hatch-pyaket"


def example_copy_with(folder: Path, settings: dict[str, object], *, gui_script: bool = False) -> Path:
    gui_scripts = {"project": {"gui-scripts": {"example-app-gui": "example_app.cli:main"}}} if gui_script else None
    return copy_example(folder, hook=settings, changes=gui_scripts)


def pe_subsystem(exe: Path) -> int:
    """The Subsystem field of a PE file's optional header (2: Windows GUI, 3: console)."""
    data = exe.read_bytes()
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    assert data[:2] == b"MZ" and data[pe_offset : pe_offset + 4] == b"PE\0\0", f"{exe} is not a PE file"
    optional_header = pe_offset + 24
    (subsystem,) = struct.unpack_from("<H", data, optional_header + 68)  # same offset in PE32 and PE32+
    return int(subsystem)


def pe_resource_types(exe: Path) -> set[int]:
    """The numeric resource types in a PE file's resource directory (its root level)."""
    data = exe.read_bytes()
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    coff = pe_offset + 4
    (sections,) = struct.unpack_from("<H", data, coff + 2)
    (optional_size,) = struct.unpack_from("<H", data, coff + 16)
    optional_header = coff + 20
    pe32_plus = struct.unpack_from("<H", data, optional_header)[0] == 0x20B
    rva, _size = struct.unpack_from("<II", data, optional_header + (112 if pe32_plus else 96) + 8 * 2)
    for index in range(sections if rva else 0):
        header = optional_header + optional_size + 40 * index
        virtual_size, address, raw_size, raw_pointer = struct.unpack_from("<IIII", data, header + 8)
        if address <= rva < address + max(virtual_size, raw_size):
            root = raw_pointer + rva - address
            named, numbered = struct.unpack_from("<HH", data, root + 12)
            return {struct.unpack_from("<I", data, root + 16 + 8 * i)[0] for i in range(named, named + numbered)}
    return set()


def test_a_gui_app_logs_its_first_run_where_self_info_says(tmp_path: Path, install_root: Path) -> None:
    project = example_copy_with(tmp_path, {"gui": True})
    build(project, "--wheel")
    exe = project / "dist" / f"example-app-1.0.0-{HOST_TRIPLE}"

    info = manage(exe, "info", install_root=install_root)
    assert info.returncode == 0, info.stderr
    log_file = install_root / "pyaket" / "example-app" / "install.log"
    assert f"log file     {log_file}" in info.stdout.splitlines()

    first = run(exe, ["hello"], install_root=install_root)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""  # no console to write to: progress went to the log
    assert 'args: ["hello"]' in first.stdout
    log = log_file.read_text()
    assert "example-app 1.0.0: first run, installing into" in log
    assert "Installed" in log  # uv's own output, which the console build keeps quiet
    assert len(installed_versions(install_root)) == 1


@dataclass(frozen=True)
class WindowsBuild:
    dist: Path
    env: dict[str, str]

    def exe(self, name: str) -> Path:
        return self.dist / f"{name}-1.0.0-{WINDOWS}.exe"


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> WindowsBuild:
    """windows-gnu executables from the plugin: a console script and a [project.gui-scripts] entry, then the
    console script again with `gui = true`."""
    env = load_cross_env()
    folder = tmp_path_factory.mktemp("gui")
    windows = {"targets": [WINDOWS], "target": {WINDOWS: {"env": BUILD_STD}}}
    project = example_copy_with(
        folder, {**windows, "scripts": ["example-app", "example-app-gui"], "icon": "app.ico"}, gui_script=True
    )
    make_icon(project / "app.ico")
    build(project, "--wheel", env=env)
    forced = example_copy_with(folder / "forced", {**windows, "gui": True, "script": "example-app"})
    build(forced, "--wheel", env=env)
    shutil.copy2(forced / "dist" / f"example-app-1.0.0-{WINDOWS}.exe", project / "dist" / f"forced-1.0.0-{WINDOWS}.exe")
    return WindowsBuild(project / "dist", env)


@pytest.mark.cross
def test_gui_executables_have_the_windows_gui_subsystem(windows: WindowsBuild) -> None:
    assert pe_subsystem(windows.exe("example-app")) == SUBSYSTEM_CONSOLE
    assert pe_subsystem(windows.exe("example-app-gui")) == SUBSYSTEM_GUI  # from [project.gui-scripts]
    assert pe_subsystem(windows.exe("forced")) == SUBSYSTEM_GUI  # gui = true
    objdump = shutil.which("objdump") or shutil.which("x86_64-w64-mingw32-objdump")
    if objdump:
        headers = subprocess.run(
            [objdump, "-p", str(windows.exe("example-app-gui"))], capture_output=True, text=True, check=True
        )
        assert "Subsystem\t\t00000002\t(Windows GUI)" in headers.stdout


@pytest.mark.cross
def test_the_gui_executable_answers_self_info_under_wine(windows: WindowsBuild, tmp_path: Path) -> None:
    wine = windows.env.get("PYAKET_CROSS_WINE") or shutil.which("wine64") or shutil.which("wine")
    if not wine:
        reason = "wine is not installed (.ci/setup-cross.sh ran with CROSS_SKIP_WINE=1?)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    # Wine passes the Unix environment on to Windows programs.
    env = {**windows.env, "PYAKET_INSTALL_DIR": str(tmp_path / "apps"), "PYAKET_SELF": "info"}
    result = subprocess.run(
        [wine, str(windows.exe("example-app-gui"))],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"target       {WINDOWS}" in lines
    log_lines = [line for line in lines if line.startswith("log file")]
    assert len(log_lines) == 1 and log_lines[0].endswith("install.log")


@pytest.mark.cross
def test_windows_executables_carry_version_information_and_the_icon(windows: WindowsBuild) -> None:
    for name in ("example-app", "example-app-gui"):
        exe = windows.exe(name)
        assert pe_resource_types(exe) == {RT_ICON, RT_GROUP_ICON, RT_VERSION}, name
        data = exe.read_bytes()
        for text in (DESCRIPTION, "example-app", "1.0.0", exe.name):
            assert (text + "\0").encode("utf-16-le") in data, (name, text)
    # Without an icon setting: version information only.
    assert pe_resource_types(windows.exe("forced")) == {RT_VERSION}
