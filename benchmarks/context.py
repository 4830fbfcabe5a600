"""One benchmark run's shared state: its folders, the clean environment every build and run gets, the uv
and tool venvs it uses, the versions and notes the report prints, and the app's wheel (what every peer
packages)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.apps import App
from benchmarks.measure import StepFailed, capture, clean_env, host_triple, importable, log, run_logged

ROOT = Path(__file__).resolve().parent.parent


class Context:
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
        self.launcher: dict[str, object] = {}  # the launcher's own figures (report.launcher_lines)
        self.wheel_times: dict[str, list[float]] = {}
        self.resources = contextlib.ExitStack()  # servers and the like, open until the run ends

    def close(self) -> None:
        self.resources.close()

    def over_budget(self) -> bool:
        return (time.monotonic() - self.started) / 60 > self.args.budget

    def env(self, **extra: str | None) -> dict[str, str]:
        return clean_env(UV_CACHE_DIR=str(self.uv_cache), **extra)

    def plugin_env(self, **extra: str) -> dict[str, str]:
        """Builds import hatch_pyaket from the checkout this script is in, with the run's own plugin cache."""
        return self.env(PYTHONPATH=str(ROOT), HATCH_PYAKET_CACHE_DIR=str(self.plugin_cache), **extra)

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

    # ---- the app's wheel

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
