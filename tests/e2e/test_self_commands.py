"""`<app> self info|check|remove|restore|clean|help` on real executables built from the example project."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.helpers import HOST_TRIPLE, build, installed_versions, run

pytestmark = pytest.mark.e2e

INSTALLING = "first run, installing into"
VERSIONS = ("1.0.0", "1.0.1", "1.0.2")


def build_variant(folder: Path, *, version: str = "1.0.0", settings: str = "") -> Path:
    """The example project at `version`, built with the plugin; its executable.

    `settings` (hook settings) apply when `folder` gets its copy of the project; later calls change the version.
    """
    project = folder / "example_project"
    pyproject = project / "pyproject.toml"
    if not project.exists():
        shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("dist"))
        pyproject.write_text(
            pyproject.read_text().replace('targets = ["host"]\n', f'targets = ["host"]\n{settings}\n', 1)
        )
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text()))
    init = project / "src" / "example_app" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    build(project, "--wheel")
    return project / "dist" / f"example-app-{version}-{HOST_TRIPLE}"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Executables of three successive versions with keep-versions = 2."""
    folder = tmp_path_factory.mktemp("versions")
    return {version: build_variant(folder, version=version, settings="keep-versions = 2") for version in VERSIONS}


@pytest.fixture
def exe(versions: dict[str, Path]) -> Path:
    return versions["1.0.0"]


def info(exe: Path, install_root: Path, command: str = "self") -> dict[str, str]:
    result = run(exe, [command, "info"], install_root=install_root)
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
    with_env = run(exe, ["self", "info"], install_root=install_root, env={"PYAKET_PYTHON": "3.11"})
    assert "python       3.11 (PYAKET_PYTHON)" in with_env.stdout


def test_check_verifies_every_embedded_file_without_installing(exe: Path, install_root: Path) -> None:
    result = run(exe, ["self", "check"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"ok    example_app-1\.0\.0-py3-none-any\.whl \(\d+ bytes\)", line) for line in lines)
    assert any(re.fullmatch(r"ok    uv \(\d+ bytes\)", line) for line in lines)
    assert re.fullmatch(r"OK: \d+ embedded files verified", lines[-1])
    assert installed_versions(install_root) == []


def test_remove_deletes_this_versions_environment(exe: Path, install_root: Path) -> None:
    assert run(exe, [], install_root=install_root).returncode == 0
    (version_dir,) = installed_versions(install_root)
    removed = run(exe, ["self", "remove"], install_root=install_root)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {version_dir}" in removed.stderr and removed.stdout == ""
    assert not version_dir.exists() and installed_versions(install_root) == []

    again = run(exe, ["self", "remove"], install_root=install_root)
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

    restored = run(exe, ["self", "restore", "ignored-by-restore"], install_root=install_root)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == ""  # the app did not run
    assert f"reinstalling into {version_dir}" in restored.stderr and f"installed {version_dir}" in restored.stderr
    fixed = run(exe, ["ok"], install_root=install_root)
    assert fixed.returncode == 0 and INSTALLING not in fixed.stderr
    assert json.loads(fixed.stdout.splitlines()[1].removeprefix("args: ")) == ["ok"]

    # On a machine where it was never installed, restore installs.
    fresh = install_root / "fresh"
    restored = run(exe, ["self", "restore"], install_root=fresh)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == "" and len(installed_versions(fresh)) == 1


def test_help_and_unknown_commands(exe: Path, install_root: Path) -> None:
    shown = run(exe, ["self", "help"], install_root=install_root)
    assert shown.returncode == 0
    assert "usage: example-app self <command>" in shown.stdout
    for command in ("info", "check", "remove", "restore", "clean", "help"):
        assert re.search(rf"(?m)^  {command} ", shown.stdout), command
    for args in (["self"], ["self", "bogus"]):
        result = run(exe, args, install_root=install_root)
        assert result.returncode == 2 and result.stdout == ""
        assert "usage: example-app self <command>" in result.stderr
    assert 'unknown command "bogus"' in run(exe, ["self", "bogus"], install_root=install_root).stderr
    assert installed_versions(install_root) == []


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
    cleaned = run(versions["1.0.1"], ["self", "clean"], install_root=install_root)
    assert cleaned.returncode == 0, cleaned.stderr
    (kept,) = installed_versions(install_root)
    assert kept.name.startswith("1.0.1-")
    assert "removing " in cleaned.stderr and "removed 1 other version(s)" in cleaned.stderr
    nothing = run(versions["1.0.1"], ["self", "clean"], install_root=install_root)
    assert nothing.returncode == 0 and "removed 0 other version(s)" in nothing.stderr


@pytest.fixture(scope="module")
def no_self_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_variant(tmp_path_factory.mktemp("no-self"), settings="self-command = false")


@pytest.fixture(scope="module")
def custom_self_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_variant(tmp_path_factory.mktemp("custom-self"), settings='self-command = "admin"')


def test_self_command_false_gives_self_to_the_app(no_self_command: Path, install_root: Path) -> None:
    result = run(no_self_command, ["self", "info"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[1].removeprefix("args: ")) == ["self", "info"]


def test_a_custom_self_command_word(custom_self_command: Path, install_root: Path) -> None:
    shown = info(custom_self_command, install_root, command="admin")
    assert shown["app"] == "example-app" and shown["installed"] == "no"
    usage = run(custom_self_command, ["admin", "help"], install_root=install_root)
    assert "usage: example-app admin <command>" in usage.stdout
    # "self" is now an ordinary argument.
    result = run(custom_self_command, ["self", "info"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[1].removeprefix("args: ")) == ["self", "info"]
