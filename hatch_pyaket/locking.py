"""Locked dependencies and offline wheels, resolved at build time for one target.

`lock` asks uv for a hash-pinned requirements file for the target's platform and Python;
`download_wheels` then fetches, for every pin, the one wheel that installs there, checked against
the lock's hashes, so the launcher can install without reaching an index.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from hatch_pyaket import fetch, fsio, progress, toolchain
from hatch_pyaket.config import DEFAULT_UV_VERSION
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import MACOS_ARCH, WHEEL_ARCH, WINDOWS_PLATFORM, Target, parse_target

# uv's `--python-platform` knows these manylinux floors for x86_64 and aarch64 (uv 0.13).
_UV_MANYLINUX_MINORS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_UV_MANYLINUX_ARCHES = frozenset({"x86_64", "aarch64"})
_UV_PLAIN_PLATFORMS = frozenset(
    {
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-pc-windows-msvc",
        "aarch64-pc-windows-msvc",
        "i686-pc-windows-msvc",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
    }
)

# The oldest macOS a launcher is assumed to run on: the embedded uv supports macOS 13 and later.
MACOS_FLOOR = {"x86_64": (13, 0), "aarch64": (13, 0)}
# musl 1.2 is what Rust's musl targets ship; musllinux_1_1 wheels run there too.
MUSL_FLOOR = (1, 2)
# Legacy names of manylinux floors (PEP 513/571/599), still found on older wheels.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}

_LOCK_HINT = "set lock = false in [tool.hatch.build.hooks.pyaket] to install unpinned dependencies at run time instead"


def host_uv(environ: Mapping[str, str] | None = None, report: progress.Report | None = None) -> Path:
    """A uv binary runnable on the build host: `HATCH_PYAKET_UV`, else the default uv for the host."""
    environ = os.environ if environ is None else environ
    if environ.get("HATCH_PYAKET_UV"):
        uv = Path(environ["HATCH_PYAKET_UV"])
        if not uv.is_file():
            raise BuildError(f"HATCH_PYAKET_UV={uv} is not a file; point it at a uv executable, or unset it")
        return uv
    triple = toolchain.host_triple(environ)
    try:
        host = parse_target(triple)
    except ValueError:
        raise BuildError(
            f"no uv download is known for this build host ({triple}); set HATCH_PYAKET_UV to a uv executable"
        ) from None
    return fetch.uv_binary(host, DEFAULT_UV_VERSION, environ, report=report)


def _mentions_extra(markers: object) -> bool:
    """Whether a parsed marker tree (packaging's nested lists of tuples) refers to the `extra` variable."""
    if isinstance(markers, (list, tuple)):
        return any(_mentions_extra(item) for item in markers)
    return type(markers).__name__ == "Variable" and getattr(markers, "value", None) == "extra"


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist of a built wheel, without the requirements that only come with an extra."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise BuildError(f"{wheel.name} holds {len(names)} .dist-info/METADATA files, not one; is it a wheel?")
            text = archive.read(names[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile) as error:
        raise BuildError(f"could not read {wheel}: {error}") from None
    requirements: list[str] = []
    for line in Parser().parsestr(text, headersonly=True).get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise BuildError(f"{wheel.name} has an invalid Requires-Dist {line!r}: {error}") from None
        if requirement.marker is not None and _mentions_extra(requirement.marker._markers):
            continue
        text_form = str(requirement)
        if text_form not in requirements:
            requirements.append(text_form)
    return requirements


def uv_python_platform(target: Target) -> str | None:
    """uv's `--python-platform` name for `target`, or None where uv has none (then lock universally)."""
    if target.is_linux_gnu:
        if target.arch in _UV_MANYLINUX_ARCHES:
            major, minor = target.glibc or target.default_glibc_floor
            usable = [m for m in _UV_MANYLINUX_MINORS if major == 2 and m <= minor] or [_UV_MANYLINUX_MINORS[0]]
            return f"{target.arch}-manylinux_2_{max(usable)}"
        if target.arch == "riscv64gc":
            return "riscv64-unknown-linux"
        return None
    if target.triple == "x86_64-pc-windows-gnu":
        return "x86_64-pc-windows-msvc"  # the same win_amd64 wheels
    return target.triple if target.triple in _UV_PLAIN_PLATFORMS else None


def lock(
    wheel: Path,
    *,
    uv: Path,
    python_version: str,
    target: Target | None,
    index_url: str | None,
    extras: tuple[str, ...] = (),
) -> str:
    """A hash-pinned requirements file for the wheel's dependencies on `target` (None: every platform),
    those of its `extras` included.

    Without extras uv resolves the wheel's Requires-Dist. With extras it resolves the wheel itself as
    `name[extras] @ file://...` (so uv applies the extras' markers exactly) and leaves the app's own
    line out of the lock: the launcher adds the wheel, pinned by its hash, at install time."""
    if extras:
        name = _wheel_name(wheel)
        stdin = f"{name}[{','.join(extras)}] @ {wheel.resolve().as_uri()}\n"
    else:
        requirements = wheel_requirements(wheel)
        if not requirements:
            return ""
        stdin = "\n".join(requirements) + "\n"
    command = [
        str(uv),
        "pip",
        "compile",
        "-",
        "--no-config",
        "--generate-hashes",
        "--no-header",
        "--no-python-downloads",
        "--quiet",
        "--python-version",
        python_version,
    ]
    platform = uv_python_platform(target) if target is not None else None
    command += ["--python-platform", platform] if platform else ["--universal"]
    if extras:
        command += ["--no-emit-package", _wheel_name(wheel)]
    if index_url:
        command += ["--index-url", index_url]
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, encoding="utf-8")
    except OSError as error:
        raise BuildError(f"could not run uv ({uv}) to lock the dependencies: {error}") from None
    where = f"{target.name}" if target is not None else "all platforms"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if line.startswith("error")), 0)
        message = "\n  ".join(lines[start:]) or f"uv exited with code {result.returncode}"
        raise BuildError(
            f"locking the dependencies of {wheel.name} for {where} (Python {python_version}) failed:\n"
            f"  {message}\nCheck the requirements in [project.dependencies] and the index, or {_LOCK_HINT}"
        )
    return result.stdout


