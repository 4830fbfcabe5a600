"""From a built wheel and a validated config to executables in the output folder.

Usable without hatchling: the hook (plugin.py) only gathers inputs and calls `build_executables`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hatch_pyaket import (
    artifacts,
    fetch,
    fsio,
    locking,
    macos,
    payload,
    progress,
    pythons,
    sbom,
    signing,
    toolchain,
    update_signing,
    winres,
)
from hatch_pyaket.config import Entry, PyaketConfig
from hatch_pyaket.errors import BuildError, PyaketError
from hatch_pyaket.targets import Target

Report = Callable[[str], None]

# In the cargo target dir: held from staging a payload until the executable is copied out.
BUILD_LOCK = ".pyaket-build.lock"


@dataclass(frozen=True)
class App:
    name: str  # normalized project name
    version: str


def template_source() -> Path:
    """The launcher crate shipped in the package (or beside it in a source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "rust_template", here.parent / "rust_template"):
        if (candidate / "Cargo.toml").is_file():
            return candidate
    raise BuildError(f"the launcher crate (rust_template) is missing from {here}; reinstall hatch-pyaket")


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "target" not in p.relative_to(root).parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def template_copy(cache: Path) -> Path:
    """A private copy of the crate in the cache, keyed by its content.

    Cargo then never writes next to the installed package, and the copy's path stays the same
    from build to build, so cargo's fingerprints (and the shared target dir) stay warm.
    """
    source = template_source()
    destination = cache / "template" / _tree_digest(source)[:16]
    if (destination / "Cargo.toml").is_file():
        return destination

    def copy(folder: Path) -> None:
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("target", "__pycache__"), dirs_exist_ok=True)

    # False: another build put the same content there first, which is as good.
    fsio.replace_folder(copy, destination)
    return destination


def target_dir(environ: Mapping[str, str], cache: Path) -> Path:
    return Path(environ["CARGO_TARGET_DIR"]).resolve() if environ.get("CARGO_TARGET_DIR") else cache / "target"


@dataclass
class BuildContext:
    """What every target of one build shares."""

    cache: Path
    template: Path
    cargo_target_dir: Path
    scratch: Path  # temporary files of this build
    report: Report
    locks: dict[str, str] = field(default_factory=dict)  # lock text per resolution (universal or a target)
    signer: signing.Signer | None = None  # None: no target of this build is signed


@dataclass(frozen=True)
class Dependencies:
    lock: Path | None = None
    wheels: tuple[Path, ...] = ()
    python_archive: Path | None = None
    python_interpreter: str = ""


def resolve_dependencies(
    config: PyaketConfig, target: Target, wheel: Path, ctx: BuildContext, *, configured: Target | None = None
) -> Dependencies:
    """The lock, offline wheels and Python archive this target embeds, per the config.

    `configured`: the target whose settings apply (a universal target, for one of its slices).
    """
    configured = configured or target
    offline = config.offline_for(configured)
    embed = config.embed_python_for(configured)
    work = ctx.scratch / (target.name if configured is target else f"{configured.name}.{target.name}")
    work.mkdir(parents=True, exist_ok=True)
    lock_file: Path | None = None
    wheels: tuple[Path, ...] = ()
    if config.lock or offline:
        # An exact Python gets a lock for this target's platform; a range gets one universal lock.
        per_target = offline or config.python_is_exact
        extras = config.extras_for(target)
        key = (target.name if per_target else "universal") + (f"[{','.join(extras)}]" if extras else "")
        if key not in ctx.locks:
            uv = locking.host_uv(report=ctx.report)
            ctx.report(f"pyaket: locking dependencies ({key}, Python {config.lock_python}) with uv pip compile")
            started = time.monotonic()
            ctx.locks[key] = locking.lock(
                wheel,
                uv=uv,
                python_version=config.lock_python,
                target=target if per_target else None,
                index_url=fetch.index_url(),
                extras=extras,
            )
            pins = locking.count_pins(ctx.locks[key])
            noun = "package" if pins == 1 else "packages"
            ctx.report(f"pyaket:   locked {pins} {noun} in {time.monotonic() - started:.1f} s")
        lock_file = work / "requirements.txt"
        lock_file.write_text(ctx.locks[key])
        if offline:
            wheels = tuple(
                locking.download_wheels(
                    ctx.locks[key],
                    target,
                    config.lock_python,
                    work / "wheels",
                    index_url=fetch.index_url(),
                    cache=ctx.cache / "wheels",
                )
            )
    archive = None
    if embed:
        archive = pythons.python_archive(embed, target, config.python, cache=ctx.cache, report=ctx.report)
    return Dependencies(
        lock=lock_file,
        wheels=wheels,
        python_archive=archive,
        python_interpreter=pythons.interpreter_path(target) if archive else "",
    )


