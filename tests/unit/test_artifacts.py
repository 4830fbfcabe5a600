"""Placing executables (and checking they hold this build's payload) and merging the index files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hatch_pyaket import artifacts
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target

HASH = "ab" * 32
TARGET = Target("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu", None)


def _built(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "cargo" / "pyaket-launcher"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("offset", [0, (1 << 20) - 10, (1 << 20) + 5, 3 << 20])
def test_place_finds_the_payload_hash_anywhere(tmp_path: Path, offset: int) -> None:
    """Also across the 1 MiB blocks the file is read in."""
    content = b"\x7fELF" + b"x" * offset + HASH.encode() + b"y" * 1000
    destination = tmp_path / "dist" / "app-1.0-x86_64"
    placed = artifacts.place(_built(tmp_path, content), destination, payload_hash=HASH, label="x86_64 [app]")
    assert destination.read_bytes() == content
    assert os.access(destination, os.X_OK)
    assert placed.sha256 == hashlib.sha256(content).hexdigest() and placed.size == len(content)
    assert placed.identity == artifacts.file_identity(destination)


def test_place_refuses_an_executable_with_another_builds_payload(tmp_path: Path) -> None:
    destination = tmp_path / "dist" / "beta-2.0-x86_64"
    destination.parent.mkdir()
    destination.write_bytes(b"previous good build")
    other = _built(tmp_path, b"\x7fELF" + ("cd" * 32).encode() + b"z" * 5000)
    with pytest.raises(BuildError) as error:
        artifacts.place(other, destination, payload_hash=HASH, label="x86_64 [beta]")
    message = str(error.value)
    assert "the executable built for x86_64 [beta] does not embed this build's payload" in message
    assert HASH[:12] in message and "another build replaced" in message and "HATCH_PYAKET_CACHE_DIR" in message
    assert destination.read_bytes() == b"previous good build"
    assert sorted(p.name for p in destination.parent.iterdir()) == [destination.name]


def _artifact(folder: Path, name: str, content: bytes) -> artifacts.Artifact:
    source = folder.parent / f"built-{name}"
    source.write_bytes(content)
    placed = artifacts.place(source, folder / name)
    return artifacts.record(placed, TARGET, name, "cargo", python="3.12")


def test_indexes_merge_with_other_files_and_keep_their_lock_out_of_the_folder(tmp_path: Path) -> None:
    dist, cache = tmp_path / "dist", tmp_path / "cache"
    dist.mkdir()
    messages: list[str] = []
    first = _artifact(dist, "one", b"1")
    artifacts.write_indexes(dist, "app", "1.0", [first], cache=cache, report=messages.append)
    second = _artifact(dist, "two", b"22")
    artifacts.write_indexes(dist, "app", "1.0", [second], cache=cache, report=messages.append)
    sums = (dist / artifacts.CHECKSUMS).read_text().splitlines()
    assert sums == [f"{hashlib.sha256(b'1').hexdigest()}  one", f"{hashlib.sha256(b'22').hexdigest()}  two"]
    manifest = json.loads((dist / artifacts.MANIFEST).read_text())
    assert [item["file"] for item in manifest["executables"]] == ["one", "two"]
    assert sorted(p.name for p in dist.iterdir()) == sorted([artifacts.CHECKSUMS, "one", "two", artifacts.MANIFEST])
    (lock,) = (cache / "locks").iterdir()
    assert lock.name.startswith("output-")
    assert messages == []


def test_an_executable_replaced_by_another_build_is_left_to_that_build(tmp_path: Path) -> None:
    dist, cache = tmp_path / "dist", tmp_path / "cache"
    dist.mkdir()
    ours = _artifact(dist, "app", b"ours")
    theirs = _artifact(dist, "app", b"theirs!")  # placed after ours, same name
    messages: list[str] = []
    artifacts.write_indexes(dist, "app", "1.0", [theirs], cache=cache, report=messages.append)
    artifacts.write_indexes(dist, "app", "1.0", [ours], cache=cache, report=messages.append)  # ours, written last
    assert (dist / artifacts.CHECKSUMS).read_text() == f"{hashlib.sha256(b'theirs!').hexdigest()}  app\n"
    (entry,) = json.loads((dist / artifacts.MANIFEST).read_text())["executables"]
    assert entry["sha256"] == hashlib.sha256(b"theirs!").hexdigest() and entry["size"] == 7
    assert len(messages) == 1 and "was replaced by another build after this one placed it" in messages[0]