def _wheel_name(wheel: Path) -> str:
    try:
        return str(parse_wheel_filename(wheel.name)[0])
    except InvalidWheelFilename as error:
        raise BuildError(f"{wheel.name} is not a wheel's file name: {error}") from None


def count_pins(lock_text: str) -> int:
    """How many requirements a lock holds (for progress lines; never raises)."""
    return sum(1 for entry in _lock_entries(lock_text) if not entry.startswith("-"))


@dataclass(frozen=True)
class Pin:
    """One line of a lock: `name==version` with the hashes allowed for it."""

    name: str  # normalized
    version: str
    marker: Marker | None
    hashes: frozenset[str]
    line: str


def _lock_entries(lock_text: str) -> list[str]:
    """Logical lines of a requirements file: continuations joined, comments and blanks dropped."""
    entries: list[str] = []
    current = ""
    for raw in lock_text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            entries.append(" ".join(current.split()))
        current = ""
    if current.strip():
        entries.append(" ".join(current.split()))
    return entries


def parse_lock(lock_text: str) -> list[Pin]:
    """The pins of a lock made by `lock`; anything not pinned with `==` and hashes is refused."""
    pins: list[Pin] = []
    for entry in _lock_entries(lock_text):
        if entry.startswith("-"):
            continue  # an option line such as --index-url
        words = entry.split(" ")
        spec = " ".join(w for w in words if not w.startswith("--hash="))
        hashes = frozenset(w.split(":", 1)[1].lower() for w in words if w.startswith("--hash=sha256:") and ":" in w)
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as error:
            raise BuildError(f"the lock has a line that is not a requirement: {spec!r} ({error})") from None
        pinned = [s for s in requirement.specifier if s.operator in {"==", "==="} and "*" not in s.version]
        if requirement.url or len(pinned) != 1 or not hashes:
            raise BuildError(
                f"the lock's {spec!r} is not pinned to one version with sha256 hashes; offline wheels need "
                f"name==version --hash=sha256:... lines (as `uv pip compile --generate-hashes` writes)"
            )
        pins.append(Pin(canonicalize_name(requirement.name), pinned[0].version, requirement.marker, hashes, spec))
    return pins