def _payload_spec(
    config: PyaketConfig,
    app: App,
    target: Target,
    entry: Entry,
    wheel: Path,
    uv: Path | None,
    deps: Dependencies,
    published: Target | None = None,
) -> payload.PayloadSpec:
    """`published`: the target whose name the executable is published under (a universal one, for its slices)."""
    update = config.update
    return payload.PayloadSpec(
        app=app.name,
        version=app.version,
        install_name=config.install_name,
        vendor=config.vendor,
        target=target.name,
        entry_kind=entry.kind,
        entry_value=entry.value,
        entry_name=entry.name,
        python=config.python,
        wheel=wheel,
        uv=uv,
        uv_version=config.uv_version,
        self_command=config.self_command,
        keep_versions=config.keep_versions,
        gui=entry.gui,
        lock=deps.lock,
        wheels=deps.wheels,
        python_archive=deps.python_archive,
        python_interpreter=deps.python_interpreter,
        extras=config.extras_for(target),
        update_url=update.url if update else "",
        update_public_key=update.public_key.base64 if update else "",
        update_file=artifacts.executable_name(entry.name, "{version}", published or target) if update else "",
    )


@dataclass(frozen=True)
class _Part:
    """How one thin target (a target, or a slice of a universal one) is compiled, and what it embeds."""

    target: Target
    invocation: toolchain.Invocation
    tool_env: Mapping[str, str]
    uv: Path | None
    deps: Dependencies
    macos_min: macos.DeploymentTarget | None
    features: tuple[str, ...]  # the launcher's cargo features
    # The dependencies can be compiled ahead (toolchain.compiling_ahead) only with no cargo arguments of the
    # user's, which may not apply to pyaket-core alone or may change what its crates are compiled with.
    compile_ahead: bool


def _plan_part(config: PyaketConfig, configured: Target, part: Target, wheel: Path, ctx: BuildContext) -> _Part:
    options = config.options_for(configured)
    cargo_args = [*config.cargo_args, *options.cargo_args]
    # Launcher code that only some projects need is compiled in only for them (pyaket-core's cargo features).
    features = tuple(
        name
        for name, wanted in (
            ("update", config.update is not None),  # the HTTPS client and the signature check
            ("python-archive", config.embed_python_for(configured)),  # the tar.gz reader
        )
        if wanted
    )
    if features:
        cargo_args += ["--features", ",".join(features)]
    user_env = {**dict(config.env), **dict(options.env)}
    macos_min = None
    if part.os == "macos":
        table = "tool.hatch.build.hooks.pyaket"
        where = f'{table}.target."{configured.name}"'
        macos_min = macos.deployment_target(
            part,
            config.macos_min_for(configured),
            f"{where if options.macos_min is not None else table}.macos-min",
            [
                (f"{where}.env", dict(options.env)),
                (f"{table}.env", dict(config.env)),
                ("the build's environment", os.environ),
            ],
        )
        # Read by rustc and by cargo-zigbuild, which hands zig the matching `-target <arch>-macos.<min>`.
        user_env[macos.ENV_NAME] = str(macos_min)
    invocation = toolchain.plan(
        part,
        template=ctx.template,
        target_dir=ctx.cargo_target_dir,
        profile=config.cargo_profile,
        forced_tool=options.tool,
        cargo_args=cargo_args,
        extra_env=user_env,
    )
    tool_env = toolchain.preflight(invocation, part, cargo_args)
    uv = fetch.uv_binary(part, config.uv_version, report=ctx.report) if config.uv == "embed" else None
    deps = resolve_dependencies(config, part, wheel, ctx, configured=configured)
    compile_ahead = not (config.cargo_args or options.cargo_args)
    return _Part(part, invocation, tool_env, uv, deps, macos_min, features, compile_ahead)


