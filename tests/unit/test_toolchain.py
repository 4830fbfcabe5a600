from __future__ import annotations

from pathlib import Path

import pytest

from hatch_pyaket import toolchain
from hatch_pyaket.targets import parse_target

LINUX = "x86_64-unknown-linux-gnu"
CARGO_HOME = Path.home() / ".cargo"


@pytest.mark.parametrize(
    ("target", "host", "env", "tool"),
    [
        ("x86_64-unknown-linux-gnu", LINUX, {}, "cargo"),
        ("x86_64-unknown-linux-gnu.2.17", LINUX, {}, "zigbuild"),
        ("aarch64-unknown-linux-gnu", LINUX, {}, "zigbuild"),
        ("x86_64-unknown-linux-musl", LINUX, {}, "zigbuild"),
        ("x86_64-pc-windows-gnu", LINUX, {}, "zigbuild"),
        ("aarch64-apple-darwin", LINUX, {}, "zigbuild"),
        ("x86_64-pc-windows-msvc", LINUX, {}, "xwin"),
        ("x86_64-pc-windows-msvc", "aarch64-apple-darwin", {}, "xwin"),
        ("x86_64-pc-windows-msvc", "x86_64-pc-windows-msvc", {}, "cargo"),
        ("aarch64-pc-windows-msvc", "x86_64-pc-windows-msvc", {}, "cargo"),
        ("aarch64-apple-darwin", "x86_64-apple-darwin", {}, "zigbuild"),
        ("aarch64-unknown-linux-gnu", LINUX, {"AUTO_ZIGBUILD": "0"}, "cargo"),
        ("x86_64-pc-windows-msvc", LINUX, {"AUTO_ZIGBUILD": "0"}, "xwin"),
    ],
)
def test_tool_choice(target: str, host: str, env: dict[str, str], tool: str) -> None:
    assert toolchain.choose_tool(parse_target(target), host, None, env) == tool


def test_forced_tool_wins() -> None:
    assert toolchain.choose_tool(parse_target("aarch64-unknown-linux-gnu"), LINUX, "cargo", {}) == "cargo"


def plan(target: str, **kwargs: object) -> toolchain.Invocation:
    defaults: dict[str, object] = {
        "template": Path("/tpl"),
        "target_dir": Path("/cache/target"),
        "profile": "release",
        "forced_tool": None,
        "cargo_args": [],
        "extra_env": {},
        "environ": {"CARGO": "/bin/cargo", "PATH": "/nowhere"},
        "host": LINUX,
    }
    defaults.update(kwargs)
    return toolchain.plan(parse_target(target), **defaults)  # type: ignore[arg-type]


def test_xwin_command_is_exact() -> None:
    invocation = plan("x86_64-pc-windows-msvc")
    assert invocation.tool == "xwin"
    assert Path(invocation.command[0]).name in {"cargo-xwin", "cargo-xwin.exe"}
    assert list(invocation.command[1:]) == [
        "xwin", "build", "--locked", "--profile", "release", "--target", "x86_64-pc-windows-msvc",
        "--package", "pyaket-launcher", "--manifest-path", "/tpl/Cargo.toml",
        "--config", 'target.x86_64-pc-windows-msvc.rustflags = '
        f'["--remap-path-prefix={CARGO_HOME}=/cargo", "--remap-path-prefix=/tpl=/pyaket"]',
    ]  # fmt: skip
    assert invocation.artifact == Path("/cache/target/x86_64-pc-windows-msvc/release/pyaket-launcher.exe")
    assert invocation.env["CARGO_TARGET_DIR"] == "/cache/target"


def test_zigbuild_gets_the_default_glibc_floor_but_the_artifact_path_does_not() -> None:
    invocation = plan("aarch64-unknown-linux-gnu", cargo_args=["--timings"], extra_env={"RUSTFLAGS": "-Cx"})
    assert invocation.command[1] == "zigbuild"
    assert "aarch64-unknown-linux-gnu.2.17" in invocation.command
    assert "--timings" in invocation.command
    # The user's RUSTFLAGS are kept; path remapping is appended to them.
    assert invocation.env["RUSTFLAGS"].split() == [
        "-Cx", f"--remap-path-prefix={CARGO_HOME}=/cargo", "--remap-path-prefix=/tpl=/pyaket"
    ]  # fmt: skip
    assert "--config" not in invocation.command
    assert invocation.artifact == Path("/cache/target/aarch64-unknown-linux-gnu/release/pyaket-launcher")


def test_plain_cargo_respects_CARGO() -> None:
    invocation = plan("x86_64-unknown-linux-gnu", profile="release-speed")
    assert invocation.command[:2] == ("/bin/cargo", "build")
    assert invocation.artifact.parent.name == "release-speed"


def test_encoded_rustflags_are_extended_not_replaced() -> None:
    invocation = plan("x86_64-unknown-linux-gnu", environ={"CARGO_ENCODED_RUSTFLAGS": "-C\x1fopt-level=1", "CARGO_HOME": "/ch"})
    assert invocation.env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f") == [
        "-C", "opt-level=1", "--remap-path-prefix=/ch=/cargo", "--remap-path-prefix=/tpl=/pyaket"
    ]  # fmt: skip
