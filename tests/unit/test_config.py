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
    assert config.self_command is None and config.keep_versions == 2 and config.required is None
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
        f"{PATH}.target.\"aarch64-apple-darwin\": 'aarch64-apple-darwin' is not in targets",
        f'{PATH}.target."aarch64-apple-darwin".colour: unknown setting',
        f"{PATH}.target.\"aarch64-apple-darwin\".tool: 'zig' is not allowed",
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
    assert parse({}).self_command is None  # every argument reaches the app; PYAKET_SELF=<command> manages
    assert parse({"self-command": False}).self_command is None
    assert parse({"self-command": "self"}).self_command == "self"
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


def test_python_must_be_a_known_cpython_minor() -> None:
    (message,) = problems({"python": "3.99"})
    assert message == (
        f"{PATH}.python: '3.99': there is no CPython 3.99 (known minors: 3.8 to 3.16); "
        'set python to one of them, e.g. "3.12", or to a range such as ">=3.11"'
    )
    for bad in ("4.0", "3.99.1", "3.17"):
        (message,) = problems({"python": bad}, requires_python="")
        assert message.startswith(f"{PATH}.python: {bad!r}: there is no CPython "), message
    for old in ("3.7", "2.7.18"):
        (message,) = problems({"python": old}, requires_python="")
        assert message.startswith(f"{PATH}.python: {old!r}: CPython {old[:3]} is older than every Python"), message
        assert "(known minors: 3.8 to 3.16)" in message


def test_python_patch_past_the_end_of_a_finished_line_is_refused() -> None:
    (message,) = problems({"python": "3.9.99"})
    assert message == (
        f"{PATH}.python: '3.9.99' does not exist: the 3.9 line ended with 3.9.25 and gets no more releases; "
        'set python = "3.9" (its newest release) or a 3.9.x up to 3.9.25'
    )
    assert problems({"python": "3.8.21"}, requires_python="")[0].startswith(f"{PATH}.python: '3.8.21' does not exist")
    assert parse({"python": "3.9.25"}).python == "3.9.25"  # the last one is fine
    assert parse({"python": "3.10.0"}).warnings == ()


def test_python_patch_newer_than_known_of_a_live_line_only_warns() -> None:
    config = parse({"python": "3.12.99"})
    assert config.python == "3.12.99"
    (warning,) = config.warnings
    assert warning.startswith(f"{PATH}.python: '3.12.99' is newer than the newest CPython 3.12 release")
    assert "(3.12.16)" in warning and 'Set python = "3.12"' in warning
    (warning,) = parse({"python": "3.16.0"}).warnings  # only pre-releases so far
    assert "(3.16 (pre-releases only))" in warning
    assert parse({"python": "3.12.16"}).warnings == parse({"python": "3.12"}).warnings == ()


def test_one_table_owns_the_known_minors() -> None:
    from hatch_pyaket import config as config_module
    from hatch_pyaket import cpython

    assert config_module.KNOWN_PYTHON_MINORS is cpython.KNOWN_MINORS
    assert set(cpython.FINISHED) <= set(cpython.KNOWN_MINORS)
    assert all(cpython.NEWEST_PATCH[m] is not None for m in cpython.FINISHED)


@pytest.mark.parametrize("value", [4294967296, 1001, -1])
def test_keep_versions_is_bounded(value: int) -> None:
    (message,) = problems({"keep-versions": value})
    assert message == (
        f"{PATH}.keep-versions: must be a whole number from 0 to 1000 (0 keeps every installed version), not {value}"
    )


def test_keep_versions_bounds_are_accepted() -> None:
    assert parse({"keep-versions": 0}).keep_versions == 0
    assert parse({"keep-versions": 1000}).keep_versions == 1000


def test_hook_table_written_as_an_array_of_tables() -> None:
    """`[[tool.hatch.build.hooks.pyaket]]`: hatchling 1.33 refuses it itself (see tests/e2e/test_config_errors.py);
    if a hatchling hands it over, the message names the table and the fix."""
    with pytest.raises(ConfigError) as info:
        parse_config([{"targets": ["host"]}], facts(), host_triple=HOST, root=Path("/project"))  # type: ignore[arg-type]
    (message,) = [str(p) for p in info.value.problems]
    assert message == (
        f"{PATH}: is an array of tables ([[{PATH}]]), not a table; write its header with single brackets: "
        f"[{PATH}] (one table holds every setting; targets = [...] lists several targets)"
    )
    with pytest.raises(ConfigError) as info:
        parse_config("host", facts(), host_triple=HOST, root=Path("/project"))  # type: ignore[arg-type]
    assert str(info.value.problems[0]) == f"{PATH}: must be a table ([{PATH}]), not 'host'"


