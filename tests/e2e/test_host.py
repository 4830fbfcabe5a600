"""The host target end to end: real builds with real frontends, real executables run as subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import no_cargo_path
from tests.e2e.helpers import HOST_TRIPLE, build, executables, find_links_env, installed_versions, manage, run
from tests.example import copy_example, edit_pyproject

pytestmark = pytest.mark.e2e

EXE_NAME = f"example-app-1.0.0-{HOST_TRIPLE}"
INSTALLING = "first run, installing into"


@dataclass(frozen=True)
class Built:
    project: Path
    dist: Path
    exe: Path
    output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`python -m build`: the sdist, then the wheel built from that sdist; HATCH_PYAKET_REQUIRED=1 asks for
    the executable there too (a build from an sdist skips it by default, see README)."""
    project = copy_example(tmp_path_factory.mktemp("built"))
    result = build(project, env={"HATCH_PYAKET_REQUIRED": "1"})
    dist = project / "dist"
    return Built(project, dist, dist / EXE_NAME, result.stdout + result.stderr)


def test_python_m_build_gives_sdist_wheel_executable_and_checksums(built: Built) -> None:
    names = sorted(p.name for p in built.dist.iterdir())
    assert names == [
        "SHA256SUMS", EXE_NAME, f"{EXE_NAME}.cdx.json", "example_app-1.0.0-py3-none-any.whl", "example_app-1.0.0.tar.gz",
        "pyaket-manifest.json",
    ]  # fmt: skip
    assert os.access(built.exe, os.X_OK)
    assert f"pyaket: built {built.exe}" in built.output
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=built.dist, capture_output=True).returncode == 0
    manifest = json.loads((built.dist / "pyaket-manifest.json").read_text())
    (entry,) = manifest["executables"]
    assert (manifest["app"], manifest["version"]) == ("example-app", "1.0.0")
    assert entry["file"] == EXE_NAME and entry["target"] == HOST_TRIPLE and entry["toolchain"] == "cargo"
    assert entry["size"] == built.exe.stat().st_size and entry["uv_version"] and entry["python"] == ">=3.9"


def test_first_run_installs_and_passes_args_and_exit_code(built: Built, install_root: Path) -> None:
    args = ["two words", "a \"quoted\" 'arg'", "ünïcødé ✓", "", "--exit", "7"]
    result = run(built.exe, args, install_root=install_root)
    assert result.returncode == 7, result.stderr
    assert INSTALLING in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("example-app 1.0.0 (colorama ")
    assert json.loads(lines[1].removeprefix("args: ")) == args[:4]
    (version_dir,) = installed_versions(install_root)
    assert (version_dir / ".pyaket-installed").is_file()
    assert version_dir.name.startswith("1.0.0-")
    assert str(version_dir) in lines[2]  # the app runs on the private venv's Python

    again = run(built.exe, ["second"], install_root=install_root)
    assert again.returncode == 0
    assert INSTALLING not in again.stderr and again.stderr == ""
    assert json.loads(again.stdout.splitlines()[1].removeprefix("args: ")) == ["second"]
    assert installed_versions(install_root) == [version_dir]


def test_stdin_reaches_the_app(built: Built, install_root: Path) -> None:
    text = "line one\nligne deux é\n"
    result = run(built.exe, ["--stdin"], install_root=install_root, stdin=text)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[3].removeprefix("stdin: ")) == text


