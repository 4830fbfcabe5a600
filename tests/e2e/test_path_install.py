"""`PYAKET_SELF=install|uninstall <exe>`: a copy of the launcher in the user's bin dir under the app's command name,
and its removal with every installed version and the shared uv, on real executables built from the example."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import build_variant, installed_versions, manage

pytestmark = pytest.mark.e2e

NAME = "example-app"


@pytest.fixture(scope="module")
def exes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example at 1.0.0 and 1.0.1 (an upgrade replaces the installed copy)."""
    folder = tmp_path_factory.mktemp("path-install")
    return {version: build_variant(folder, version=version) for version in ("1.0.0", "1.0.1")}


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "bin"  # does not exist yet: install creates it


def env_for(bin_dir: Path, *, on_path: bool = True) -> dict[str, str]:
    path = os.environ.get("PATH", "")
    return {"XDG_BIN_HOME": str(bin_dir), "PATH": f"{bin_dir}{os.pathsep}{path}" if on_path else path}


def run_by_name(bin_dir: Path, install_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The app by its command name, found through PATH like a user's shell finds it."""
    env = {**os.environ, **env_for(bin_dir), "PYAKET_INSTALL_DIR": str(install_root)}
    return subprocess.run([NAME, *args], capture_output=True, text=True, env=env, timeout=300)


def test_install_puts_the_app_on_path_and_uninstall_removes_everything(
    exes: dict[str, Path], bin_dir: Path, install_root: Path
) -> None:
    exe = exes["1.0.0"]
    result = manage(exe, "install", install_root=install_root, env=env_for(bin_dir))
    assert result.returncode == 0, result.stderr
    copy = bin_dir / NAME
    assert f"installed {copy} (example-app 1.0.0)" in result.stderr
    assert f"{bin_dir} is on PATH: run `{NAME}`" in result.stderr
    assert f"undo with `PYAKET_SELF=uninstall {NAME}`" in result.stderr
    assert copy.read_bytes() == exe.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o755
    assert stat.S_IMODE(bin_dir.stat().st_mode) == 0o755
    assert installed_versions(install_root) == []  # install copies; the first run installs

    first = run_by_name(bin_dir, install_root, "hello")
    assert first.returncode == 0, first.stderr
    assert "first run, installing into" in first.stderr
    assert first.stdout.startswith("example-app 1.0.0 ")
    assert 'args: ["hello"]' in first.stdout
    assert f"prog: {NAME} " in first.stdout
    assert len(installed_versions(install_root)) == 1

    # Again: nothing to copy.
    again = manage(exe, "install", install_root=install_root, env=env_for(bin_dir))
    assert again.returncode == 0, again.stderr
    assert f"{copy} is up to date (example-app 1.0.0)" in again.stderr
    # An upgrade replaces the copy it made (renamed over it: a running old copy keeps its file).
    inode = copy.stat().st_ino
    upgrade = manage(exes["1.0.1"], "install", install_root=install_root, env=env_for(bin_dir))
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"replaced {copy} (example-app 1.0.1)" in upgrade.stderr
    assert copy.read_bytes() == exes["1.0.1"].read_bytes() and copy.stat().st_ino != inode
    second = run_by_name(bin_dir, install_root, "again")
    assert second.returncode == 0 and second.stdout.startswith("example-app 1.0.1 "), second.stderr
    assert len(installed_versions(install_root)) == 2
    assert list(bin_dir.iterdir()) == [copy]  # no temp file left

    # Uninstall from the installed copy itself, by its name.
    env = {**os.environ, **env_for(bin_dir), "PYAKET_INSTALL_DIR": str(install_root), "PYAKET_SELF": "uninstall"}
    gone = subprocess.run([NAME], capture_output=True, text=True, env=env, timeout=300)
    assert gone.returncode == 0, gone.stderr
    assert f"removed {copy}" in gone.stderr
    assert not copy.exists()
    assert installed_versions(install_root) == []
    assert not (install_root / "pyaket").exists(), list(install_root.rglob("*"))
    assert not (install_root / ".pyaket" / "uv").exists()
    assert f"removed {install_root / '.pyaket' / 'uv'} (no other app uses it)" in gone.stderr
    # Nothing left: exit 0 and says so.
    nothing = manage(exe, "uninstall", install_root=install_root, env=env_for(bin_dir))
    assert nothing.returncode == 0, nothing.stderr
    assert "example-app is not installed: nothing to remove" in nothing.stderr


def test_a_foreign_file_is_never_replaced_or_removed(exes: dict[str, Path], bin_dir: Path, install_root: Path) -> None:
    bin_dir.mkdir(parents=True)
    foreign = bin_dir / NAME
    foreign.write_text("#!/bin/sh\necho someone else's example-app\n")
    foreign.chmod(0o755)
    before = foreign.read_bytes()
    result = manage(exes["1.0.0"], "install", install_root=install_root, env=env_for(bin_dir, on_path=False))
    assert result.returncode == 1
    assert f"error: {foreign} exists and was not installed by example-app" in result.stderr
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in bin_dir.iterdir()) == [NAME]

    # Our copy edited since it was installed is no longer ours either.
    foreign.unlink()
    assert manage(exes["1.0.0"], "install", install_root=install_root, env=env_for(bin_dir)).returncode == 0
    foreign.write_bytes(foreign.read_bytes() + b"\0")
    edited = foreign.read_bytes()
    again = manage(exes["1.0.1"], "install", install_root=install_root, env=env_for(bin_dir))
    assert again.returncode == 1 and "was not installed by example-app" in again.stderr
    gone = manage(exes["1.0.0"], "uninstall", install_root=install_root, env=env_for(bin_dir))
    assert gone.returncode == 0, gone.stderr
    assert f"left {foreign} alone: not installed by example-app" in gone.stderr
    assert foreign.read_bytes() == edited


