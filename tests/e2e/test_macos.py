"""macOS builds from Linux, checked in their Mach-O headers (no Mac here to run them on).

One build of aarch64, x86_64 (with a raised minimum) and universal2 (by its alias); then: the minimum
macOS each slice is linked for, the ad-hoc signature's identifier and page hashes, the universal
file's slices and the uv each embeds, and its size against the arm64 file's.

Needs the toolchain from .ci/setup-cross.sh (rustup's Apple std, else Debian's rustc with build-std).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_pyaket import fetch, macho
from hatch_pyaket.config import DEFAULT_UV_VERSION
from hatch_pyaket.targets import parse_target
from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import build
from tests.example import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.cross]

TARGETS = ["aarch64-apple-darwin", "x86_64-apple-darwin", "macos-universal2"]
# What each file's slices must say: (cputype, minimum macOS).
EXPECTED = {
    "aarch64-apple-darwin": [(macho.CPU_TYPE_ARM64, (11, 0, 0))],
    # raised by the target's own setting
    "x86_64-apple-darwin": [(macho.CPU_TYPE_X86_64, (12, 0, 0))],
    # Rust's minimum per architecture
    "universal2-apple-darwin": [(macho.CPU_TYPE_X86_64, (10, 12, 0)), (macho.CPU_TYPE_ARM64, (11, 0, 0))],
}


@dataclass(frozen=True)
class MacBuild:
    dist: Path
    output: str
    seconds: float
    rustc: str

    def exe(self, target: str) -> Path:
        return self.dist / f"example-app-1.0.0-{target}"


def _apple_env(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The per-target env table: rustup's toolchain when setup-cross.sh added the Apple std, else build-std."""
    rustc = env.get("PYAKET_CROSS_APPLE_RUSTC", "")
    if rustc:
        return {"RUSTC": rustc, "RUSTUP_TOOLCHAIN": env.get("PYAKET_CROSS_APPLE_TOOLCHAIN", "stable")}, rustc
    return BUILD_STD, env.get("RUSTC", "rustc")


@pytest.fixture(scope="module")
def mac(tmp_path_factory: pytest.TempPathFactory) -> MacBuild:
    env = load_cross_env()
    apple_env, rustc = _apple_env(env)
    tables = {
        "aarch64-apple-darwin": {"env": apple_env},
        "x86_64-apple-darwin": {"env": apple_env, "macos-min": "12.0"},
        "macos-universal2": {"env": apple_env},
    }
    project = copy_example(tmp_path_factory.mktemp("macos"), hook={"targets": TARGETS, "target": tables})
    # A deployment target in the build's environment loses to the settings and is raised per arch.
    started = time.monotonic()
    result = build(project, "--wheel", env={**env, "MACOSX_DEPLOYMENT_TARGET": "10.9"})
    return MacBuild(project / "dist", result.stdout + result.stderr, time.monotonic() - started, rustc)


def test_every_macos_file_is_built_listed_and_checksummed(mac: MacBuild) -> None:
    for target in EXPECTED:
        assert mac.exe(target).is_file(), target
    checked = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=mac.dist, capture_output=True, text=True, check=False
    )
    # The three executables and their SBOMs.
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 6, checked.stdout
    manifest = json.loads((mac.dist / "pyaket-manifest.json").read_text())
    listed = {item["file"]: item for item in manifest["executables"]}
    universal = listed["example-app-1.0.0-universal2-apple-darwin"]
    assert universal["target"] == "universal2-apple-darwin"
    assert universal["size"] == mac.exe("universal2-apple-darwin").stat().st_size
    assert universal["sha256"] == hashlib.sha256(mac.exe("universal2-apple-darwin").read_bytes()).hexdigest()
    assert "universal2-apple-darwin (x86_64-apple-darwin slice) [example-app] with zigbuild: " in mac.output
    assert (
        "pyaket: universal2-apple-darwin (aarch64-apple-darwin slice) starts on macOS 11.0 and later "
        "(MACOSX_DEPLOYMENT_TARGET in the build's environment (10.9), raised to aarch64-apple-darwin's minimum)"
    ) in mac.output
    assert (
        'pyaket: x86_64-apple-darwin starts on macOS 12.0 and later (tool.hatch.build.hooks.pyaket.target."'
        'x86_64-apple-darwin".macos-min)'
    ) in mac.output
    cargo = re.findall(r"pyaket: (\S+(?: \(\S+ slice\))?) \[.*?\n.*?Finished .*? in ([\d.ms ]+)", mac.output, re.DOTALL)
    print(f"\nmacOS build of 3 targets (4 slices): {mac.seconds:.0f} s with {mac.rustc}; cargo: {cargo}")