def build_target(
    config: PyaketConfig, app: App, target: Target, wheel: Path, output_dir: Path, ctx: BuildContext
) -> list[artifacts.Artifact]:
    """Compile one launcher per entry for `target` and place them in `output_dir`.

    A universal target compiles each slice as its own thin target (with its own uv and payload) and
    merges them into one file.
    """
    extras = config.extras_for(target)
    if extras:
        ctx.report(f"pyaket: {target.name}: the app is installed with its extras {', '.join(extras)}")
    parts = [_plan_part(config, target, part, wheel, ctx) for part in (target.slices or (target,))]
    made = []
    for entry in config.entries:
        destination = output_dir / artifacts.executable_name(entry.name, app.version, target)
        finished: list[Path] = []
        hashes: list[str] = []
        staged_parts: list[dict[str, object]] = []
        for part in parts:
            resources = winres.cargo_env(
                config, app.name, app.version, part.target, entry, part.invocation.tool, ctx.scratch, ctx.report
            )
            # The staged payload and cargo's output are at fixed places in the shared target dir: from
            # staging to copying the executable out, no other build may use that target dir.
            with fsio.locked(
                ctx.cargo_target_dir / BUILD_LOCK,
                what=f"the cargo target dir {ctx.cargo_target_dir}",
                doing=f"building {app.name} {app.version} for {part.target.name} [{entry.name}]",
                report=ctx.report,
            ):
                staging = ctx.cargo_target_dir / "pyaket-payload" / part.target.name
                spec = _payload_spec(config, app, part.target, entry, wheel, part.uv, part.deps, target)
                first_build = not part.invocation.artifact.parent.is_dir()  # <target dir>/<triple>/<profile>
                if first_build:
                    ctx.report(
                        f"pyaket: first build for {part.target.name} in {ctx.cargo_target_dir}: compiling the "
                        "launcher's crates takes a minute or more (and the crates.io registry the very first "
                        "time); later builds take seconds"
                    )
                ahead = (
                    toolchain.compiling_ahead(part.invocation, part.tool_env, ctx.report)
                    if first_build and part.compile_ahead
                    else contextlib.nullcontext()
                )
                with ahead:
                    # uv's frames (and a Python's, dependency wheels') are compressed once per machine: ~20 s of
                    # CPU each, meanwhile a first build compiles the launcher's dependencies.
                    staged = payload.stage(spec, staging, blob_cache=ctx.cache / "blobs", report=ctx.report)
                staged_parts.append(staged)
                hashes.append(str(staged["payload_hash"]))
                env = {
                    **part.tool_env,
                    "PYAKET_PAYLOAD_DIR": str(staging),
                    "PYAKET_GUI": "1" if entry.gui else "0",
                    **resources,
                }
                label = part.target.name if part.target is target else f"{target.name} ({part.target.name} slice)"
                if part.macos_min:
                    ctx.report(f"pyaket: {label} starts on macOS {part.macos_min} and later ({part.macos_min.source})")
                ctx.report(f"pyaket: {label} [{entry.name}] with {part.invocation.tool}: {part.invocation.describe()}")
                built = toolchain.run(part.invocation, part.target, env, ctx.report)
                if part.macos_min is None:
                    placed = artifacts.place(
                        built, destination, payload_hash=hashes[-1], label=f"{target.name} [{entry.name}]"
                    )
                    continue
                # Out of the shared target dir before the lock is released; the identifier is the
                # executable's name rather than cargo's `pyaket_launcher-<hash>`.
                finished.append(ctx.scratch / "macos" / target.name / entry.name / part.target.triple)
                finished[-1].parent.mkdir(parents=True, exist_ok=True)
                macos.finish_slice(
                    built,
                    finished[-1],
                    slice_target=part.target,
                    minimum=part.macos_min,
                    identifier=entry.name,
                    payload_hash=hashes[-1],
                )
        if finished:
            result = finished[0]
            if len(finished) > 1:
                result = finished[0].with_name("universal")
                macos.merge_universal(finished, result)
            placed = artifacts.place(result, destination, payload_hash=hashes[0], label=f"{target.name} [{entry.name}]")
        if ctx.signer is not None and ctx.signer.applies_to(target):
            # Before recording: SHA256SUMS and the manifest must describe the signed bytes.
            ctx.signer.sign(placed.path, target, entry.name)
            placed = signing.placed_after_signing(placed.path)
        bom = ""
        if config.sbom:
            # A universal file's SBOM describes its first slice's payload (the slices differ only in their uv).
            first = parts[0]
            bom = sbom.for_executable(
                executable=destination, entry=entry.name, app_name=app.name, app_version=app.version,
                target_name=target.name, triple=first.target.triple, staged=staged_parts[0], wheel=wheel,
                lock=first.deps.lock, wheels=first.deps.wheels, uv=first.uv, uv_version=config.uv_version,
                python_archive=first.deps.python_archive, python_version=config.lock_python or config.python,
                template=ctx.template, features=first.features,
                environ={**os.environ, **first.invocation.env, **first.tool_env},
                report=ctx.report,
            )  # fmt: skip
        made.append(
            artifacts.record(
                placed,
                target,
                entry.name,
                parts[0].invocation.tool,
                python=config.python,
                uv_version=config.uv_version if parts[0].uv else "",
                offline=config.offline_for(target),
                embedded_python=parts[0].deps.python_archive is not None,
                sbom=bom,
            )
        )
    return made


