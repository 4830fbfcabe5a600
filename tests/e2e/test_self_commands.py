"""Management commands (`PYAKET_SELF=info|check|remove|restore|clean|help <app>`, and `<app> <word> <command>` when a
build reserves a word) on real executables built from the example project; the app's argv[0]."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import HOST_TRIPLE, build_variant, installed_versions, manage, run

pytestmark = pytest.mark.e2e

INSTALLING = "first run, installing into"
VERSIONS = ("1.0.0", "1.0.1", "1.0.2")


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Executables of three successive versions with keep-versions = 2."""
    folder = tmp_path_factory.mktemp("versions")
    return {version: build_variant(folder, version=version, settings={"keep-versions": 2}) for version in VERSIONS}


@pytest.fixture
def exe(versions: dict[str, Path]) -> Path:
    return versions["1.0.0"]


def info(exe: Path, install_root: Path, word: str | None = None) -> dict[str, str]:
    result = (
        run(exe, [word, "info"], install_root=install_root) if word else manage(exe, "info", install_root=install_root)
    )
    assert result.returncode == 0, result.stderr
    return {line[:13].strip(): line[13:] for line in result.stdout.splitlines()}


def test_info_shows_the_app_its_payload_and_install_dir(exe: Path, install_root: Path) -> None:
    before = info(exe, install_root)
    assert list(before) == ["app", "version", "target", "payload hash", "python", "uv", "install dir", "installed"]
    assert before["app"] == "example-app"
    assert before["version"] == "1.0.0"
    assert before["target"] == HOST_TRIPLE
    assert re.fullmatch(r"[0-9a-f]{64}", before["payload hash"])
    assert before["python"] == ">=3.9"
    uv_text = re.fullmatch(r"0\.13\.9 \(embedded; unpacked once into (.+)\)", before["uv"])
    assert uv_text, before["uv"]
    shared_uv = Path(uv_text[1])
    assert shared_uv.parent.parent == install_root / ".pyaket" / "uv" and shared_uv.name == "uv"
    assert not shared_uv.exists()  # info unpacks nothing
    version_dir = install_root / "pyaket" / "example-app" / f"1.0.0-{before['payload hash'][:12]}"
    assert before["install dir"] == str(version_dir)
    assert before["installed"] == "no"
    assert not version_dir.exists()  # info installs nothing

    assert run(exe, [], install_root=install_root).returncode == 0
    assert installed_versions(install_root) == [version_dir]
    assert info(exe, install_root)["installed"] == "yes"
    assert shared_uv.is_file()
    with_env = manage(exe, "info", install_root=install_root, env={"PYAKET_PYTHON": "3.11"})
    assert "python       3.11 (PYAKET_PYTHON)" in with_env.stdout


def test_check_verifies_every_embedded_file_without_installing(exe: Path, install_root: Path) -> None:
    result = manage(exe, "check", install_root=install_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"ok    example_app-1\.0\.0-py3-none-any\.whl \(\d+ bytes\)", line) for line in lines)
    assert any(re.fullmatch(r"ok    uv \(\d+ bytes\)", line) for line in lines)
    assert re.fullmatch(r"OK: \d+ embedded files verified", lines[-1])
    assert installed_versions(install_root) == []


def test_remove_deletes_this_versions_environment(exe: Path, install_root: Path) -> None:
    assert run(exe, [], install_root=install_root).returncode == 0
    (version_dir,) = installed_versions(install_root)
    removed = manage(exe, "remove", install_root=install_root)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {version_dir}" in removed.stderr and removed.stdout == ""
    assert not version_dir.exists() and installed_versions(install_root) == []

    again = manage(exe, "remove", install_root=install_root)
    assert again.returncode == 0 and "example-app 1.0.0 is not installed" in again.stderr
    rerun = run(exe, ["back"], install_root=install_root)
    assert rerun.returncode == 0 and INSTALLING in rerun.stderr


def test_restore_reinstalls_without_running_the_app(exe: Path, install_root: Path) -> None:
    assert run(exe, [], install_root=install_root).returncode == 0
    (version_dir,) = installed_versions(install_root)
    # Break the environment: the app's package is gone.
    shutil.rmtree(next((version_dir / "venv" / "lib").glob("python3.*/site-packages/example_app")))
    broken = run(exe, [], install_root=install_root)
    assert broken.returncode != 0 and "example_app" in broken.stderr

    restored = manage(exe, "restore", ["ignored-by-restore"], install_root=install_root)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == ""  # the app did not run
    assert f"reinstalling into {version_dir}" in restored.stderr and f"installed {version_dir}" in restored.stderr
    fixed = run(exe, ["ok"], install_root=install_root)
    assert fixed.returncode == 0 and INSTALLING not in fixed.stderr
    assert json.loads(fixed.stdout.splitlines()[1].removeprefix("args: ")) == ["ok"]

    # On a machine where it was never installed, restore installs.
    fresh = install_root / "fresh"
    restored = manage(exe, "restore", install_root=fresh)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == "" and len(installed_versions(fresh)) == 1


