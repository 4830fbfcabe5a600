"""The tool adapters: how each tool builds an app's executable (cold, then warm rebuilds after one-line
changes) and where the executable is. One class per tool, registered in TOOLS (in report order); a new
tool is a subclass of Tool with a `key`, a `title` and a `build`.

Each `build` fills a ToolResult: cold_s, warm_s, exe, version, edit (the app edit its executable
prints), notes; a StepFailed it raises becomes the tool's reason in the table.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import textwrap
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from benchmarks.apps import App
from benchmarks.context import Context
from benchmarks.measure import (
    StepFailed,
    ToolResult,
    capture,
    load_text,
    run_logged,
    run_measured,
    secs_text,
)
from tests.example import edit_pyproject
from tests.helpers_python import make_relocatable_python
from tests.localserver import serve

PYAKET_REQUIREMENT = "pyaket>=0.10,<0.11"


class Tool:
    key: ClassVar[str]
    title: ClassVar[str]
    needs_cargo: ClassVar[bool] = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def build(self, app: App, result: ToolResult) -> None:
        raise NotImplementedError

    def warm_rebuilds(self, app: App, result: ToolResult, build: Callable[[Path], float], limit: int) -> None:
        """At most `limit` of the --repeat rebuilds of the hook-less project (for the tools whose rebuilds take
        minutes); `build(wheel)` builds the executable from the app's new wheel."""
        repeat = self.ctx.args.repeat
        measured = max(0, min(repeat, limit))
        for n in range(1, measured + 1):
            app.edit(app.plain, n)
            wheel_s, wheel = self.ctx.build_wheel(app)
            result.warm_s.append(wheel_s + build(wheel))
            result.edit = n
        if result.warm_s and len(result.warm_s) < repeat:
            result.notes.append(f"warm rebuild: {len(result.warm_s)} measured, not {repeat} (each takes minutes)")


# --------------------------------------------------------------------------- hatch-pyaket


class HatchPyaket(Tool):
    key = "hatch-pyaket"
    title = "hatch-pyaket"

    def build(self, app: App, result: ToolResult) -> None:
        ctx = self.ctx
        target_dir = ctx.run_dir / "targets" / f"hatch-pyaket-{app.key}"
        shutil.rmtree(target_dir, ignore_errors=True)
        env = ctx.plugin_env(CARGO_TARGET_DIR=str(target_dir))
        project = app.source
        log_file = ctx.log_file(f"{app.key}-hatch-pyaket")

        def build() -> float:
            shutil.rmtree(project / "dist", ignore_errors=True)
            return run_logged(
                [sys.executable, "-m", "build", "--no-isolation", "--wheel", project], log_file, env=env, cwd=project
            )

        app.edit(project, 0)
        # A cold build compresses uv: empty the plugin's blob cache too (the downloaded uv stays).
        shutil.rmtree(ctx.plugin_cache / "blobs", ignore_errors=True)
        result.cold_s = build()
        result.exe = self.find_exe(project / "dist", app)
        # What every later project or fresh target dir on this machine pays: uv's blob comes from the cache.
        shutil.rmtree(target_dir, ignore_errors=True)
        shared = build()
        result.notes.append(
            f"cold build with uv's compressed blob already in the plugin's cache "
            f"(any later project or fresh target dir on the machine): {secs_text(shared)}"
        )
        for n in range(1, ctx.args.repeat + 1):
            app.edit(project, n)
            result.warm_s.append(build())
            result.edit = n
        result.exe = self.find_exe(project / "dist", app)
        result.version = ctx.versions.get("hatch-pyaket", "")
        if app.key == "example":
            self.launcher_figures(app, target_dir, env, result)

    def find_exe(self, dist: Path, app: App) -> Path:
        name = f"{app.script}-{app.version}-{self.ctx.triple}"
        if not (dist / name).is_file():
            raise StepFailed(f"no {name} in {dist}")
        return dist / name

    def launcher_figures(self, app: App, target_dir: Path, env: Mapping[str, str], result: ToolResult) -> None:
        """The launcher's own size (built with uv = "path", no uv embedded), and what the full executable is made of."""
        launcher = self.ctx.launcher
        blobs = payload_blobs(target_dir)
        payload_files = payload_manifest(target_dir)
        embedded = {payload_files.get(sha, sha[:12]): size for sha, size in blobs.items()}
        launcher["embed_exe"] = result.size
        launcher["embed_blobs"] = embedded
        launcher["embed_raw"] = {
            payload_files.get(sha, sha[:12]): raw for sha, raw in payload_sizes(target_dir).items()
        }
        project = app.source.parent / "uv-path"
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(app.source, project, ignore=shutil.ignore_patterns("dist"))
        edit_pyproject(project, hook={"uv": "path"})
        try:
            run_logged(
                [sys.executable, "-m", "build", "--no-isolation", "--wheel", project],
                self.ctx.log_file(f"{app.key}-hatch-pyaket-uv-path"),
                env=env,
                cwd=project,
            )
            exe = self.find_exe(project / "dist", app)
        except StepFailed as error:
            launcher["uv_path_error"] = str(error)
            return
        launcher["path_exe"] = exe.stat().st_size
        launcher["path_blobs"] = {
            payload_files.get(sha, sha[:12]): size for sha, size in payload_blobs(target_dir).items()
        }
        launcher["stripped"] = "not stripped" not in (capture(["file", str(exe)]) or "")


