from __future__ import annotations

import pytest

from hatch_pyaket.targets import KNOWN_TRIPLES, parse_target


def test_glibc_floor_is_split_off() -> None:
    target = parse_target("x86_64-unknown-linux-gnu.2.17")
    assert (target.triple, target.glibc, target.name) == ("x86_64-unknown-linux-gnu", (2, 17), target.name)
    assert target.zig_target() == "x86_64-unknown-linux-gnu.2.17"


def test_zig_default_floor_is_manylinux2014_and_arch_minimums_apply() -> None:
    assert parse_target("aarch64-unknown-linux-gnu").zig_target() == "aarch64-unknown-linux-gnu.2.17"
    assert parse_target("riscv64gc-unknown-linux-gnu").zig_target() == "riscv64gc-unknown-linux-gnu.2.27"
    assert parse_target("x86_64-unknown-linux-musl").zig_target() == "x86_64-unknown-linux-musl"
    with pytest.raises(ValueError, match=r"needs glibc 2.27"):
        parse_target("riscv64gc-unknown-linux-gnu.2.17")


def test_floor_only_for_gnu() -> None:
    with pytest.raises(ValueError, match="only applies to \\*-linux-gnu"):
        parse_target("x86_64-unknown-linux-musl.2.17")


def test_unknown_target_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match="did you mean 'x86_64-unknown-linux-gnu'"):
        parse_target("x86_64-unknown-linux-gun")


def test_aliases_and_host() -> None:
    assert parse_target("macos-aarch64").triple == "aarch64-apple-darwin"
    assert parse_target("host", "aarch64-unknown-linux-gnu").triple == "aarch64-unknown-linux-gnu"


@pytest.mark.parametrize(
    ("triple", "suffix", "os"),
    [
        ("x86_64-pc-windows-msvc", ".exe", "windows"),
        ("x86_64-pc-windows-gnu", ".exe", "windows"),
        ("aarch64-apple-darwin", "", "macos"),
        ("armv7-unknown-linux-gnueabihf", "", "linux"),
    ],
)
def test_exe_suffix_follows_the_target(triple: str, suffix: str, os: str) -> None:
    target = parse_target(triple)
    assert (target.exe_suffix, target.os) == (suffix, os)


@pytest.mark.parametrize(
    ("triple", "tag"),
    [
        ("x86_64-unknown-linux-gnu", "manylinux_2_17_x86_64"),
        ("aarch64-unknown-linux-gnu", "manylinux_2_17_aarch64"),
        ("x86_64-unknown-linux-musl", "musllinux_1_1_x86_64"),
        ("x86_64-pc-windows-msvc", "win_amd64"),
        ("x86_64-pc-windows-gnu", "win_amd64"),
        ("aarch64-apple-darwin", "macosx_11_0_arm64"),
        ("x86_64-apple-darwin", "macosx_10_12_x86_64"),
        ("armv7-unknown-linux-gnueabihf", "manylinux_2_17_armv7l"),
    ],
)
def test_uv_wheel_platform(triple: str, tag: str) -> None:
    target = parse_target(triple)
    assert target.uv_platform_matches(tag)
    others = ["manylinux_2_17_x86_64", "win_amd64", "macosx_11_0_arm64", "musllinux_1_1_x86_64"]
    assert [t for t in others if t != tag and target.uv_platform_matches(t) and target.uv_platform_rank(t) == 0] == []


def test_every_known_triple_parses() -> None:
    for triple in KNOWN_TRIPLES:
        assert parse_target(triple).triple == triple