def _python_tuple(python_version: str) -> tuple[int, int]:
    parts = python_version.strip().split(".")
    try:
        major, minor = int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()))
    except (IndexError, ValueError):
        raise BuildError(
            f"python version {python_version!r} is not like '3.12' or '3.12.7'; offline wheels need one version"
        ) from None
    return major, minor


def platform_tags(target: Target) -> list[str]:
    """Wheel platform tags that run on `target`, most specific first."""
    arch = target.arch
    if target.os == "windows":
        return [WINDOWS_PLATFORM[arch]] if arch in WINDOWS_PLATFORM else []
    if target.os == "macos":
        mac_arch = MACOS_ARCH.get(arch, arch)
        return list(mac_platforms(MACOS_FLOOR.get(arch, (11, 0)), mac_arch))
    wheel_arch = WHEEL_ARCH.get(arch, arch)
    if target.libc == "musl":
        return [f"musllinux_{MUSL_FLOOR[0]}_{m}_{wheel_arch}" for m in range(MUSL_FLOOR[1], -1, -1)]
    major, minor = target.glibc or target.default_glibc_floor
    tags: list[str] = []
    for m in range(minor, 4, -1):
        tags.append(f"manylinux_{major}_{m}_{wheel_arch}")
        legacy = _LEGACY_MANYLINUX.get((major, m))
        if legacy == "manylinux2014" or (legacy and wheel_arch in {"x86_64", "i686"}):
            tags.append(f"{legacy}_{wheel_arch}")
    return tags


def supported_tags(target: Target, python_version: str) -> list[Tag]:
    """Every wheel tag a CPython `python_version` accepts on `target`, in packaging's preference order."""
    major, minor = _python_tuple(python_version)
    platforms = platform_tags(target)
    interpreter = f"cp{major}{minor}"
    tags = list(cpython_tags((major, minor), [interpreter], platforms))
    tags += list(compatible_tags((major, minor), interpreter, platforms))
    return list(dict.fromkeys(tags))


def marker_environment(target: Target, python_version: str) -> dict[str, str]:
    """PEP 508 marker values for CPython on `target` (for the markers of a universal lock)."""
    major, minor = _python_tuple(python_version)
    full = python_version if python_version.count(".") >= 2 else f"{major}.{minor}.0"
    machine = {
        "windows": {"x86_64": "AMD64", "aarch64": "ARM64", "i686": "x86"}.get(target.arch, target.arch),
        "macos": MACOS_ARCH.get(target.arch, target.arch),
    }.get(target.os, WHEEL_ARCH.get(target.arch, target.arch))
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "nt" if target.os == "windows" else "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": {"windows": "Windows", "macos": "Darwin"}.get(target.os, "Linux"),
        "platform_version": "",
        "python_full_version": full,
        "python_version": f"{major}.{minor}",
        "sys_platform": {"windows": "win32", "macos": "darwin"}.get(target.os, "linux"),
        "extra": "",
    }