def payload_manifest(target_dir: Path) -> dict[str, str]:
    """sha256 -> role ("uv", "wheel", "lock"...) from the staged manifest.json."""
    roles: dict[str, str] = {}
    for manifest in target_dir.glob("pyaket-payload/*/manifest.json"):
        data = json.loads(manifest.read_text())
        named = {data.get("uv"): "uv", data.get("wheel"): "wheel", data.get("lock"): "lock"}
        for name, meta in data.get("files", {}).items():
            roles[meta["sha256"]] = named.get(name) or name
    return roles


def payload_sizes(target_dir: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for manifest in target_dir.glob("pyaket-payload/*/manifest.json"):
        for meta in json.loads(manifest.read_text()).get("files", {}).values():
            sizes[meta["sha256"]] = meta["size"]
    return sizes


def payload_blobs(target_dir: Path) -> dict[str, int]:
    """sha256 -> compressed size of the blobs the last build embedded (the staged payload's frames.json)."""
    tables = sorted(target_dir.glob("pyaket-payload/*/frames.json"), key=lambda f: f.stat().st_mtime)
    if not tables:
        return {}
    files = json.loads(tables[-1].read_text())["files"]
    return {Path(t["blob"]).name.split("-")[0]: (tables[-1].parent / t["blob"]).stat().st_size for t in files.values()}


CAPTURE_ARGV = """\
import json, os, sys
_out = os.environ.get("PYAKET_BENCH_ARGV")
if _out:
    with open(_out, "w") as _file:
        json.dump(sys.orig_argv, _file)
    os._exit(0)
"""


def launcher_python_flags(result: ToolResult) -> list[str]:
    """The interpreter flags and `-c` code hatch-pyaket's launcher execs the venv's Python with (for the floor's
    `python -s -c <bootstrap>`), read from the launcher itself: a sitecustomize.py put in its installed venv for
    one run writes `sys.orig_argv` and exits, and is removed again."""
    if not (result.exe and result.home):
        raise StepFailed("hatch-pyaket was not installed")
    found = sorted((result.home / "data").glob("*/*/*/venv/lib/python*/site-packages"))
    if len(found) != 1:
        raise StepFailed(f"expected one installed venv under {result.home / 'data'}, found {len(found)}")
    hook, out = found[0] / "sitecustomize.py", result.home / "orig-argv.json"
    hook.write_text(CAPTURE_ARGV)
    try:
        env = {**result.run_env, "PYAKET_BENCH_ARGV": str(out)}
        sample = run_measured([result.exe, "x"], env=env, cwd=result.home / "cwd", capture=result.home / "argv")
        if sample.code != 0 or not out.is_file():
            raise StepFailed(f"the launcher's command line was not captured: {sample.stderr.strip()[-300:]}")
    finally:
        hook.unlink(missing_ok=True)
        for cached in (found[0] / "__pycache__").glob("sitecustomize.*"):
            cached.unlink()
    argv = json.loads(out.read_text())  # [python, *flags, "-c", code, argv0, "x"]
    return argv[1 : argv.index("-c") + 2]


# --------------------------------------------------------------------------- PyInstaller


class PyInstaller(Tool):
    key = "pyinstaller"
    title = "PyInstaller"
    needs_cargo = False

    def build(self, app: App, result: ToolResult) -> None:
        ctx = self.ctx
        version = ctx.tool_version("pyinstaller", "pyinstaller")
        result.version = version
        base = ctx.run_dir / "pyinstaller" / app.key
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        module, function = app.entry.split(":")
        entry = base / "entry.py"
        entry.write_text(f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        log_file = ctx.log_file(f"{app.key}-pyinstaller")
        env = ctx.env(PYINSTALLER_CONFIG_DIR=str(base / "config"))
        python = base / "env" / "bin" / "python"

        def pyinstaller(clean: bool) -> float:
            return run_logged(
                [
                    python,
                    "-m",
                    "PyInstaller",
                    "--onefile",
                    "--noconfirm",
                    *(["--clean"] if clean else []),
                    "--name",
                    app.script,
                    "--distpath",
                    base / "dist",
                    "--workpath",
                    base / "work",
                    "--specpath",
                    base,
                    entry,
                ],
                log_file,
                env=env,
                cwd=base,
            )

        app.edit(app.plain, 0)
        wheel_s, wheel = ctx.build_wheel(app)
        start = time.perf_counter()
        ctx.venv(base / "env", f"pyinstaller=={version}", str(wheel))
        setup_s = time.perf_counter() - start
        result.cold_s = wheel_s + setup_s + pyinstaller(clean=True)
        for n in range(1, ctx.args.repeat + 1):
            app.edit(app.plain, n)
            wheel_s, wheel = ctx.build_wheel(app)
            install_s = run_logged(
                [ctx.uv, "pip", "install", "--quiet", "--python", python, "--reinstall-package", app.dist, wheel],
                log_file,
                env=env,
            )
            result.warm_s.append(wheel_s + install_s + pyinstaller(clean=False))
            result.edit = n
        result.exe = base / "dist" / app.script


# --------------------------------------------------------------------------- PyApp


class PyApp(Tool):
    key = "pyapp"
    title = "PyApp"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.urls: tuple[str, str] | None = None  # the Python and uv archives PyApp downloads, served locally

    def build(self, app: App, result: ToolResult) -> None:
        ctx = self.ctx
        hatch = shutil.which("hatch")
        if not hatch:
            hatch = str(ctx.venv(ctx.tools_dir / "hatch", "hatch").parent / "hatch")
        ctx.versions.setdefault("hatch", capture([hatch, "--version"]).replace("Hatch, version", "hatch"))
        python_url, uv_url = self.served()
        log_file = ctx.log_file(f"{app.key}-pyapp")
        env = ctx.env(
            HATCH_DATA_DIR=str(ctx.hatch_data),
            PYAPP_UV_ENABLED="1",
            PYAPP_UV_SOURCE=uv_url,
            PYAPP_DISTRIBUTION_SOURCE=python_url,
            PYAPP_DISTRIBUTION_PYTHON_PATH="python/bin/python3",
            PYAPP_PYTHON_VERSION=f"{sys.version_info.major}.{sys.version_info.minor}",
        )
        # hatch's build environment (hatchling) is made once, untimed: it is no build cache.
        run_logged([hatch, "build", "-t", "sdist"], log_file, env=env, cwd=app.plain)
        out = app.plain / "dist" / "binary" / f"{app.script}-{app.version}"

        def build(wheel: Path) -> float:
            with contextlib.suppress(FileNotFoundError):
                out.unlink()
            return run_logged(
                [hatch, "build", "-t", "binary"], log_file, env={**env, "PYAPP_PROJECT_PATH": str(wheel)}, cwd=app.plain
            )

        app.edit(app.plain, 0)
        wheel_s, wheel = ctx.build_wheel(app)
        result.cold_s = wheel_s + build(wheel)
        # PyApp has no incremental build: hatch runs `cargo install pyapp` in a fresh temp target dir
        # each time (and with a kept CARGO_TARGET_DIR, PyApp's build script would not run again for a
        # new wheel at the same path), so each warm rebuild is a full build.
        self.warm_rebuilds(app, result, build, ctx.args.pyapp_repeat)
        if not result.warm_s:
            result.warm_s = [result.cold_s]
            result.notes.append("warm rebuild: not measured again, each PyApp build is a full build (= cold)")
        match = re.findall(r"(?:Installing|Compiling) pyapp v([\d.]+)", log_file.read_text())
        result.version = match[-1] if match else "?"
        ctx.versions["pyapp"] = result.version
        result.exe = out
        result.notes.append("Python and uv served from 127.0.0.1 (GitHub is unreachable here)")

    def served(self) -> tuple[str, str]:
        """URLs of a Python archive (tests/helpers_python.py) and uv's release archive on a loopback server
        (tests/localserver.py) that stays up until the run ends."""
        if self.urls is None:
            ctx = self.ctx
            folder = ctx.run_dir / "served"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                python_archive = make_relocatable_python(folder).name
            except (RuntimeError, OSError) as error:
                raise StepFailed(f"no Python archive to serve for PyApp's first run: {error}") from None
            uv_archive = make_uv_archive(folder, ctx.uv, ctx.triple)
            base = ctx.resources.enter_context(serve(folder))
            self.urls = tuple(f"{base}/{urllib.parse.quote(name)}" for name in (python_archive, uv_archive))  # type: ignore[assignment]
            ctx.notes.append(
                "PyApp downloads a Python build and uv from GitHub at first run; GitHub is unreachable here, so "
                f"both are served from 127.0.0.1: {python_archive} (a python-build-standalone-like "
                f"install_only archive made from this machine's CPython {platform.python_version()}) and "
                f"{uv_archive} (the same uv binary hatch-pyaket embeds). Real first runs also pay "
                "those downloads (~30 MB)."
            )
        assert self.urls is not None
        return self.urls


def make_uv_archive(directory: Path, uv: str, triple: str) -> str:
    """uv's GitHub release layout: uv-<triple>.tar.gz holding uv-<triple>/uv."""
    name = f"uv-{triple}.tar.gz"
    with tarfile.open(directory / name, "w:gz", compresslevel=6) as tar:
        tar.add(os.path.realpath(uv), arcname=f"uv-{triple}/uv")
    return name


# --------------------------------------------------------------------------- Pyaket


class Pyaket(Tool):
    key = "pyaket"
    title = "Pyaket"

    def build(self, app: App, result: ToolResult) -> None:
        ctx, args = self.ctx, self.ctx.args
        version = ctx.tool_version("pyaket", PYAKET_REQUIREMENT)
        result.version = version
        python = ctx.tools_dir / "pyaket" / "bin" / "python"
        base = ctx.run_dir / "pyaket" / app.key
        shutil.rmtree(base, ignore_errors=True)
        (base / "shim").mkdir(parents=True)
        # Pyaket's compile() runs `rustup set profile minimal` and `rustup default stable`, which would
        # change this machine's rustup settings; the shim passes only `rustup target add` through.
        rustup = shutil.which("rustup") or "rustup"
        shim = base / "shim" / "rustup"
        shim.write_text(f'#!/bin/sh\ncase "$1" in set|default) exit 0 ;; esac\nexec "{rustup}" "$@"\n')
        shim.chmod(0o755)
        # Its CLI chains typer commands (`pyaket app ... run ... compile`), which fails with the typer
        # it installs ("No such option"), so the documented project model is driven directly.
        driver = base / "build.py"
        driver.write_text(
            textwrap.dedent(
                """\
            import sys
            from pathlib import Path
            from pyaket import PyaketProject
            wheel, name, version, module, python, cache, output = sys.argv[1:8]
            project = PyaketProject()
            project.app.name = name
            project.app.version = version
            project.entry.module = module
            project.deps.wheels = [Path(wheel)]
            project.python.version = python  # its default, 3.13, would be downloaded from GitHub
            print(project.compile(cache=Path(cache), output=Path(output)))
            """
            )
        )
        cache = ctx.work / "pyaket-target" if args.keep_pyaket_target else base / "target"
        if not args.keep_pyaket_target:
            shutil.rmtree(cache, ignore_errors=True)
        cold = not (cache / ctx.triple).exists()
        log_file = ctx.log_file(f"{app.key}-pyaket")
        env = ctx.env(PATH=f"{base / 'shim'}{os.pathsep}{os.environ.get('PATH', '')}")
        timeout = args.pyaket_timeout * 60

        def build(wheel: Path) -> float:
            return run_logged(
                [
                    python,
                    driver,
                    wheel,
                    app.dist,
                    app.version,
                    app.main_module,
                    f"{sys.version_info.major}.{sys.version_info.minor}",
                    cache,
                    base / "release",
                ],
                log_file,
                env=env,
                cwd=base,
                timeout=timeout,
            )

        app.edit(app.plain, 0)
        wheel_s, wheel = ctx.build_wheel(app)
        seconds = wheel_s + build(wheel)
        record = ctx.work / "pyaket-cold.json"
        if cold:
            result.cold_s = seconds
            if args.keep_pyaket_target:
                record.write_text(
                    json.dumps(
                        {
                            "seconds": seconds,
                            "version": version,
                            "load": load_text(),
                            "date": _dt.datetime.now().isoformat(timespec="minutes"),
                        }
                    )
                )
        else:
            result.warm_s.append(seconds)  # the kept target dir makes this first build a warm one
            if record.is_file():
                cached = json.loads(record.read_text())
                result.cold_s = cached["seconds"]
                result.cold_cached = True
                how = f"; {cached['how']}" if cached.get("how") else ""
                result.notes.append(
                    f"* cold build: {secs_text(cached['seconds'])}, measured {cached['date']} (Pyaket "
                    f"{cached['version']}, load {cached.get('load', '?')}{how}); this run reused the kept "
                    f"target dir {cache} (--fresh-pyaket to measure it again)"
                )
            else:
                result.notes.append(f"cold build not measured: target dir kept in {cache} (--fresh-pyaket)")
        self.warm_rebuilds(app, result, build, args.pyaket_repeat - len(result.warm_s))
        name = f"{app.dist.lower()}-v{app.version}-{ctx.triple}"
        result.exe = base / "release" / name
        if not result.exe.is_file():
            raise StepFailed(f"pyaket built no {name}")


TOOLS: dict[str, type[Tool]] = {tool.key: tool for tool in (HatchPyaket, PyInstaller, PyApp, Pyaket)}
