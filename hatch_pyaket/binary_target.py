"""`hatch build -t binary`: hatch-pyaket launchers instead of PyApp, in `dist/binary/`.

hatchling's BinaryBuilder (the `binary` target) reads `$CARGO`, `$PYAPP_REPO` and
`$CARGO_BUILD_TARGET` when it builds, and for each script (`PYAPP_EXEC_SPEC` in cargo's
environment) runs `$CARGO build --release --target-dir <tmp>` in `$PYAPP_REPO`, then moves
`<tmp>/[$CARGO_BUILD_TARGET/]release/pyapp[.exe]` to `dist/binary/<script>-<version>[-<target>][.exe]`.

Our build hook runs before that (`initialize`): it builds the wheel and every configured launcher,
places them in `dist/binary/` under hatch's names, and points `$CARGO` at a stand-in
(hatch_pyaket/cargo_shim.py) that hands hatch the launcher it asks for instead of compiling PyApp.
`finalize` removes anything hatch placed that is not one of ours, writes `SHA256SUMS` and restores
the environment. tests/unit/test_binary_target.py fails if hatchling changes what this relies on.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatch_pyaket import artifacts, fetch
from hatch_pyaket.config import PyaketConfig
from hatch_pyaket.errors import BuildError
from hatch_pyaket.pipeline import App, Report, build_executables

TARGET_NAME = "binary"
VERSION = "bootstrap"
OUTPUT_FOLDER = "binary"  # hatchling's BinaryBuilder.PLUGIN_NAME: its files go to <build dir>/binary
ENTRY_KEYS = ("script", "scripts", "module", "code")
# What hatchling's BinaryBuilder reads from the environment while it builds.
ENV_CARGO = "CARGO"
ENV_REPO = "PYAPP_REPO"
ENV_BUILD_TARGET = "CARGO_BUILD_TARGET"
ENV_EXEC_SPEC = "PYAPP_EXEC_SPEC"
# Without it, BinaryBuilderConfig.python_version insists that requires-python allows one of the
# Pythons PyApp knows; nothing of PyApp runs here, so that check must not refuse e.g. ">=3.13".
ENV_DISTRIBUTION_SOURCE = "PYAPP_DISTRIBUTION_SOURCE"


def hatch_scripts(build_config: Any) -> list[str]:
    """The scripts hatch's binary target builds: `[tool.hatch.build.targets.binary] scripts`, else every
    `[project.scripts]` entry (hatchling validates them)."""
    scripts = build_config.scripts
    if not isinstance(scripts, list) or not all(isinstance(s, str) for s in scripts):
        raise BuildError(f"hatchling's binary target gave scripts={scripts!r}; hatch-pyaket expects a list of names")
    return scripts


def with_hatch_scripts(table: Mapping[str, Any], scripts: list[str]) -> dict[str, Any]:
    """The hook table, defaulting to hatch's scripts when it names no entry of its own."""
    if any(key in table for key in ENTRY_KEYS) or not scripts:
        return dict(table)
    return {**table, "scripts": scripts}


def pyapp_exe_name(host_is_windows: bool) -> str:
    return "pyapp.exe" if host_is_windows else "pyapp"


def hatch_file_name(stem: str, version: str, build_target: str, host_is_windows: bool) -> str:
    """What BinaryBuilder calls an executable: `.exe` follows the build machine, a suffix `$CARGO_BUILD_TARGET`."""
    name = f"{stem}-{version}-{build_target}" if build_target else f"{stem}-{version}"
    return name + (".exe" if host_is_windows else "")


def launcher_names(
    config: PyaketConfig, version: str, host_triple: str, build_target: str
) -> dict[tuple[str, str], str]:
    """File name per (entry name, target name), as hatch names its own binaries.

    `{script}-{version}` for the host (the first configured target with the host's triple), with
    `-{target}` for any other target (or every one when `$CARGO_BUILD_TARGET` is set, as hatch does);
    `.exe` follows the target.
    """
    primary = None if build_target else next((t for t in config.targets if t.triple == host_triple), None)
    return {
        (entry.name, target.name): (
            f"{entry.name}-{version}" if target is primary else f"{entry.name}-{version}-{target.name}"
        )
        + target.exe_suffix
        for entry in config.entries
        for target in config.targets
    }


@dataclass(frozen=True)
class HatchRequest:
    """One executable hatch's BinaryBuilder will ask cargo for, and where it will put it."""

    script: str  # "" when the project has no scripts (hatch then builds one, named after the project)
    exec_spec: str  # PYAPP_EXEC_SPEC, "" when the project has no scripts
    file_name: str


def hatch_requests(
    scripts: list[str], project_scripts: Mapping[str, str], name: str, version: str, build_target: str, on_windows: bool
) -> list[HatchRequest]:
    if not scripts:
        return [HatchRequest("", "", hatch_file_name(name, version, build_target, on_windows))]
    return [
        HatchRequest(script, project_scripts[script], hatch_file_name(script, version, build_target, on_windows))
        for script in scripts
    ]


def unbuilt_scripts(requests: list[HatchRequest], config: PyaketConfig) -> list[str]:
    """Scripts hatch's binary target lists that the hook's settings do not build (those are left out)."""
    built = {entry.name for entry in config.entries}
    return [r.script for r in requests if r.script and r.script not in built]


