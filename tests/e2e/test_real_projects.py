"""Real projects from PyPI, out of the box: extras that carry the CLI, entry points that declare extras.

These tests hit PyPI: `pip download` of httpx's sdist, an isolated `python -m build` (hatchling,
hatch-fancy-pypi-readme and this checkout's wheel via find-links), and the locks and first runs
(httpx's dependencies). httpx keeps its CLI in the `cli` extra: without it `httpx` only prints
"pip install 'httpx[cli]'".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import HOST_TRIPLE, build, find_links_env, installed_versions, run
from tests.example import edit_pyproject

pytestmark = [pytest.mark.e2e, pytest.mark.network]

HTTPX = "0.28.1"
EXE = f"httpx-{HTTPX}-{HOST_TRIPLE}"
HOOK = "\n[tool.hatch.build.hooks.pyaket]\n"
MISSING_CLI = "pip install 'httpx[cli]'"


@pytest.fixture(scope="module")
def httpx_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """httpx's sdist from PyPI, unpacked as a source tree: PKG-INFO removed (a checkout has none, and
    a build from an sdist skips executables by default) and hatch-pyaket added to its build requirements."""
    folder = tmp_path_factory.mktemp("httpx-sdist")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"httpx=={HTTPX}", "-d", folder],
        check=True,
        capture_output=True,
    )
    shutil.unpack_archive(folder / f"httpx-{HTTPX}.tar.gz", folder)
    source = folder / f"httpx-{HTTPX}"
    (source / "PKG-INFO").unlink()
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text()
    old = 'requires = ["hatchling", "hatch-fancy-pypi-readme"]'
    assert old in text
    pyproject.write_text(text.replace(old, 'requires = ["hatchling", "hatch-fancy-pypi-readme", "hatch-pyaket"]'))
    return source


def build_httpx(source: Path, tmp_path: Path, plugin_wheel_dir: Path, table: str) -> tuple[Path, str]:
    """An isolated `python -m build --wheel` (the real frontend path) of a copy with our hook table."""
    project = tmp_path / "httpx"
    shutil.copytree(source, project)
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(HOOK + table)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", str(project)],
        cwd=project,
        env={**os.environ, **find_links_env(plugin_wheel_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return project / "dist" / EXE, output


def test_httpx_with_its_cli_extra_runs_its_real_cli(
    httpx_source: Path, plugin_wheel_dir: Path, tmp_path: Path, install_root: Path
) -> None:
    exe, output = build_httpx(httpx_source, tmp_path, plugin_wheel_dir, 'extras = ["cli"]\n')
    assert f"pyaket: {HOST_TRIPLE}: the app is installed with its extras cli" in output
    assert "locking dependencies (universal[cli]" in output
    assert "optional dependencies" not in output  # the extras were chosen: no warning
    result = run(exe, ["--help"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert "Usage: httpx <URL> [OPTIONS]" in result.stdout and "--method" in result.stdout
    assert MISSING_CLI not in result.stdout + result.stderr
    (version_dir,) = installed_versions(install_root, app="httpx")
    site = next((version_dir / "venv" / "lib").glob("python3.*/site-packages"))
    assert (site / "rich").is_dir() and (site / "click").is_dir()  # the extra's dependencies, from the lock


def test_httpx_without_extras_warns_at_build_time_and_really_lacks_its_cli(
    httpx_source: Path, plugin_wheel_dir: Path, tmp_path: Path, install_root: Path
) -> None:
    exe, output = build_httpx(httpx_source, tmp_path, plugin_wheel_dir, "")
    warning = next(line for line in output.splitlines() if "optional dependencies" in line)
    assert warning.startswith("pyaket: WARNING: tool.hatch.build.hooks.pyaket.extras:")
    assert "(brotli, cli, http2, socks, zstd)" in warning and "script 'httpx'" in warning
    assert 'set extras = ["..."]' in warning
    result = run(exe, ["--help"], install_root=install_root)
    assert MISSING_CLI in result.stdout, result.stdout + result.stderr  # what the warning was about


def test_an_unknown_extra_stops_the_build_naming_the_known_ones(example_copy: Path) -> None:
    edit_pyproject(example_copy, hook={"extras": ["cli"]})
    result = build(example_copy, "--wheel", check=False)
    assert result.returncode != 0
    assert (
        "tool.hatch.build.hooks.pyaket.extras[0]: 'cli' is not an extra of this project "
        "([project.optional-dependencies]); the project defines no extras"
    ) in result.stdout + result.stderr


@pytest.mark.parametrize("lock", [True, False], ids=["locked", "unlocked"])
def test_an_entry_point_declaring_an_extra_gets_it_installed(
    example_copy: Path, install_root: Path, lock: bool
) -> None:
    """Like black's `blackd = "blackd:patched_main [d]"`: the bracket names what the script needs. With a lock,
    the lock holds the extra's dependencies; without one, the launcher installs `name[fancy] @ file://...`."""
    project = {"optional-dependencies": {"fancy": ["six"]}, "scripts": {"example-app": "example_app.cli:main [fancy]"}}
    edit_pyproject(example_copy, {"project": project}, hook={} if lock else {"lock": False})
    result = build(example_copy, "--wheel")
    assert "the app is installed with its extras fancy" in result.stderr
    exe = example_copy / "dist" / f"example-app-1.0.0-{HOST_TRIPLE}"
    ran = run(exe, ["x"], install_root=install_root)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[1].removeprefix("args: ")) == ["x"]
    (version_dir,) = installed_versions(install_root)
    site = next((version_dir / "venv" / "lib").glob("python3.*/site-packages"))
    assert (site / "six.py").is_file()


def test_a_cross_target_in_build_isolation_names_the_build_requirements_not_pip(
    example_copy: Path, plugin_wheel_dir: Path
) -> None:
    """`pip install hatch-pyaket[zig]` beside hatch is no use to an isolated build: the fix is the
    project's `[build-system] requires`. The plugin here is the one installed in the isolated env."""
    edit_pyproject(example_copy, hook={"targets": ["x86_64-unknown-linux-gnu.2.17"]})
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", str(example_copy)],
        cwd=example_copy,
        env={**env, **find_links_env(plugin_wheel_dir), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "/build-env-" in output  # the hook ran from the isolated environment
    assert '[build-system] requires = ["hatchling", "hatch-pyaket[zig]"]' in output
    assert "isolated build environment" in output
    assert "pip install" not in output


def test_offline_executables_embed_the_extras_wheels(example_copy: Path, tmp_path: Path) -> None:
    edit_pyproject(
        example_copy,
        {"project": {"optional-dependencies": {"fancy": ["six"]}}},
        hook={"python": "3.11", "offline": True, "extras": ["fancy"]},
    )
    build(example_copy, "--wheel")
    exe = example_copy / "dist" / f"example-app-1.0.0-{HOST_TRIPLE}"
    # Every request through a dead proxy fails, and uv's cache is empty: only the embedded wheels can serve.
    dead = {"UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_HTTP_RETRIES": "0", "NO_PROXY": "", "no_proxy": ""}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        dead[name] = "http://127.0.0.1:9"
    install_root = tmp_path / "apps"
    ran = run(exe, ["x"], install_root=install_root, env=dead)
    assert ran.returncode == 0, ran.stderr
    (version_dir,) = installed_versions(install_root)
    site = next((version_dir / "venv" / "lib").glob("python3.*/site-packages"))
    assert (site / "six.py").is_file() and (site / "colorama").is_dir()