# --- extras -------------------------------------------------------------------------------------

EXTRAS = ("brotli", "cli", "http2")


def test_extras_global_and_per_target_are_validated_against_optional_dependencies() -> None:
    config = parse(
        {
            "targets": ["host", "x86_64-pc-windows-msvc"],
            "extras": ["CLI", "cli"],
            "target": {"x86_64-pc-windows-msvc": {"extras": ["http2"]}},
        },
        optional_dependencies=EXTRAS,
    )
    linux, windows = config.targets
    assert config.extras_for(linux) == ("cli",)
    assert config.extras_for(windows) == ("cli", "http2")
    assert config.warnings == ()


def test_an_unknown_extra_names_its_path_value_and_the_known_extras() -> None:
    found = problems({"extras": ["cli", "htp2"], "target": {HOST: {"extras": ["nope"]}}}, optional_dependencies=EXTRAS)
    assert found == [
        f"{PATH}.extras[1]: 'htp2' is not an extra of this project ([project.optional-dependencies]); "
        "did you mean 'http2'? it defines: brotli, cli, http2",
        f"{PATH}.target.\"{HOST}\".extras[0]: 'nope' is not an extra of this project "
        "([project.optional-dependencies]); it defines: brotli, cli, http2",
    ]
    assert problems({"extras": ["cli"]}) == [
        f"{PATH}.extras[0]: 'cli' is not an extra of this project ([project.optional-dependencies]); "
        "the project defines no extras"
    ]
    assert problems({"extras": "cli"}, optional_dependencies=EXTRAS) == [
        f"{PATH}.extras: must be an array of strings, not 'cli'"
    ]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("blackd:patched_main [d]", ("blackd:patched_main", ("d",))),
        ("pkg.cli:main[cli, HTTP_2]", ("pkg.cli:main", ("cli", "http-2"))),
        ("  pkg:main  ", ("pkg:main", ())),
        ("pkg:main []", ("pkg:main", ())),
        ("pkg:main [d", None),
        ("pkg [d]", None),
        ("pkg:main [d] [e]", None),
        ("pkg:main [d e]", None),
    ],
)
def test_entry_point_values_with_extras(value: str, parsed: tuple[str, tuple[str, ...]] | None) -> None:
    from hatch_pyaket.config import parse_entry_point

    assert parse_entry_point(value) == parsed


def test_an_entry_point_s_extras_are_installed_and_never_reach_the_launcher() -> None:
    config = parse({"script": "blackd"}, scripts={"black": "black:main", "blackd": "blackd:patched_main [d]"},
                   optional_dependencies=("colorama", "d"))  # fmt: skip
    (entry,) = config.entries
    assert (entry.value, entry.extras) == ("blackd:patched_main", ("d",))
    assert config.extras_for(config.targets[0]) == ("d",)
    assert config.warnings == ()  # the entry point says what it needs


def test_an_entry_point_needing_an_undefined_extra_is_refused() -> None:
    assert problems({}, scripts={"app": "app:main [gui]"}, optional_dependencies=("cli",)) == [
        f"{PATH}.script: script 'app' ([project.scripts]: 'app:main [gui]') needs the extra 'gui', which "
        "[project.optional-dependencies] does not define (it defines: cli)"
    ]


def test_extras_nobody_asked_for_give_one_warning_that_extras_empty_silences() -> None:
    (warning,) = parse({}, scripts={"httpx": "httpx:main"}, optional_dependencies=EXTRAS).warnings
    assert warning.startswith(f"{PATH}.extras: the project has optional dependencies (brotli, cli, http2)")
    assert "script 'httpx'" in warning and 'set extras = ["..."] (extras = [] silences this)' in warning
    assert parse({"extras": []}, optional_dependencies=EXTRAS).warnings == ()
    assert parse({}).warnings == ()  # no extras to miss
    (module,) = parse({"module": "pkg.tool"}, optional_dependencies=EXTRAS).warnings
    assert "module 'pkg.tool'" in module