def _choose(pin: Pin, files: list[fetch.RemoteFile], ranking: dict[Tag, int]) -> fetch.RemoteFile | None:
    """The wheel of `pin` with the most specific supported tag; ties go to the smaller filename."""
    wanted = Version(pin.version)
    best: tuple[int, str, fetch.RemoteFile] | None = None
    for remote in files:
        if not remote.filename.endswith(".whl"):
            continue
        try:
            name, version, _, tags = parse_wheel_filename(remote.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if name != pin.name or version != wanted:
            continue
        ranks = [ranking[tag] for tag in tags if tag in ranking]
        if ranks:
            key = (min(ranks), remote.filename, remote)
            if best is None or key[:2] < best[:2]:
                best = key
    return best[2] if best else None


def _place(source: Path, destination: Path) -> None:
    if destination.is_file() and fetch.sha256_file(destination) == fetch.sha256_file(source):
        return
    fsio.link_or_copy(source, destination)


def download_wheels(
    lock_text: str,
    target: Target,
    python_version: str,
    dest: Path,
    *,
    index_url: str,
    cache: Path,
) -> list[Path]:
    """One wheel per pin of the lock that installs on `target`, checked against the lock's hashes.

    Files are downloaded into `cache` (keyed by sha256) and linked or copied into `dest`; returns
    the paths in `dest`, in the lock's order. Pins whose marker excludes the target are skipped.
    """
    ranking = {tag: rank for rank, tag in enumerate(supported_tags(target, python_version))}
    environment = marker_environment(target, python_version)
    index = index_url.rstrip("/")
    chosen: dict[str, tuple[Pin, fetch.RemoteFile]] = {}
    for pin in parse_lock(lock_text):
        if pin.marker is not None and not pin.marker.evaluate(environment):
            continue
        if pin.name in chosen:
            raise BuildError(
                f"the lock pins {pin.name} twice for {target.name} ({chosen[pin.name][0].line!r} and {pin.line!r})"
            )
        files = fetch.project_files(pin.name, index)
        remote = _choose(pin, files, ranking)
        if remote is None:
            raise BuildError(
                f"{pin.name} {pin.version} has no wheel for {target.name} (CPython {python_version}) on {index} "
                f"({_what_exists(pin, files, ranking)}); offline wheels need a built wheel for every dependency. Set "
                f'offline = false in [tool.hatch.build.hooks.pyaket.target."{target.name}"] to install it at '
                "run time, or depend on a version that publishes such a wheel"
            )
        if remote.sha256.lower() not in pin.hashes:
            raise BuildError(
                f"{remote.filename} on {index} has sha256 {remote.sha256}, which the lock does not list for "
                f"{pin.name}=={pin.version}; the index changed since the lock was made or the file was tampered "
                "with. Lock again against the same index"
            )
        chosen[pin.name] = (pin, remote)
    dest.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    for pin, remote in chosen.values():
        cached = fetch.download(remote, cache / remote.sha256.lower() / remote.filename)
        if fetch.sha256_file(cached) not in pin.hashes:
            raise BuildError(f"{cached} does not match the lock's hashes for {pin.name}=={pin.version}")
        destination = dest / remote.filename
        _place(cached, destination)
        placed.append(destination)
    return placed


def _what_exists(pin: Pin, files: list[fetch.RemoteFile], ranking: dict[Tag, int], limit: int = 8) -> str:
    """A short account of the files published for `pin`: its wheels' platforms for this Python, or an sdist."""
    wanted = Version(pin.version)
    pythons = {(tag.interpreter, tag.abi) for tag in ranking}
    any_wheel = False
    platforms: set[str] = set()
    others: list[str] = []
    for remote in files:
        if remote.filename.endswith(".whl"):
            try:
                name, version, _, tags = parse_wheel_filename(remote.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if name == pin.name and version == wanted:
                any_wheel = True
                platforms.update(tag.platform for tag in tags if (tag.interpreter, tag.abi) in pythons)
        elif canonicalize_name(remote.filename.partition(f"-{pin.version}.")[0]) == pin.name:
            others.append(remote.filename)
    if platforms:
        shown = sorted(platforms)
        more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
        return f"its wheels for this Python are for {', '.join(shown[:limit])}{more}"
    if any_wheel:
        return "none of its wheels is for this Python"
    if others:
        return f"it publishes no wheel, only {', '.join(sorted(others)[:limit])}"
    return "no files of that version are listed"
