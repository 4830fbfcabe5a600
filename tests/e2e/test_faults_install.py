"""The first-run install under real faults: a full disk, kill -9, SIGTERM, a damaged shared uv, odd paths."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.helpers import HOST_TRIPLE, build, installed_versions, manage, run
from tests.example import copy_example

pytestmark = pytest.mark.e2e

EXE_NAME = f"example-app-1.0.0-{HOST_TRIPLE}"
NO_SPACE = "No space left on device"


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("faults"))
    build(project, "--wheel")
    return project / "dist" / EXE_NAME


def assert_runs(result: subprocess.CompletedProcess[str], arg: str = "x") -> None:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("example-app 1.0.0 (colorama "), result.stdout
    assert lines[1] == f'args: ["{arg}"]'


def temps(root: Path) -> list[Path]:
    """Everything the atomic-publish helper leaves behind when it is not cleaned up."""
    return sorted(root.rglob(".tmp-*"))


def markers(root: Path) -> list[Path]:
    return sorted(root.rglob(".pyaket-installed"))


def processes_under(root: Path) -> list[str]:
    """Command lines of live (not zombie) processes that mention `root` (uv runs with paths under it)."""
    found = []
    needle = str(root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def wait_for(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def popen(exe: Path, root: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(exe), "x"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYAKET_INSTALL_DIR": str(root), **(env or {})},
    )


# --- a full disk ---------------------------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def used_kb(path: Path) -> int:
    return sum(p.stat().st_blocks for p in path.rglob("*") if p.is_file() and not p.is_symlink()) // 2


def fill_leaving(mount_point: Path, free_kb: int) -> Path:
    filler = mount_point / "filler"
    stat = os.statvfs(mount_point)
    size = stat.f_bavail * stat.f_frsize - free_kb * 1024
    with filler.open("wb") as f:
        if size > 0:
            os.posix_fallocate(f.fileno(), 0, size)
    return filler


def test_a_full_disk_fails_cleanly_and_the_next_run_recovers(exe: Path, tmpfs: Path) -> None:
    root = tmpfs / "root"
    assert_runs(run(exe, ["x"], install_root=root))
    uv_kb, venv_kb = used_kb(root / ".pyaket"), used_kb(root / "pyaket")
    # Free space spread over the install's footprint: with the shared uv to unpack (~37 MB), then without.
    levels = [(True, int(uv_kb * f)) for f in (0.1, 0.6, 0.98)] + [(True, uv_kb + venv_kb // 2)]
    levels += [(False, int(venv_kb * f)) for f in (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.3)]
    tried = survived = 0
    for fresh, free_kb in levels:
        shutil.rmtree(root / "pyaket")
        if fresh:
            shutil.rmtree(root / ".pyaket")
        filler = fill_leaving(tmpfs, free_kb)
        first = run(exe, ["x"], install_root=root)
        tried += 1
        what = f"{'fresh root' if fresh else 'shared uv kept'}, {free_kb} KB free"
        if first.returncode == 0:
            assert_runs(first)
            survived += 1
        else:
            assert first.returncode == 1, f"{what}: {first.stderr}"
            assert NO_SPACE in first.stderr, f"{what}: {first.stderr}"
            assert "ModuleNotFoundError" not in first.stderr, what
            assert installed_versions(root) == [] and markers(root) == [], what
            assert temps(root) == [], what
        filler.unlink()
        assert_runs(run(exe, ["x"], install_root=root))
        assert len(markers(root)) == 1
    print(f"\nfull disk: {tried} free-space levels tried, {survived} installs fit, {tried - survived} failed cleanly")
    assert tried - survived >= len(levels) // 2, "the levels no longer exercise a full disk"


# --- kill -9 and SIGTERM -------------------------------------------------------------------------------------


def unpacking_uv(root: Path) -> bool:
    return any(p.is_dir() for p in (root / ".pyaket" / "uv").glob(".tmp-*"))


def no_process_under(root: Path) -> bool:
    return not processes_under(root)


def test_kill_9_at_any_time_leaves_nothing_the_next_run_does_not_clean(exe: Path, tmp_path: Path) -> None:
    killed_during_unpack = False
    # None: as soon as the shared uv is being unpacked.
    delays: list[float | None] = [None, 0.05, 0.15, 0.3, 0.5, 0.8]
    for i, delay in enumerate(delays):
        root = tmp_path / f"k{i}"  # a fresh root each time, so uv is unpacked again
        process = popen(exe, root)
        if delay is None:
            assert wait_for(partial(unpacking_uv, root))
        else:
            time.sleep(delay)
        process.kill()
        process.wait()
        if delay is None:
            killed_during_unpack = unpacking_uv(root)
        # PR_SET_PDEATHSIG: uv dies with the launcher instead of going on writing into a temp dir.
        assert wait_for(partial(no_process_under, root), timeout=5, interval=0.05), processes_under(root)
        after = run(exe, ["x"], install_root=root)
        assert_runs(after)
        assert temps(root) == [], f"delay {delay}"
        assert manage(exe, "clean", install_root=root).returncode == 0
        assert temps(root) == [] and len(markers(root)) == 1
    assert killed_during_unpack


@pytest.fixture
def silent_index() -> Iterator[str]:
    """An index that accepts connections and never answers: `uv pip install` waits on it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    finally:
        server.close()