@pytest.mark.parametrize("target", list(EXPECTED))
def test_headers_say_the_architecture_and_minimum_macos(mac: MacBuild, target: str) -> None:
    data = mac.exe(target).read_bytes()
    found = [(thin.cputype, thin.minos) for thin in macho.slices(data)]
    assert found == EXPECTED[target]
    # The same facts through lief, an independent reader.
    lief = pytest.importorskip("lief")
    fat = lief.MachO.parse(str(mac.exe(target)))
    # ld writes LC_VERSION_MIN_MACOSX rather than LC_BUILD_VERSION below macOS 10.14.
    read = [
        (int(b.header.cpu_type), tuple(b.build_version.minos if b.has_build_version else b.version_min.version))
        for b in fat
    ]
    assert [(cpu & 0xFFFFFFFF, minos) for cpu, minos in read] == EXPECTED[target]
    print(f"\n{target}: " + ", ".join(f"{macho.CPU_NAMES[c]} macOS {'.'.join(map(str, m))}" for c, m in found))


@pytest.mark.parametrize("target", ["aarch64-apple-darwin", "universal2-apple-darwin"])
def test_arm64_code_is_ad_hoc_signed_as_the_app(mac: MacBuild, target: str) -> None:
    """arm64 macOS kills unsigned code: the linker's ad-hoc signature must stay valid after renaming."""
    data = mac.exe(target).read_bytes()
    arm64 = next(thin for thin in macho.slices(data) if thin.cputype == macho.CPU_TYPE_ARM64)
    directory = arm64.code_directory()
    assert directory is not None
    assert directory.identifier == "example-app"
    assert directory.is_adhoc and directory.hash_type == macho.CS_HASHTYPE_SHA256
    assert directory.code_limit == arm64.signature()[0]  # type: ignore[index]
    assert directory.page_hashes_match(arm64.data)
    assert b"pyaket_launcher-" not in arm64.data[directory.offset : directory.offset + 4096]
    # Independently of hatch_pyaket.macho: lief finds the signature, the CodeDirectory is read here.
    lief = pytest.importorskip("lief")
    fat = lief.MachO.parse(str(mac.exe(target)))  # kept alive: its binaries point into it
    binary = next(b for b in fat if b.header.cpu_type == lief.MachO.Header.CPU_TYPE.ARM64)
    blob = bytes(binary.code_signature.content)
    _magic, _length, count = struct.unpack_from(">III", blob, 0)
    cd = next(off for _kind, off in (struct.unpack_from(">II", blob, 12 + 8 * i) for i in range(count)))
    hash_offset, ident_offset, _special, n_code, code_limit = struct.unpack_from(">5I", blob, cd + 16)
    assert blob[cd + ident_offset : blob.index(b"\0", cd + ident_offset)] == b"example-app"
    page = 1 << blob[cd + 39]
    for slot in (0, n_code - 1):
        expected = hashlib.sha256(arm64.data[slot * page : min((slot + 1) * page, code_limit)]).digest()
        assert blob[cd + hash_offset + 32 * slot : cd + hash_offset + 32 * (slot + 1)] == expected
    # A changed byte in the signed range must show in the page hashes (the check can fail).
    tampered = bytearray(arm64.data)
    tampered[100_000] ^= 0xFF
    assert not directory.page_hashes_match(bytes(tampered))


def _uv_digest(triple: str) -> str:
    """The sha256 of the uv the build embedded for `triple` (from the download cache the build used)."""
    return fetch.sha256_file(fetch.uv_binary(parse_target(triple), DEFAULT_UV_VERSION))


def test_each_universal_slice_embeds_its_own_uv(mac: MacBuild) -> None:
    x86_slice, arm_slice = macho.slices(mac.exe("universal2-apple-darwin").read_bytes())
    arm_uv, x86_uv = _uv_digest("aarch64-apple-darwin").encode(), _uv_digest("x86_64-apple-darwin").encode()
    assert arm_uv != x86_uv
    # build.rs embeds the manifest's digests as strings: each slice names its own uv only.
    assert x86_uv in x86_slice.data and arm_uv not in x86_slice.data
    assert arm_uv in arm_slice.data and x86_uv not in arm_slice.data
    # Same payload, same minimum, same identifier: the arm64 slice is the arm64 download, byte for byte.
    assert arm_slice.data == mac.exe("aarch64-apple-darwin").read_bytes()
    # zig does not sign x86_64 code, and nothing adds a signature there.
    assert x86_slice.signature() is None
    # The x86_64 download is linked for macOS 12.0, the slice for 10.12: cargo relinked for the slice.
    assert macho.read_thin(mac.exe("x86_64-apple-darwin").read_bytes()).minos == (12, 0, 0)


def test_universal_file_size(mac: MacBuild) -> None:
    universal = mac.exe("universal2-apple-darwin").stat().st_size
    arm64 = mac.exe("aarch64-apple-darwin").stat().st_size
    x86_64 = mac.exe("x86_64-apple-darwin").stat().st_size
    ratio = universal / arm64
    print(f"\nuniversal2 {universal} B = {ratio:.2f} x arm64 ({arm64} B); x86_64 {x86_64} B")
    # The slices are the thin files (x86_64's linked for another minimum) plus fat-header alignment.
    assert universal <= arm64 + x86_64 + 2 * (1 << macho.FAT_ALIGN_LOG2)
