#!/usr/bin/env python3
"""Benchmarks: hatch-pyaket against PyInstaller, PyApp and Pyaket, plus the launcher figures.

Run it with the machine's Python that has hatch-pyaket installed (editable) and `build`; it
installs whatever else it needs (PyInstaller, Pyaket, uv) into its own venvs under --work:

    python benchmarks/run.py                      # everything (both apps, every tool)
    python benchmarks/run.py --quick              # fewer repeats (the figures in results-*.txt)
    python benchmarks/run.py --only hatch-pyaket  # the launcher-only figures, no peers
    python benchmarks/run.py --repeat 5 --runs 40 --apps example,rich --only hatch-pyaket,pyinstaller

For each app (`example`: example_project, one dependency; `rich`: a generated click + rich CLI
that prints a table) and each tool it measures, and prints one table with ratios against
hatch-pyaket (benchmarks/README.md explains every figure):

- cold build: build caches empty (fresh CARGO_TARGET_DIR / PyInstaller work and config dirs /
  build venv), downloads kept (cargo registry, uv cache, the plugin's uv download, hatch's env);
- warm rebuild: after a one-line change in the app, everything kept; median of --repeat;
- executable size;
- first run (install, in a fresh data dir with the uv cache warm) and warm start, medians,
  next to the floor: `uv venv` + `uv pip install --compile-bytecode` of the same wheel, and the
  venv's Python;
- peak memory (ru_maxrss of the process tree, the largest process).

Peers that cannot run here are reported in the table with the reason. The output goes to
stdout and to --output (default benchmarks/results-<date>.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import functools
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("hatch-pyaket", "pyinstaller", "pyapp", "pyaket")
TITLES = {
    "hatch-pyaket": "hatch-pyaket",
    "pyinstaller": "PyInstaller",
    "pyapp": "PyApp",
    "pyaket": "Pyaket",
    "floor": "venv floor",
    "floor-c": "venv python -c",
}
PYAKET_REQUIREMENT = "pyaket>=0.10,<0.11"
GOALS = {"warm_rebuild_s": 5.0, "warm_start_ratio": 1.05, "launcher_bytes": 1.5e6, "first_run_ratio": 1.2}
# Environment that would change what a tool installs or where; removed for every build and run.
SCRUBBED = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CARGO_TARGET_DIR")
SCRUBBED_PREFIXES = ("PYAKET_", "PYAPP", "HATCH_PYAKET_", "UV_", "PIP_", "PYINSTALLER_")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class StepFailed(Exception):
    """A build or run that did not work; the message is the reason shown in the table."""


# --------------------------------------------------------------------------- the apps


@dataclass
class App:
    key: str
    title: str
    dist: str  # distribution name
    package: str  # import package
    script: str  # console script
    entry: str  # module:function
    main_module: str  # runnable with `python -m`
    args: tuple[str, ...]
    edit_file: str  # file changed by the warm rebuilds (relative to the project)
    edit_anchor: str  # a whole statement; `; print("bench-edit-<n>")` is appended to it
    version: str = "1.0.0"
    requires_python: str = ">=3.9"
    source: Path = Path()  # generated project with the pyaket hook
    plain: Path = Path()  # the same without the hook, for the peers

    def edit(self, project: Path, n: int) -> str:
        """The app printing `bench-edit-<n>`: rebuild n changes this one line; returns the text."""
        path = project / self.edit_file
        original = project / (self.edit_file + ".orig")
        if not original.exists():
            shutil.copy2(path, original)
        text = original.read_text()
        assert self.edit_anchor in text, f"{self.edit_anchor!r} not in {path}"
        marker = f"bench-edit-{n}"
        path.write_text(text.replace(self.edit_anchor, f'{self.edit_anchor}; print("{marker}")', 1))
        return marker


RICH_CLI = '''\
"""bench-rich: a small click + rich CLI that prints a table (the heavier benchmark app)."""

import click
from rich.console import Console
from rich.table import Table

from bench_rich import __version__


@click.command()
@click.argument("names", nargs=-1)
@click.option("--rows", default=5, show_default=True, help="How many rows to print.")
def main(names: tuple, rows: int) -> None:
    """Print a table of the given NAMES."""
    console = Console(width=100, force_terminal=False, color_system=None)
    table = Table(title=f"bench-rich {__version__}")
    for column in ("#", "name", "length", "upper"):
        table.add_column(column)
    for i, name in enumerate((list(names) or ["alpha", "beta", "gamma"]) * rows):
        table.add_row(str(i), name, str(len(name)), name.upper())
    console.print(table)
'''

HOOK_TABLE = '\n[tool.hatch.build.hooks.pyaket]\ntargets = ["host"]\n'


def make_apps(work: Path, keys: Sequence[str]) -> list[App]:
    apps = []
    if "example" in keys:
        app = App(
            key="example",
            title="example_project (colorama)",
            dist="example-app",
            package="example_app",
            script="example-app",
            entry="example_app.cli:main",
            main_module="example_app.cli",
            args=("hello", "world"),
            edit_file="src/example_app/cli.py",
            edit_anchor='print("args: " + json.dumps(rest, ensure_ascii=False))',
        )
        app.source = work / "apps" / "example" / "hook"
        shutil.rmtree(app.source.parent, ignore_errors=True)
        shutil.copytree(ROOT / "example_project", app.source, ignore=shutil.ignore_patterns("dist", "build"))
        apps.append(app)
    if "rich" in keys:
        app = App(
            key="rich",
            title="bench-rich (click + rich table)",
            dist="bench-rich",
            package="bench_rich",
            script="bench-rich",
            entry="bench_rich.cli:main",
            main_module="bench_rich",
            args=("hello", "world", "--rows", "3"),
            edit_file="src/bench_rich/cli.py",
            edit_anchor="console.print(table)",
        )
        app.source = work / "apps" / "rich" / "hook"
        shutil.rmtree(app.source.parent, ignore_errors=True)
        package = app.source / "src" / "bench_rich"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text('__version__ = "1.0.0"\n')
        (package / "__main__.py").write_text("from bench_rich.cli import main\n\nmain()\n")
        (package / "cli.py").write_text(RICH_CLI)
        (app.source / "README.md").write_text("bench-rich\n")
        (app.source / "pyproject.toml").write_text(
            textwrap.dedent(
                """\
                [build-system]
                requires = ["hatchling", "hatch-pyaket"]
                build-backend = "hatchling.build"

                [project]
                name = "bench-rich"
                version = "1.0.0"
                description = "benchmark app: a click + rich CLI"
                readme = "README.md"
                requires-python = ">=3.9"
                dependencies = ["click>=8", "rich>=13"]

                [project.scripts]
                bench-rich = "bench_rich.cli:main"

                [tool.hatch.build.targets.wheel]
                packages = ["src/bench_rich"]
                """
            )
            + HOOK_TABLE
        )
        apps.append(app)
    for app in apps:
        app.plain = app.source.parent / "plain"
        shutil.copytree(app.source, app.plain)
        pyproject = app.plain / "pyproject.toml"
        text = pyproject.read_text()
        text = re.sub(r"requires = \[[^\]]*\]", 'requires = ["hatchling"]', text, count=1)
        pyproject.write_text(without_table(text, "tool.hatch.build.hooks.pyaket"))
    return apps


def without_table(toml: str, name: str) -> str:
    """`toml` without the table `[name]` (its header and its lines up to the next table)."""
    kept, skipping = [], False
    for line in toml.splitlines(keepends=True):
        if line.lstrip().startswith("["):
            skipping = line.strip() == f"[{name}]"
        if not skipping:
            kept.append(line)
    return "".join(kept)


# --------------------------------------------------------------------------- processes


def clean_env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(SCRUBBED_PREFIXES)}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-400:]


def run_logged(
    cmd: Sequence[str | Path],
    log_file: Path,
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float | None = None,
) -> float:
    """Runs a build step with its output in `log_file`; returns the wall time; raises StepFailed."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n")
        out.flush()
        start = time.perf_counter()
        try:
            code = subprocess.run(
                [str(c) for c in cmd],
                cwd=cwd,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            raise StepFailed(f"timed out after {timeout:.0f} s: {Path(str(cmd[0])).name} (log: {log_file})") from None
        except OSError as error:
            raise StepFailed(f"cannot run {cmd[0]}: {error}") from None
        seconds = time.perf_counter() - start
    if code != 0:
        raise StepFailed(
            f"`{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:3]))}` exited {code}: {tail(log_file)} (log: {log_file})"
        )
    return seconds


@dataclass
class Sample:
    seconds: float
    maxrss_kb: int | None  # None: not measured
    code: int
    stdout: str = ""
    stderr: str = ""


@functools.cache
def gnu_time() -> str | None:
    """GNU time, for peak memory: it forks the measured command from a small process.

    wait4() from this script would not do: Python spawns with vfork, and the child's ru_maxrss then
    starts at this script's own RSS (~25 MB) because exec records the high-water mark of the memory
    it replaces. Installed with apt-get when missing (as root); None if unavailable.
    """
    for attempt in range(2):
        path = shutil.which("time", path="/usr/bin:/bin") or ""
        if path and re.fullmatch(r"\d+", capture([path, "-f", "%M", "true"], stderr=True).strip()):
            return path
        if attempt == 0 and os.geteuid() == 0 and shutil.which("apt-get"):
            log("installing GNU time (apt-get install time) for the memory figures")
            subprocess.run(["apt-get", "install", "-y", "-qq", "time"], capture_output=True, check=False)
    return None


def run_measured(
    cmd: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    cwd: Path,
    capture: Path | None = None,
    rss: bool = False,
    timeout: float = 600,
) -> Sample:
    """One run: its wall time, and with `rss` the peak RSS of the largest process of its tree (GNU time's %M)."""
    out = err = subprocess.DEVNULL
    files = []
    if capture is not None:
        capture.parent.mkdir(parents=True, exist_ok=True)
        out = open(capture.with_suffix(".out"), "w+b")  # noqa: SIM115
        err = open(capture.with_suffix(".err"), "w+b")  # noqa: SIM115
        files = [out, err]
    timer = gnu_time() if rss else None
    rss_file = Path(env.get("TMPDIR") or cwd) / f".rss-{os.getpid()}"
    argv = [str(c) for c in cmd]
    if timer:
        argv = [timer, "-f", "%M", "-o", str(rss_file), *argv]
    try:
        start = time.perf_counter()
        try:
            code = subprocess.run(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -9
        seconds = time.perf_counter() - start
        maxrss = None
        if timer:
            with contextlib.suppress(OSError, ValueError, IndexError):
                maxrss = int(rss_file.read_text().split()[-1])  # after "Command exited with non-zero status N"
            rss_file.unlink(missing_ok=True)
        sample = Sample(seconds, maxrss, code)
        for handle, attr in zip(files, ("stdout", "stderr")):
            handle.seek(0)
            setattr(sample, attr, handle.read().decode("utf-8", "replace"))
        return sample
    finally:
        for handle in files:
            handle.close()


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------- results


@dataclass
class ToolResult:
    tool: str
    exe: Path | None = None
    error: str = ""  # why the tool has no figures at all
    cold_s: float | None = None
    warm_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    first: list[Sample] = field(default_factory=list)
    warm: list[Sample] = field(default_factory=list)
    warm_rss: list[int] = field(default_factory=list)  # KiB, from separate runs under GNU time
    home: Path | None = None  # data dir of the last first run, used by the warm starts
    run_env: dict[str, str] = field(default_factory=dict)
    run_error: str = ""
    version: str = ""
    edit: int = 0  # the app's edit the executable was built from (its runs must print bench-edit-<edit>)
    cold_cached: bool = False  # cold_s comes from an earlier run (see notes)
    first_offline: list[float] = field(default_factory=list)  # the floor again, from uv's cache alone

    @property
    def size(self) -> int | None:
        return self.exe.stat().st_size if self.exe and self.exe.is_file() else None


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work.resolve()
        self.stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_dir = self.work / f"run-{self.stamp}"
        self.logs = self.run_dir / "logs"
        self.uv_cache = self.work / "uv-cache"
        self.plugin_cache = self.work / "hatch-pyaket-cache"
        self.hatch_data = self.work / "hatch-data"
        self.tools_dir = self.work / "tools"
        self.started = time.monotonic()
        self.triple = host_triple()
        self.versions: dict[str, str] = {}
        self.notes: list[str] = []
        self.uv: str = ""  # uv binary for the floor and our venvs (the one hatch-pyaket embeds, when found)
        self.server: LocalServer | None = None
        self.launcher: dict[str, object] = {}
        self.wheel_times: dict[str, list[float]] = {}

    # ---- helpers

    def over_budget(self) -> bool:
        return (time.monotonic() - self.started) / 60 > self.args.budget

    def env(self, **extra: str | None) -> dict[str, str]:
        return clean_env(UV_CACHE_DIR=str(self.uv_cache), **extra)

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def venv(self, path: Path, *packages: str, python: str | None = None) -> Path:
        """A venv made with uv (or the venv module), with `packages`; returns its python."""
        log_file = self.log_file("setup")
        python_exe = path / "bin" / "python"
        if not python_exe.exists():
            if self.uv:
                run_logged(
                    [self.uv, "venv", "--quiet", "--python", python or sys.executable, path], log_file, env=self.env()
                )
            else:
                run_logged([python or sys.executable, "-m", "venv", path], log_file, env=self.env())
        if packages:
            if self.uv:
                run_logged(
                    [self.uv, "pip", "install", "--quiet", "--python", python_exe, *packages], log_file, env=self.env()
                )
            else:
                run_logged([python_exe, "-m", "pip", "install", "-q", *packages], log_file, env=self.env())
        return python_exe

    # ---- setup

    def setup(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.uv_cache.mkdir(parents=True, exist_ok=True)
        log(f"work dir {self.work}, this run's files and logs in {self.run_dir}")
        self.versions["python"] = platform.python_version()
        self.versions["rustc"] = capture(["rustc", "--version"]) or "not found"
        self.versions["cargo"] = capture(["cargo", "--version"]) or "not found"
        self.check_plugin()
        self.find_uv()
        self.prime_downloads()

    def check_plugin(self) -> None:
        """hatch-pyaket and `build` in this Python (as the e2e tests use them); installed if missing.

        Builds import hatch_pyaket from the checkout this script is in (PYTHONPATH), whatever
        checkout the installed distribution points at, so a snapshot (`git worktree`) can be
        measured while the main tree changes.
        """
        missing = [m for m in ("hatch_pyaket", "build", "hatchling") if not importable(m)]
        if missing:
            log(f"installing {', '.join(missing)} into {sys.executable} (pip install -e {ROOT} build)")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT), "build"], check=True)
        probe = "import hatch_pyaket, os; print(hatch_pyaket.__version__, os.path.dirname(hatch_pyaket.__file__))"
        version, _, origin = capture([sys.executable, "-c", probe], env=self.plugin_env()).partition(" ")
        if Path(origin).resolve() != (ROOT / "hatch_pyaket").resolve():
            self.notes.append(f"hatch_pyaket is imported from {origin}, not from {ROOT}")
        commit = capture(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
        self.versions["hatch-pyaket"] = f"{version} ({ROOT}{', ' + commit if commit else ''})"

    def plugin_env(self, **extra: str) -> dict[str, str]:
        return self.env(PYTHONPATH=str(ROOT), HATCH_PYAKET_CACHE_DIR=str(self.plugin_cache), **extra)

    def find_uv(self) -> None:
        """The uv the launcher embeds (downloaded into the plugin's cache); else uv from PATH or PyPI."""
        probe = "from hatch_pyaket import locking, config; print(locking.host_uv()); print(config.DEFAULT_UV_VERSION)"
        out = capture([sys.executable, "-c", probe], env=self.plugin_env())
        lines = (out or "").splitlines()
        if len(lines) == 2 and Path(lines[0]).is_file():
            self.uv = lines[0]
            self.versions["uv"] = f"{lines[1]} (the binary hatch-pyaket embeds)"
            return
        self.notes.append("could not get the uv that hatch-pyaket embeds (plugin API changed?); using another uv")
        found = shutil.which("uv")
        if not found:
            python = self.tools_dir / "uv" / "bin" / "python"
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
                subprocess.run([str(python), "-m", "pip", "install", "-q", "uv"], check=True)
            found = str(python.parent / "uv")
        self.uv = found
        self.versions["uv"] = capture([found, "--version"])

    def prime_downloads(self) -> None:
        """Fill the download caches, so that cold builds measure compiling, not downloading."""
        log("priming download caches (cargo registry, uv cache)")
        env = self.env()
        cargo = shutil.which("cargo")
        if cargo:
            with contextlib.suppress(StepFailed):
                run_logged(
                    [cargo, "fetch", "--locked", "--manifest-path", ROOT / "rust_template" / "Cargo.toml"],
                    self.log_file("prime"),
                    env=env,
                )

    # ---- wheels

    def build_wheel(self, app: App) -> tuple[float, Path]:
        """The app's wheel from the hook-less project (what every peer packages); timed."""
        dist = app.plain.parent / "wheel"
        shutil.rmtree(dist, ignore_errors=True)
        seconds = run_logged(
            [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, app.plain],
            self.log_file(f"{app.key}-wheel"),
            env=self.env(),
            cwd=app.plain,
        )
        (wheel,) = dist.glob("*.whl")
        self.wheel_times.setdefault(app.key, []).append(seconds)
        return seconds, wheel

    # ---- hatch-pyaket

    def build_hatch_pyaket(self, app: App, result: ToolResult) -> None:
        target_dir = self.run_dir / "targets" / f"hatch-pyaket-{app.key}"
        shutil.rmtree(target_dir, ignore_errors=True)
        env = self.plugin_env(CARGO_TARGET_DIR=str(target_dir))
        project = app.source
        log_file = self.log_file(f"{app.key}-hatch-pyaket")

        def build() -> float:
            shutil.rmtree(project / "dist", ignore_errors=True)
            return run_logged(
                [sys.executable, "-m", "build", "--no-isolation", "--wheel", project], log_file, env=env, cwd=project
            )

        app.edit(project, 0)
        # A cold build compresses uv: empty the plugin's blob cache too (the downloaded uv stays).
        shutil.rmtree(self.plugin_cache / "blobs", ignore_errors=True)
        result.cold_s = build()
        result.exe = self.find_exe(project / "dist", app)
        # What every later project or fresh target dir on this machine pays: uv's blob comes from the cache.
        shutil.rmtree(target_dir, ignore_errors=True)
        shared = build()
        result.notes.append(
            f"cold build with uv's compressed blob already in the plugin's cache "
            f"(any later project or fresh target dir on the machine): {secs_text(shared)}"
        )
        for n in range(1, self.args.repeat + 1):
            app.edit(project, n)
            result.warm_s.append(build())
            result.edit = n
        result.exe = self.find_exe(project / "dist", app)
        result.version = self.versions.get("hatch-pyaket", "")
        if app.key == "example":
            self.launcher_figures(app, target_dir, env, result)

    def find_exe(self, dist: Path, app: App) -> Path:
        name = f"{app.script}-{app.version}-{self.triple}"
        if not (dist / name).is_file():
            raise StepFailed(f"no {name} in {dist}")
        return dist / name

    def launcher_figures(self, app: App, target_dir: Path, env: Mapping[str, str], result: ToolResult) -> None:
        """The launcher's own size (built with uv = "path", no uv embedded), and what the full executable is made of."""
        blobs = payload_blobs(target_dir)
        payload_files = self.payload_manifest(target_dir)
        embedded = {payload_files.get(sha, sha[:12]): size for sha, size in blobs.items()}
        self.launcher["embed_exe"] = result.size
        self.launcher["embed_blobs"] = embedded
        self.launcher["embed_raw"] = {
            payload_files.get(sha, sha[:12]): raw for sha, raw in self.payload_sizes(target_dir).items()
        }
        project = app.source.parent / "uv-path"
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(app.source, project, ignore=shutil.ignore_patterns("dist"))
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('targets = ["host"]', 'targets = ["host"]\nuv = "path"'))
        try:
            run_logged(
                [sys.executable, "-m", "build", "--no-isolation", "--wheel", project],
                self.log_file(f"{app.key}-hatch-pyaket-uv-path"),
                env=env,
                cwd=project,
            )
            exe = self.find_exe(project / "dist", app)
        except StepFailed as error:
            self.launcher["uv_path_error"] = str(error)
            return
        self.launcher["path_exe"] = exe.stat().st_size
        self.launcher["path_blobs"] = {
            payload_files.get(sha, sha[:12]): size for sha, size in payload_blobs(target_dir).items()
        }
        self.launcher["stripped"] = "not stripped" not in (capture(["file", str(exe)]) or "")

    def payload_manifest(self, target_dir: Path) -> dict[str, str]:
        """sha256 -> role ("uv", "wheel", "lock"...) from the staged manifest.json."""
        roles: dict[str, str] = {}
        for manifest in target_dir.glob("pyaket-payload/*/manifest.json"):
            data = json.loads(manifest.read_text())
            named = {data.get("uv"): "uv", data.get("wheel"): "wheel", data.get("lock"): "lock"}
            for name, meta in data.get("files", {}).items():
                roles[meta["sha256"]] = named.get(name) or name
        return roles

    def payload_sizes(self, target_dir: Path) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for manifest in target_dir.glob("pyaket-payload/*/manifest.json"):
            for meta in json.loads(manifest.read_text()).get("files", {}).values():
                sizes[meta["sha256"]] = meta["size"]
        return sizes

    # ---- PyInstaller

    def build_pyinstaller(self, app: App, result: ToolResult) -> None:
        version = self.tool_version("pyinstaller", "pyinstaller")
        result.version = version
        base = self.run_dir / "pyinstaller" / app.key
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        module, function = app.entry.split(":")
        entry = base / "entry.py"
        entry.write_text(f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        log_file = self.log_file(f"{app.key}-pyinstaller")
        env = self.env(PYINSTALLER_CONFIG_DIR=str(base / "config"))
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
        wheel_s, wheel = self.build_wheel(app)
        start = time.perf_counter()
        self.venv(base / "env", f"pyinstaller=={version}", str(wheel))
        setup_s = time.perf_counter() - start
        result.cold_s = wheel_s + setup_s + pyinstaller(clean=True)
        for n in range(1, self.args.repeat + 1):
            app.edit(app.plain, n)
            wheel_s, wheel = self.build_wheel(app)
            install_s = run_logged(
                [self.uv, "pip", "install", "--quiet", "--python", python, "--reinstall-package", app.dist, wheel],
                log_file,
                env=env,
            )
            result.warm_s.append(wheel_s + install_s + pyinstaller(clean=False))
            result.edit = n
        result.exe = base / "dist" / app.script

    def tool_version(self, tool: str, requirement: str) -> str:
        """Installs the tool in its own venv under --work once (this also fills the uv cache); its version."""
        if tool in self.versions:
            return self.versions[tool]
        python = self.venv(self.tools_dir / tool, requirement)
        version = capture(
            [
                str(python),
                "-c",
                f"import importlib.metadata as m; print(m.version({requirement.split('>')[0].split('=')[0]!r}))",
            ]
        )
        self.versions[tool] = version or "?"
        return self.versions[tool]

    # ---- PyApp

    def build_pyapp(self, app: App, result: ToolResult) -> None:
        hatch = shutil.which("hatch")
        if not hatch:
            hatch = str(self.venv(self.tools_dir / "hatch", "hatch").parent / "hatch")
        self.versions.setdefault("hatch", capture([hatch, "--version"]).replace("Hatch, version", "hatch"))
        server = self.local_server()
        log_file = self.log_file(f"{app.key}-pyapp")
        env = self.env(
            HATCH_DATA_DIR=str(self.hatch_data),
            PYAPP_UV_ENABLED="1",
            PYAPP_UV_SOURCE=server.url(server.uv_archive),
            PYAPP_DISTRIBUTION_SOURCE=server.url(server.python_archive),
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
        wheel_s, wheel = self.build_wheel(app)
        result.cold_s = wheel_s + build(wheel)
        # PyApp has no incremental build: hatch runs `cargo install pyapp` in a fresh temp target dir
        # each time (and with a kept CARGO_TARGET_DIR, PyApp's build script would not run again for a
        # new wheel at the same path), so each warm rebuild is a full build.
        self.warm_rebuilds(app, result, build, self.args.pyapp_repeat)
        if not result.warm_s:
            result.warm_s = [result.cold_s]
            result.notes.append("warm rebuild: not measured again, each PyApp build is a full build (= cold)")
        match = re.findall(r"(?:Installing|Compiling) pyapp v([\d.]+)", log_file.read_text())
        result.version = match[-1] if match else "?"
        self.versions["pyapp"] = result.version
        result.exe = out
        result.notes.append("Python and uv served from 127.0.0.1 (GitHub is unreachable here)")

    def warm_rebuilds(self, app: App, result: ToolResult, build: Callable[[Path], float], limit: int) -> None:
        """At most `limit` of the --repeat rebuilds (for the tools whose rebuilds take minutes)."""
        measured = max(0, min(self.args.repeat, limit))
        for n in range(1, measured + 1):
            app.edit(app.plain, n)
            wheel_s, wheel = self.build_wheel(app)
            result.warm_s.append(wheel_s + build(wheel))
            result.edit = n
        if result.warm_s and len(result.warm_s) < self.args.repeat:
            result.notes.append(
                f"warm rebuild: {len(result.warm_s)} measured, not {self.args.repeat} (each takes minutes)"
            )

    def local_server(self) -> LocalServer:
        if self.server is None:
            self.server = LocalServer(self.run_dir / "served", self.uv, self.triple)
            self.notes.append(
                "PyApp downloads a Python build and uv from GitHub at first run; GitHub is unreachable here, so "
                f"both are served from 127.0.0.1: {self.server.python_archive} (a python-build-standalone-like "
                f"install_only archive made from this machine's CPython {platform.python_version()}) and "
                f"{self.server.uv_archive} (the same uv binary hatch-pyaket embeds). Real first runs also pay "
                "those downloads (~30 MB)."
            )
        return self.server

    # ---- Pyaket

    def build_pyaket(self, app: App, result: ToolResult) -> None:
        version = self.tool_version("pyaket", PYAKET_REQUIREMENT)
        result.version = version
        python = self.tools_dir / "pyaket" / "bin" / "python"
        base = self.run_dir / "pyaket" / app.key
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
        cache = self.work / "pyaket-target" if self.args.keep_pyaket_target else base / "target"
        if not self.args.keep_pyaket_target:
            shutil.rmtree(cache, ignore_errors=True)
        cold = not (cache / self.triple).exists()
        log_file = self.log_file(f"{app.key}-pyaket")
        env = self.env(PATH=f"{base / 'shim'}{os.pathsep}{os.environ.get('PATH', '')}")
        timeout = self.args.pyaket_timeout * 60

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
        wheel_s, wheel = self.build_wheel(app)
        seconds = wheel_s + build(wheel)
        record = self.work / "pyaket-cold.json"
        if cold:
            result.cold_s = seconds
            if self.args.keep_pyaket_target:
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
        self.warm_rebuilds(app, result, build, self.args.pyaket_repeat - len(result.warm_s))
        name = f"{app.dist.lower()}-v{app.version}-{self.triple}"
        result.exe = base / "release" / name
        if not result.exe.is_file():
            raise StepFailed(f"pyaket built no {name}")

    # ---- runs

    def run_app(self, app: App, results: dict[str, ToolResult]) -> dict[str, ToolResult]:
        """First runs (a fresh data dir each) and warm starts of every executable and of the floor,
        interleaved across tools so that a noisy moment hurts them all alike."""
        app.edit(app.plain, self.args.repeat)
        floor = ToolResult("floor", edit=self.args.repeat)
        floor_c = ToolResult("floor-c", edit=self.args.repeat)
        try:
            _, wheel = self.build_wheel(app)
        except StepFailed as error:
            floor.error = f"no wheel: {error}"
            return {"floor": floor}
        floor_python = self.args.floor_python or app.requires_python
        participants = [r for r in results.values() if r.exe is not None and not r.error] + [floor]
        homes = self.run_dir / "homes" / app.key

        def fresh_home(name: str, i: int) -> tuple[Path, dict[str, str]]:
            home = homes / f"{name}-{i}"
            shutil.rmtree(home, ignore_errors=True)
            for sub in ("data", "cache", "tmp", "cwd"):
                (home / sub).mkdir(parents=True)
            env = self.env(
                XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"), TMPDIR=str(home / "tmp")
            )
            return home, env

        def first_run(result: ToolResult, home: Path, env: dict[str, str]) -> Sample:
            if result is not floor:
                return run_measured(
                    [result.exe, *app.args], env=env, cwd=home / "cwd", capture=home / "first", rss=True
                )
            venv = home / "venv"
            a = run_measured(
                [self.uv, "venv", "--quiet", "--python", floor_python, venv],
                env=env,
                cwd=home / "cwd",
                capture=home / "venv",
                rss=True,
            )
            if a.code:
                return a
            # --compile-bytecode: what a user's own install gives (pip compiles at install; the launcher does too).
            b = run_measured(
                [
                    self.uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--compile-bytecode",
                    "--python",
                    venv / "bin" / "python",
                    wheel,
                ],
                env=env,
                cwd=home / "cwd",
                capture=home / "pip",
                rss=True,
            )
            rss = [x for x in (a.maxrss_kb, b.maxrss_kb) if x is not None]
            # The same from uv's cache alone, as hatch-pyaket's first run tries first: shown next to the goal.
            offline = home / "venv-offline"
            c = run_measured([self.uv, "venv", "--quiet", "--python", floor_python, offline], env=env, cwd=home / "cwd")
            d = run_measured(
                [
                    self.uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--offline",
                    "--compile-bytecode",
                    "--python",
                    offline / "bin" / "python",
                    wheel,
                ],
                env=env,
                cwd=home / "cwd",
            )
            if c.code == 0 and d.code == 0:
                floor.first_offline.append(c.seconds + d.seconds)
            return Sample(a.seconds + b.seconds, max(rss) if rss else None, b.code, "", a.stderr + b.stderr)

        log(f"{app.key}: {self.args.first_runs} first runs per tool")
        for i in range(self.args.first_runs):
            for result in participants:
                if result.run_error:
                    continue
                home, env = fresh_home(result.tool, i)
                sample = first_run(result, home, env)
                marker = "" if result is floor else f"bench-edit-{result.edit}"
                if sample.code != 0 or marker not in sample.stdout:
                    found = "" if marker in sample.stdout else f", and its output lacks {marker!r}"
                    output = (sample.stderr.strip() or sample.stdout.strip())[-300:]
                    result.run_error = f"first run exited {sample.code}{found}: {output}"
                    continue
                result.first.append(sample)
                result.home, result.run_env = home, env

        # key -> (command, env, cwd, result it belongs to)
        warm: dict[str, tuple[list[str | Path], dict[str, str], Path, ToolResult]] = {}
        for result in participants:
            if not (result.first and result.home):
                continue
            cwd = result.home / "cwd"
            if result is not floor:
                warm[result.tool] = ([result.exe, *app.args], result.run_env, cwd, result)
                continue
            venv = result.home / "venv"
            warm["floor"] = ([venv / "bin" / app.script, *app.args], result.run_env, cwd, floor)
            # Exactly what the launcher execs after its own work.
            warm["floor-c"] = (
                [venv / "bin" / "python", "-s", "-c", bootstrap(app.entry), venv / "bin" / app.script, *app.args],
                result.run_env,
                cwd,
                floor_c,
            )
        log(f"{app.key}: {self.args.runs} warm starts per tool, interleaved")
        for key, (cmd, env, cwd, result) in list(warm.items()):
            # Warm-up (page cache), and proof that a warm run runs the app.
            check = run_measured(cmd, env=env, cwd=cwd, capture=self.run_dir / "warmcheck" / f"{app.key}-{key}")
            if check.code != 0 or f"bench-edit-{result.edit}" not in check.stdout:
                result.run_error = (
                    f"warm run exited {check.code}: {(check.stderr.strip() or check.stdout.strip())[-300:]}"
                )
                del warm[key]
                continue
            run_measured(cmd, env=env, cwd=cwd)
        for _ in range(self.args.runs):
            for cmd, env, cwd, result in warm.values():
                result.warm.append(run_measured(cmd, env=env, cwd=cwd))
        for _ in range(self.args.rss_runs):
            for cmd, env, cwd, result in warm.values():
                result.warm_rss.extend(x for x in [run_measured(cmd, env=env, cwd=cwd, rss=True).maxrss_kb] if x)
        hp = results.get("hatch-pyaket")
        if hp and hp.exe and hp.home and app.key == "example":
            info = [
                run_measured([hp.exe], env={**hp.run_env, "PYAKET_SELF": "info"}, cwd=hp.home / "cwd", rss=True)
                for _ in range(self.args.rss_runs)
            ]
            self.launcher["self_info_rss_kb"] = median(s.maxrss_kb for s in info if s.maxrss_kb)
        return {"floor": floor, "floor-c": floor_c}


# --------------------------------------------------------------------------- PyApp's downloads, served locally


class LocalServer:
    """Serves a Python archive and a uv archive on 127.0.0.1 for PyApp's first runs."""

    def __init__(self, directory: Path, uv: str, triple: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.python_archive = make_python_archive(directory, triple)
        self.uv_archive = make_uv_archive(directory, uv, triple)
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def make_python_archive(directory: Path, triple: str) -> str:
    """python/bin/python3, python/lib/pythonX.Y (no tests, empty site-packages), python/lib/libpython*."""
    base = Path(sys.base_prefix)
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    name = f"cpython-{platform.python_version()}-{triple}-install_only.tar.gz"
    stdlib = base / "lib" / f"python{minor}"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = info.name.split("/")
        if len(parts) > 3 and (
            parts[3] in {"test", "idlelib", "tkinter", "turtledemo"} or parts[3].startswith("config-")
        ):
            return None  # tests, GUI bits, the static libpython and its Makefile
        if len(parts) > 4 and parts[3] == "site-packages":
            return None
        return info

    with tarfile.open(directory / name, "w:gz", compresslevel=6) as tar:
        interpreter = Path(os.path.realpath(base / "bin" / f"python{minor}"))
        tar.add(interpreter, arcname=f"python/bin/python{minor}")
        for link in ("python3", "python"):
            info = tarfile.TarInfo(f"python/bin/{link}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, f"python{minor}", 0o777
            tar.addfile(info)
        tar.add(stdlib, arcname=f"python/lib/python{minor}", filter=keep)
        for lib in (base / "lib").glob(f"libpython{minor}*"):
            tar.add(lib, arcname=f"python/lib/{lib.name}")
    return name


def make_uv_archive(directory: Path, uv: str, triple: str) -> str:
    """uv's GitHub release layout: uv-<triple>.tar.gz holding uv-<triple>/uv."""
    name = f"uv-{triple}.tar.gz"
    with tarfile.open(directory / name, "w:gz", compresslevel=6) as tar:
        tar.add(os.path.realpath(uv), arcname=f"uv-{triple}/uv")
    return name


# --------------------------------------------------------------------------- small helpers


def capture(cmd: Sequence[str], env: Mapping[str, str] | None = None, *, stderr: bool = False) -> str:
    """A command's stdout (or stderr), stripped; "" when it fails."""
    try:
        result = subprocess.run(
            list(cmd), capture_output=True, text=True, env=None if env is None else dict(env), timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if result.returncode != 0:
        return ""
    return (result.stderr if stderr else result.stdout).strip()


def importable(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0


def host_triple() -> str:
    out = capture(["rustc", "-vV"])
    match = re.search(r"^host: (\S+)", out, re.MULTILINE)
    return match.group(1) if match else f"{platform.machine()}-unknown-linux-gnu"


def keep_exe(exe: Path | None, destination: Path) -> Path:
    """A copy of the built executable that later builds cannot overwrite or delete."""
    if exe is None or not exe.is_file():
        raise StepFailed(f"the build made no executable at {exe}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, destination)
    return destination


def payload_blobs(target_dir: Path) -> dict[str, int]:
    """sha256 -> compressed size of the blobs the last build embedded (the staged payload's frames.json)."""
    tables = sorted(target_dir.glob("pyaket-payload/*/frames.json"), key=lambda f: f.stat().st_mtime)
    if not tables:
        return {}
    files = json.loads(tables[-1].read_text())["files"]
    return {Path(t["blob"]).name.split("-")[0]: (tables[-1].parent / t["blob"]).stat().st_size for t in files.values()}


def bootstrap(entry: str) -> str:
    """What the launcher runs with `python -s -c` for a script entry (mirrors rust_template/core/src/run.rs)."""
    module, attrs = entry.split(":")
    return (
        "import sys\ndel sys.argv[0]\nif sys.path and sys.path[0] == '':\n    del sys.path[0]\n"
        f"__import__({module!r})\nf = sys.modules[{module!r}]\nfor a in {attrs!r}.split('.'):\n"
        "    if a:\n        f = getattr(f, a)\ndel a\nsys.exit(f())\n"
    )


def size_text(n: float | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n:.0f} B"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def secs_text(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def machine_summary() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1) if match else ""
    mem = ""
    with contextlib.suppress(OSError):
        match = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
        mem = f", {int(match.group(1)) / (1 << 20):.0f} GiB" if match else ""
    bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE") or "unset"
    return (
        f"{platform.system()} {platform.machine()} {platform.release()}, {os.cpu_count()} cores ({cpu}){mem}; "
        f"PYTHONDONTWRITEBYTECODE={bytecode} (benchmarks/bytecode.py measures with it set and unset)"
    )


def load_text() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


# --------------------------------------------------------------------------- report


def cell(value: float | None, base: float | None, fmt: Callable[[float | None], str]) -> str:
    if value is None:
        return "-"
    text = fmt(value)
    if base:
        text += f" ({value / base:.2f}x)"
    return text


def report(bench: Bench, apps: list[App], per_app: dict[str, dict[str, ToolResult]], load_start: str) -> str:
    a = bench.args
    lines = [
        (
            f"hatch-pyaket benchmarks, {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
            f"({'quick' if a.quick else 'full'} mode; {time.monotonic() - bench.started:.0f} s in all)"
        ),
        f"machine: {machine_summary()}; load average (1/5/15 min) at start {load_start}, at end {load_text()}",
        "versions: " + ", ".join(v if v.lower().startswith(k) else f"{k} {v}" for k, v in bench.versions.items() if v),
        "",
        "What the figures mean (medians; every ratio in parentheses is tool / hatch-pyaket):",
        "  cold build   = from the app's source to the executable with build caches empty: a fresh",
        "                 CARGO_TARGET_DIR (Rust tools) and hatch-pyaket's blob cache, fresh PyInstaller",
        "                 work/config dirs and build venv;",
        "                 downloads kept (cargo registry, uv cache, the uv binary hatch-pyaket embeds, hatch's",
        "                 build env). Peers' figures include building the wheel (hatchling), as hatch-pyaket's does.",
        f"  warm rebuild = the same after a one-line change in the app, caches kept; median of {a.repeat}.",
        "  exe size     = the executable file, as built.",
        f"  first run    = fresh data dir (XDG_DATA_HOME/XDG_CACHE_HOME), uv cache warm; median of {a.first_runs}.",
        f"  warm start   = later runs, wall time from spawn to exit; median of {a.runs}, tools interleaved.",
        f"  peak RSS     = GNU time's %M: the largest process of the run's tree (not a sum); warm: {a.rss_runs} more runs.",
        "  floor        = `uv venv --python <requires-python>` + `uv pip install --compile-bytecode <the same wheel>` with the same uv;",
        "                 warm: the venv's console script; `venv python -c`: `python -s -c <bootstrap>`, exactly",
        "                 what the launcher execs (so hatch-pyaket's warm start minus it is the launcher's overhead).",
        "  every run's output is checked: exit 0 and `bench-edit-<n>`, printed by the app's line that each rebuild changes.",
    ]
    for note in bench.notes:
        lines.extend(textwrap.wrap(note, 100, initial_indent="note: ", subsequent_indent="      "))
    headers = [
        "tool",
        "cold build",
        "warm rebuild",
        "exe size",
        "first run",
        "warm start",
        "peak RSS first",
        "peak RSS warm",
    ]
    goals: list[str] = []
    for app in apps:
        results = per_app.get(app.key, {})
        if not results:
            continue
        hp = results.get("hatch-pyaket")
        rows = []
        reasons = []
        for key in (*TOOLS, "floor", "floor-c"):
            r = results.get(key)
            if r is None or (key == "floor-c" and not r.warm):
                continue
            title = TITLES[key]
            if r.error:
                rows.append([title] + ["n/a"] * (len(headers) - 1))
                reasons.append(f"  {title}: {r.error}")
                continue
            f = figures(r)
            base = {} if r is hp else figures(hp) if hp and not hp.error else {}
            rows.append(
                [
                    title,
                    cell(f["cold"], base.get("cold"), secs_text) + ("*" if r.cold_cached else ""),
                    cell(f["warm_build"], base.get("warm_build"), secs_text),
                    cell(f["size"], base.get("size"), size_text),
                    cell(f["first"], base.get("first"), secs_text),
                    cell(f["warm"], base.get("warm"), secs_text),
                    cell(f["rss_first"], base.get("rss_first"), size_text),
                    cell(f["rss_warm"], base.get("rss_warm"), size_text),
                ]
            )
            if r.run_error:
                reasons.append(f"  {title}: runs failed: {r.run_error}")
            reasons.extend(f"  {title}: {note}" for note in r.notes)
        lines += ["", f"== {app.key}: {app.title} ==", *table(headers, rows)]
        wheel_s = median(bench.wheel_times.get(app.key, []))
        if wheel_s:
            lines.append(f"  (building the wheel alone, part of every build figure: {secs_text(wheel_s)})")
        lines += reasons
        floor, floor_c = results.get("floor"), results.get("floor-c")
        if hp and not hp.error:
            f = figures(hp)
            ff = figures(floor) if floor else {}
            fc = figures(floor_c) if floor_c else {}
            goals.append(f"  [{app.key}]")
            goals.append(
                goal_line(
                    "warm rebuild after a wheel change",
                    f["warm_build"],
                    GOALS["warm_rebuild_s"],
                    "s",
                    secs_text(f["warm_build"]) + " (python -m build --wheel, end to end)",
                )
            )
            if f["warm"] and ff.get("warm"):
                ratio = f["warm"] / ff["warm"]
                detail = f"{secs_text(f['warm'])} vs venv console script {secs_text(ff['warm'])}"
                if fc.get("warm"):
                    detail += (
                        f"; vs `python -s -c <same bootstrap>` {secs_text(fc['warm'])} = {f['warm'] / fc['warm']:.3f}x"
                    )
                goals.append(goal_line("warm start / venv's Python", ratio, GOALS["warm_start_ratio"], "x", detail))
            if f["first"] and ff.get("first"):
                ratio = f["first"] / ff["first"]
                detail = f"{secs_text(f['first'])} vs {secs_text(ff['first'])}"
                if ff.get("warm"):
                    with_run = ff["first"] + ff["warm"]
                    detail += (
                        f"; a first run also runs the app: vs install + one warm run {secs_text(with_run)} = "
                        f"{f['first'] / with_run:.2f}x"
                    )
                offline = median(floor.first_offline) if floor else None
                if offline:
                    detail += (
                        f"; vs the same from uv's cache alone (`--offline`), which hatch-pyaket tries first: "
                        f"{secs_text(offline)} = {f['first'] / offline:.2f}x"
                    )
                goals.append(
                    goal_line("first run / uv venv + uv pip install", ratio, GOALS["first_run_ratio"], "x", detail)
                )
    lines += ["", "Goals for hatch-pyaket:", *goals]
    lines += launcher_lines(bench)
    return "\n".join(lines) + "\n"


def figures(r: ToolResult) -> dict[str, float | None]:
    return {
        "cold": r.cold_s,
        "warm_build": median(r.warm_s),
        "size": r.size,
        "first": median(s.seconds for s in r.first),
        "warm": median(s.seconds for s in r.warm),
        "rss_first": median(s.maxrss_kb * 1024 for s in r.first if s.maxrss_kb),
        "rss_warm": median(kb * 1024 for kb in r.warm_rss),
    }


def goal_line(name: str, value: float | None, limit: float, unit: str, detail: str) -> str:
    if value is None:
        return f"    {name:<40} not measured"
    verdict = "met" if value <= limit else "MISSED"
    shown = f"{value:.2f}{unit}" if unit == "x" else secs_text(value)
    return f"    {name:<40} {shown:>8}  goal <= {limit:g}{unit}: {verdict}  ({detail})"


def launcher_lines(bench: Bench) -> list[str]:
    data = bench.launcher
    if not data:
        return []
    out = ["", "Launcher figures (example app):"]
    path_exe = data.get("path_exe")
    if isinstance(path_exe, int):
        blobs = data.get("path_blobs") or {}
        code = path_exe - sum(blobs.values())
        verdict = "met" if path_exe <= GOALS["launcher_bytes"] else "MISSED"
        out.append(
            f'  launcher without uv (uv = "path", {"stripped" if data.get("stripped") else "NOT stripped"}): '
            f"{size_text(path_exe)} ({path_exe} bytes) = code {size_text(code)} + embedded "
            + ", ".join(f"{k} {size_text(v)}" for k, v in sorted(blobs.items()))
            + f"; goal <= 1.5 MB: {verdict}"
        )
    elif data.get("uv_path_error"):
        out.append(f"  launcher without uv: build failed: {data['uv_path_error']}")
    embed_exe = data.get("embed_exe")
    blobs = data.get("embed_blobs") or {}
    raw = data.get("embed_raw") or {}
    if isinstance(embed_exe, int) and blobs:
        code = embed_exe - sum(blobs.values())
        parts = [f"launcher code {size_text(code)}"] + [
            f"{k} {size_text(v)} (zstd of {size_text(raw.get(k))})"
            for k, v in sorted(blobs.items(), key=lambda kv: -kv[1])
        ]
        out.append(f"  executable with uv embedded: {size_text(embed_exe)} = " + " + ".join(parts))
    rss = data.get("self_info_rss_kb")
    if rss:
        out.append(f"  launcher alone (`PYAKET_SELF=info`, no Python): peak RSS {size_text(rss * 1024)}")
    return out


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats: --repeat 2 --first-runs 3 --runs 15")
    parser.add_argument("--repeat", type=int, help="warm rebuilds per tool (default 3; quick 2)")
    parser.add_argument("--first-runs", type=int, help="first runs per tool (default 5; quick 3)")
    parser.add_argument("--runs", type=int, help="warm starts per tool (default 40; quick 15)")
    parser.add_argument(
        "--only",
        help="tools to build, comma-separated (hatch-pyaket, pyinstaller, pyapp, pyaket); "
        "`--only hatch-pyaket` gives the launcher-only figures",
    )
    parser.add_argument("--tools", dest="only", help=argparse.SUPPRESS)
    parser.add_argument("--apps", default="example,rich", help="apps: example, rich (default both)")
    parser.add_argument("--rss-runs", type=int, default=5, help="extra warm runs under GNU time for peak memory")
    parser.add_argument(
        "--pyapp-repeat",
        type=int,
        default=0,
        help="measured PyApp warm rebuilds (default 0: each PyApp build is a full cargo build, so its "
        "warm rebuild is reported as its cold build)",
    )
    parser.add_argument("--pyaket-repeat", type=int, default=1, help="measured Pyaket warm rebuilds (default 1)")
    parser.add_argument("--pyaket-timeout", type=float, default=40, help="minutes before a Pyaket build is given up")
    parser.add_argument(
        "--fresh-pyaket",
        dest="keep_pyaket_target",
        action="store_false",
        help="build Pyaket in a fresh target dir for each app (its cold build compiles uv as a "
        "library: 15-40 min on 2 cores). By default its target dir is kept in --work, so the "
        "first run measures its cold build once and later runs reuse that figure (marked *)",
    )
    parser.add_argument(
        "--floor-python",
        help="--python for the floor's `uv venv` (default: the app's requires-python, what hatch-pyaket passes)",
    )
    parser.add_argument("--budget", type=float, default=45, help="minutes; builds not started by then are skipped")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hatch-pyaket-bench",
        help="tool venvs, caches and this run's files (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep this run's build dirs and install dirs")
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / f"results-{_dt.date.today().isoformat()}.txt"),
        help="also write the report here ('-': stdout only; default %(default)s)",
    )
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (2 if args.quick else 3)
    args.first_runs = args.first_runs or (3 if args.quick else 5)
    args.runs = args.runs or (15 if args.quick else 40)
    tools = [t.strip() for t in (args.only or ",".join(TOOLS)).split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; choose among {', '.join(TOOLS)}")
    args.tools = [t for t in TOOLS if t in tools]
    args.app_keys = [k.strip() for k in args.apps.split(",") if k.strip()]
    if set(args.app_keys) - {"example", "rich"}:
        parser.error("--apps takes example and/or rich")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        print("benchmarks/run.py measures Linux hosts only (wait4, /proc)", file=sys.stderr)
        return 2
    load_start = load_text()
    bench = Bench(args)
    bench.setup()
    apps = make_apps(bench.run_dir, args.app_keys)
    per_app: dict[str, dict[str, ToolResult]] = {}
    builders = {
        "hatch-pyaket": bench.build_hatch_pyaket,
        "pyinstaller": bench.build_pyinstaller,
        "pyapp": bench.build_pyapp,
        "pyaket": bench.build_pyaket,
    }
    cargo = shutil.which("cargo")
    try:
        for app in apps:
            results: dict[str, ToolResult] = {}
            for tool in args.tools:
                result = results[tool] = ToolResult(tool)
                if tool != "pyinstaller" and not cargo:
                    result.error = "cargo not found"
                    continue
                if bench.over_budget():
                    result.error = f"skipped: over the --budget of {args.budget:g} min"
                    continue
                log(f"{app.key}: building with {tool}")
                try:
                    builders[tool](app, result)
                    result.exe = keep_exe(result.exe, bench.run_dir / "exes" / app.key / tool)
                except StepFailed as error:
                    result.error = str(error)
                    log(f"{app.key}: {tool} failed: {error}")
            results.update(bench.run_app(app, results))
            per_app[app.key] = results
    finally:
        if bench.server:
            bench.server.close()
    text = report(bench, apps, per_app, load_start)
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text)
        log(f"report written to {args.output}")
    if not args.keep:
        for sub in ("targets", "homes", "pyinstaller", "pyaket", "exes"):
            shutil.rmtree(bench.run_dir / sub, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
