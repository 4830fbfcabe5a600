"""Building the example project with real frontends and running what they produce."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from hatch_pyaket import artifacts, fetch, pipeline
from hatch_pyaket.targets import parse_target
from tests.example import copy_example, edit_pyproject

HOST_TRIPLE = "x86_64-unknown-linux-gnu"


def build(
    project: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python -m build --no-isolation` in this environment (the plugin is installed here)."""
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", *args, str(project)],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"build failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def find_links_env(plugin_wheels: Path) -> dict[str, str]:
    """Let isolated build environments find this checkout's wheel (it is not on PyPI)."""
    links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS", ""), str(plugin_wheels)]))
    return {"PIP_FIND_LINKS": links, "UV_FIND_LINKS": str(plugin_wheels)}


def executables(dist: Path) -> list[Path]:
    return sorted(
        p for p in dist.iterdir() if p.is_file() and p.suffix not in {".whl", ".gz", ".json"} and p.name != "SHA256SUMS"
    )


def run(
    exe: Path,
    args: Sequence[str] = (),
    *,
    install_root: Path,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYAKET_INSTALL_DIR": str(install_root), **(env or {})},
        timeout=timeout,
    )


def installed_versions(install_root: Path, app: str = "example-app", vendor: str = "pyaket") -> list[Path]:
    app_dir = install_root / vendor / app
    if not app_dir.is_dir():
        return []
    # Version folders are `<version>-<hash>`; `python-<hash>` holds an embedded Python, `.tmp-*` an install.
    return sorted(p for p in app_dir.iterdir() if p.is_dir() and p.name[:1].isdigit())


def manage(
    exe: Path,
    command: str,
    args: Sequence[str] = (),
    *,
    install_root: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """A management command, the way every build answers it: `PYAKET_SELF=<command> <exe> [args]`."""
    return run(exe, args, install_root=install_root, env={**(env or {}), "PYAKET_SELF": command}, timeout=timeout)


def build_variant(
    folder: Path,
    *,
    version: str = "1.0.0",
    settings: dict[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    target: str = HOST_TRIPLE,
) -> Path:
    """The example project at `version`, built with the plugin; its executable for `target` (which `settings`
    must name in `targets` unless it is the host).

    `settings` (hook settings) apply when `folder` gets its copy of the project; later calls change the version.
    """
    project = folder / "example_project"
    if not project.exists():
        copy_example(folder, hook=settings)
    edit_pyproject(project, {"project": {"version": version}})
    init = project / "src" / "example_app" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    build(project, "--wheel", env=env)
    return project / "dist" / artifacts.executable_name("example-app", version, parse_target(target))


def fresh_copy(exe: Path, folder: Path) -> Path:
    """A copy of `exe` in `folder/bin`, where a user keeps it (a self-update may replace it)."""
    copy = folder / "bin" / exe.name
    copy.parent.mkdir()
    shutil.copy2(exe, copy)
    return copy


def make_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A minisign key pair made by the minisign CLI (no password): its public and secret key files."""
    if shutil.which("minisign") is None:
        pytest.skip("the minisign CLI is not installed (apt-get install minisign; .ci/setup-cross.sh does)")
    public, secret = folder / f"{name}.pub", folder / f"{name}.key"
    subprocess.run(["minisign", "-G", "-W", "-p", public, "-s", secret], check=True, capture_output=True)
    return public, secret


def staged_payload(target: str = HOST_TRIPLE) -> Path:
    """Where the plugin staged the last payload it embedded for `target` (what build.rs read)."""
    return pipeline.target_dir(os.environ, fetch.cache_dir()) / "pyaket-payload" / target


def start(exe: Path, args: list[str], install_root: Path, **env: str) -> subprocess.Popen[str]:
    """The app in the background, in its own process group (like a shell job)."""
    return subprocess.Popen(
        [str(exe), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYAKET_INSTALL_DIR": str(install_root), **env},
        start_new_session=True,
    )


def wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    """Reads the app's output up to a line containing `text` (its banner comes first)."""
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, f"{text!r} never printed (exit {proc.wait()}): {proc.communicate()[1]}"
        if text in line:
            return


def start_sleeping(exe: Path, install_root: Path, seconds: float) -> subprocess.Popen[str]:
    proc = start(exe, ["--sleep", str(seconds)], install_root)
    wait_for_line(proc, "sleeping")
    return proc


def finish_sleeping(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "slept, colorama" in out, (out, err)
