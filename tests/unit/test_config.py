from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hatch_pyaket.config import ProjectFacts, PyaketConfig, parse_config
from hatch_pyaket.errors import ConfigError

HOST = "x86_64-unknown-linux-gnu"
PATH = "tool.hatch.build.hooks.pyaket"


def facts(**changes: Any) -> ProjectFacts:
    base: dict[str, Any] = {
        "name": "example-app",
        "version": "1.0.0",
        "requires_python": ">=3.9",
        "scripts": {"example-app": "example_app.cli:main"},
        "gui_scripts": {},
    }
    base.update(changes)
    return ProjectFacts(**base)


def parse(table: dict[str, Any], **changes: Any) -> PyaketConfig:
    return parse_config(table, facts(**changes), host_triple=HOST, root=Path("/project"))


def problems(table: dict[str, Any], **changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(table, **changes)
    return [str(p) for p in info.value.problems]


def test_defaults() -> None:
    config = parse({})
    assert [t.name for t in config.targets] == [HOST]
    assert [(e.kind, e.value, e.name) for e in config.entries] == [("script", "example_app.cli:main", "example-app")]
    assert config.python == ">=3.9"  # uv takes the specifier and prefers an installed Python
    assert (config.vendor, config.install_name, config.profile, config.uv) == ("pyaket", "example-app", "size", "embed")
    assert config.self_command == "self" and config.keep_versions == 2 and config.required is None
    assert config.cargo_profile == "release"


def test_hatch_reserved_keys_are_ignored() -> None:
    parse({"dependencies": ["x"], "enable-by-default": False, "require-runtime-dependencies": True})


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems(
        {
            "targets": ["x86_64-unknown-linux-gun", 3],
            "pyhton": "3.11",
            "profile": "fast",
            "keep-versions": "two",
            "env": {"A": 1},
            "target": {"aarch64-apple-darwin": {"tool": "zig", "colour": 1}},
        }
    )
    expected = [
        f"{PATH}.pyhton: unknown setting; did you mean 'python'?",
        f"{PATH}.targets[0]: unknown target 'x86_64-unknown-linux-gun'; did you mean 'x86_64-unknown-linux-gnu'",
        f"{PATH}.targets[1]: must be a string, not int 3",
        f"{PATH}.profile: 'fast' is not allowed; choose one of 'size', 'speed'",
        f"{PATH}.keep-versions: must be a whole number, not 'two'",
        f"{PATH}.env.A: must be a string, not int 1",
        f'{PATH}.target."aarch64-apple-darwin": \'aarch64-apple-darwin\' is not in targets',
        f'{PATH}.target."aarch64-apple-darwin".colour: unknown setting',
        f'{PATH}.target."aarch64-apple-darwin".tool: \'zig\' is not allowed',
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expected)


def test_several_scripts_need_a_choice() -> None:
    scripts = {"a": "pkg.a:main", "b": "pkg.b:main"}
    (message,) = problems({}, scripts=scripts)
    assert message.startswith(f"{PATH}.script: the project has several scripts (a, b)")
    config = parse({"scripts": ["a", "b"]}, scripts=scripts)
    assert [e.name for e in config.entries] == ["a", "b"]
    assert [e.name for e in parse({"script": "b"}, scripts=scripts).entries] == ["b"]


def test_no_scripts_needs_an_entry() -> None:
    (message,) = problems({}, scripts={})
    assert "has no [project.scripts]" in message
    assert parse({"module": "pkg.cli"}, scripts={}).entries[0].kind == "module"
    assert parse({"code": "print(1)"}, scripts={}).entries[0].value == "print(1)"


def test_entry_settings_conflict_and_are_checked() -> None:
    assert problems({"script": "example-app", "module": "x"}) == [
        f"{PATH}.module: conflicts with {PATH}.script; choose one of script, scripts, module or code"
    ]
    assert problems({"script": "nope"}) == [
        f"{PATH}.script: 'nope' is not in [project.scripts] or [project.gui-scripts]; they have: example-app"
    ]
    assert problems({"module": "not a module"})[0].startswith(f"{PATH}.module: 'not a module' is not a dotted")


def test_gui_scripts_are_gui() -> None:
    config = parse({}, scripts={}, gui_scripts={"viewer": "pkg.gui:main"})
    assert config.entries[0].gui is True


def test_python_is_checked_against_requires_python() -> None:
    assert parse({"python": "3.11"}).python == "3.11"
    assert parse({"python": "3.11"}, requires_python=">=3.11.4").python == "3.11"
    assert problems({"python": "3.8"}) == [
        f"{PATH}.python: '3.8' does not satisfy the project's requires-python '>=3.9'"
    ]
    assert problems({"python": "three"})[0].startswith(f"{PATH}.python: 'three' is neither a version")
    assert parse({"python": "3.12"}, requires_python="").python == "3.12"


def test_self_command() -> None:
    assert parse({"self-command": False}).self_command is None
    assert parse({"self-command": "manage"}).self_command == "manage"
    assert problems({"self-command": "--x"})[0].startswith(f"{PATH}.self-command: must be a word")


def test_per_target_options() -> None:
    config = parse(
        {
            "targets": ["host", "x86_64-pc-windows-gnu"],
            "cargo-args": ["-v"],
            "target": {"x86_64-pc-windows-gnu": {"tool": "zigbuild", "cargo-args": ["-Zbuild-std"], "env": {"B": "1"}}},
        }
    )
    windows = next(t for t in config.targets if t.os == "windows")
    options = config.options_for(windows)
    assert (options.tool, options.cargo_args, options.env) == ("zigbuild", ("-Zbuild-std",), (("B", "1"),))
    assert config.options_for(config.targets[0]).tool is None


def test_target_table_path_is_used_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"profile": 1},
            facts(),
            path="tool.hatch.build.targets.wheel.hooks.pyaket",
            host_triple=HOST,
            root=Path("/p"),
        )
    assert str(info.value.problems[0]).startswith("tool.hatch.build.targets.wheel.hooks.pyaket.profile")
