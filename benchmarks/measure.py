"""Measuring: running build steps and executables with their wall time and peak memory, and what a tool's
builds and runs gave (ToolResult); medians. Nothing here knows a tool or an app."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Environment that would change what a tool installs or where; removed for every build and run.
SCRUBBED = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CARGO_TARGET_DIR")
SCRUBBED_PREFIXES = ("PYAKET_", "PYAPP", "HATCH_PYAKET_", "UV_", "PIP_", "PYINSTALLER_")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class StepFailed(Exception):
    """A build or run that did not work; the message is the reason shown in the table."""


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
    out: int | IO[bytes] = subprocess.DEVNULL
    err: int | IO[bytes] = subprocess.DEVNULL
    files: list[IO[bytes]] = []
    if capture is not None:
        capture.parent.mkdir(parents=True, exist_ok=True)
        files = [open(capture.with_suffix(suffix), "w+b") for suffix in (".out", ".err")]  # noqa: SIM115
        out, err = files
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


@dataclass
class ToolResult:
    """What one tool's builds and runs of one app gave (or why it has no figures)."""

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


def keep_exe(exe: Path | None, destination: Path) -> Path:
    """A copy of the built executable that later builds cannot overwrite or delete."""
    if exe is None or not exe.is_file():
        raise StepFailed(f"the build made no executable at {exe}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, destination)
    return destination


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
