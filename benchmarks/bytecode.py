"""Bytecode and start-up: hatch-pyaket's executables against what a user would otherwise have.

For each app (the example, and a CLI with dozens of modules: pylint, which imports astroid) this
builds the wheel and the executable with the plugin of this checkout, then measures, with
PYTHONDONTWRITEBYTECODE=1 set and unset in the runs:

- warm start: the executable (installed once) vs the console script of a venv made by
  `pip install <the same wheel>` (pip compiles bytecode at install), on the same base Python;
- first run: the executable in a fresh install root vs `uv venv` + `uv pip install --compile-bytecode
  <the same wheel>` with the same uv binary, uv's cache warm for both.

    python benchmarks/bytecode.py [--runs 30] [--first-runs 5] [--apps example,cli]

Prints one table with medians and ratios, and the machine's bytecode setting.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.example import copy_example  # noqa: E402


@dataclass(frozen=True)
class App:
    key: str
    script: str
    args: tuple[str, ...]
    pyproject: str | None  # None: example_project as it is


APPS = {
    "example": App("example", "example-app", ("hello",), None),
    "cli": App(
        "cli",
        "bench-lint",
        ("--version",),
        """[build-system]
requires = ["hatchling", "hatch-pyaket"]
build-backend = "hatchling.build"

[project]
name = "bench-lint"
version = "1.0.0"
requires-python = ">=3.9"
dependencies = ["pylint==3.3.*"]

[project.scripts]
bench-lint = "bench_lint:main"

[tool.hatch.build.targets.wheel]
packages = ["bench_lint"]

[tool.hatch.build.hooks.pyaket]
targets = ["host"]
""",
    ),
}


def sh(cmd: Sequence[str | Path], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def timed(cmd: Sequence[str | Path], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}: {done.stderr.decode()[-2000:]}")
    return seconds


def make_project(app: App, work: Path) -> Path:
    project = copy_example(work, app.key)
    if app.pyproject is not None:
        shutil.rmtree(project / "src")
        (project / "pyproject.toml").write_text(app.pyproject)
        (project / "bench_lint").mkdir()
        (project / "bench_lint" / "__init__.py").write_text("from pylint import run_pylint as main\n")
    return project


def build(project: Path) -> tuple[Path, Path]:
    sh([sys.executable, "-m", "build", "--no-isolation", "--wheel", project], cwd=project)
    dist = project / "dist"
    (wheel,) = dist.glob("*.whl")
    (exe,) = (
        p for p in dist.iterdir() if p.is_file() and "-unknown-linux-" in p.name and not p.name.endswith(".cdx.json")
    )
    return wheel, exe


def env_for(bytecode: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **extra}


def measure(app: App, work: Path, runs: int, first_runs: int) -> list[list[str]]:
    project = make_project(app, work)
    wheel, exe = build(project)
    uv_cache = work / f"uv-cache-{app.key}"
    rows = []
    for bytecode in (False, True):
        setting = "unset" if bytecode else "PYTHONDONTWRITEBYTECODE=1"
        base = env_for(bytecode, UV_CACHE_DIR=str(uv_cache))
        # The executable, installed once; its base Python serves the pip venv too.
        root = work / f"root-{app.key}-{bytecode}"
        sh([exe, *app.args], env={**base, "PYAKET_INSTALL_DIR": str(root)})
        (cfg,) = root.glob("*/*/*/venv/pyvenv.cfg")
        home = next(line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines() if line.startswith("home"))
        python = Path(home) / "python3"
        (uv,) = root.glob(".pyaket/uv/*/uv")
        venv = work / f"pip-venv-{app.key}-{bytecode}"
        sh([python, "-m", "venv", venv])
        sh([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], env=base)
        run_env = {**base, "PYAKET_INSTALL_DIR": str(root)}
        ours, theirs = [], []
        for _ in range(3):  # warm-up: file cache, and a first bytecode write where Python may write it
            timed([exe, *app.args], run_env)
            timed([venv / "bin" / app.script, *app.args], run_env)
        for _ in range(runs):
            ours.append(timed([exe, *app.args], run_env))
            theirs.append(timed([venv / "bin" / app.script, *app.args], run_env))
        warm = (statistics.median(ours), statistics.median(theirs))
        firsts, floors = [], []
        for i in range(first_runs):
            fresh = work / f"first-{app.key}-{bytecode}-{i}"
            firsts.append(timed([exe, *app.args], {**base, "PYAKET_INSTALL_DIR": str(fresh)}))
            target = work / f"floor-{app.key}-{bytecode}-{i}"
            start = time.perf_counter()
            sh([uv, "venv", "--quiet", "--python", python, target], env=base)
            sh(
                [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", target / "bin" / "python", wheel],
                env=base,
            )
            timed([target / "bin" / app.script, *app.args], base)
            floors.append(time.perf_counter() - start)
        first = (statistics.median(firsts), statistics.median(floors))
        rows.append(
            [app.key, setting, ms(warm[0]), ms(warm[1]), ratio(*warm), ms(first[0]), ms(first[1]), ratio(*first)]
        )
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="warm starts per side (interleaved)")
    parser.add_argument("--first-runs", type=int, default=5, help="first runs per side")
    parser.add_argument("--apps", default="example,cli", help="comma-separated: example, cli")
    args = parser.parse_args(argv)
    header = ["app", "runs with", "warm: exe", "warm: pip venv", "ratio", "first run: exe", "uv + compile", "ratio"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyaket-bytecode-") as tmp:
        for key in args.apps.split(","):
            rows += measure(APPS[key], Path(tmp), args.runs, args.first_runs)
    print(
        f"machine: PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}; "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print("warm start: the executable vs a `pip install`ed venv's console script (median of interleaved runs);")
    print("first run: a fresh install root vs `uv venv` + `uv pip install --compile-bytecode` + one run, uv cache warm")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
