"""The report: one table per app with ratios against hatch-pyaket, the goals and the launcher's own figures."""

from __future__ import annotations

import datetime as _dt
import textwrap
import time
from collections.abc import Callable

from benchmarks.apps import App
from benchmarks.context import Context
from benchmarks.measure import ToolResult, load_text, machine_summary, median, secs_text, size_text
from benchmarks.tools import TOOLS

TITLES = {**{key: tool.title for key, tool in TOOLS.items()}, "floor": "venv floor", "floor-c": "venv python -c"}
GOALS = {"warm_rebuild_s": 5.0, "warm_start_ratio": 1.05, "launcher_bytes": 1.5e6, "first_run_ratio": 1.2}
HEADERS = [
    "tool",
    "cold build",
    "warm rebuild",
    "exe size",
    "first run",
    "warm start",
    "peak RSS first",
    "peak RSS warm",
]


def cell(value: float | None, base: float | None, fmt: Callable[[float | None], str]) -> str:
    if value is None:
        return "-"
    text = fmt(value)
    if base:
        text += f" ({value / base:.2f}x)"
    return text


def report(ctx: Context, apps: list[App], per_app: dict[str, dict[str, ToolResult]], load_start: str) -> str:
    a = ctx.args
    lines = [
        (
            f"hatch-pyaket benchmarks, {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
            f"({'quick' if a.quick else 'full'} mode; {time.monotonic() - ctx.started:.0f} s in all)"
        ),
        f"machine: {machine_summary()}; load average (1/5/15 min) at start {load_start}, at end {load_text()}",
        "versions: " + ", ".join(v if v.lower().startswith(k) else f"{k} {v}" for k, v in ctx.versions.items() if v),
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
    for note in ctx.notes:
        lines.extend(textwrap.wrap(note, 100, initial_indent="note: ", subsequent_indent="      "))
    goals: list[str] = []
    for app in apps:
        results = per_app.get(app.key, {})
        if not results:
            continue
        lines += ["", f"== {app.key}: {app.title} ==", *app_table(results)]
        wheel_s = median(ctx.wheel_times.get(app.key, []))
        if wheel_s:
            lines.append(f"  (building the wheel alone, part of every build figure: {secs_text(wheel_s)})")
        lines += reasons(results)
        goals += goal_lines(app, results)
    lines += ["", "Goals for hatch-pyaket:", *goals]
    lines += launcher_lines(ctx.launcher)
    return "\n".join(lines) + "\n"


def _rows(results: dict[str, ToolResult]) -> list[ToolResult]:
    return [
        r
        for key in (*TOOLS, "floor", "floor-c")
        if (r := results.get(key)) is not None and not (key == "floor-c" and not r.warm)
    ]


def app_table(results: dict[str, ToolResult]) -> list[str]:
    hp = results.get("hatch-pyaket")
    rows = []
    for r in _rows(results):
        title = TITLES[r.tool]
        if r.error:
            rows.append([title] + ["n/a"] * (len(HEADERS) - 1))
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
    return table(HEADERS, rows)


def reasons(results: dict[str, ToolResult]) -> list[str]:
    """Why a tool has no figures, why its runs failed, and its notes."""
    out = []
    for r in _rows(results):
        title = TITLES[r.tool]
        if r.error:
            out.append(f"  {title}: {r.error}")
            continue
        if r.run_error:
            out.append(f"  {title}: runs failed: {r.run_error}")
        out.extend(f"  {title}: {note}" for note in r.notes)
    return out


def goal_lines(app: App, results: dict[str, ToolResult]) -> list[str]:
    hp = results.get("hatch-pyaket")
    if not hp or hp.error:
        return []
    floor, floor_c = results.get("floor"), results.get("floor-c")
    f = figures(hp)
    ff = figures(floor) if floor else {}
    fc = figures(floor_c) if floor_c else {}
    goals = [f"  [{app.key}]"]
    goals.append(
        goal_line(
            "warm rebuild after a wheel change",
            f["warm_build"],
            GOALS["warm_rebuild_s"],
            "s",
            secs_text(f["warm_build"]) + " (python -m build --wheel, end to end)",
        )
    )
    warm, first = f["warm"], f["first"]
    floor_warm, floor_first, bootstrap_warm = ff.get("warm"), ff.get("first"), fc.get("warm")
    if warm and floor_warm:
        ratio = warm / floor_warm
        detail = f"{secs_text(warm)} vs venv console script {secs_text(floor_warm)}"
        if bootstrap_warm:
            detail += f"; vs `python -s -c <same bootstrap>` {secs_text(bootstrap_warm)} = {warm / bootstrap_warm:.3f}x"
        goals.append(goal_line("warm start / venv's Python", ratio, GOALS["warm_start_ratio"], "x", detail))
    if first and floor_first:
        ratio = first / floor_first
        detail = f"{secs_text(first)} vs {secs_text(floor_first)}"
        if floor_warm:
            with_run = floor_first + floor_warm
            detail += (
                f"; a first run also runs the app: vs install + one warm run {secs_text(with_run)} = "
                f"{first / with_run:.2f}x"
            )
        offline = median(floor.first_offline) if floor else None
        if offline:
            detail += (
                f"; vs the same from uv's cache alone (`--offline`), which hatch-pyaket tries first: "
                f"{secs_text(offline)} = {first / offline:.2f}x"
            )
        goals.append(goal_line("first run / uv venv + uv pip install", ratio, GOALS["first_run_ratio"], "x", detail))
    return goals


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


def launcher_lines(data: dict[str, object]) -> list[str]:
    if not data:
        return []
    out = ["", "Launcher figures (example app):"]
    path_exe = data.get("path_exe")
    if isinstance(path_exe, int):
        blobs: dict[str, int] = data.get("path_blobs") or {}  # type: ignore[assignment]
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
    embedded: dict[str, int] = data.get("embed_blobs") or {}  # type: ignore[assignment]
    raw: dict[str, int] = data.get("embed_raw") or {}  # type: ignore[assignment]
    if isinstance(embed_exe, int) and embedded:
        code = embed_exe - sum(embedded.values())
        parts = [f"launcher code {size_text(code)}"] + [
            f"{k} {size_text(v)} (zstd of {size_text(raw.get(k))})"
            for k, v in sorted(embedded.items(), key=lambda kv: -kv[1])
        ]
        out.append(f"  executable with uv embedded: {size_text(embed_exe)} = " + " + ".join(parts))
    rss = data.get("self_info_rss_kb")
    if isinstance(rss, (int, float)) and rss:
        out.append(f"  launcher alone (`PYAKET_SELF=info`, no Python): peak RSS {size_text(rss * 1024)}")
    return out


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
