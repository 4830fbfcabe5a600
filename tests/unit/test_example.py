"""tests/example.py: the example project copied with its pyproject.toml changed as data."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.example import EXAMPLE, copy_example, dumps, edit_pyproject

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _read(project: Path) -> dict[str, object]:
    return tomllib.loads((project / "pyproject.toml").read_text())


def test_a_plain_copy_is_the_example_as_it_is(tmp_path: Path) -> None:
    project = copy_example(tmp_path)
    assert project == tmp_path / "example_project"
    assert (project / "pyproject.toml").read_text() == (EXAMPLE / "pyproject.toml").read_text()
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "pyproject.toml", "src"]


def test_hook_settings_target_tables_and_project_fields_are_merged(tmp_path: Path) -> None:
    env = {"RUSTC_BOOTSTRAP": "1", "CARGO_UNSTABLE_BUILD_STD": "std,panic_abort"}
    project = copy_example(
        tmp_path,
        "other",
        hook={"targets": ["host", "x86_64-pc-windows-gnu"], "keep-versions": 2, "gui": True,
              "target": {"x86_64-pc-windows-gnu": {"env": env}}},
        changes={"project": {"version": "1.0.1", "scripts": {"example-app": None, "other": "example_app.cli:main"}}},
    )  # fmt: skip
    data = _read(project)
    original = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert data["build-system"] == original["build-system"]
    assert data["project"] == {**original["project"], "version": "1.0.1", "scripts": {"other": "example_app.cli:main"}}
    assert data["tool"]["hatch"]["build"]["hooks"]["pyaket"] == {  # type: ignore[index]
        "targets": ["host", "x86_64-pc-windows-gnu"], "keep-versions": 2, "gui": True,
        "target": {"x86_64-pc-windows-gnu": {"env": env}},
    }  # fmt: skip
    edit_pyproject(project, hook={"gui": None, "python": "3.11"})
    hook = _read(project)["tool"]["hatch"]["build"]["hooks"]["pyaket"]  # type: ignore[index]
    assert "gui" not in hook and hook["python"] == "3.11" and hook["keep-versions"] == 2


def test_the_writer_round_trips_what_pyproject_files_hold() -> None:
    data = {
        "a": {"s": 'quote " back \\ é\n', "i": -3, "f": 1.5, "t": True, "l": [1, "x", [False]]},
        "b": {"c": {"d": {"e": 1}}, "arr": [{"k": "v", "n": 2}], "dotted.key": {"x": 1}},
    }
    assert tomllib.loads(dumps(data)) == data