def test_help_and_unknown_commands(exe: Path, install_root: Path) -> None:
    shown = manage(exe, "help", install_root=install_root)
    assert shown.returncode == 0
    assert f"usage: PYAKET_SELF=<command> {exe}\n\nevery argument goes to the app" in shown.stdout, shown.stdout
    for command in ("info", "check", "remove", "restore", "clean", "help"):
        assert re.search(rf"(?m)^  {command} ", shown.stdout), command
    for variable in ("PYAKET_SELF", "PYAKET_INSTALL_DIR", "PYAKET_LOCK_TIMEOUT", "PYAKET_PYTHON", "PYAKET_UV"):
        assert re.search(rf"(?m)^  {variable} ", shown.stdout), variable
    result = manage(exe, "bogus", install_root=install_root)
    assert result.returncode == 2 and result.stdout == ""
    assert 'unknown command "bogus"' in result.stderr and "usage: PYAKET_SELF=<command>" in result.stderr
    assert installed_versions(install_root) == []


def test_every_argument_reaches_the_app(exe: Path, install_root: Path) -> None:
    # No word is reserved by default: `self ...` belongs to the app (hatch has its own `hatch self`).
    result = run(exe, ["self", "info"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[1].removeprefix("args: ")) == ["self", "info"]
    # An empty PYAKET_SELF is no command.
    empty = manage(exe, "", ["self", "restore"], install_root=install_root)
    assert empty.returncode == 0 and INSTALLING not in empty.stderr, empty.stderr
    assert json.loads(empty.stdout.splitlines()[1].removeprefix("args: ")) == ["self", "restore"]


def prog_line(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The example's `prog: <basename of argv[0]> (argv[0] <argv[0]>)` line."""
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("prog: ")]
    match = re.fullmatch(r"prog: (.*) \(argv\[0\] (.*)\)", line)
    assert match, line
    return match[1], match[2]


def test_argv0_reads_like_the_console_script(exe: Path, install_root: Path, tmp_path: Path) -> None:
    assert exe.name == f"example-app-1.0.0-{HOST_TRIPLE}"
    prog, argv0 = prog_line(run(exe, [], install_root=install_root))
    assert prog == "example-app"
    # The venv's console script: a real path that starts the app again.
    (version_dir,) = installed_versions(install_root)
    assert argv0 == str(version_dir / "venv" / "bin" / "example-app")
    again = subprocess.run(
        [argv0, "direct"], check=False, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}
    )
    assert again.returncode == 0 and '["direct"]' in again.stdout, again.stderr
    # Found on PATH under its release name: the same.
    on_path = run(
        Path(exe.name), [], install_root=install_root, env={"PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"}
    )
    assert prog_line(on_path)[0] == "example-app"

    # A renamed copy (or a symlink) keeps the name it was given.
    renamed = tmp_path / "tool"
    shutil.copy2(exe, renamed)
    assert prog_line(run(renamed, [], install_root=install_root)) == ("tool", str(renamed))
    link = tmp_path / "ea"
    link.symlink_to(exe)
    assert prog_line(run(link, [], install_root=install_root)) == ("ea", str(link))


def test_a_new_version_keeps_only_keep_versions_installed(versions: dict[str, Path], install_root: Path) -> None:
    for version in VERSIONS:
        result = run(versions[version], [], install_root=install_root)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"example-app {version} ")
    assert [p.name.split("-")[0] for p in installed_versions(install_root)] == ["1.0.1", "1.0.2"]
    # The versions that remain still start without installing again.
    for version in ("1.0.1", "1.0.2"):
        assert INSTALLING not in run(versions[version], [], install_root=install_root).stderr


def test_clean_deletes_the_other_versions(versions: dict[str, Path], install_root: Path) -> None:
    for version in ("1.0.0", "1.0.1"):
        assert run(versions[version], [], install_root=install_root).returncode == 0
    assert len(installed_versions(install_root)) == 2
    cleaned = manage(versions["1.0.1"], "clean", install_root=install_root)
    assert cleaned.returncode == 0, cleaned.stderr
    (kept,) = installed_versions(install_root)
    assert kept.name.startswith("1.0.1-")
    assert "removing " in cleaned.stderr and "removed 1 other version(s)" in cleaned.stderr
    nothing = manage(versions["1.0.1"], "clean", install_root=install_root)
    assert nothing.returncode == 0 and "removed 0 other version(s)" in nothing.stderr


@pytest.fixture(scope="module")
def custom_self_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_variant(tmp_path_factory.mktemp("custom-self"), settings={"self-command": "admin"})


def test_a_self_command_word_when_configured(custom_self_command: Path, install_root: Path) -> None:
    exe = custom_self_command
    shown = info(exe, install_root, word="admin")
    assert shown["app"] == "example-app" and shown["installed"] == "no"
    assert info(exe, install_root) == shown  # PYAKET_SELF works as well
    usage = run(exe, ["admin", "help"], install_root=install_root)
    assert f"usage: PYAKET_SELF=<command> {exe}\n   or: {exe} admin <command>\n" in usage.stdout, usage.stdout
    assert "every other argument goes to the app" in usage.stdout
    alone = run(exe, ["admin"], install_root=install_root)
    assert alone.returncode == 2 and "usage: " in alone.stderr
    # "self" is an ordinary argument.
    result = run(exe, ["self", "info"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[1].removeprefix("args: ")) == ["self", "info"]