@dataclass
class BinaryBuild:
    """One `hatch build -t binary`: our launchers in place, hatch pointed at the stand-in cargo."""

    app: App
    output_dir: Path
    scratch: Path
    placed: list[artifacts.Artifact]
    stray: list[Path]  # files hatch will write that are not ours (e.g. a script we were not asked to build)
    saved_env: dict[str, str | None] = field(default_factory=dict)

    def finish(self, report: Report) -> None:
        try:
            for path in self.stray:
                path.unlink(missing_ok=True)
            _write_indexes(self.output_dir, self.app, self.placed, report)
            for artifact in self.placed:
                report(f"pyaket: built {artifact.path} ({artifact.target})")
        finally:
            self.close()

    def close(self) -> None:
        _restore(self.saved_env)
        self.saved_env = {}
        shutil.rmtree(self.scratch, ignore_errors=True)


def prepare(
    config: PyaketConfig,
    app: App,
    wheel_into: Callable[[Path], Path],
    *,
    output_dir: Path,
    scripts: list[str],
    project_scripts: Mapping[str, str],
    host_triple: str,
    report: Report,
) -> BinaryBuild:
    """Build the wheel (`wheel_into(folder) -> Path`) and the launchers; place them; swap in the stand-in cargo."""
    build_target = os.environ.get(ENV_BUILD_TARGET, "")
    on_windows = sys.platform == "win32"
    if build_target and not any(t.name == build_target or t.triple == build_target for t in config.targets):
        report(
            f"pyaket: WARNING: {ENV_BUILD_TARGET}={build_target} is not one of the configured targets "
            f"({', '.join(t.name for t in config.targets)}); hatch-pyaket builds the configured ones"
        )
    scratch = Path(tempfile.mkdtemp(prefix="pyaket-binary-"))
    # finalize removes it; this covers a build that fails between the hook's two calls.
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    try:
        wheel = wheel_into(scratch / "wheel")
        built = build_executables(config, app, wheel, scratch / "launchers", report=_without_built_lines(report))
        names = launcher_names(config, app.version, host_triple, build_target)
        placed = [_place(a, output_dir / names[(a.entry, a.target)]) for a in built]
        _write_indexes(output_dir, app, placed, report)
        requests = hatch_requests(scripts, project_scripts, app.name, app.version, build_target, on_windows)
        ours = {a.path.name: a.path for a in placed}
        plan = {
            "output": [*([build_target] if build_target else []), "release", pyapp_exe_name(on_windows)],
            "specs": {r.exec_spec: str(ours[r.file_name]) for r in reversed(requests) if r.file_name in ours},
            "default": str(placed[0].path),
        }
        # Hatch also asks for the host's build of each script; with the host not among the targets, or a
        # script the hook's settings leave out, what it places is removed again in finish().
        stray = [output_dir / r.file_name for r in requests if r.file_name not in ours]
        left_out = unbuilt_scripts(requests, config)
        if left_out:
            report(
                f"pyaket: WARNING: hatch's binary target lists the scripts {', '.join(left_out)}, which the hook's "
                "settings (script/scripts/module/code) do not build; they are left out"
            )
        shim = write_shim(scratch, plan)
        saved = _override(
            {
                ENV_CARGO: str(shim),
                ENV_REPO: str(scratch),
                **({} if ENV_DISTRIBUTION_SOURCE in os.environ else {ENV_DISTRIBUTION_SOURCE: "unused (hatch-pyaket)"}),
            }
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return BinaryBuild(app, output_dir, scratch, placed, stray, saved)


def _write_indexes(folder: Path, app: App, placed: list[artifacts.Artifact], report: Report) -> None:
    """SHA256SUMS and pyaket-manifest.json, as the pipeline writes them beside executables."""
    artifacts.write_indexes(folder, app.name, app.version, placed, cache=fetch.cache_dir(), report=report)


def _place(built: artifacts.Artifact, destination: Path) -> artifacts.Artifact:
    artifacts.place(built.path, destination)
    # A byte-for-byte copy: same size and sha256. Hatch then moves its "PyApp" (this same launcher,
    # from cargo_shim) over it, so the file's identity is not ours to check.
    return dataclasses.replace(built, path=destination, identity=())


def _without_built_lines(report: Report) -> Report:
    """The pipeline reports where it built into (our scratch folder); the final paths are reported later."""

    def filtered(message: str) -> None:
        if not message.startswith("pyaket: built "):
            report(message)

    return filtered


def write_shim(folder: Path, plan: dict[str, Any]) -> Path:
    """An executable `$CARGO` for hatch: `python -m hatch_pyaket.cargo_shim <plan.json> <cargo args>`."""
    plan_file = folder / "cargo-shim.json"
    plan_file.write_text(json.dumps(plan, indent=2))
    if sys.platform == "win32":
        shim = folder / "cargo.cmd"
        shim.write_text(f'@"{sys.executable}" -m hatch_pyaket.cargo_shim "{plan_file}" %*\r\n')
    else:
        shim = folder / "cargo"
        command = shlex.join([sys.executable, "-m", "hatch_pyaket.cargo_shim", str(plan_file)])
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    return shim


def _override(values: Mapping[str, str]) -> dict[str, str | None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    return saved


def _restore(saved: Mapping[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
