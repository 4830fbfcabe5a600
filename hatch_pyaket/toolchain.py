"""Choosing and running cargo, cargo-zigbuild or cargo-xwin for a target; turning failures into clear errors."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from hatch_pyaket import progress
from hatch_pyaket.errors import BuildError, ToolchainError
from hatch_pyaket.targets import Target, detect_host_triple

LAUNCHER_PACKAGE = "pyaket-launcher"
# The launcher's code and every crate it depends on except the payload (the staged files, embedded by its build
# script): all that a first build compiles before it needs the payload.
CORE_PACKAGE = "pyaket-core"


@dataclass(frozen=True)
class Invocation:
    """One compile: the command, the environment it adds, and where the executable appears."""

    tool: str  # "cargo", "zigbuild" or "xwin"
    command: tuple[str, ...]
    env: Mapping[str, str]
    artifact: Path

    def describe(self) -> str:
        return shlex.join(self.command)


def cargo_executable(environ: Mapping[str, str] | None = None) -> str | None:
    """`$CARGO` if set (as cargo itself honours it), else cargo on PATH."""
    environ = os.environ if environ is None else environ
    return environ.get("CARGO") or shutil.which("cargo")


@cache
def _rustc_host(rustc: str) -> str | None:
    try:
        output = subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in output.splitlines():
        if line.startswith("host:"):
            return line.split(":", 1)[1].strip()
    return None


def host_triple(environ: Mapping[str, str] | None = None) -> str:
    """The host's triple as rustc sees it (it knows musl vs gnu exactly), else as Python sees it."""
    environ = os.environ if environ is None else environ
    rustc = environ.get("RUSTC") or shutil.which("rustc")
    return (_rustc_host(rustc) if rustc else None) or detect_host_triple()


def choose_tool(target: Target, host: str, forced: str | None, environ: Mapping[str, str]) -> str:
    """cargo where the host builds natively; zigbuild for a foreign OS, arch or libc, or a glibc floor;
    xwin for MSVC from a non-Windows host. `AUTO_ZIGBUILD=0` keeps plain cargo for the zig cases."""
    if forced:
        return forced
    host_target = Target(host, host, None)
    if target.libc == "msvc":
        # zig cannot link MSVC binaries; Windows hosts have the MSVC linker for every Windows arch.
        return "cargo" if host_target.os == "windows" else "xwin"
    foreign = (target.os, target.arch, target.libc) != (host_target.os, host_target.arch, host_target.libc)
    if foreign or target.glibc is not None:
        if environ.get("AUTO_ZIGBUILD", "1").strip().lower() in {"0", "false", "no", "off"}:
            return "cargo"
        return "zigbuild"
    return "cargo"


def _find_script(name: str) -> str | None:
    """A console script from PATH, or beside this Python (an isolated build env may not be on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, scripts / f"{name}.exe"):
        if candidate.is_file():
            return str(candidate)
    return None


def in_build_isolation() -> bool:
    """Whether this build runs in a frontend's isolated environment, which holds only the project's
    `[build-system] requires`, so a package installed beside hatch is not seen there.

    Recognised by where the plugin itself lives: pip's overlay and pypa/build's venv are in the temp
    folder, uv's in its cache under `builds-v<N>/`, hatch's in an environment named `hatch-build`.
    """
    here = Path(__file__).resolve()
    temp = Path(tempfile.gettempdir()).resolve()
    if temp in here.parents or any(re.fullmatch(r"builds-v\d+", part) for part in here.parts):
        return True
    return Path(sys.prefix).name == "hatch-build"


def missing_extra_hint(extra: str, what: str) -> str:
    """How to get a tool that comes with hatch-pyaket's `[extra]`, for this kind of build."""
    requires = (
        f'add it to the project\'s build requirements: [build-system] requires = ["hatchling", "hatch-pyaket[{extra}]"]'
    )
    if in_build_isolation():
        return (
            f"{requires} (this build runs in an isolated build environment, which holds only those requirements: "
            f"{what} installed beside hatch or pip is not seen here)"
        )
    return f"{requires}, or, for this build, `pip install 'hatch-pyaket[{extra}]'` into {sys.executable}"


