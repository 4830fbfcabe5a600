"""The apps the benchmark builds: `example` (example_project/, one dependency) and `rich` (a generated
click + rich CLI), each as a project with the hatch-pyaket hook and a copy without it for the peers."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.example import copy_example, edit_pyproject

APP_KEYS = ("example", "rich")


@dataclass
class App:
    key: str
    title: str
    dist: str  # distribution name
    package: str  # import package
    script: str  # console script
    entry: str  # module:function
    main_module: str  # runnable with `python -m`
    args: tuple[str, ...]
    edit_file: str  # file changed by the warm rebuilds (relative to the project)
    edit_anchor: str  # a whole statement; `; print("bench-edit-<n>")` is appended to it
    version: str = "1.0.0"
    requires_python: str = ">=3.9"
    source: Path = Path()  # generated project with the pyaket hook
    plain: Path = Path()  # the same without the hook, for the peers

    def edit(self, project: Path, n: int) -> str:
        """The app printing `bench-edit-<n>`: rebuild n changes this one line; returns the text."""
        path = project / self.edit_file
        original = project / (self.edit_file + ".orig")
        if not original.exists():
            shutil.copy2(path, original)
        text = original.read_text()
        assert self.edit_anchor in text, f"{self.edit_anchor!r} not in {path}"
        marker = f"bench-edit-{n}"
        path.write_text(text.replace(self.edit_anchor, f'{self.edit_anchor}; print("{marker}")', 1))
        return marker


RICH_CLI = '''\
"""bench-rich: a small click + rich CLI that prints a table (the heavier benchmark app)."""

import click
from rich.console import Console
from rich.table import Table

from bench_rich import __version__


@click.command()
@click.argument("names", nargs=-1)
@click.option("--rows", default=5, show_default=True, help="How many rows to print.")
def main(names: tuple, rows: int) -> None:
    """Print a table of the given NAMES."""
    console = Console(width=100, force_terminal=False, color_system=None)
    table = Table(title=f"bench-rich {__version__}")
    for column in ("#", "name", "length", "upper"):
        table.add_column(column)
    for i, name in enumerate((list(names) or ["alpha", "beta", "gamma"]) * rows):
        table.add_row(str(i), name, str(len(name)), name.upper())
    console.print(table)
'''

RICH_PYPROJECT = """\
[build-system]
requires = ["hatchling", "hatch-pyaket"]
build-backend = "hatchling.build"

[project]
name = "bench-rich"
version = "1.0.0"
description = "benchmark app: a click + rich CLI"
readme = "README.md"
requires-python = ">=3.9"
dependencies = ["click>=8", "rich>=13"]

[project.scripts]
bench-rich = "bench_rich.cli:main"

[tool.hatch.build.targets.wheel]
packages = ["src/bench_rich"]

[tool.hatch.build.hooks.pyaket]
targets = ["host"]
"""


def _example(work: Path) -> App:
    app = App(
        key="example",
        title="example_project (colorama)",
        dist="example-app",
        package="example_app",
        script="example-app",
        entry="example_app.cli:main",
        main_module="example_app.cli",
        args=("hello", "world"),
        edit_file="src/example_app/cli.py",
        edit_anchor='print("args: " + json.dumps(rest, ensure_ascii=False))',
    )
    shutil.rmtree(work / "apps" / "example", ignore_errors=True)
    app.source = copy_example(work / "apps" / "example", "hook")
    return app


def _rich(work: Path) -> App:
    app = App(
        key="rich",
        title="bench-rich (click + rich table)",
        dist="bench-rich",
        package="bench_rich",
        script="bench-rich",
        entry="bench_rich.cli:main",
        main_module="bench_rich",
        args=("hello", "world", "--rows", "3"),
        edit_file="src/bench_rich/cli.py",
        edit_anchor="console.print(table)",
    )
    app.source = work / "apps" / "rich" / "hook"
    shutil.rmtree(app.source.parent, ignore_errors=True)
    package = app.source / "src" / "bench_rich"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "1.0.0"\n')
    (package / "__main__.py").write_text("from bench_rich.cli import main\n\nmain()\n")
    (package / "cli.py").write_text(RICH_CLI)
    (app.source / "README.md").write_text("bench-rich\n")
    (app.source / "pyproject.toml").write_text(RICH_PYPROJECT)
    return app


def make_apps(work: Path, keys: Sequence[str]) -> list[App]:
    """The apps named by `keys`, generated under `work/apps/<key>/{hook,plain}`."""
    apps = [make(work) for key, make in (("example", _example), ("rich", _rich)) if key in keys]
    for app in apps:
        app.plain = app.source.parent / "plain"
        shutil.copytree(app.source, app.plain)
        # The peers build the same project with hatchling alone: no plugin, no hook table (the only hook).
        edit_pyproject(
            app.plain, {"build-system": {"requires": ["hatchling"]}, "tool": {"hatch": {"build": {"hooks": None}}}}
        )
    return apps
