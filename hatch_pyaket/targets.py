"""Target triples: parsing, glibc floors, host detection and per-platform facts."""

from __future__ import annotations

import difflib
import platform
import re
import sys
from dataclasses import dataclass

# Triples whose facts (uv wheel platform, executable suffix, install-dir conventions) we know.
# Any other triple is refused with close matches: a typo must not become a cargo wall of text.
KNOWN_TRIPLES: tuple[str, ...] = (
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "i686-unknown-linux-gnu",
    "armv7-unknown-linux-gnueabihf",
    "powerpc64le-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "i686-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
    "x86_64-pc-windows-msvc",
    "aarch64-pc-windows-msvc",
    "i686-pc-windows-msvc",
    "x86_64-pc-windows-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "universal2-apple-darwin",
)

# Unambiguous short names people type; each maps to exactly one triple.
ALIASES: dict[str, str] = {
    "linux-x86_64": "x86_64-unknown-linux-gnu",
    "linux-aarch64": "aarch64-unknown-linux-gnu",
    "windows-x86_64": "x86_64-pc-windows-msvc",
    "windows-aarch64": "aarch64-pc-windows-msvc",
    "macos-x86_64": "x86_64-apple-darwin",
    "macos-aarch64": "aarch64-apple-darwin",
    "macos-universal2": "universal2-apple-darwin",
}

# One macOS download for both architectures: these thin targets, each with its own uv, merged into
# one universal ("fat") file, x86_64 first as Apple's own universal files have it.
UNIVERSAL_SLICES: dict[str, tuple[str, ...]] = {
    "universal2-apple-darwin": ("x86_64-apple-darwin", "aarch64-apple-darwin"),
}
# The oldest macOS Rust's std supports per architecture (rustc's own defaults); zig would
# otherwise link for its newest (macOS 15), which older Macs refuse to start.
MACOS_MIN_BY_ARCH: dict[str, tuple[int, int]] = {"aarch64": (11, 0), "x86_64": (10, 12)}

# manylinux2014's reach: zig links against this glibc unless the target names another floor.
DEFAULT_GLIBC_FLOOR = (2, 17)
# Some architectures entered glibc later than 2.17; a floor below that cannot be linked.
MIN_GLIBC_BY_ARCH: dict[str, tuple[int, int]] = {"riscv64gc": (2, 27)}

_FLOOR_RE = re.compile(r"^(?P<triple>[^.]+)\.(?P<major>\d+)\.(?P<minor>\d+)$")

