"""`hatch build -t binary` and `hatch build -t pyaket`: real hatch, real cargo, launchers run as subprocesses.

cargo runs offline (CARGO_NET_OFFLINE=true) once the launcher's own crates are fetched, so PyApp
(which hatch's binary builder would otherwise `cargo install`) cannot be downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.helpers import HOST_TRIPLE, find_links_env, installed_versions, manage, run
from tests.example import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.network]  # hatch's build environment comes from PyPI

TOOL = """

def tool() -> int:
    print("example-tool args: " + json.dumps(sys.argv[1:], ensure_ascii=False))
    return 3
"""


@dataclass(frozen=True)
class HatchBuild:
    project: Path
    output: str

    @property
    def dist(self) -> Path:
        return self.project / "dist"


@pytest.fixture(scope="module")
def hatch_build(tmp_path_factory: pytest.TempPathFactory, plugin_wheel_dir: Path) -> HatchBuild:
    """One `hatch build -t binary -t pyaket` of the example with a second script, cargo offline."""
    base = tmp_path_factory.mktemp("binary-target")
    project = copy_example(
        base,
        changes={
            "project": {"scripts": {"example-tool": "example_app.cli:tool"}},
            "tool": {"hatch": {"build": {"targets": {"pyaket": {"script": "example-tool"}}}}},
        },
    )
    with (project / "src" / "example_app" / "cli.py").open("a") as cli:
        cli.write(TOOL)
    # The launcher's own crates, fetched while the network is allowed; the build below is offline.
    subprocess.run(
        ["cargo", "fetch", "--locked", "--manifest-path", str(ROOT / "rust_template" / "Cargo.toml")],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        **find_links_env(plugin_wheel_dir),
        "HATCH_DATA_DIR": str(base / "hatch-data"),
        "CARGO_NET_OFFLINE": "true",
    }
    result = subprocess.run(
        ["hatch", "build", "-t", "binary", "-t", "pyaket"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return HatchBuild(project, output)


def _sha256sums_check(folder: Path) -> str:
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


def test_t_binary_gives_one_launcher_per_script_and_no_pyapp(hatch_build: HatchBuild) -> None:
    binary = hatch_build.dist / "binary"
    names = ["SHA256SUMS", "example-app-1.0.0", "example-app-1.0.0.cdx.json", "example-tool-1.0.0"]
    names += ["example-tool-1.0.0.cdx.json", "pyaket-manifest.json"]
    assert sorted(p.name for p in binary.iterdir()) == names
    assert _sha256sums_check(binary).count(": OK") == 4  # the launchers and their SBOMs
    manifest = json.loads((binary / "pyaket-manifest.json").read_text())
    assert [(e["file"], e["entry"], e["target"]) for e in manifest["executables"]] == [
        ("example-app-1.0.0", "example-app", HOST_TRIPLE),
        ("example-tool-1.0.0", "example-tool", HOST_TRIPLE),
    ]
    # Nothing else was left in dist/: the wheel embedded in the launchers was built in a temporary folder,
    # and the hook did not run again for it (which would have put executables beside it).
    assert sorted(p.name for p in hatch_build.dist.iterdir()) == ["binary", "pyaket"]
    assert hatch_build.output.count("handed to hatch's binary builder (PyApp is not built)") == 2
    assert "pyapp v" not in hatch_build.output.lower()
    for name in ("example-app-1.0.0", "example-tool-1.0.0"):
        assert os.access(binary / name, os.X_OK)
        assert f"pyaket: built {binary / name} ({HOST_TRIPLE})" in hatch_build.output


def test_binary_launchers_install_once_and_run_their_script(hatch_build: HatchBuild, install_root: Path) -> None:
    binary = hatch_build.dist / "binary"
    first = run(binary / "example-app-1.0.0", ["a b", "--exit", "4"], install_root=install_root)
    assert first.returncode == 4, first.stderr
    assert "first run, installing into" in first.stderr
    assert json.loads(first.stdout.splitlines()[1].removeprefix("args: ")) == ["a b"]

    tool = run(binary / "example-tool-1.0.0", ["x", "ü"], install_root=install_root)
    assert tool.returncode == 3, tool.stderr
    assert tool.stdout == 'example-tool args: ["x", "ü"]\n'
    # Both scripts come from one wheel and share one installed environment.
    assert "first run" not in tool.stderr
    assert len(installed_versions(install_root)) == 1

    info = manage(binary / "example-tool-1.0.0", "info", install_root=install_root)
    assert info.returncode == 0 and f"target       {HOST_TRIPLE}" in info.stdout


def test_t_pyaket_builds_the_executables_into_dist_pyaket(hatch_build: HatchBuild, install_root: Path) -> None:
    folder = hatch_build.dist / "pyaket"
    exe = f"example-tool-1.0.0-{HOST_TRIPLE}"
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", exe, f"{exe}.cdx.json", "pyaket-manifest.json"]
    _sha256sums_check(folder)
    result = run(folder / exe, ["--flag"], install_root=install_root)
    assert result.returncode == 3, result.stderr
    assert result.stdout == 'example-tool args: ["--flag"]\n'
