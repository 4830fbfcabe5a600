"""Builds started together on one machine, sharing one cache (and so one cargo target dir).

Each executable must run its own app: the payload staged for one project must never end up in
another project's executable, and two builds into one folder must leave consistent checksums.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hatch_pyaket.artifacts import SBOM_SUFFIX
from tests.e2e.helpers import HOST_TRIPLE, build, run
from tests.example import EXAMPLE, copy_example

pytestmark = pytest.mark.e2e

ROUNDS = 3
# Seconds cargo waits before it starts: a slow machine or a cold compile, where the time between
# staging a payload and copying the executable out is long (minutes on a cold cache).
CARGO_DELAY = 3


@pytest.fixture(scope="module")
def slow_cargo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`$CARGO` (which the plugin honours) set to the real cargo, started after a delay."""
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed"
    wrapper = tmp_path_factory.mktemp("slow-cargo") / "cargo"
    wrapper.write_text(f'#!/bin/sh\nsleep {CARGO_DELAY}\nexec "{cargo}" "$@"\n')
    wrapper.chmod(0o755)
    return {"CARGO": str(wrapper)}


def _project(parent: Path, name: str, version: str) -> Path:
    """A copy of the example whose project, script and version are `name`/`version`."""
    scripts = {"example-app": None, name: "example_app.cli:main"}
    return copy_example(parent, name, changes={"project": {"name": name, "version": version, "scripts": scripts}})


def _mark(project: Path, marker: str) -> None:
    """Make the app print `marker` first, so its output says which build it came from."""
    original = (EXAMPLE / "src" / "example_app" / "cli.py").read_text()
    anchor = '    print(f"example-app {__version__}'
    assert anchor in original
    marked = original.replace(anchor, f'    print("MARKER {marker}")\n{anchor}', 1)
    (project / "src" / "example_app" / "cli.py").write_text(marked)


def _build_together(
    jobs: list[tuple[Path, tuple[str, ...]]], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: build(job[0], "--wheel", *job[1], env=env, check=False), jobs))


def _assert_built(results: list[subprocess.CompletedProcess[str]]) -> None:
    for result in results:
        assert result.returncode == 0, f"build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def _marker_of(exe: Path, install_root: Path) -> str:
    result = run(exe, ["hello"], install_root=install_root)
    assert result.returncode == 0, f"{exe} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout.splitlines()[0]


def _exe(dist: Path, name: str, version: str) -> Path:
    return dist / f"{name}-{version}-{HOST_TRIPLE}"


def test_two_projects_built_at_once_each_get_their_own_app(tmp_path: Path, slow_cargo: dict[str, str]) -> None:
    """Round 1 as it comes; later rounds with a slow cargo, so both builds surely overlap. The last
    round builds both into one folder, whose SHA256SUMS and manifest must then list both."""
    alpha = _project(tmp_path, "alpha-app", "1.1.0")
    beta = _project(tmp_path, "beta-app", "2.2.0")
    shared = tmp_path / "shared"
    swapped = []
    for round_number in range(1, ROUNDS + 1):
        _mark(alpha, f"alpha round {round_number}")
        _mark(beta, f"beta round {round_number}")
        last = round_number == ROUNDS
        out = ("--outdir", str(shared)) if last else ()
        _assert_built(_build_together([(alpha, out), (beta, out)], None if round_number == 1 else slow_cargo))
        install_root = tmp_path / f"apps-{round_number}"
        got = {
            "alpha": _marker_of(_exe(shared if last else alpha / "dist", "alpha-app", "1.1.0"), install_root),
            "beta": _marker_of(_exe(shared if last else beta / "dist", "beta-app", "2.2.0"), install_root),
        }
        want = {name: f"MARKER {name} round {round_number}" for name in got}
        if got != want:
            swapped.append((round_number, got))
    assert not swapped, f"executables ran another build's app: {swapped}"
    _assert_indexes(shared, [_exe(shared, "alpha-app", "1.1.0"), _exe(shared, "beta-app", "2.2.0")])


def _assert_indexes(folder: Path, executables: list[Path]) -> None:
    """SHA256SUMS and the manifest list exactly these executables, with their real checksums and sizes."""
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], check=False, cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = sorted(line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    # Each executable and its SBOM beside it.
    assert listed == sorted(name for exe in executables for name in (exe.name, exe.name + SBOM_SUFFIX))
    manifest = json.loads((folder / "pyaket-manifest.json").read_text())
    assert {item["file"]: (item["size"], item["sbom"]) for item in manifest["executables"]} == {
        exe.name: (exe.stat().st_size, exe.name + SBOM_SUFFIX) for exe in executables
    }
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary files left in the output folder: {leftovers}"


def test_one_project_built_twice_at_once(tmp_path: Path, slow_cargo: dict[str, str]) -> None:
    """Into two folders (each executable right), then into one folder (checksums and manifest consistent)."""
    project = _project(tmp_path, "gamma-app", "3.0.0")
    _mark(project, "gamma")
    first, second = tmp_path / "out-1", tmp_path / "out-2"
    _assert_built(_build_together([(project, ("--outdir", str(first))), (project, ("--outdir", str(second)))]))
    install_root = tmp_path / "apps"
    for dist in (first, second):
        assert _marker_of(_exe(dist, "gamma-app", "3.0.0"), install_root) == "MARKER gamma"

    shared = tmp_path / "shared"
    jobs = [(project, ("--outdir", str(shared))), (project, ("--outdir", str(shared)))]
    _assert_built(_build_together(jobs, slow_cargo))
    exe = _exe(shared, "gamma-app", "3.0.0")
    assert _marker_of(exe, install_root) == "MARKER gamma"
    _assert_indexes(shared, [exe])