# Wheel platform tags' architecture names per Rust architecture, for uv's wheels and dependencies'.
WHEEL_ARCH = {
    "x86_64": "x86_64",
    "aarch64": "aarch64",
    "i686": "i686",
    "armv7": "armv7l",
    "powerpc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64gc": "riscv64",
}
WINDOWS_PLATFORM = {"x86_64": "win_amd64", "aarch64": "win_arm64", "i686": "win32"}
MACOS_ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Target:
    """A compile target as the user named it, with the facts the pipeline needs."""

    name: str  # as configured (after alias expansion), e.g. "x86_64-unknown-linux-gnu.2.17"
    triple: str  # without the glibc floor
    glibc: tuple[int, int] | None  # explicit floor from the name, if any

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    @property
    def os(self) -> str:
        if "-windows-" in self.triple:
            return "windows"
        if "-apple-darwin" in self.triple:
            return "macos"
        return "linux"

    @property
    def libc(self) -> str:
        """The C runtime / ABI family: gnu, musl, msvc, or darwin."""
        if self.os == "macos":
            return "darwin"
        return "musl" if "musl" in self.triple else ("msvc" if self.triple.endswith("msvc") else "gnu")

    @property
    def slices(self) -> tuple[Target, ...]:
        """The thin targets a universal target is merged from; () for a thin target."""
        return tuple(Target(name, name, None) for name in UNIVERSAL_SLICES.get(self.triple, ()))

    @property
    def macos_floor(self) -> tuple[int, int] | None:
        """The oldest macOS the target can be linked for (the lowest of its slices'); None off macOS."""
        if self.os != "macos":
            return None
        arches = [s.arch for s in self.slices] or [self.arch]
        return min(MACOS_MIN_BY_ARCH.get(arch, (11, 0)) for arch in arches)

    @property
    def exe_suffix(self) -> str:
        return ".exe" if self.os == "windows" else ""

    @property
    def is_linux_gnu(self) -> bool:
        return self.os == "linux" and self.libc == "gnu"

    @property
    def default_glibc_floor(self) -> tuple[int, int]:
        return max(DEFAULT_GLIBC_FLOOR, MIN_GLIBC_BY_ARCH.get(self.arch, DEFAULT_GLIBC_FLOOR))

    def zig_target(self) -> str:
        """The `--target` for cargo-zigbuild: linux-gnu gets a glibc floor, others stay as they are."""
        if not self.is_linux_gnu:
            return self.triple
        major, minor = self.glibc or self.default_glibc_floor
        return f"{self.triple}.{major}.{minor}"

    def uv_platform_matches(self, platform_tag: str) -> bool:
        """Whether a wheel platform tag carries a uv binary that runs on this target."""
        arch = self.arch
        if self.os == "windows":
            return platform_tag == WINDOWS_PLATFORM.get(arch)
        if self.os == "macos":
            return platform_tag.startswith("macosx_") and platform_tag.endswith("_" + MACOS_ARCH.get(arch, arch))
        wheel_arch = WHEEL_ARCH.get(arch, arch)
        if self.libc == "musl":
            return platform_tag.startswith("musllinux_") and platform_tag.endswith("_" + wheel_arch)
        # A static musl uv runs on any glibc too, but prefer the manylinux build when both exist.
        return (platform_tag.startswith("manylinux") and platform_tag.endswith("_" + wheel_arch)) or (
            platform_tag.startswith("musllinux_") and platform_tag.endswith("_" + wheel_arch)
        )

    def uv_platform_rank(self, platform_tag: str) -> int:
        """Lower is better, among tags for which `uv_platform_matches` holds."""
        if self.libc == "gnu" and platform_tag.startswith("musllinux_"):
            return 1
        return 0

    def __str__(self) -> str:
        return self.name


def parse_target(name: str, host_triple: str | None = None) -> Target:
    """Parse a configured target name. Raises ValueError with close matches for an unknown one."""
    name = name.strip()
    if name == "host":
        name = host_triple or detect_host_triple()
    name = ALIASES.get(name, name)
    glibc: tuple[int, int] | None = None
    triple = name
    match = _FLOOR_RE.match(name)
    if match:
        triple = match["triple"]
        glibc = (int(match["major"]), int(match["minor"]))
    if triple not in KNOWN_TRIPLES:
        choices = [*KNOWN_TRIPLES, *ALIASES, "host"]
        close = difflib.get_close_matches(triple, choices, n=3, cutoff=0.5)
        if close:
            raise ValueError(f"unknown target {name!r}; did you mean {' or '.join(repr(c) for c in close)}?")
        known = ", ".join(KNOWN_TRIPLES)
        raise ValueError(f"unknown target {name!r}; known targets: {known}, 'host', or an alias ({', '.join(ALIASES)})")
    target = Target(name=name, triple=triple, glibc=glibc)
    if glibc is not None:
        if not target.is_linux_gnu:
            raise ValueError(f"a glibc floor ({name!r}) only applies to *-linux-gnu targets")
        floor = target.default_glibc_floor
        if glibc < MIN_GLIBC_BY_ARCH.get(target.arch, (2, 0)):
            raise ValueError(f"{triple} needs glibc {floor[0]}.{floor[1]} or later, not {glibc[0]}.{glibc[1]}")
    return target


def detect_host_triple() -> str:
    """The Rust triple of the machine running the build, from Python's view of it.

    The toolchain module prefers `rustc -vV`'s host line when rustc is there; this is the fallback
    and what decides the default target without any Rust installed.
    """
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "x86": "i686", "i386": "i686"}.get(machine, machine)
    if arch == "armv7l":
        arch = "armv7"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    libc_name, _ = platform.libc_ver()
    if arch == "armv7":
        return "armv7-unknown-linux-musleabihf" if libc_name != "glibc" else "armv7-unknown-linux-gnueabihf"
    if arch == "riscv64":
        arch = "riscv64gc"
    return f"{arch}-unknown-linux-{'gnu' if libc_name == 'glibc' else 'musl'}"
