from __future__ import annotations

import sys
import time
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
    invocation = plan(
        "x86_64-unknown-linux-gnu", environ={"CARGO_ENCODED_RUSTFLAGS": "-C\x1fopt-level=1", "CARGO_HOME": "/ch"}
    )
    assert invocation.env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f") == [
        "-C", "opt-level=1", "--remap-path-prefix=/ch=/cargo", "--remap-path-prefix=/tpl=/pyaket"
    ]  # fmt: skip


def test_a_missing_extra_names_the_build_requirements_and_pip_only_outside_isolation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(toolchain, "in_build_isolation", lambda: True)
    isolated = toolchain.missing_extra_hint("zig", "a ziglang")
    assert '[build-system] requires = ["hatchling", "hatch-pyaket[zig]"]' in isolated
    assert "isolated build environment" in isolated and "pip install" not in isolated
    monkeypatch.setattr(toolchain, "in_build_isolation", lambda: False)
    plain = toolchain.missing_extra_hint("xwin", "a cargo-xwin")
    assert '"hatch-pyaket[xwin]"]' in plain and "`pip install 'hatch-pyaket[xwin]'` into " in plain


def test_build_isolation_is_told_by_where_the_plugin_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile

    # This checkout is not in the temp folder: a --no-isolation build or a test run.
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    assert toolchain.in_build_isolation() is False
    isolated = tmp_path / "build-env-x/lib/site-packages/hatch_pyaket/toolchain.py"
    monkeypatch.setattr(toolchain, "__file__", str(isolated))
    assert toolchain.in_build_isolation() is True
    monkeypatch.setattr(toolchain, "__file__", "/root/.cache/uv/builds-v0/.tmpAbC/lib/site-packages/hatch_pyaket/t.py")
    assert toolchain.in_build_isolation() is True


def _plan_env(triple: str, environ: dict[str, str], host: str = LINUX) -> dict[str, str]:
    invocation = toolchain.plan(
        parse_target(triple),
        template=Path("/tpl"),
        target_dir=Path("/target"),
        profile="release",
        forced_tool=None,
        cargo_args=(),
        extra_env={},
        environ={"PATH": "", **environ},
        host=host,
    )
    return dict(invocation.env)


def test_zstds_compressor_is_compiled_out_keeping_the_users_c_flags() -> None:
    defines = " ".join(toolchain.ZSTD_DECODER_ONLY_DEFINES)
    assert "-DZSTD_EXCLUDE_BTULTRA_BLOCK_COMPRESSOR" in defines
    assert _plan_env(LINUX, {})["CFLAGS_x86_64_unknown_linux_gnu"] == defines
    # The user's flags, from whichever variable cc would have read, stay first.
    assert _plan_env(LINUX, {"CFLAGS": "-O2 -g"})["CFLAGS_x86_64_unknown_linux_gnu"] == f"-O2 -g {defines}"
    both = _plan_env(LINUX, {"CFLAGS": "-g", "TARGET_CFLAGS": "-Os"})
    assert both["CFLAGS_x86_64_unknown_linux_gnu"] == f"-Os {defines}" and "CFLAGS" not in both
    hyphen = _plan_env("aarch64-unknown-linux-gnu.2.17", {"CFLAGS_aarch64-unknown-linux-gnu": "-march=armv8-a"})
    assert hyphen["CFLAGS_aarch64-unknown-linux-gnu"] == f"-march=armv8-a {defines}"
    # cargo-xwin owns CFLAGS_<triple> (MSVC include paths): left alone.
    assert not any(name.startswith("CFLAGS") for name in _plan_env("x86_64-pc-windows-msvc", {}))


def test_dependencies_only_is_the_same_compile_of_pyaket_core() -> None:
    invocation = plan("aarch64-unknown-linux-gnu", cargo_args=["--features", "update"])
    ahead = toolchain.dependencies_only(invocation)
    at = invocation.command.index("--package")
    assert ahead.command[:at] == invocation.command[:at]
    assert ahead.command[at : at + 3] == ("--package", toolchain.CORE_PACKAGE, "--lib")
    # Everything that decides the crates' fingerprints is kept: profile, target, features, flags, environment.
    assert ahead.command[at + 3 :] == invocation.command[at + 2 :]
    assert ahead.env == invocation.env and ahead.tool == invocation.tool


def _sleeper(code: str) -> toolchain.Invocation:
    # dependencies_only swaps the package; python ignores the arguments after `-c code`.
    command = (sys.executable, "-c", code, "--package", toolchain.LAUNCHER_PACKAGE)
    return toolchain.Invocation(tool="cargo", command=command, env={}, artifact=Path("/nowhere"))


def test_compiling_ahead_is_waited_for_and_its_failure_only_reported() -> None:
    reports: list[str] = []
    started = time.monotonic()
    with toolchain.compiling_ahead(_sleeper("import time, sys; time.sleep(1); sys.exit(4)"), {}, reports.append):
        pass
    assert time.monotonic() - started >= 1
    assert reports == ["pyaket: compiling the launcher's dependencies first failed (exit code 4); building it all now"]


def test_compiling_ahead_is_stopped_when_the_build_fails_meanwhile(tmp_path: Path) -> None:
    # A compile left running after the build failed would write into a target dir whose lock is released.
    marker = tmp_path / "still-running"
    code = f"import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('x')"
    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="compression failed"),
        toolchain.compiling_ahead(_sleeper(code), {}, None),
    ):
        raise RuntimeError("compression failed")
    assert time.monotonic() - started < 2.5
    time.sleep(3.5)
    assert not marker.exists()
