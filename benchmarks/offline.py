"""Default vs offline executables: size and first-run time, to show what embedding the dependencies costs and saves.

    python benchmarks/offline.py [--runs N]

Builds `example_project` three ways with the plugin installed in this Python:
default (locked, uv embedded), `offline = true` (+ the dependency wheels), and offline with an
embedded Python (a relocatable copy of this machine's CPython, packed like python-build-standalone's
install_only archives; see tests/helpers_python.py). Each first run uses a fresh install root and
a fresh uv cache, so the default one pays its dependency download, as a user's would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.example import copy_example  # noqa: E402
from tests.helpers_python import make_relocatable_python  # noqa: E402

VARIANTS: dict[str, dict[str, object]] = {
    "default (locked)": {},
    "offline": {"python": "3.11", "offline": True},
    "offline + embedded Python": {"python": "3.11", "offline": True, "embed-python": "{archive}"},
}


def build(work: Path, name: str, settings: dict[str, object]) -> Path:
    folder = name.replace(" ", "_").replace("+", "and").replace("(", "").replace(")", "")
    project = copy_example(work, folder, hook=settings)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", str(project)],
        check=True,
        capture_output=True,
    )
    (exe,) = [p for p in (project / "dist").glob("example-app-*") if p.suffix != ".whl"]
    return exe


def first_run(exe: Path, work: Path) -> float:
    root = Path(tempfile.mkdtemp(dir=work))
    env = {**os.environ, "PYAKET_INSTALL_DIR": str(root / "apps"), "UV_CACHE_DIR": str(root / "uv-cache")}
    started = time.perf_counter()
    subprocess.run([str(exe), "x"], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyaket-offline-bench-") as scratch:
        work = Path(scratch)
        archive = make_relocatable_python(work / "python")
        rows = []
        for name in VARIANTS:
            settings = {k: str(archive) if v == "{archive}" else v for k, v in VARIANTS[name].items()}
            exe = build(work, name, settings)
            times = [first_run(exe, work) for _ in range(args.runs)]
            rows.append((name, exe.stat().st_size, statistics.median(times)))
        base_size, base_time = rows[0][1], rows[0][2]
        print(f"{'executable':28} {'size':>12} {'first run':>12}   (median of {args.runs}, fresh uv cache)")
        for name, size, seconds in rows:
            print(
                f"{name:28} {size / 2**20:8.1f} MiB {seconds:9.2f} s   "
                f"size {size / base_size:.2f}x, first run {seconds / base_time:.2f}x"
            )


if __name__ == "__main__":
    main()
