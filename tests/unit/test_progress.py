from __future__ import annotations

import sys

import pytest

from hatch_pyaket import progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_download_reports_each_quarter_and_its_end() -> None:
    lines: list[str] = []
    clock = Clock()
    shown = progress.Download("uv.whl", 4 << 20, lines.append, clock=clock)
    for _ in range(16):  # 256 KiB blocks, no time passing: only the quarter marks
        shown.add(256 << 10)
    clock.now = 2.5
    shown.finish()
    assert lines == [
        "pyaket: downloading uv.whl (4.0 MiB)",
        "pyaket:   uv.whl: 1.0 MiB of 4.0 MiB (25%)",
        "pyaket:   uv.whl: 2.0 MiB of 4.0 MiB (50%)",
        "pyaket:   uv.whl: 3.0 MiB of 4.0 MiB (75%)",
        "pyaket:   uv.whl: 4.0 MiB in 2.5 s",
    ]


def test_a_slow_download_without_a_length_reports_every_few_seconds() -> None:
    lines: list[str] = []
    clock = Clock()
    shown = progress.Download("python.tar.gz", None, lines.append, clock=clock)
    for second in range(1, 13):
        clock.now = float(second)
        shown.add(1 << 20)
    assert lines == [
        "pyaket: downloading python.tar.gz",
        "pyaket:   python.tar.gz: 5.0 MiB",
        "pyaket:   python.tar.gz: 10.0 MiB",
    ]


def test_a_download_without_report_is_silent() -> None:
    shown = progress.Download("x", 10, None)
    shown.add(10)
    shown.finish()


def test_cargo_lines_pass_through_and_silence_gets_a_heartbeat_naming_the_slow_crate(
    capfd: pytest.CaptureFixture[str],
) -> None:
    script = (
        "import sys, time\n"
        "print('   Compiling libc v0.2.1', file=sys.stderr, flush=True)\n"
        "print('   Compiling zstd-sys v2.0.15+zstd.1.5.7', file=sys.stderr, flush=True)\n"
        "time.sleep(2.6)\n"
        "print('    Finished release', file=sys.stderr, flush=True)\n"
        "sys.exit(3)\n"
    )
    reports: list[str] = []
    code = progress.run_with_heartbeat([sys.executable, "-c", script], {}, reports.append, interval=1.0)
    assert code == 3
    err = capfd.readouterr().err
    assert err.index("Compiling libc") < err.index("Compiling zstd-sys") < err.index("Finished release")
    assert 1 <= len(reports) <= 3, reports
    assert reports[0].startswith("pyaket: cargo still working (")
    assert "last started: zstd-sys v2.0.15+zstd.1.5.7 (compiling the zstd C library" in reports[0]


def test_a_chatty_command_gets_no_heartbeat() -> None:
    script = (
        "import sys, time\n"
        "for i in range(6):\n"
        "    print(f'   Compiling c{i} v1', file=sys.stderr, flush=True); time.sleep(0.3)\n"
    )
    reports: list[str] = []
    assert progress.run_with_heartbeat([sys.executable, "-c", script], {}, reports.append, interval=1.0) == 0
    assert reports == []
