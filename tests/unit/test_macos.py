"""macOS facts without a build: Mach-O reading and rewriting on synthetic files, the minimum-macOS
precedence, the `macos-min` setting and the universal2 target."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from hatch_pyaket import macho, macos
from hatch_pyaket.config import ProjectFacts, parse_config
from hatch_pyaket.errors import BuildError, ConfigError
from hatch_pyaket.targets import parse_target

HOST = "x86_64-unknown-linux-gnu"
PAGE_LOG2 = 12


def _cd(identifier: bytes, code: bytes, flags: int = macho.CS_ADHOC) -> bytes:
    """A version 0x20400 CodeDirectory (88-byte header), as ld writes for an ad-hoc signature."""
    pages = [code[i : i + (1 << PAGE_LOG2)] for i in range(0, len(code), 1 << PAGE_LOG2)]
    hashes = b"".join(hashlib.sha256(page).digest() for page in pages)
    ident = identifier + b"\0"
    hash_offset = 88 + len(ident)
    header = struct.pack(
        ">9I",
        macho.CSMAGIC_CODEDIRECTORY,
        hash_offset + len(hashes),
        0x20400,
        flags,
        hash_offset,
        88,
        0,
        len(pages),
        len(code),
    )
    header += bytes([32, macho.CS_HASHTYPE_SHA256, 0, PAGE_LOG2]) + struct.pack(">IIII", 0, 0, 0, 0)
    header += struct.pack(">QQQQ", 0, 0, 0, 0)
    assert len(header) == 88
    return header + ident + hashes


def synthetic(
    cputype: int = macho.CPU_TYPE_ARM64,
    minos: tuple[int, int] = (15, 0),
    *,
    signed: bool = True,
    identifier: bytes = b"pyaket_launcher-0123456789abcdef",
    legacy: bool = False,
    flags: int = macho.CS_ADHOC,
) -> bytes:
    """A small thin Mach-O: __TEXT, __LINKEDIT ending in an ad-hoc signature, and a minimum macOS."""
    commands = []
    text = struct.pack("<II16sQQQQiiII", macho.LC_SEGMENT_64, 72, b"__TEXT", 0, 0x8000, 0, 0x8000, 5, 5, 0, 0)
    commands.append(text)
    linkedit_at = len(commands)
    commands.append(b"")  # placeholder, sizes known later
    if legacy:
        commands.append(struct.pack("<IIII", macho.LC_VERSION_MIN_MACOSX, 16, macho.pack_version(minos), 0))
    else:
        commands.append(struct.pack("<IIIIII", macho.LC_BUILD_VERSION, 24, 1, macho.pack_version(minos), 0, 0))
    if signed:
        commands.append(b"")  # LC_CODE_SIGNATURE placeholder
    sizeofcmds = 72 * 2 + (16 if legacy else 24) + (16 if signed else 0)
    header = struct.pack("<IiiIIIII", macho.MH_MAGIC_64, cputype, 0, 2, len(commands), sizeofcmds, 0, 0)
    body_start = 32 + sizeofcmds
    code_end = 0x9000  # file bytes the signature covers: header, commands, "code", linkedit data
    signature = b""
    if signed:
        probe = _cd(identifier, b"\0" * code_end)
        signature_size = (12 + 8 + len(probe) + 15) // 16 * 16
    else:
        signature_size = 0
    linkedit = struct.pack(
        "<II16sQQQQiiII",
        macho.LC_SEGMENT_64,
        72,
        b"__LINKEDIT",
        0x8000,
        0x4000,
        0x8000,
        code_end - 0x8000 + signature_size,
        1,
        1,
        0,
        0,
    )
    commands[linkedit_at] = linkedit
    if signed:
        commands[-1] = struct.pack("<IIII", macho.LC_CODE_SIGNATURE, 16, code_end, signature_size)
    head = header + b"".join(commands)
    body = bytes((i * 7) & 0xFF for i in range(code_end - body_start))
    covered = head + body
    assert len(covered) == code_end
    if signed:
        cd = _cd(identifier, covered, flags)
        signature = struct.pack(">IIIII", macho.CSMAGIC_EMBEDDED_SIGNATURE, 20 + len(cd), 1, 0, 20) + cd
        signature += b"\0" * (signature_size - len(signature))
    return covered + signature


def test_reads_architecture_minimum_and_identifier() -> None:
    thin = macho.read_thin(synthetic())
    assert thin.arch == "arm64" and thin.minos == (15, 0, 0)
    directory = thin.code_directory()
    assert directory is not None and directory.identifier == "pyaket_launcher-0123456789abcdef"
    assert directory.is_adhoc and directory.page_hashes_match(thin.data)
    assert macho.read_thin(synthetic(macho.CPU_TYPE_X86_64, (10, 12), signed=False, legacy=True)).minos == (10, 12, 0)


@pytest.mark.parametrize("identifier", ["example-app", "com.example." + "a-long-application-name" * 4])
def test_identifier_is_replaced_and_pages_rehashed(identifier: str) -> None:
    before = synthetic()
    after = macho.set_adhoc_identifier(before, identifier)
    thin = macho.read_thin(after)
    directory = thin.code_directory()
    assert directory is not None and directory.identifier == identifier
    assert directory.page_hashes_match(after) and directory.is_adhoc
    dataoff, datasize = thin.signature()  # type: ignore[misc]
    assert dataoff == directory.code_limit and dataoff + datasize == len(after)
    linkedit = next(
        c
        for c in thin.commands
        if c.cmd == macho.LC_SEGMENT_64 and b"__LINKEDIT" in after[c.offset + 8 : c.offset + 24]
    )
    _vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<QQQQ", after, linkedit.offset + 24)
    assert fileoff + filesize == len(after) and vmsize >= filesize
    if len(identifier) <= len("pyaket_launcher-0123456789abcdef"):
        assert len(after) == len(before)  # fits the space the linker left
    # What the signature covers besides the load commands is unchanged.
    assert after[512:dataoff] == before[512:dataoff]


def test_unsigned_files_stay_as_they_are_and_identity_signatures_are_refused() -> None:
    unsigned = synthetic(macho.CPU_TYPE_X86_64, signed=False)
    assert macho.set_adhoc_identifier(unsigned, "example-app") == unsigned
    with pytest.raises(macho.MachOError, match="not ad hoc"):
        macho.set_adhoc_identifier(synthetic(identifier=b"com.example.app", flags=0x10000), "x")
    with pytest.raises(macho.MachOError, match="identifier"):
        macho.set_adhoc_identifier(synthetic(), "bad\0name")


def test_fat_file_holds_each_slice_aligned_and_unchanged() -> None:
    x86, arm = synthetic(macho.CPU_TYPE_X86_64, (10, 12), signed=False), synthetic()
    fat = macho.fat_binary([x86, arm])
    magic, count = struct.unpack_from(">II", fat, 0)
    assert (magic, count) == (macho.FAT_MAGIC, 2)
    entries = [struct.unpack_from(">IIIII", fat, 8 + 20 * i) for i in range(2)]
    for (cputype, _sub, offset, size, align), data in zip(entries, (x86, arm)):
        assert offset % (1 << align) == 0 and align == macho.FAT_ALIGN_LOG2
        assert fat[offset : offset + size] == data and cputype == macho.read_thin(data).cputype
    assert [(s.arch, s.minos) for s in macho.slices(fat)] == [("x86_64", (10, 12, 0)), ("arm64", (15, 0, 0))]
    with pytest.raises(macho.MachOError, match="same architecture"):
        macho.fat_binary([arm, arm])
    with pytest.raises(macho.MachOError, match="not a 64-bit"):
        macho.slices(b"\x7fELF" + b"\0" * 60)


def _deployment(triple: str, setting: tuple[int, int] | None = None, *envs: dict[str, str]) -> macos.DeploymentTarget:
    sources = [(f"source {i}", env) for i, env in enumerate(envs)]
    return macos.deployment_target(parse_target(triple), setting, "macos-min", sources)


def test_minimum_macos_precedence_and_floors() -> None:
    assert _deployment("aarch64-apple-darwin").version == (11, 0)
    assert _deployment("x86_64-apple-darwin").version == (10, 12)
    # the setting beats every MACOSX_DEPLOYMENT_TARGET
    chosen = _deployment("x86_64-apple-darwin", (12, 0), {"MACOSX_DEPLOYMENT_TARGET": "13.0"})
    assert (chosen.version, chosen.source) == ((12, 0), "macos-min")
    # earlier env sources beat later ones; empty values are skipped
    envs = ({"MACOSX_DEPLOYMENT_TARGET": ""}, {"MACOSX_DEPLOYMENT_TARGET": "13.4"}, {"MACOSX_DEPLOYMENT_TARGET": "14"})
    chosen = _deployment("aarch64-apple-darwin", None, *envs)
    assert chosen.version == (13, 4) and "source 1" in chosen.source and str(chosen) == "13.4"
    # below the architecture's minimum: raised to it, and said so
    raised = _deployment("aarch64-apple-darwin", (10, 13))
    assert raised.version == (11, 0) and "raised" in raised.source
    assert _deployment("x86_64-apple-darwin", (10, 13)).version == (10, 13)
    with pytest.raises(BuildError, match=r"MACOSX_DEPLOYMENT_TARGET='eleven' \(from source 0\)"):
        _deployment("x86_64-apple-darwin", None, {"MACOSX_DEPLOYMENT_TARGET": "eleven"})


def _config(table: dict[str, object]):  # type: ignore[no-untyped-def]
    facts = ProjectFacts("example-app", "1.0.0", ">=3.9", {"example-app": "example_app.cli:main"}, {})
    return parse_config(table, facts, host_triple=HOST, root=Path("/project"))


def _problems(table: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _config(table)
    return [str(p) for p in info.value.problems]


def test_macos_min_setting_global_and_per_target() -> None:
    targets = ["aarch64-apple-darwin", "macos-universal2", "x86_64-unknown-linux-gnu"]
    config = _config({"targets": targets, "macos-min": "12", "target": {"macos-universal2": {"macos-min": "10.15"}}})
    by_name = {t.name: t for t in config.targets}
    assert config.macos_min_for(by_name["aarch64-apple-darwin"]) == (12, 0)
    assert config.macos_min_for(by_name["universal2-apple-darwin"]) == (10, 15)
    assert _config({"targets": targets}).macos_min_for(by_name["aarch64-apple-darwin"]) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"macos-min": 12}, 'tool.hatch.build.hooks.pyaket.macos-min: must be a macOS version like "11.0"'),
        ({"macos-min": "twelve"}, "not 'twelve'"),
        ({"macos-min": "10.9"}, "Rust supports macOS 10.12 and later"),
        ({"macos-min": "150"}, "must be a macOS version"),
        (
            {"targets": ["aarch64-apple-darwin"], "target": {"aarch64-apple-darwin": {"macos-min": "10.15"}}},
            (
                "target.\"aarch64-apple-darwin\".macos-min: '10.15' is not a macOS this can build for "
                "(aarch64-apple-darwin starts on macOS 11.0 and later)"
            ),
        ),
        (
            {"targets": ["x86_64-unknown-linux-gnu"], "target": {"x86_64-unknown-linux-gnu": {"macos-min": "12"}}},
            "only applies to *-apple-darwin targets",
        ),
        ({"macos_min": "12"}, "did you mean 'macos-min'?"),
    ],
)
def test_macos_min_problems_name_the_setting(table: dict[str, object], message: str) -> None:
    found = _problems(table)
    assert any(message in problem for problem in found), found


def test_universal2_target_facts() -> None:
    universal = parse_target("macos-universal2")
    assert universal.name == universal.triple == "universal2-apple-darwin"
    assert universal.os == "macos" and universal.exe_suffix == ""
    assert [s.triple for s in universal.slices] == ["x86_64-apple-darwin", "aarch64-apple-darwin"]
    assert universal.macos_floor == (10, 12)
    assert parse_target("aarch64-apple-darwin").slices == () and parse_target("aarch64-apple-darwin").macos_floor == (
        11,
        0,
    )
    assert parse_target("x86_64-unknown-linux-gnu").macos_floor is None
    with pytest.raises(ValueError, match="universal2-apple-darwin"):
        parse_target("universal-apple-darwin")
