"""Foreign targets built by the plugin (from a real build) and run where this machine can run them.

Needs the toolchain from .ci/setup-cross.sh (Debian's rustc with the arm64 std, build-std for the
rest, zig, qemu-user, wine). Without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_pyaket import macho
from hatch_pyaket.artifacts import SBOM_SUFFIX
from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import build
from tests.example import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.cross]

TARGETS: dict[str, dict[str, str]] = {
    "aarch64-unknown-linux-gnu.2.17": {},
    "x86_64-unknown-linux-gnu.2.17": {},
    "x86_64-unknown-linux-musl": BUILD_STD,
    "x86_64-pc-windows-gnu": BUILD_STD,
    "aarch64-apple-darwin": BUILD_STD,
}


@dataclass(frozen=True)
class CrossBuild:
    dist: Path
    env: dict[str, str]
    output: str

    def exe(self, target: str) -> Path:
        suffix = ".exe" if "windows" in target else ""
        return self.dist / f"example-app-1.0.0-{target}{suffix}"


@pytest.fixture(scope="module")
def cross(tmp_path_factory: pytest.TempPathFactory) -> CrossBuild:
    env = load_cross_env()
    per_target = {name: {"env": extra} for name, extra in TARGETS.items() if extra}
    project = copy_example(tmp_path_factory.mktemp("cross"), hook={"targets": list(TARGETS), "target": per_target})
    result = build(project, "--wheel", env=env)
    return CrossBuild(project / "dist", env, result.stdout + result.stderr)


def test_every_target_is_built_with_the_tool_the_plugin_chose(cross: CrossBuild) -> None:
    for target in TARGETS:
        assert cross.exe(target).is_file(), target
        assert re.search(rf"pyaket: {re.escape(target)} \[example-app\] with zigbuild: ", cross.output), target
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=cross.dist, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    for target in TARGETS:  # each executable and its SBOM
        for name in (cross.exe(target).name, cross.exe(target).name + SBOM_SUFFIX):
            assert f"{name}: OK" in checked.stdout, name


def _max_glibc(exe: Path) -> tuple[int, int]:
    dump = subprocess.run(["objdump", "-T", str(exe)], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(p) for p in m.split(".")[:2]) for m in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", dump)}
    assert versions, "no GLIBC symbol versions found"
    return max(versions)  # type: ignore[return-value]


@pytest.mark.parametrize("target", ["x86_64-unknown-linux-gnu.2.17", "aarch64-unknown-linux-gnu.2.17"])
def test_glibc_floor_holds(cross: CrossBuild, target: str) -> None:
    assert _max_glibc(cross.exe(target)) <= (2, 17)


def test_macos_target_is_a_mach_o_arm64_executable(cross: CrossBuild) -> None:
    data = cross.exe("aarch64-apple-darwin").read_bytes()
    magic, cputype = struct.unpack("<II", data[:8])
    assert magic == 0xFEEDFACF  # 64-bit Mach-O
    assert cputype == 0x0100000C  # CPU_TYPE_ARM64
    # build-std with Debian's rustc links for Rust's minimum too, not zig's macOS 15 (test_macos.py has the rest).
    thin = macho.read_thin(data)
    assert thin.minos == (11, 0, 0)
    directory = thin.code_directory()
    assert directory is not None and directory.identifier == "example-app" and directory.page_hashes_match(data)


def _self_check(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env={**env, "PYAKET_SELF": "check"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    info = subprocess.run(command, capture_output=True, text=True, env={**env, "PYAKET_SELF": "info"}, timeout=300)
    assert info.returncode == 0, info.stderr
    return info.stdout


def test_aarch64_runs_under_qemu(cross: CrossBuild, tmp_path: Path) -> None:
    env = {**cross.env, "PYAKET_INSTALL_DIR": str(tmp_path / "apps")}
    qemu = env.get("PYAKET_CROSS_QEMU_AARCH64", "qemu-aarch64 -L /usr/aarch64-linux-gnu").split()
    info = _self_check([*qemu, str(cross.exe("aarch64-unknown-linux-gnu.2.17"))], env)
    assert "aarch64-unknown-linux-gnu.2.17" in info and "example-app" in info


def test_aarch64_whole_first_run_under_qemu(cross: CrossBuild, tmp_path: Path) -> None:
    """The aarch64 launcher starts the aarch64 uv, which starts an aarch64 CPython (from Debian's
    arm64 packages), all through a private binfmt_misc registration of qemu."""
    python_root = Path(cross.env.get("PYAKET_CROSS_PY_ARM64", ""))
    python = python_root / "usr" / "bin" / "python3.11"
    if not python.is_file():
        pytest.skip("no arm64 CPython (run .ci/setup-cross.sh with CROSS_PY_ARM64=1)")
    exe = cross.exe("aarch64-unknown-linux-gnu.2.17")
    magic = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
    mask = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    script = (
        "mount -t binfmt_misc none /proc/sys/fs/binfmt_misc && "
        f"echo ':qemu-aarch64:M::{magic}:{mask}:/usr/bin/qemu-aarch64:F' > /proc/sys/fs/binfmt_misc/register && "
        f'"{exe}" "arm args" --exit 5'
    )
    env = {
        **cross.env,
        "PYAKET_INSTALL_DIR": str(tmp_path / "apps"),
        "PYAKET_PYTHON": str(python),
        "QEMU_LD_PREFIX": str(python_root),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if "binfmt_misc" in result.stderr and ("denied" in result.stderr or "not permitted" in result.stderr):
        pytest.skip(f"no private binfmt_misc here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "first run, installing into" in result.stderr
    assert 'args: ["arm args"]' in result.stdout
    assert "python 3.11" in result.stdout


def test_musl_whole_first_run_natively(cross: CrossBuild, tmp_path: Path) -> None:
    exe = cross.exe("x86_64-unknown-linux-musl")
    assert "statically linked" in subprocess.run(["file", str(exe)], capture_output=True, text=True).stdout
    env = {**os.environ, "PYAKET_INSTALL_DIR": str(tmp_path / "apps")}
    first = subprocess.run([str(exe), "musl ✓", "--exit", "3"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 3, first.stderr
    assert "first run, installing into" in first.stderr and 'args: ["musl ✓"]' in first.stdout
    again = subprocess.run([str(exe), "again"], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and again.stderr == ""


def test_glibc_floor_build_runs_natively(cross: CrossBuild, tmp_path: Path) -> None:
    env = {**os.environ, "PYAKET_INSTALL_DIR": str(tmp_path / "apps")}
    result = subprocess.run(
        [str(cross.exe("x86_64-unknown-linux-gnu.2.17")), "floor"], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert 'args: ["floor"]' in result.stdout


def test_windows_gnu_runs_under_wine(cross: CrossBuild, tmp_path: Path) -> None:
    wine = cross.env.get("PYAKET_CROSS_WINE", "wine64")
    env = {**cross.env, "PYAKET_INSTALL_DIR": str(tmp_path / "apps"), "UV_PYTHON_DOWNLOADS": "never"}
    exe = cross.exe("x86_64-pc-windows-gnu")
    info = _self_check([wine, str(exe)], env)
    assert "x86_64-pc-windows-gnu" in info
    # No Windows Python exists in the Wine prefix: the first run must say so and fail with its exit code.
    result = subprocess.run([wine, str(exe), "hello"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first run, installing into" in result.stderr
    assert "error: installing example-app 1.0.0 failed" in result.stderr
    assert re.search(r"(?i)no interpreter found|python", result.stderr)


def test_msvc_without_the_crt_fails_with_the_xwin_error(tmp_path: Path) -> None:
    env = load_cross_env()
    # build-std stands in for the msvc std rustup would add, so the failure is xwin's own.
    msvc = "x86_64-pc-windows-msvc"
    project = copy_example(tmp_path, hook={"targets": [msvc], "target": {msvc: {"env": BUILD_STD}}})
    result = build(project, "--wheel", env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "x86_64-pc-windows-msvc" in output
    if shutil.which("cargo-xwin", path=env.get("PATH")):
        assert "with xwin" in output and "XWIN_CACHE_DIR" in output and "Microsoft" in output
    else:
        assert "needs cargo-xwin, which was not found" in output and "hatch-pyaket[xwin]" in output
    dist = project / "dist"
    assert not dist.exists() or not list(dist.glob("example-app-*"))


def test_one_failing_target_fails_the_build_with_a_summary_after_the_others(tmp_path: Path) -> None:
    env = load_cross_env()
    project = copy_example(tmp_path, hook={"targets": ["i686-unknown-linux-musl", "x86_64-unknown-linux-gnu.2.17"]})
    result = build(project, "--wheel", env=env, check=False)
    assert result.returncode != 0
    assert "the Rust standard library for i686-unknown-linux-musl is not installed" in result.stderr
    assert "rustup target add i686-unknown-linux-musl" in result.stderr and "-Zbuild-std" in result.stderr
    assert "1 of 2 targets failed (built: x86_64-unknown-linux-gnu.2.17)" in result.stderr
    dist = project / "dist"
    built = "example-app-1.0.0-x86_64-unknown-linux-gnu.2.17"
    assert sorted(p.name for p in dist.glob("example-app-*")) == [built, built + SBOM_SUFFIX]
    assert not list(dist.glob(".*"))  # no temporary leftovers