def test_sigterm_during_pip_install_stops_uv_and_removes_the_temp_dir(
    exe: Path, tmp_path: Path, silent_index: str
) -> None:
    root = tmp_path / "root"
    # An empty uv cache: the cache-first attempt misses, the second one waits on the index.
    env = {"UV_CACHE_DIR": str(tmp_path / "empty-cache"), "UV_DEFAULT_INDEX": silent_index}
    process = popen(exe, root, env)

    def installing() -> bool:
        return any(" pip install " in c and "--offline" not in c for c in processes_under(root))

    assert wait_for(installing), processes_under(root)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM, stderr  # it died of the signal, as its caller expects
    assert processes_under(root) == []
    assert temps(root) == [] and installed_versions(root) == []
    assert_runs(run(exe, ["x"], install_root=root))


# --- a damaged shared uv -------------------------------------------------------------------------------------


def test_a_zeroed_shared_uv_is_reported_and_replaced(exe: Path, install_root: Path) -> None:
    assert_runs(run(exe, ["x"], install_root=install_root))
    (uv,) = (install_root / ".pyaket" / "uv").glob("*/uv")
    good = hashlib.sha256(uv.read_bytes()).hexdigest()

    def zero() -> None:
        size = uv.stat().st_size
        uv.write_bytes(bytes(size))  # same size: a size check alone would trust it

    check = manage(exe, "check", install_root=install_root)
    assert check.returncode == 0 and f"ok    shared uv {uv}" in check.stdout
    zero()
    check = manage(exe, "check", install_root=install_root)
    assert check.returncode == 1 and f"FAIL  shared uv {uv}: damaged" in check.stdout, check.stdout

    assert manage(exe, "remove", install_root=install_root).returncode == 0
    assert_runs(run(exe, ["x"], install_root=install_root))
    assert hashlib.sha256(uv.read_bytes()).hexdigest() == good

    zero()
    restore = manage(exe, "restore", install_root=install_root)
    assert restore.returncode == 0, restore.stderr
    assert hashlib.sha256(uv.read_bytes()).hexdigest() == good
    assert "ok    shared uv" in manage(exe, "check", install_root=install_root).stdout
    assert temps(install_root) == []

    shutil.rmtree(install_root / ".pyaket")
    assert "not unpacked yet" in manage(exe, "check", install_root=install_root).stdout


def test_a_uv_for_another_machine_is_named_with_the_reason(exe: Path, install_root: Path, tmp_path: Path) -> None:
    assert_runs(run(exe, ["x"], install_root=install_root))
    (uv,) = (install_root / ".pyaket" / "uv").glob("*/uv")
    foreign = tmp_path / "uv-aarch64"
    data = bytearray(uv.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: aarch64
    foreign.write_bytes(bytes(data))
    foreign.chmod(0o755)
    result = run(exe, ["x"], install_root=tmp_path / "other", env={"PYAKET_UV": str(foreign)})
    assert result.returncode == 1
    assert f"uv (PYAKET_UV) could not be executed: {foreign}: exec format error" in result.stderr, result.stderr
    assert "program for aarch64, this system runs x86_64" in result.stderr


# --- paths and bytecode --------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["with#hash", "back\\slash"])
def test_install_roots_with_odd_characters(exe: Path, tmp_path: Path, folder: str) -> None:
    root = tmp_path / folder / "apps"
    result = run(exe, ["x"], install_root=root)
    assert_runs(result)
    (version_dir,) = installed_versions(root)
    assert str(version_dir) in result.stdout


def test_the_install_is_compiled_to_bytecode_and_copied_not_hardlinked(exe: Path, install_root: Path) -> None:
    env = {"PYTHONDONTWRITEBYTECODE": "1"}  # the app itself writes none: what is there, the install made
    assert_runs(run(exe, ["x"], install_root=install_root, env=env))
    (version_dir,) = installed_versions(install_root)
    (site,) = version_dir.glob("venv/lib/python3*/site-packages")
    assert sorted(p.name for p in (site / "example_app" / "__pycache__").glob("*.pyc"))
    assert list((site / "colorama" / "__pycache__").glob("*.pyc"))
    # --link-mode=copy: no installed file shares its inode with uv's cache (or anything else).
    shared = [p for p in site.rglob("*") if p.is_file() and p.stat().st_nlink > 1]
    assert shared == []