def _zig_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Point cargo-zigbuild at the `ziglang` package's zig when no zig is on PATH."""
    if environ.get("CARGO_ZIGBUILD_ZIG_PATH") or shutil.which("zig"):
        return {}
    try:
        import ziglang
    except ImportError:
        raise ToolchainError(
            "zig is needed to cross-compile but was not found (no `zig` on PATH, no ziglang package); "
            + missing_extra_hint("zig", "a ziglang")
        ) from None
    zig = Path(ziglang.__file__).parent / ("zig.exe" if sys.platform == "win32" else "zig")
    return {"CARGO_ZIGBUILD_ZIG_PATH": str(zig)}


def _target_std_missing(target: Target, environ: Mapping[str, str], cargo_args: Sequence[str]) -> bool:
    """Whether rustc lacks the target's standard library (build-std brings its own, so it never lacks)."""
    if "CARGO_UNSTABLE_BUILD_STD" in environ or any(arg.startswith("-Zbuild-std") for arg in cargo_args):
        return False
    rustc = environ.get("RUSTC") or shutil.which("rustc") or "rustc"
    try:
        libdir = subprocess.run(
            [rustc, "--print", "target-libdir", "--target", target.triple], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return True
    return not any(p.name.startswith("libstd-") for p in Path(libdir).glob("libstd-*"))


def _ensure_target_std(target: Target, environ: Mapping[str, str], cargo_args: Sequence[str]) -> None:
    if not _target_std_missing(target, environ, cargo_args):
        return
    rustup = shutil.which("rustup")
    if rustup and "RUSTC" not in environ:
        # Adds the std to the active toolchain only; the user's default toolchain is not changed.
        result = subprocess.run([rustup, "target", "add", target.triple], capture_output=True, text=True)
        if result.returncode == 0 and not _target_std_missing(target, environ, cargo_args):
            return
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = f" (`rustup target add {target.triple}` said: {detail[-1] if detail else 'nothing'})"
    else:
        reason = ""
    raise ToolchainError(
        f"the Rust standard library for {target.triple} is not installed{reason}. Run "
        f"`rustup target add {target.triple}`, or build it from source with "
        f'cargo-args = ["-Zbuild-std=std,panic_abort"] and env RUSTC_BOOTSTRAP = "1" in '
        f'[tool.hatch.build.hooks.pyaket.target."{target.name}"]'
    )


def plan(
    target: Target,
    *,
    template: Path,
    target_dir: Path,
    profile: str,
    forced_tool: str | None,
    cargo_args: Sequence[str],
    extra_env: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    host: str | None = None,
) -> Invocation:
    """Decide how to compile the launcher for `target`. Pure apart from reading `environ`."""
    environ = os.environ if environ is None else environ
    host = host or host_triple(environ)
    tool = choose_tool(target, host, forced_tool, {**environ, **extra_env})
    cargo = cargo_executable(environ) or "cargo"
    build_target = target.triple
    if tool == "zigbuild":
        command = [_find_script("cargo-zigbuild") or "cargo-zigbuild", "zigbuild"]
        build_target = target.zig_target()
    elif tool == "xwin":
        command = [_find_script("cargo-xwin") or "cargo-xwin", "xwin", "build"]
    else:
        command = [cargo, "build"]
    command += [
        "--locked",
        "--profile",
        profile,
        "--target",
        build_target,
        "--package",
        LAUNCHER_PACKAGE,
        "--manifest-path",
        str(template / "Cargo.toml"),
        *cargo_args,
    ]
    artifact = target_dir / target.triple / profile / f"{LAUNCHER_PACKAGE}{target.exe_suffix}"
    env = {"CARGO_TARGET_DIR": str(target_dir), **extra_env}
    flags_env, flags_args = _remap_paths(target, template, {**environ, **extra_env})
    env.update(flags_env)
    env.update(_decoder_only_c_flags(target, tool, {**environ, **extra_env}))
    command += flags_args
    return Invocation(tool=tool, command=tuple(command), env=env, artifact=artifact)


# The launcher only decompresses, so zstd's compressor strategies are compiled out of zstd-sys: its C sources are
# the cold build's critical path (24 of cargo's 34 s), and these defines cut them from 35 to 22 s of CPU
# (benchmarks/results-2026-12-01-coldbuild.txt). zstd falls back to its fast strategy if a level ever needs them.
# The decoder keeps one Huffman table kind and one sequence decoder (the single-symbol table, short offsets):
# its C compiles in 5.5 s instead of 8.0 s, and decodes uv just as fast (64-68 ms vs 66-68 ms, best of 15).
ZSTD_DECODER_ONLY_DEFINES = (
    *(
        f"-DZSTD_EXCLUDE_{strategy}_BLOCK_COMPRESSOR"
        for strategy in ("DFAST", "GREEDY", "LAZY", "LAZY2", "BTLAZY2", "BTOPT", "BTULTRA")
    ),
    "-DHUF_FORCE_DECOMPRESS_X1",
    "-DZSTD_FORCE_DECOMPRESS_SEQUENCES_SHORT",
)


def _decoder_only_c_flags(target: Target, tool: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The C flags for `target` with ZSTD_DECODER_ONLY_DEFINES added, keeping the user's.

    cc (which zstd-sys builds with) reads only the first set of CFLAGS_<triple>, CFLAGS_<triple_with_underscores>,
    TARGET_CFLAGS and CFLAGS, so the user's value is carried into the target's own variable (CFLAGS itself would
    also reach build scripts compiled for the host). cargo-xwin writes CFLAGS_<triple> itself (the MSVC include
    paths): its builds keep the full zstd.
    """
    if tool == "xwin":
        return {}
    names = (f"CFLAGS_{target.triple}", f"CFLAGS_{target.triple.replace('-', '_')}", "TARGET_CFLAGS", "CFLAGS")
    user = next((environ[name] for name in names if name in environ), "")
    name = names[0] if names[0] in environ else names[1]
    return {name: " ".join([*user.split(), *ZSTD_DECODER_ONLY_DEFINES])}


def _cargo_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("CARGO_HOME") or Path.home() / ".cargo")


def _remap_paths(target: Target, template: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Map machine-specific source paths (registry, the crate's copy) to fixed ones, so the
    executable does not depend on where CARGO_HOME or the cache is.

    The flags go where cargo reads rustflags without dropping the user's: appended to
    CARGO_ENCODED_RUSTFLAGS or RUSTFLAGS when set (they override everything else), otherwise
    as a `--config` array, which cargo merges with config files and CARGO_TARGET_<T>_RUSTFLAGS.
    """
    flags = [
        f"--remap-path-prefix={_cargo_home(environ)}=/cargo",
        f"--remap-path-prefix={template}=/pyaket",
    ]
    if environ.get("CARGO_ENCODED_RUSTFLAGS"):
        return {"CARGO_ENCODED_RUSTFLAGS": "\x1f".join([environ["CARGO_ENCODED_RUSTFLAGS"], *flags])}, []
    if environ.get("RUSTFLAGS", "").strip():
        return {"RUSTFLAGS": " ".join([environ["RUSTFLAGS"], *flags])}, []
    array = ", ".join(f'"{flag}"' for flag in flags)
    return {}, ["--config", f"target.{target.triple}.rustflags = [{array}]"]


def preflight(invocation: Invocation, target: Target, cargo_args: Sequence[str]) -> dict[str, str]:
    """Check the tools before compiling; return extra environment the tools need."""
    environ = {**os.environ, **invocation.env}
    if not cargo_executable(environ):
        raise ToolchainError(
            "cargo was not found (looked at $CARGO and PATH); install Rust from https://rustup.rs to build executables"
        )
    extra: dict[str, str] = {}
    if invocation.tool == "zigbuild":
        if not _find_script("cargo-zigbuild"):
            raise ToolchainError(
                f"{target.name} needs cargo-zigbuild, which was not found; "
                + missing_extra_hint("zig", "a cargo-zigbuild")
                + "; or set AUTO_ZIGBUILD=0 to use your own linker for it"
            )
        extra.update(_zig_env(environ))
    elif invocation.tool == "xwin" and not _find_script("cargo-xwin"):
        raise ToolchainError(
            f"{target.name} needs cargo-xwin, which was not found; "
            + missing_extra_hint("xwin", "a cargo-xwin")
            + ". It downloads Microsoft's CRT and Windows SDK on first use "
            "(cached in XWIN_CACHE_DIR); by using it you accept Microsoft's license for them"
        )
    _ensure_target_std(target, environ, cargo_args)
    return extra


def run(
    invocation: Invocation, target: Target, extra_env: Mapping[str, str], report: progress.Report | None = None
) -> Path:
    """Run the compile with cargo's own lines on the console (and a heartbeat through its silent
    stretches); one clear error if it fails."""
    env = {**os.environ, **invocation.env, **extra_env}
    try:
        returncode = progress.run_with_heartbeat(invocation.command, env, report or _stderr_line, label=invocation.tool)
    except OSError as error:
        raise ToolchainError(f"could not start {invocation.command[0]!r}: {error}") from None
    if returncode != 0:
        hint = ""
        if invocation.tool == "xwin":
            hint = (
                "\ncargo-xwin must download Microsoft's CRT and Windows SDK (set XWIN_CACHE_DIR to a folder "
                "that already holds them for offline builds); see the output above"
            )
        raise BuildError(
            f"compiling the launcher for {target.name} failed (exit code {returncode}) with "
            f"{invocation.tool}:\n  {invocation.describe()}{hint}"
        )
    if not invocation.artifact.is_file():
        raise BuildError(f"{invocation.tool} succeeded but {invocation.artifact} was not written")
    return invocation.artifact


def dependencies_only(invocation: Invocation) -> Invocation:
    """The same compile (tool, profile, target, features, flags, environment) of `CORE_PACKAGE` alone.

    Its crates are the launcher's, built with the same fingerprints, so the launcher's build that follows reuses
    them and compiles only the payload and the executable."""
    command = list(invocation.command)
    at = command.index("--package") + 1
    command[at : at + 1] = [CORE_PACKAGE, "--lib"]
    return replace(invocation, command=tuple(command))


@contextlib.contextmanager
def compiling_ahead(
    invocation: Invocation, extra_env: Mapping[str, str], report: progress.Report | None = None
) -> Iterator[None]:
    """Compiles the launcher's dependencies (`dependencies_only`) while the block runs.

    A first build would otherwise compress its payload (uv: ~12 s on 2 cores) and only then start cargo, whose
    dependencies (zstd's C sources the longest) do not need the payload. Only the launcher's own build decides
    the outcome: if this one fails, that build compiles the same crates again and reports why. If the block
    fails, the compile is stopped before the caller releases the target dir.
    """
    ahead = dependencies_only(invocation)
    say = report or _stderr_line
    try:
        started = progress.Forwarded(ahead.command, {**os.environ, **ahead.env, **extra_env})
    except OSError:
        yield  # the launcher's build names the missing tool
        return
    try:
        yield
        code = started.wait(say, label=f"{invocation.tool} (the launcher's dependencies)")
    except BaseException:  # the block failed, or an interrupt came while waiting
        started.stop()
        raise
    if code != 0:
        say(f"pyaket: compiling the launcher's dependencies first failed (exit code {code}); building it all now")


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
