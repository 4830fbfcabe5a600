"""Running apps beside installs and removals: nothing vanishes under a running app, locks wait bounded and say who
holds them, exec failures say why. Real executables of the example project, real processes and signals."""

from __future__ import annotations

import errno
import itertools
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    build_variant,
    finish_sleeping,
    installed_versions,
    manage,
    run,
    start,
    start_sleeping,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals and flock")]

VERSIONS = ("1.0.0", "1.0.1", "1.0.2")
INSTALLING = "first run, installing into"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Executables of three successive versions with keep-versions = 1."""
    folder = tmp_path_factory.mktemp("running")
    return {version: build_variant(folder, version=version, settings={"keep-versions": 1}) for version in VERSIONS}


def version_dir(install_root: Path, version: str) -> Path:
    (found,) = [p for p in installed_versions(install_root) if p.name.startswith(f"{version}-")]
    return found


def test_runs_survive_restore_and_clean_beside_them(versions: dict[str, Path], install_root: Path) -> None:
    exe, other = versions["1.0.0"], versions["1.0.1"]
    assert run(exe, [], install_root=install_root).returncode == 0
    results: list[subprocess.CompletedProcess[str]] = []

    def many_runs() -> None:
        for i in range(60):
            results.append(run(exe, [f"run-{i}"], install_root=install_root, timeout=120))

    runner = threading.Thread(target=many_runs)
    runner.start()
    managed = []
    # As long as the runs go on: restore replaces this version's environment, 1.0.1's clean removes 1.0.0 (when
    # no run holds it).
    commands = itertools.cycle(("restore", "clean"))
    while runner.is_alive():
        time.sleep(0.2)
        command = next(commands)
        managed.append(manage(exe if command == "restore" else other, command, install_root=install_root))
    runner.join()
    assert len(managed) >= 4
    for result in managed:
        assert result.returncode == 0, result.stderr
    assert len(results) == 60
    for i, result in enumerate(results):
        assert result.returncode == 0, (i, result.stderr)
        assert result.stdout.startswith("example-app 1.0.0 ") and f'args: ["run-{i}"]' in result.stdout, result.stdout


def test_pruning_keeps_a_running_version_until_a_later_prune(versions: dict[str, Path], install_root: Path) -> None:
    first = start_sleeping(versions["1.0.0"], install_root, 5)
    v1 = version_dir(install_root, "1.0.0")
    second = run(versions["1.0.1"], [], install_root=install_root)
    assert second.returncode == 0, second.stderr
    assert f"{v1} is in use by a running app, kept" in second.stderr
    third = run(versions["1.0.2"], [], install_root=install_root)
    assert third.returncode == 0, third.stderr
    # keep-versions = 1: 1.0.1 (not running) goes, 1.0.0 stays while it runs.
    assert [p.name[:5] for p in installed_versions(install_root)] == ["1.0.0", "1.0.2"]
    assert (v1 / ".pyaket-installed").is_file()
    finish_sleeping(first)

    cleaned = manage(versions["1.0.2"], "clean", install_root=install_root)
    assert cleaned.returncode == 0 and "removed 1 other version(s)" in cleaned.stderr, cleaned.stderr
    assert [p.name[:5] for p in installed_versions(install_root)] == ["1.0.2"]


def test_remove_waits_for_the_running_app_then_gives_up(versions: dict[str, Path], install_root: Path) -> None:
    exe = versions["1.0.0"]
    app = start_sleeping(exe, install_root, 6)
    v1 = version_dir(install_root, "1.0.0")
    began = time.monotonic()
    removed = manage(exe, "remove", install_root=install_root, env={"PYAKET_LOCK_TIMEOUT": "2"})
    assert 2 <= time.monotonic() - began < 10
    assert removed.returncode == 1
    assert f"waiting: {v1} is in use by a running app (held by pid {app.pid})" in removed.stderr, removed.stderr
    assert re.search(
        rf"error: cannot remove example-app 1\.0\.0: gave up after 2s: {re.escape(str(v1))} is in use by a running "
        rf"app \(held by pid {app.pid}\); close the app, then try again \(set PYAKET_LOCK_TIMEOUT",
        removed.stderr,
    ), removed.stderr
    # Nothing changed: the marker is back, a new run starts without installing.
    again = run(exe, ["again"], install_root=install_root)
    assert again.returncode == 0 and INSTALLING not in again.stderr, again.stderr
    finish_sleeping(app)
    assert installed_versions(install_root) == [v1]

    # With time enough, remove waits for the app to exit, then removes.
    app = start_sleeping(exe, install_root, 1)
    removed = manage(exe, "remove", install_root=install_root)
    assert removed.returncode == 0, removed.stderr
    assert "waiting: " in removed.stderr and f"removed {v1}" in removed.stderr
    finish_sleeping(app)
    assert installed_versions(install_root) == []


def wait_for_lock_holder(install_root: Path, proc: subprocess.Popen[str]) -> None:
    """Until `proc` holds the install lock (it wrote its pid into it)."""
    lock = install_root / "pyaket" / "example-app" / ".lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if lock.is_file() and lock.read_text().strip() == str(proc.pid):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise AssertionError("the first run never took the install lock")


def test_a_stopped_first_run_makes_others_give_up_a_killed_one_does_not(
    versions: dict[str, Path], install_root: Path
) -> None:
    exe = versions["1.0.0"]
    first = start(exe, ["first"], install_root)
    wait_for_lock_holder(install_root, first)
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        second = run(exe, ["second"], install_root=install_root, env={"PYAKET_LOCK_TIMEOUT": "3"})
        assert 3 <= time.monotonic() - began < 15
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert second.returncode == 1 and second.stdout == ""
    assert f"(held by pid {first.pid} (stopped))" in second.stderr, second.stderr
    assert "error: locking " in second.stderr and "gave up after 3s: another process is installing" in second.stderr
    assert "resume it (`fg`, `kill -CONT <pid>`)" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert 'args: ["first"]' in out

    # A holder killed with -9 releases the lock with its death (only the launcher: a uv it started does not hold it).
    fresh = install_root / "fresh"
    killed = start(exe, ["killed"], fresh)
    wait_for_lock_holder(fresh, killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    began = time.monotonic()
    after = run(exe, ["after"], install_root=fresh, env={"PYAKET_LOCK_TIMEOUT": "30"})
    assert after.returncode == 0, after.stderr
    assert "waiting" not in after.stderr and INSTALLING in after.stderr
    assert time.monotonic() - began < 20


def test_exec_failures_say_why(versions: dict[str, Path], install_root: Path) -> None:
    exe = versions["1.0.0"]
    assert run(exe, [], install_root=install_root).returncode == 0

    def launch(size: int) -> subprocess.CompletedProcess[str] | None:
        """None when even the launcher cannot start with `size` bytes of arguments."""
        args = ["a" * 999] * (size // 1000) + ["b" * (size % 1000)]
        try:
            return run(exe, args, install_root=install_root, timeout=60)
        except OSError as e:
            assert e.errno == errno.E2BIG
            return None

    # The largest argument list the launcher starts with: the interpreter's command line (`-s -c <bootstrap>`
    # and its longer path) is then over the system's limit.
    low, high = 0, 16 << 20  # over any ARG_MAX (at most 6 MiB on Linux)
    assert launch(high) is None
    while high - low > 1:
        mid = (low + high) // 2
        if launch(mid) is None:
            high = mid
        else:
            low = mid
    result = launch(low)
    assert result is not None and result.returncode == 1 and result.stdout == ""
    assert "argument list too long" in result.stderr, result.stderr
    assert "base Python" not in result.stderr and "<this program>" not in result.stderr

    # The venv's interpreter is gone: the message names this very program and how to restore it.
    venv_python = version_dir(install_root, "1.0.0") / "venv" / "bin" / "python"
    venv_python.rename(venv_python.with_name("python.away"))
    broken = run(exe, [], install_root=install_root)
    assert broken.returncode == 1, broken.stderr
    assert f"error: cannot start {venv_python}: it is missing" in broken.stderr
    assert f"reinstall it with `PYAKET_SELF=restore {exe}`" in broken.stderr, broken.stderr
    assert manage(exe, "restore", install_root=install_root).returncode == 0
    assert run(exe, [], install_root=install_root).returncode == 0


def test_help_documents_the_lock_timeout(versions: dict[str, Path], install_root: Path) -> None:
    shown = manage(versions["1.0.0"], "help", install_root=install_root)
    assert shown.returncode == 0
    assert re.search(r"(?m)^  PYAKET_LOCK_TIMEOUT .*\n.*\(default 300\)$", shown.stdout), shown.stdout