def build_executables(
    config: PyaketConfig,
    app: App,
    wheel: Path,
    output_dir: Path,
    *,
    report: Report,
    environ: Mapping[str, str] | None = None,
) -> list[artifacts.Artifact]:
    """Build every configured target; a failing target does not stop the others, but fails the build."""
    environ = os.environ if environ is None else environ
    cache = fetch.cache_dir(environ)
    made: list[artifacts.Artifact] = []
    failures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pyaket-") as scratch:
        ctx = BuildContext(cache, template_copy(cache), target_dir(environ, cache), Path(scratch), report)
        # Before any compile: a missing tool or a bad credential fails here, in seconds.
        ctx.signer = signing.preflight(config.signing, config.targets, ctx.scratch, report=report, environ=environ)
        checksum_signer = update_signing.preflight(config.update, environ=environ, report=report)
        for target in config.targets:
            try:
                made += build_target(config, app, target, wheel, output_dir, ctx)
            except PyaketError as error:
                failures.append((target.name, str(error)))
                report(f"pyaket: {target.name} FAILED: {error}")
    for artifact in made:
        report(f"pyaket: built {artifact.path} ({progress.size_text(artifact.size)})")
    if made:
        artifacts.write_indexes(
            output_dir,
            app.name,
            app.version,
            made,
            cache=cache,
            report=report,
            sign_checksums=checksum_signer.sign if checksum_signer else None,
        )
    if failures:
        summary = "\n".join(f"  - {name}: {message}" for name, message in failures)
        built = ", ".join(a.target for a in made) or "none"
        raise BuildError(f"{len(failures)} of {len(config.targets)} targets failed (built: {built}):\n{summary}")
    return made
