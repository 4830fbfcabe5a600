"""Running what the tools built: first runs (a fresh data dir each) and warm starts of every executable and of
the floor (`uv venv` + `uv pip install` of the same wheel, its console script, and its Python started the way
hatch-pyaket's launcher starts it), interleaved across tools so that a noisy moment hurts them all alike."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.apps import App
from benchmarks.context import Context
from benchmarks.measure import Sample, StepFailed, ToolResult, log, median, run_measured
from benchmarks.tools import launcher_python_flags


def run_app(ctx: Context, app: App, results: dict[str, ToolResult]) -> dict[str, ToolResult]:
    """Measures the runs of `results`' executables; returns the floor's results ("floor", "floor-c")."""
    args = ctx.args
    app.edit(app.plain, args.repeat)
    floor = ToolResult("floor", edit=args.repeat)
    floor_c = ToolResult("floor-c", edit=args.repeat)
    try:
        _, wheel = ctx.build_wheel(app)
    except StepFailed as error:
        floor.error = f"no wheel: {error}"
        return {"floor": floor}
    floor_python = args.floor_python or app.requires_python
    participants = [r for r in results.values() if r.exe is not None and not r.error] + [floor]
    homes = ctx.run_dir / "homes" / app.key

    def fresh_home(name: str, i: int) -> tuple[Path, dict[str, str]]:
        home = homes / f"{name}-{i}"
        shutil.rmtree(home, ignore_errors=True)
        for sub in ("data", "cache", "tmp", "cwd"):
            (home / sub).mkdir(parents=True)
        env = ctx.env(XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"), TMPDIR=str(home / "tmp"))
        return home, env

    def first_run(result: ToolResult, home: Path, env: dict[str, str]) -> Sample:
        if result is not floor:
            assert result.exe is not None
            return run_measured([result.exe, *app.args], env=env, cwd=home / "cwd", capture=home / "first", rss=True)
        venv = home / "venv"
        a = run_measured(
            [ctx.uv, "venv", "--quiet", "--python", floor_python, venv],
            env=env,
            cwd=home / "cwd",
            capture=home / "venv",
            rss=True,
        )
        if a.code:
            return a
        # --compile-bytecode: what a user's own install gives (pip compiles at install; the launcher does too).
        b = run_measured(
            [ctx.uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", venv / "bin" / "python", wheel],
            env=env,
            cwd=home / "cwd",
            capture=home / "pip",
            rss=True,
        )
        rss = [x for x in (a.maxrss_kb, b.maxrss_kb) if x is not None]
        # The same from uv's cache alone, as hatch-pyaket's first run tries first: shown next to the goal.
        offline = home / "venv-offline"
        c = run_measured([ctx.uv, "venv", "--quiet", "--python", floor_python, offline], env=env, cwd=home / "cwd")
        d = run_measured(
            [
                ctx.uv,
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

    log(f"{app.key}: {args.first_runs} first runs per tool")
    for i in range(args.first_runs):
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

    hp = results.get("hatch-pyaket")
    # key -> (command, env, cwd, result it belongs to)
    warm: dict[str, tuple[list[str | Path], dict[str, str], Path, ToolResult]] = {}
    for result in participants:
        if not (result.first and result.home):
            continue
        cwd = result.home / "cwd"
        if result is not floor:
            assert result.exe is not None
            warm[result.tool] = ([result.exe, *app.args], result.run_env, cwd, result)
            continue
        venv = result.home / "venv"
        warm["floor"] = ([venv / "bin" / app.script, *app.args], result.run_env, cwd, floor)
        # Exactly what the launcher execs after its own work, read from the launcher itself.
        try:
            flags = launcher_python_flags(hp) if hp and hp.first else None
        except StepFailed as error:
            floor_c.run_error = str(error)
            flags = None
        if flags:
            warm["floor-c"] = (
                [venv / "bin" / "python", *flags, venv / "bin" / app.script, *app.args],
                result.run_env,
                cwd,
                floor_c,
            )
    log(f"{app.key}: {args.runs} warm starts per tool, interleaved")
    for key, (cmd, env, cwd, result) in list(warm.items()):
        # Warm-up (page cache), and proof that a warm run runs the app.
        check = run_measured(cmd, env=env, cwd=cwd, capture=ctx.run_dir / "warmcheck" / f"{app.key}-{key}")
        if check.code != 0 or f"bench-edit-{result.edit}" not in check.stdout:
            result.run_error = f"warm run exited {check.code}: {(check.stderr.strip() or check.stdout.strip())[-300:]}"
            del warm[key]
            continue
        run_measured(cmd, env=env, cwd=cwd)
    for _ in range(args.runs):
        for cmd, env, cwd, result in warm.values():
            result.warm.append(run_measured(cmd, env=env, cwd=cwd))
    for _ in range(args.rss_runs):
        for cmd, env, cwd, result in warm.values():
            result.warm_rss.extend(x for x in [run_measured(cmd, env=env, cwd=cwd, rss=True).maxrss_kb] if x)
    if hp and hp.exe and hp.home and app.key == "example":
        info = [
            run_measured([hp.exe], env={**hp.run_env, "PYAKET_SELF": "info"}, cwd=hp.home / "cwd", rss=True)
            for _ in range(args.rss_runs)
        ]
        ctx.launcher["self_info_rss_kb"] = median(s.maxrss_kb for s in info if s.maxrss_kb)
    return {"floor": floor, "floor-c": floor_c}
