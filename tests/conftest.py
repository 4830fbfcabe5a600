from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example import copy_example

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Cheap tests first, so a broken unit shows before minutes of compiling.
    items.sort(key=lambda item: 1 if "/e2e/" in str(item.fspath) else 0)


@pytest.fixture(scope="session")
def plugin_wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as a wheel, for build frontends that install build requirements themselves.

    The folder is named by the wheel's sha256: uv keeps wheels from a find-links folder by its path and the
    file name, so a wheel of another checkout once served from the same temp path (pytest reuses its
    numbered dirs) would otherwise be installed instead of this one."""
    out = tmp_path_factory.mktemp("plugin-wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    folder = out / hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    folder.mkdir()
    wheel.rename(folder / wheel.name)
    return folder


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


@pytest.fixture
def install_root(tmp_path: Path) -> Path:
    root = tmp_path / "apps"
    root.mkdir()
    return root


def no_cargo_path() -> str:
    """PATH without any folder that holds cargo or rustc."""
    kept = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not Path(p, "cargo").exists()]
    return os.pathsep.join(kept)
