"""The README's Quick start recipe for projects whose sdist others build: the plugin in the hook's own
`dependencies`, the hook on for release builds only. Real isolated builds (hatch, pip) and a real run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.helpers import HOST_TRIPLE, executables, find_links_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.network]

README = (ROOT / "README.md").read_text()


def _recipe() -> str:
    """The TOML block of the README that turns the hook on for release builds only."""
    blocks = re.findall(r"```toml\n(.*?)```", README, flags=re.S)
    (recipe,) = [b for b in blocks if "enable-by-default = false" in b]
    return recipe


def test_sdist_builds_with_hatchling_alone_while_release_builds_make_executables(
    example_copy: Path, plugin_wheel_dir: Path, install_root: Path, tmp_path: Path
) -> None:
    recipe = _recipe()
    assert 'requires = ["hatchling"]' in recipe and "HATCH_BUILD_HOOK_ENABLE_PYAKET=1 hatch build" in README
    pyproject = example_copy / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace('requires = ["hatchling", "hatch-pyaket"]', 'requires = ["hatchling"]')
    # The README's hook table, with the host as the only target (foreign targets need zig here).
    hook = recipe[recipe.index("[tool.hatch.build.hooks.pyaket]") :]
    hook = re.sub(r"targets = \[.*\]", 'targets = ["host"]', hook).replace("hatch-pyaket[zig]", "hatch-pyaket")
    text = text[: text.index("[tool.hatch.build.hooks.pyaket]")] + hook
    pyproject.write_text(text)

    env = {**os.environ, **find_links_env(plugin_wheel_dir), "HATCH_DATA_DIR": str(tmp_path / "hatch-data")}
    release = subprocess.run(
        ["hatch", "build"],
        cwd=example_copy,
        env={**env, "HATCH_BUILD_HOOK_ENABLE_PYAKET": "1"},
        capture_output=True,
        text=True,
    )
    assert release.returncode == 0, release.stdout + release.stderr
    dist = example_copy / "dist"
    (exe,) = executables(dist)
    assert exe.name == f"example-app-1.0.0-{HOST_TRIPLE}"
    ran = run(exe, ["from the release"], install_root=install_root)
    assert ran.returncode == 0 and 'args: ["from the release"]' in ran.stdout, ran.stderr

    # Someone else builds the sdist: the plugin cannot be found (not on an index), cargo is on PATH.
    clean = {k: v for k, v in os.environ.items() if k not in {"PIP_FIND_LINKS", "UV_FIND_LINKS"}}
    out = tmp_path / "wheels"
    downstream = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "-v",
            "-w",
            str(out),
            str(dist / "example_app-1.0.0.tar.gz"),
        ],
        env=clean,
        capture_output=True,
        text=True,
    )
    assert downstream.returncode == 0, downstream.stdout[-3000:] + downstream.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["example_app-1.0.0-py3-none-any.whl"]
    assert "pyaket" not in downstream.stdout + downstream.stderr
