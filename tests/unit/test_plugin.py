"""The hook's decision to build executables (README, "Builds from an sdist"), with real hatchling objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from hatchling.bridge.app import Application

from hatch_pyaket import plugin
from hatch_pyaket.config import ProjectFacts, parse_config
from hatch_pyaket.errors import ToolchainError

HOST = "x86_64-unknown-linux-gnu"


class Recorder(Application):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def display_warning(self, message: str = "", **kwargs: object) -> None:
        self.lines.append(message)

    def display_info(self, message: str = "", **kwargs: object) -> None:
        self.lines.append(message)


def decide(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    sdist: bool,
    cargo: bool,
    required: bool | None = None,
    env: dict[str, str] | None = None,
) -> tuple[bool, list[str]]:
    for name in ("HATCH_PYAKET_SKIP", "HATCH_PYAKET_REQUIRED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(plugin, "cargo_executable", lambda: "/usr/bin/cargo" if cargo else None)
    if sdist:
        (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: app\nVersion: 1.0\n")
    table = {} if required is None else {"required": required}
    facts = ProjectFacts("app", "1.0", ">=3.9", {"app": "app:main"}, {})
    config = parse_config(table, facts, host_triple=HOST, root=tmp_path)
    app = Recorder()
    hook = plugin.PyaketBuildHook(str(tmp_path), table, None, None, str(tmp_path / "dist"), "wheel", app)
    return hook._should_build(config), app.lines


def test_a_source_tree_with_cargo_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert decide(tmp_path, monkeypatch, sdist=False, cargo=True) == (True, [])


def test_a_source_tree_without_cargo_fails_unless_not_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ToolchainError, match="HATCH_PYAKET_SKIP=1"):
        decide(tmp_path, monkeypatch, sdist=False, cargo=False)
    built, lines = decide(tmp_path, monkeypatch, sdist=False, cargo=False, required=False)
    assert not built and "WITHOUT executables" in lines[0]


def test_an_sdist_skips_even_with_cargo_saying_why_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built, lines = decide(tmp_path, monkeypatch, sdist=True, cargo=True)
    assert not built
    (line,) = lines
    assert "building from an sdist" in line and "HATCH_PYAKET_REQUIRED=1" in line and "hatch build" in line


def test_an_sdist_builds_when_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert decide(tmp_path, monkeypatch, sdist=True, cargo=True, env={"HATCH_PYAKET_REQUIRED": "1"}) == (True, [])
    assert decide(tmp_path, monkeypatch, sdist=True, cargo=True, required=True) == (True, [])
    with pytest.raises(ToolchainError, match="cargo was not found"):
        decide(tmp_path, monkeypatch, sdist=True, cargo=False, env={"HATCH_PYAKET_REQUIRED": "1"})
    # The variable wins over the table, both ways.
    built, _ = decide(tmp_path, monkeypatch, sdist=True, cargo=True, required=True, env={"HATCH_PYAKET_REQUIRED": "0"})
    assert not built


def test_skip_wins_over_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built, lines = decide(tmp_path, monkeypatch, sdist=False, cargo=True, required=True, env={"HATCH_PYAKET_SKIP": "1"})
    assert not built and "HATCH_PYAKET_SKIP is set" in lines[0]
