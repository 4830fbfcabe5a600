"""macOS launchers: the minimum macOS they are linked for, their ad-hoc signature's identifier, and
universal2 files merged from per-architecture slices.

Minimum macOS, first found wins (then raised to what the slice's architecture needs: arm64 Macs
start at 11.0, so `macos-min = "10.13"` gives 10.13 on x86_64 and 11.0 on arm64):
  1. `macos-min` in the target's table, 2. `macos-min` in the hook table,
  3. MACOSX_DEPLOYMENT_TARGET in the target's `env`, 4. in the hook's `env`,
  5. MACOSX_DEPLOYMENT_TARGET in the build's environment,
  6. Rust's own minimum: 11.0 on arm64, 10.12 on x86_64.
Without one of them zig links for its newest macOS (15.0), which older Macs refuse to start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hatch_pyaket import fsio, macho
from hatch_pyaket.config import parse_macos_version
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import MACOS_MIN_BY_ARCH, Target

ENV_NAME = "MACOSX_DEPLOYMENT_TARGET"
_CPU_BY_ARCH = {"aarch64": macho.CPU_TYPE_ARM64, "x86_64": macho.CPU_TYPE_X86_64}


@dataclass(frozen=True)
class DeploymentTarget:
    version: tuple[int, int]
    source: str  # where it came from, for messages

    def __str__(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def deployment_target(
    slice_target: Target,
    setting: tuple[int, int] | None,
    setting_path: str,
    env_sources: Sequence[tuple[str, Mapping[str, str]]],
) -> DeploymentTarget:
    """The minimum macOS `slice_target` (a thin darwin target) is linked for; see the module's docstring.

    `env_sources`: (description, mapping) pairs in precedence order, e.g. the target's env table, the
    hook's, then the build's environment. A malformed variable is an error naming where it was set.
    """
    floor = MACOS_MIN_BY_ARCH.get(slice_target.arch, (11, 0))
    chosen: tuple[tuple[int, int], str] | None = (setting, setting_path) if setting is not None else None
    if chosen is None:
        for where, env in env_sources:
            value = env.get(ENV_NAME)
            if value is None or not value.strip():
                continue
            version = parse_macos_version(value)
            if version is None:
                raise BuildError(
                    f'{ENV_NAME}={value!r} (from {where}) is not a macOS version like "11.0"; fix or unset it, '
                    'or set macos-min = "X.Y" in [tool.hatch.build.hooks.pyaket]'
                )
            chosen = (version, f"{ENV_NAME} in {where}")
            break
    if chosen is None:
        return DeploymentTarget(floor, f"Rust's minimum for {slice_target.triple}")
    version, source = chosen
    if version < floor:
        return DeploymentTarget(
            floor, f"{source} ({version[0]}.{version[1]}), raised to {slice_target.triple}'s minimum"
        )
    return DeploymentTarget(version, source)


def finish_slice(
    built: Path,
    destination: Path,
    *,
    slice_target: Target,
    minimum: DeploymentTarget,
    identifier: str,
    payload_hash: str,
) -> None:
    """Copy cargo's Mach-O output to `destination` with the app's signature identifier, after checking it
    is this build's (payload_hash), of the right architecture and linked for `minimum`."""
    data = built.read_bytes()
    label = f"the {slice_target.triple} launcher ({built})"
    if payload_hash and payload_hash.encode() not in data:
        raise BuildError(
            f"{label} does not embed this build's payload (payload_hash {payload_hash[:12]}); another build "
            "replaced it while this one was using it. Build again, or give each build its own HATCH_PYAKET_CACHE_DIR"
        )
    try:
        thin = macho.read_thin(data, where=label)
        check_slice(thin, slice_target, minimum, label)
        data = macho.set_adhoc_identifier(data, identifier)
    except macho.MachOError as error:
        raise BuildError(f"{label}: {error}") from None
    fsio.write_atomic(destination, data, mode=0o755)


def check_slice(thin: macho.Thin, slice_target: Target, minimum: DeploymentTarget, label: str) -> None:
    expected_cpu = _CPU_BY_ARCH.get(slice_target.arch)
    if thin.cputype != expected_cpu:
        raise BuildError(f"{label} is {thin.arch}, not {slice_target.arch}")
    minos = thin.minos
    if minos is None or minos[:2] != minimum.version:
        found = "none" if minos is None else ".".join(map(str, minos))
        raise BuildError(
            f"{label} is linked for macOS {found}, not {minimum} ({minimum.source}): the linker did not take "
            f"{ENV_NAME}={minimum}. Check that cargo-zigbuild is the one hatch-pyaket[zig] installs"
        )


def merge_universal(slice_files: Sequence[Path], destination: Path) -> None:
    """One universal file holding every slice (each already finished), as `lipo -create` writes it."""
    try:
        data = macho.fat_binary([path.read_bytes() for path in slice_files])
    except macho.MachOError as error:
        raise BuildError(f"merging {', '.join(p.name for p in slice_files)} into a universal file: {error}") from None
    fsio.write_atomic(destination, data, mode=0o755)
