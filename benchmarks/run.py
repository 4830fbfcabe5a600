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

The parts: apps.py (the apps), tools.py (one adapter per tool: how it builds), runs.py (first runs
and warm starts), measure.py (timing, memory, medians), report.py (the table, ratios and goals),
context.py (the run's folders, environment and shared venvs). Test helpers are reused from tests/.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (
    None,
    "",
):  # `python benchmarks/run.py`: import from the repository root, as `-m benchmarks.run` does
    sys.path.insert(0, str(ROOT))

from benchmarks.apps import APP_KEYS, make_apps  # noqa: E402
from benchmarks.context import Context  # noqa: E402
from benchmarks.measure import StepFailed, ToolResult, keep_exe, load_text, log  # noqa: E402
from benchmarks.report import report  # noqa: E402
from benchmarks.runs import run_app  # noqa: E402
from benchmarks.tools import TOOLS  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats: --repeat 2 --first-runs 3 --runs 15")
    parser.add_argument("--repeat", type=int, help="warm rebuilds per tool (default 3; quick 2)")
    parser.add_argument("--first-runs", type=int, help="first runs per tool (default 5; quick 3)")
    parser.add_argument("--runs", type=int, help="warm starts per tool (default 40; quick 15)")
    parser.add_argument(
        "--only",
        help=f"tools to build, comma-separated ({', '.join(TOOLS)}); `--only hatch-pyaket` gives the launcher-only figures",
    )
    parser.add_argument("--tools", dest="only", help=argparse.SUPPRESS)
    parser.add_argument("--apps", default=",".join(APP_KEYS), help="apps: example, rich (default both)")
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
    if set(args.app_keys) - set(APP_KEYS):
        parser.error("--apps takes example and/or rich")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        print("benchmarks/run.py measures Linux hosts only (wait4, /proc)", file=sys.stderr)
        return 2
    load_start = load_text()
    ctx = Context(args)
    ctx.setup()
    apps = make_apps(ctx.run_dir, args.app_keys)
    tools = {key: TOOLS[key](ctx) for key in args.tools}
    per_app: dict[str, dict[str, ToolResult]] = {}
    cargo = shutil.which("cargo")
    try:
        for app in apps:
            results: dict[str, ToolResult] = {}
            for key, tool in tools.items():
                result = results[key] = ToolResult(key)
                if tool.needs_cargo and not cargo:
                    result.error = "cargo not found"
                    continue
                if ctx.over_budget():
                    result.error = f"skipped: over the --budget of {args.budget:g} min"
                    continue
                log(f"{app.key}: building with {key}")
                try:
                    tool.build(app, result)
                    result.exe = keep_exe(result.exe, ctx.run_dir / "exes" / app.key / key)
                except StepFailed as error:
                    result.error = str(error)
                    log(f"{app.key}: {key} failed: {error}")
            results.update(run_app(ctx, app, results))
            per_app[app.key] = results
    finally:
        ctx.close()
    text = report(ctx, apps, per_app, load_start)
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text)
        log(f"report written to {args.output}")
    if not args.keep:
        for sub in ("targets", "homes", "pyinstaller", "pyaket", "exes"):
            shutil.rmtree(ctx.run_dir / sub, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
