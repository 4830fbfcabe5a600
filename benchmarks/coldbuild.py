#!/usr/bin/env python3
"""Cold builds side by side: hatch-pyaket against PyInstaller --onefile, wall time and CPU time.

    python benchmarks/coldbuild.py                          # this checkout, 2 rounds
    python benchmarks/coldbuild.py --checkout /tmp/before --checkout . --rounds 3

Builds only (benchmarks/run.py measures the runs too). For `example_project/` of each checkout, per round:
- hatch-pyaket cold: a fresh CARGO_TARGET_DIR and the plugin's blob cache emptied; kept: its downloads (uv),
  cargo's registry, the uv cache (a first, unmeasured build fills them);
- hatch-pyaket warm: the same project again after a one-line change;
- PyInstaller --onefile cold: the wheel built, a fresh venv with PyInstaller and the wheel (from uv's cache,
  filled by a first, unmeasured build), fresh work and config dirs, `--clean`.
Tools take turns in each round, so a machine that gets busier weighs on all of them. CPU time is the user +
system time of the whole process tree (less sensitive than wall time to other load on the machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python benchmarks/coldbuild.py`: import from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import clean_env  # noqa: E402

EDIT_FILE = "src/example_app/cli.py"


def timed(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Runs `cmd`; its wall time and the CPU time (user + system) of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        code = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{cmd[:4]} exited {code}; see {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class Checkout:
    def __init__(self, root: Path, work: Path) -> None:
        self.root = root.resolve()
        self.work = work
        self.project = self.work / "example_project"
        self.cache = self.work / "cache"
        self.target = self.work / "target"
        self.log = self.work / "build.log"

    def env(self) -> dict[str, str]:
        return clean_env(
            PYTHONPATH=str(self.root),
            HATCH_PYAKET_CACHE_DIR=str(self.cache),
            CARGO_TARGET_DIR=str(self.target),
            UV_CACHE_DIR=str(self.work.parent / "uv-cache"),
        )

    def build(self) -> tuple[float, float]:
        shutil.rmtree(self.project / "dist", ignore_errors=True)
        cmd = [sys.executable, "-m", "build", "--no-isolation", "--wheel", str(self.project)]
        return timed(cmd, self.log, self.env(), cwd=self.project)

    def prepare(self) -> None:
        self.work.mkdir(parents=True)
        shutil.copytree(self.root / "example_project", self.project, ignore=shutil.ignore_patterns("dist"))
        self.build()  # downloads (uv, crates): kept for the measured builds

    def cold(self) -> tuple[float, float]:
        shutil.rmtree(self.target, ignore_errors=True)
        shutil.rmtree(self.cache / "blobs", ignore_errors=True)
        return self.build()

    def warm(self, n: int) -> tuple[float, float]:
        path = self.project / EDIT_FILE
        path.write_text(path.read_text() + f"\n# edit {n}\n")
        return self.build()


def pyinstaller_cold(root: Path, work: Path, uv: str) -> tuple[float, float]:
    base = work / "pyinstaller"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    log = base / "build.log"
    env = clean_env(UV_CACHE_DIR=str(work / "uv-cache"), PYINSTALLER_CONFIG_DIR=str(base / "config"))
    project = base / "example_project"
    shutil.copytree(root / "example_project", project, ignore=shutil.ignore_patterns("dist"))
    pyproject = project / "pyproject.toml"
    # The same project without the pyaket hook (its table is the file's last).
    pyproject.write_text(pyproject.read_text().split("[tool.hatch.build.hooks.pyaket]")[0])
    entry = base / "entry.py"
    entry.write_text("import sys\nfrom example_app.cli import main\nsys.exit(main())\n")
    python = str(base / "env" / "bin" / "python")
    steps = [
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(base / "wheel"), str(project)],
        [uv, "venv", "--quiet", "--python", sys.executable, str(base / "env")],
    ]
    wall = cpu = 0.0
    for cmd in steps:
        w, c = timed(cmd, log, env, cwd=project)
        wall, cpu = wall + w, cpu + c
    (wheel,) = (base / "wheel").glob("*.whl")
    for cmd in (
        [uv, "pip", "install", "--quiet", "--python", python, "pyinstaller", str(wheel)],
        [python, "-m", "PyInstaller", "--onefile", "--noconfirm", "--clean", "--name", "example-app",
         "--distpath", str(base / "dist"), "--workpath", str(base / "work"), "--specpath", str(base), str(entry)],
    ):  # fmt: skip
        w, c = timed(cmd, log, env, cwd=base)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", type=Path, help="a hatch-pyaket checkout (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hatch-pyaket-coldbuild"))
    args = parser.parse_args()
    uv = shutil.which("uv") or ""
    if not uv:
        raise SystemExit("uv must be on PATH (it makes PyInstaller's venv)")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    checkouts = [Checkout(root, args.work / f"hatch-pyaket-{i}") for i, root in enumerate(args.checkout or [ROOT])]
    for checkout in checkouts:
        checkout.prepare()
    pyinstaller_cold(checkouts[0].root, args.work, uv)  # fills uv's cache with PyInstaller: not measured
    results: dict[str, list[tuple[float, float]]] = {}
    for n in range(args.rounds):
        for i, checkout in enumerate(checkouts):
            results.setdefault(f"hatch-pyaket cold [{i}]", []).append(checkout.cold())
            results.setdefault(f"hatch-pyaket warm [{i}]", []).append(checkout.warm(n))
        results.setdefault("PyInstaller --onefile cold", []).append(pyinstaller_cold(checkouts[0].root, args.work, uv))
        print(f"round {n + 1}: load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    pyi = statistics.median(w for w, _ in results["PyInstaller --onefile cold"])
    lines = [f"{'':28} {'wall (median)':>14} {'CPU (median)':>13}  wall / PyInstaller's  (rounds: wall s / CPU s)"]
    for name, values in results.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        each = ", ".join(f"{w:.1f}/{c:.1f}" for w, c in values)
        lines.append(f"{name:28} {wall:12.1f} s {cpu:11.1f} s  {wall / pyi:5.2f}x  ({each})")
    for i, checkout in enumerate(checkouts):
        lines.append(f"[{i}] = {checkout.root}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
