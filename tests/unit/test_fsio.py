"""Atomic writes and the inter-process lock, with real processes holding and dying with the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hatch_pyaket import fsio
from hatch_pyaket.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_atomic_sets_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "file.txt"
    fsio.write_atomic(path, "héllo\n", mode=0o640)
    assert path.read_bytes() == "héllo\n".encode()
    assert path.stat().st_mode & 0o777 == 0o640
    assert _leftovers(path.parent) == []


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), fsio.replacing(path) as pending:
        pending.file.write(b"half of the new")
        raise RuntimeError("midway")
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_copy_check_can_refuse_the_copy(tmp_path: Path) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.write_bytes(b"new content")
    destination.write_bytes(b"old content")
    seen: list[bytes] = []

    def refuse(temp: Path) -> None:
        seen.append(temp.read_bytes())
        raise ValueError("not this one")

    with pytest.raises(ValueError):
        fsio.copy_atomic(source, destination, check=refuse)
    assert seen == [b"new content"]  # the check saw the whole copy
    assert destination.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_write_if_changed_keeps_an_identical_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    assert fsio.write_if_changed(path, b"{}") is True
    before = path.stat()
    assert fsio.write_if_changed(path, b"{}") is False
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_ino == before.st_ino
    assert fsio.write_if_changed(path, b"[]") is True
    assert path.read_bytes() == b"[]"


def test_concurrent_writers_never_mix_their_content(tmp_path: Path) -> None:
    """Writers sharing one destination used to share one `.name.tmp`: a reader could see a mix."""
    path = tmp_path / "shared.bin"
    contents = [bytes([i]) * 300_000 for i in range(8)]
    stop = threading.Event()
    torn: list[int] = []

    def write(content: bytes) -> None:
        for _ in range(10):
            fsio.write_atomic(path, content)

    def read() -> None:
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if data not in contents:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(c,)) for c in contents]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert torn == []
    assert path.read_bytes() in contents
    assert _leftovers(tmp_path) == []


def test_link_or_copy_replaces_the_destination(tmp_path: Path) -> None:
    source, destination = tmp_path / "a.whl", tmp_path / "wheels" / "a.whl"
    source.write_bytes(b"wheel")
    destination.parent.mkdir()
    destination.write_bytes(b"stale")
    fsio.link_or_copy(source, destination)
    assert destination.read_bytes() == b"wheel"
    assert _leftovers(destination.parent) == []


def test_replace_folder_keeps_the_first_one_in_place(tmp_path: Path) -> None:
    destination = tmp_path / "template" / "abc"

    def fill(text: str):  # type: ignore[no-untyped-def]
        return lambda folder: (folder / "Cargo.toml").write_text(text)

    assert fsio.replace_folder(fill("first"), destination) is True
    assert fsio.replace_folder(fill("second"), destination) is False
    assert (destination / "Cargo.toml").read_text() == "first"
    assert _leftovers(destination.parent) == []


def _holder_process(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the lock, says so, holds it `seconds`, then exits."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from hatch_pyaket import fsio
        with fsio.locked(Path({str(lock)!r}), what="the thing", doing="building holder-app 9.9"):
            print("held", flush=True)
            time.sleep({seconds})
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_waiting_build_names_the_holder_and_reports_progress(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "build.lock"
    holder = _holder_process(lock, 1.5)
    messages: list[str] = []
    started = time.monotonic()
    with fsio.locked(
        lock, what="the cargo target dir X", doing="building me", report=messages.append, progress_every=0.5
    ):
        waited = time.monotonic() - started
        assert fsio.holder(lock) == f"pid {os.getpid()}: building me"
    holder.wait(timeout=10)
    assert waited >= 1.0, "the lock did not keep this build waiting"
    assert messages[0].startswith("pyaket: waiting for the cargo target dir X, in use by ")
    assert f"pid {holder.pid}: building holder-app 9.9" in messages[0]
    assert any(m.startswith("pyaket: still waiting for the cargo target dir X after ") for m in messages[1:-1])
    assert messages[-1].startswith("pyaket: got the cargo target dir X after ")
    assert fsio.holder(lock) == ""  # released: nobody named as holder


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    holder = _holder_process(lock, 600)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    messages: list[str] = []
    started = time.monotonic()
    with fsio.locked(lock, what="the thing", report=messages.append):
        pass
    assert time.monotonic() - started < 5
    assert not any(m.startswith("pyaket: still waiting") for m in messages)


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    inside = 0
    overlaps: list[int] = []
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside
        for _ in range(5):
            with fsio.locked(lock, what="the thing"):
                with guard:
                    inside += 1
                    overlaps.append(inside)
                time.sleep(0.01)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1


def test_an_unusable_lock_file_is_a_clear_build_error(tmp_path: Path) -> None:
    blocker = tmp_path / "target"
    blocker.write_text("a file where the target dir should be")
    with pytest.raises(BuildError) as error, fsio.locked(blocker / ".pyaket-build.lock", what="the cargo target dir"):
        pass
    assert str(error.value).startswith(
        f"cannot open the lock file {blocker / '.pyaket-build.lock'} that guards the cargo"
    )