def test_not_on_path_prints_the_line_to_add_and_keeps_a_shared_uv_others_use(
    exes: dict[str, Path], bin_dir: Path, install_root: Path
) -> None:
    result = manage(exes["1.0.0"], "install", install_root=install_root, env=env_for(bin_dir, on_path=False))
    assert result.returncode == 0, result.stderr
    assert f"{bin_dir} is not on PATH" in result.stderr
    assert f'export PATH="{bin_dir}:$PATH"' in result.stderr
    # Another app (another vendor) installed under the same root keeps the shared uv.
    first = manage(exes["1.0.0"], "restore", install_root=install_root)
    assert first.returncode == 0, first.stderr
    other = install_root / "acme" / "other-app"
    shutil.copytree(installed_versions(install_root)[0], other / "1.0-abc", symlinks=True)
    gone = manage(exes["1.0.0"], "uninstall", install_root=install_root, env=env_for(bin_dir))
    assert gone.returncode == 0, gone.stderr
    assert f"kept the shared uv {install_root / '.pyaket' / 'uv'}: other apps use it ({other})" in gone.stderr
    assert any((install_root / ".pyaket" / "uv").iterdir())
    assert installed_versions(install_root) == [] and not (bin_dir / NAME).exists()


def test_a_running_version_is_kept_until_it_exits(exes: dict[str, Path], bin_dir: Path, install_root: Path) -> None:
    exe = exes["1.0.0"]
    assert manage(exe, "install", install_root=install_root, env=env_for(bin_dir)).returncode == 0
    env = {**os.environ, **env_for(bin_dir), "PYAKET_INSTALL_DIR": str(install_root)}
    app = subprocess.Popen([NAME, "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert app.stdout is not None
        while (line := app.stdout.readline()) and line != "waiting\n":
            pass
        assert line == "waiting\n", app.stderr.read() if app.stderr else ""
        (version,) = installed_versions(install_root)
        busy = manage(exe, "uninstall", install_root=install_root, env=env_for(bin_dir))
        assert busy.returncode == 1, busy.stderr
        assert f"{version} is in use by a running app, kept" in busy.stderr
        assert "1 version(s) in use by running apps were kept" in busy.stderr
        assert installed_versions(install_root) == [version] and not (bin_dir / NAME).exists()
    finally:
        app.terminate()
        app.wait(timeout=30)
    done = manage(exe, "uninstall", install_root=install_root, env=env_for(bin_dir))
    assert done.returncode == 0, done.stderr
    assert f"removed {install_root / 'pyaket' / 'example-app'}" in done.stderr
    assert installed_versions(install_root) == []
