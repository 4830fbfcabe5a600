"""Progress for the slow steps of a build: downloads, and cargo runs with long silent stretches.

Everything goes to `report` (the hook's `app.display_info`, i.e. stderr), one line at a time, so it
shows in `hatch build` and `python -m build` as it happens, and in `pip install -v`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

Report = Callable[[str], None]

# Seconds without a line from cargo before we say what it is still doing.
HEARTBEAT_SECONDS = 10.0
# Seconds between two download lines (besides the 25/50/75/100 % marks).
DOWNLOAD_INTERVAL = 5.0

_UNIT_RE = re.compile(r"^\s*(Compiling|Downloading|Downloaded|Updating|Locking|Checking)\s+(\S+(?: v\S+)?)")

# Units known to run long without a line, and why (shown in heartbeats).
_SLOW_UNITS = {
    "zstd-sys": "compiling the zstd C library, once per cargo target dir",
    "pyaket-payload": "checking the payload's manifest and frames (the plugin compressed them)",
    "pyaket-launcher": "optimizing and linking the executable with its payload",
}


def _describe(unit: str) -> str:
    name = unit.split(" ", 1)[0]
    why = _SLOW_UNITS.get(name)
    return f"{unit} ({why})" if why else unit


class Download:
    """Reports a download's progress: at 25/50/75/100 % and at most every DOWNLOAD_INTERVAL seconds."""

    def __init__(
        self, what: str, total: int | None, report: Report | None, *, clock: Callable[[], float] = time.monotonic
    ):
        self.what = what
        self.total = total if total and total > 0 else None
        self.report = report
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.last = self.started
        self.next_mark = 25
        if report:
            size = f" ({size_text(self.total)})" if self.total else ""
            report(f"pyaket: downloading {what}{size}")

    def add(self, count: int) -> None:
        self.done += count
        if not self.report:
            return
        now = self.clock()
        percent = min(100, self.done * 100 // self.total) if self.total else None
        if percent == 100:
            return  # the last line is `finish`'s
        mark = percent is not None and percent >= self.next_mark
        if mark or now - self.last >= DOWNLOAD_INTERVAL:
            while percent is not None and self.next_mark <= percent:
                self.next_mark += 25
            shown = (
                f"{size_text(self.done)} of {size_text(self.total or 0)} ({percent}%)"
                if percent is not None
                else size_text(self.done)
            )
            self.report(f"pyaket:   {self.what}: {shown}")
            self.last = now

    def finish(self) -> None:
        if self.report:
            seconds = self.clock() - self.started
            self.report(f"pyaket:   {self.what}: {size_text(self.done)} in {seconds:.1f} s")


def size_text(size: int) -> str:
    """A byte count as people read it: `12.9 MiB`, `816 KiB`."""
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size / 1024:.0f} KiB"


def run_with_heartbeat(
    command: Sequence[str],
    env: Mapping[str, str],
    report: Report,
    *,
    label: str = "cargo",
    interval: float = HEARTBEAT_SECONDS,
) -> int:
    """Run `command`, passing its stderr lines through as they come (cargo's "Compiling x" lines), and
    after `interval` seconds without a line, report what it is still busy with. Returns the exit code.

    Cargo prints a line when a crate starts, none while a long one (a C library, our payload's
    compression) runs, and shows no progress bar when stderr is not a terminal (as under a build
    frontend): without the heartbeat a cold build looks hung for most of a minute.
    """
    return Forwarded(command, env).wait(report, label=label, interval=interval)


class Forwarded:
    """A started command whose stderr lines are passed through as they come; `wait` adds the heartbeat."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            list(command), env=dict(env), stdout=sys.stderr, stderr=subprocess.PIPE, text=True, errors="replace"
        )
        self.started = time.monotonic()
        self._lock = threading.Lock()  # guards the two below, written by the reader thread
        self._last_line = self.started
        self._unit = ""  # what cargo last said it started: "compiling zstd-sys v2.1.2"
        self._reader = threading.Thread(target=self._forward, name="pyaket-cargo-stderr", daemon=True)
        self._reader.start()

    def _forward(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            match = _UNIT_RE.match(line)
            with self._lock:
                self._last_line = time.monotonic()
                if match:
                    self._unit = f"{match.group(1).lower()} {match.group(2)}"

    def wait(self, report: Report, *, label: str = "cargo", interval: float = HEARTBEAT_SECONDS) -> int:
        while True:
            try:
                code = self.process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                pass
            with self._lock:
                quiet = time.monotonic() - self._last_line
                unit = self._unit
            if quiet >= interval:
                if unit.startswith("compiling "):
                    doing = f"; last started: {_describe(unit.split(' ', 1)[1])}"
                else:
                    doing = f"; {unit}" if unit else ""
                report(f"pyaket: {label} still working ({time.monotonic() - self.started:.0f} s){doing}")
                with self._lock:
                    self._last_line = time.monotonic()
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        """Ends the command (the build it belongs to failed or was interrupted) and waits for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
