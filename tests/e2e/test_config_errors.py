"""Settings that used to build and fail later (on the user's machine, or inside cargo) now stop
`python -m build` at once, naming the TOML path, the value and the fix. Nothing is compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import build
from tests.example import edit_pyproject

pytestmark = pytest.mark.e2e

TABLE = "tool.hatch.build.hooks.pyaket"


@pytest.fixture
def project(example_copy: Path) -> Path:
    return example_copy


def _set(project: Path, old: str, new: str) -> None:
    """A change to the file's text: for what its data cannot say (a table written as an array of tables)."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert old in text
    pyproject.write_text(text.replace(old, new, 1))


def _fails(project: Path) -> str:
    result = build(project, "--wheel", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Compiling" not in output  # refused before any compile
    assert not list((project / "dist").glob("example-app-*")) if (project / "dist").is_dir() else True
    return output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3.99", f"{TABLE}.python: '3.99': there is no CPython 3.99 (known minors: 3.8 to 3.16)"),
        ("3.9.99", f"{TABLE}.python: '3.9.99' does not exist: the 3.9 line ended with 3.9.25"),
    ],
)
def test_an_unknown_python_stops_the_build(project: Path, value: str, expected: str) -> None:
    edit_pyproject(project, hook={"python": value})
    assert expected in _fails(project)


def test_keep_versions_beyond_u32_stops_the_build_with_its_path(project: Path) -> None:
    edit_pyproject(project, hook={"keep-versions": 4294967296})
    output = _fails(project)
    assert f"{TABLE}.keep-versions: must be a whole number from 0 to 1000 (0 keeps every installed version)" in output
    assert "4294967296" in output


def test_hook_table_as_an_array_is_refused_by_hatchling_before_the_plugin_loads(project: Path) -> None:
    """hatchling (1.33) checks hook tables in get_requires_for_build_wheel, before it loads any hook
    plugin, and raises a TypeError naming the table; the plugin's own message (config.py) covers a
    hatchling that lets it through. This records what the user sees today."""
    _set(project, f"[{TABLE}]", f"[[{TABLE}]]")
    output = _fails(project)
    assert f"Field `{TABLE}` must be a table" in output