def test_sigterm_reaches_the_app(built: Built, install_root: Path) -> None:
    assert run(built.exe, [], install_root=install_root).returncode == 0  # install first
    process = subprocess.Popen(
        [str(built.exe), "--wait"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYAKET_INSTALL_DIR": str(install_root)},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "waiting":
            break
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 143
    assert "got SIGTERM" in rest


def test_eight_concurrent_first_runs_install_once(built: Built, install_root: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: run(built.exe, [f"run{i}"], install_root=install_root), range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    assert sum(INSTALLING in r.stderr for r in results) == 1
    assert len(installed_versions(install_root)) == 1
    for i, result in enumerate(results):
        assert json.loads(result.stdout.splitlines()[1].removeprefix("args: ")) == [f"run{i}"]


def test_uv_is_unpacked_once_per_machine_and_shared(built: Built, install_root: Path) -> None:
    first = run(built.exe, ["one"], install_root=install_root)
    assert first.returncode == 0, first.stderr
    uv_version = json.loads((built.dist / "pyaket-manifest.json").read_text())["executables"][0]["uv_version"]
    (uv_dir,) = (install_root / ".pyaket" / "uv").iterdir()
    assert uv_dir.name.startswith(f"{uv_version}-")
    uv = uv_dir / "uv"
    assert uv.stat().st_size > 10_000_000 and os.access(uv, os.X_OK)
    assert subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.startswith(f"uv {uv_version}")
    (version_dir,) = installed_versions(install_root)
    assert not list(version_dir.rglob("uv")), "uv must not be copied into each version"

    # Reinstalling this version (or any app embedding the same uv) reuses it...
    before = uv.stat()
    assert manage(built.exe, "restore", install_root=install_root).returncode == 0
    after = uv.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # ...unless it was damaged since: then a complete one replaces it.
    uv.write_bytes(b"truncated")
    assert manage(built.exe, "restore", install_root=install_root).returncode == 0
    assert uv.stat().st_size == before.st_size
    assert [p.name for p in (install_root / ".pyaket" / "uv").iterdir()] == [uv_dir.name]


def test_a_first_run_installs_from_uv_cache_without_asking_the_index(built: Built, tmp_path: Path) -> None:
    cache = {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    warm = run(built.exe, ["warm"], install_root=tmp_path / "a", env=cache)
    assert warm.returncode == 0, warm.stderr
    # Every request through a dead proxy fails: only uv's cache can serve this install.
    dead = {"UV_HTTP_RETRIES": "0", "NO_PROXY": "", "no_proxy": ""}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        dead[name] = "http://127.0.0.1:9"
    cached = run(built.exe, ["cached"], install_root=tmp_path / "b", env={**cache, **dead})
    assert cached.returncode == 0, cached.stderr
    assert json.loads(cached.stdout.splitlines()[1].removeprefix("args: ")) == ["cached"]
    # A cache without the files falls through to the index (here unreachable): a clear failure, nothing left.
    cold = run(built.exe, ["cold"], install_root=tmp_path / "c", env={**dead, "UV_CACHE_DIR": str(tmp_path / "empty")})
    assert cold.returncode == 1
    assert "error: installing example-app 1.0.0 failed" in cold.stderr and "Connection refused" in cold.stderr
    assert installed_versions(tmp_path / "c") == []


def test_the_venv_ignores_the_callers_environment(built: Built, install_root: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "hostile"
    cwd.mkdir()
    # Everything here would break or redirect a naive `uv pip install` / `python` started in this folder.
    (cwd / "uv.toml").write_text('index-url = "http://127.0.0.1:9/simple"\n')
    (cwd / "pyproject.toml").write_text('[tool.uv]\nindex-url = "http://127.0.0.1:9/simple"\n')
    (cwd / ".env").write_text("PYTHONPATH=/nonexistent\n")
    (cwd / "colorama.py").write_text("raise SystemExit('shadowed by the current directory')\n")
    env = {
        "VIRTUAL_ENV": str(tmp_path / "not-a-venv"),
        "PYTHONPATH": str(cwd),
        "PYTHONHOME": str(tmp_path / "nope"),
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "elsewhere"),
        "UV_CONFIG_FILE": str(cwd / "uv.toml"),
    }
    result = subprocess.run(
        [str(built.exe), "x"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYAKET_INSTALL_DIR": str(install_root)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("example-app 1.0.0 (colorama ")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "not-a-venv").exists()


@pytest.mark.network  # an isolated build environment from PyPI
def test_hatch_build_makes_wheel_sdist_and_executable_but_leaves_the_sdist_alone(
    example_copy: Path, plugin_wheel_dir: Path, install_root: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **find_links_env(plugin_wheel_dir), "HATCH_DATA_DIR": str(tmp_path / "hatch-data")}
    result = subprocess.run(["hatch", "build"], cwd=example_copy, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    dist = example_copy / "dist"
    assert sorted(p.name for p in dist.iterdir()) == [
        "SHA256SUMS", EXE_NAME, f"{EXE_NAME}.cdx.json", "example_app-1.0.0-py3-none-any.whl", "example_app-1.0.0.tar.gz",
        "pyaket-manifest.json",
    ]  # fmt: skip
    output = result.stdout + result.stderr
    assert output.count("pyaket: built ") == 1
    with tarfile.open(dist / "example_app-1.0.0.tar.gz") as sdist:
        names = sdist.getnames()
    assert not any(HOST_TRIPLE in name for name in names), names
    # Nothing but dist/ was added to the project tree.
    assert sorted(p.name for p in example_copy.iterdir()) == ["README.md", "dist", "pyproject.toml", "src"]
    result = run(dist / EXE_NAME, ["ok"], install_root=install_root)
    assert result.returncode == 0 and 'args: ["ok"]' in result.stdout


def _edit(project: Path, old: str, new: str, path: str = "src/example_app/cli.py") -> None:
    """A change to the app's code."""
    file = project / path
    file.write_text(file.read_text().replace(old, new, 1))


def test_a_rebuilt_wheel_with_the_same_version_installs_afresh(example_copy: Path, install_root: Path) -> None:
    build(example_copy, "--wheel")
    exe = example_copy / "dist" / EXE_NAME
    assert run(exe, [], install_root=install_root).returncode == 0
    _edit(example_copy, 'print("args: "', 'print("rebuilt")\n    print("args: "')
    started = time.monotonic()
    build(example_copy, "--wheel")
    rebuild_seconds = time.monotonic() - started
    result = run(exe, [], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert INSTALLING in result.stderr
    assert result.stdout.splitlines()[1] == "rebuilt"
    assert len(installed_versions(install_root)) == 2
    print(f"warm rebuild after a code change: {rebuild_seconds:.1f} s")


def test_a_failed_install_leaves_nothing_and_the_next_run_tries_again(example_copy: Path, install_root: Path) -> None:
    edit_pyproject(example_copy, {"project": {"dependencies": ["colorama>=0.4", "colorama==0.0.1"]}})
    # With the default lock, the build itself refuses the unsatisfiable requirements...
    refused = build(example_copy, "--wheel", check=False)
    assert refused.returncode != 0
    assert "locking the dependencies of example_app-1.0.0" in refused.stderr
    assert "set lock = false" in refused.stderr
    assert executables(example_copy / "dist") == []
    # ...without it, they fail at the first run, which must leave nothing behind.
    edit_pyproject(example_copy, hook={"lock": False})
    build(example_copy, "--wheel")
    exe = example_copy / "dist" / EXE_NAME
    for _ in range(2):
        result = run(exe, [], install_root=install_root)
        assert result.returncode != 0
        assert INSTALLING in result.stderr
        assert "colorama" in result.stderr and "error: installing example-app 1.0.0 failed" in result.stderr
        assert result.stdout == ""
        assert installed_versions(install_root) == []
        leftovers = [p.name for p in (install_root / "pyaket" / "example-app").iterdir()]
        assert all(name in {".lock"} or name.endswith(".log") for name in leftovers), leftovers


BAD_CONFIGS: list[tuple[dict[str, object], str]] = [
    ({"targets": ["x86_64-unknown-linux-gun"]}, "tool.hatch.build.hooks.pyaket.targets[0]: unknown target"),
    ({"script": "missing"}, "tool.hatch.build.hooks.pyaket.script: 'missing' is not in [project.scripts]"),
    ({"python": "2.7"}, "tool.hatch.build.hooks.pyaket.python: '2.7': CPython 2.7 is older than every Python"),
    ({"profile": 3}, "tool.hatch.build.hooks.pyaket.profile: must be a string"),
    ({"colour": "blue"}, "tool.hatch.build.hooks.pyaket.colour: unknown setting"),
    ({"uv-version": "latest"}, "tool.hatch.build.hooks.pyaket.uv-version: 'latest' is not a release version"),
]


@pytest.mark.parametrize(("setting", "message"), BAD_CONFIGS, ids=[next(iter(b[0])) for b in BAD_CONFIGS])
def test_bad_config_fails_clearly_and_writes_nothing(
    example_copy: Path, setting: dict[str, object], message: str
) -> None:
    edit_pyproject(example_copy, hook=setting)
    result = build(example_copy, "--wheel", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    dist = example_copy / "dist"
    assert not dist.exists() or executables(dist) == []


@pytest.mark.network  # an isolated build environment from PyPI
def test_pip_install_of_the_sdist_needs_no_rust(built: Built, plugin_wheel_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **os.environ,
        **find_links_env(plugin_wheel_dir),
        "PATH": no_cargo_path(),
        "CARGO": "",
        "PIP_NO_CACHE_DIR": "1",
    }
    env.pop("CARGO")
    sdist = built.dist / "example_app-1.0.0.tar.gz"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-v", str(sdist)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "building from an sdist (PKG-INFO present), so the wheel is built without executables" in (
        result.stdout + result.stderr
    )
    app = subprocess.run([str(venv / "bin" / "example-app"), "hi"], capture_output=True, text=True)
    assert app.returncode == 0 and 'args: ["hi"]' in app.stdout


@pytest.mark.network  # an isolated build environment from PyPI
def test_pip_install_of_the_sdist_with_cargo_compiles_nothing_and_takes_seconds(
    built: Built, plugin_wheel_dir: Path, tmp_path: Path
) -> None:
    """pip builds the wheel from the sdist into a temporary folder and keeps only the wheel: with cargo
    on PATH it must still not compile launchers (a minute and hundreds of MB, thrown away)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cache, target = tmp_path / "pyaket-cache", tmp_path / "cargo-target"
    env = {
        **os.environ,
        **find_links_env(plugin_wheel_dir),
        "HATCH_PYAKET_CACHE_DIR": str(cache),
        "CARGO_TARGET_DIR": str(target),
        "PIP_NO_CACHE_DIR": "1",
    }
    assert subprocess.run(["cargo", "--version"], env=env, capture_output=True).returncode == 0
    started = time.monotonic()
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-v", str(built.dist / "example_app-1.0.0.tar.gz")],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "so the wheel is built without executables" in output and "HATCH_PYAKET_REQUIRED=1" in output
    assert "Compiling" not in output
    assert not target.exists() and not (cache / "target").exists() and not (cache / "blobs").exists()
    # Isolated build env from PyPI (hatchling, packaging...) plus the wheel: seconds, never cargo's minute.
    assert seconds < 45, f"pip install took {seconds:.0f} s"
    print(f"pip install of the sdist with cargo on PATH: {seconds:.1f} s")
    app = subprocess.run([str(venv / "bin" / "example-app"), "hi"], capture_output=True, text=True)
    assert app.returncode == 0 and 'args: ["hi"]' in app.stdout


def test_python_m_build_from_the_sdist_skips_the_executable_with_one_line(example_copy: Path) -> None:
    result = build(example_copy)
    dist = example_copy / "dist"
    assert sorted(p.name for p in dist.iterdir()) == ["example_app-1.0.0-py3-none-any.whl", "example_app-1.0.0.tar.gz"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("pyaket:")]
    assert len(lines) == 1, lines
    assert "building from an sdist" in lines[0] and "python -m build --wheel" in lines[0]
    assert "HATCH_PYAKET_REQUIRED=1" in lines[0]


def test_a_release_build_without_rust_fails_clearly_or_skips_on_request(example_copy: Path) -> None:
    env = {"PATH": no_cargo_path()}
    result = build(example_copy, "--wheel", env=env, check=False)
    assert result.returncode != 0
    assert "cargo was not found" in result.stdout + result.stderr
    assert "HATCH_PYAKET_SKIP=1" in result.stdout + result.stderr
    assert not (example_copy / "dist").exists() or executables(example_copy / "dist") == []

    skipped = build(example_copy, "--wheel", env={**env, "HATCH_PYAKET_SKIP": "1"})
    assert "HATCH_PYAKET_SKIP is set" in skipped.stdout + skipped.stderr
    assert [p.name for p in (example_copy / "dist").iterdir()] == ["example_app-1.0.0-py3-none-any.whl"]


def test_uv_from_path_and_an_output_dir(example_copy: Path, install_root: Path, tmp_path: Path) -> None:
    edit_pyproject(example_copy, hook={"uv": "path", "output-dir": "executables"})
    build(example_copy, "--wheel")
    exe = example_copy / "executables" / EXE_NAME
    assert executables(example_copy / "dist") == [] and exe.is_file()
    # No uv inside: the launcher is the launcher and the wheel (well under the 12+ MiB with uv).
    assert exe.stat().st_size < 3 * 1024 * 1024
    import uv as uv_package

    uv_dir = str(Path(uv_package.find_uv_bin()).parent)
    without_uv = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "uv").exists())
    missing = run(exe, [], install_root=install_root, env={"PATH": without_uv})
    assert missing.returncode == 1 and "uv" in missing.stderr and "PATH" in missing.stderr
    assert installed_versions(install_root) == []
    ok = run(exe, ["with uv"], install_root=install_root, env={"PATH": f"{uv_dir}{os.pathsep}{without_uv}"})
    assert ok.returncode == 0, ok.stderr
    assert 'args: ["with uv"]' in ok.stdout


def test_a_first_build_compiles_the_launchers_crates_while_the_payload_is_staged(
    example_copy: Path, tmp_path: Path, install_root: Path
) -> None:
    """A fresh cargo target dir, as on a CI runner: pyaket-core and its crates (zstd's C the longest) are compiled
    while the payload is compressed and staged, so the launcher's own cargo run compiles only what embeds it."""
    result = build(example_copy, "--wheel", env={"CARGO_TARGET_DIR": str(tmp_path / "cargo-target")})
    output = result.stdout + result.stderr
    first = output.index(f"pyaket: first build for {HOST_TRIPLE}")
    launcher = output.index("[example-app] with cargo:")
    ahead, after = output[first:launcher], output[launcher:]
    assert "Compiling zstd-sys" in ahead and "Compiling pyaket-core" in ahead, ahead
    compiled_after = set(re.findall(r"Compiling (\S+) v", after))
    assert compiled_after == {"pyaket-manifest", "pyaket-payload", "pyaket-launcher"}, after
    exe = example_copy / "dist" / f"example-app-1.0.0-{HOST_TRIPLE}"
    checked = manage(exe, "check", install_root=install_root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    app = run(exe, ["hi"], install_root=install_root)
    assert app.returncode == 0 and 'args: ["hi"]' in app.stdout, app.stderr
