from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from hatch_pyaket import compress
from hatch_pyaket.errors import BuildError
from hatch_pyaket.payload import PayloadSpec, stage, staged_file


def spec(tmp_path: Path, **changes: object) -> PayloadSpec:
    wheel = tmp_path / "app-1.0-py3-none-any.whl"
    uv = tmp_path / "uv"
    if not wheel.exists():
        wheel.write_bytes(b"wheel")
        uv.write_bytes(b"uv binary")
    base: dict[str, object] = dict(
        app="app", version="1.0", install_name="app", vendor="pyaket", target="x86_64-unknown-linux-gnu",
        entry_kind="script", entry_value="app.cli:main", python="3.11", wheel=wheel, uv=uv,
        uv_version="0.13.9", self_command="self", keep_versions=2, gui=False,
    )  # fmt: skip
    base.update(changes)
    return PayloadSpec(**base)  # type: ignore[arg-type]


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_stage_writes_manifest_frames_and_blobs(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    data = stage(spec(tmp_path), folder, zstd_level=3)
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == data
    assert data["files"]["uv"]["executable"] is True  # type: ignore[index]
    assert data["files"]["app-1.0-py3-none-any.whl"]["size"] == 5  # type: ignore[index]
    frames = json.loads((folder / "frames.json").read_text())
    assert sorted(frames["files"]) == ["app-1.0-py3-none-any.whl", "uv"]
    blobs = [frames["files"][key]["blob"] for key in sorted(frames["files"])]
    assert files_in(folder) == sorted(["frames.json", "manifest.json", *blobs, *(b + ".json" for b in blobs)])
    assert staged_file(folder, "uv") == b"uv binary"
    assert staged_file(folder, "app-1.0-py3-none-any.whl") == b"wheel"


def test_unchanged_payload_is_not_rewritten(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    stage(spec(tmp_path), folder, zstd_level=3)
    stamps = files_in(folder)
    for name in stamps:
        os.utime(folder / name, ns=(1, 1))
    stage(spec(tmp_path), folder, zstd_level=3)
    assert {name: (folder / name).stat().st_mtime_ns for name in files_in(folder)} == {name: 1 for name in stamps}


def test_shared_blobs_come_from_the_cache_and_only_uv_is_shared(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stage(spec(tmp_path), tmp_path / "a", blob_cache=cache, zstd_level=3)
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) == 2 and cached[0].startswith(hashlib.sha256(b"uv binary").hexdigest())  # blob + record
    # A damaged cache entry is not used: compressed again, and still right.
    (cache / cached[0]).write_bytes(b"garbage")
    stage(spec(tmp_path), tmp_path / "b", blob_cache=cache, zstd_level=3)
    assert staged_file(tmp_path / "b", "uv") == b"uv binary"
    # An emptied cache is filled again from what a target dir has staged.
    shutil.rmtree(cache)
    stage(spec(tmp_path), tmp_path / "b", blob_cache=cache, zstd_level=3)
    assert sorted(p.name for p in cache.iterdir()) == cached


def test_frames_are_an_even_number_of_equal_parts_and_deterministic(tmp_path: Path) -> None:
    assert compress.frame_sizes(0) == [0]
    assert compress.frame_sizes(compress.FRAME_BYTES) == [compress.FRAME_BYTES]
    assert compress.frame_sizes(compress.FRAME_BYTES + 1) == [compress.FRAME_BYTES // 2 + 1, compress.FRAME_BYTES // 2]
    uv_like = compress.frame_sizes(5 * compress.FRAME_BYTES - 3)  # 5 parts would do; 6 split evenly over 2 cores
    assert len(uv_like) == 6 and sum(uv_like) == 5 * compress.FRAME_BYTES - 3 and max(uv_like) - min(uv_like) == 1
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * (compress.FRAME_BYTES // 256 + 7))
    source = compress.Source("big", big, share=False)
    one = compress.embed([source], tmp_path / "one", zstd_level=1, cache=None)["big"]
    two = compress.embed([source], tmp_path / "two", zstd_level=1, cache=None)["big"]
    assert len(one.frames) == 2 and one == two
    assert (tmp_path / "one" / one.name).read_bytes() == (tmp_path / "two" / two.name).read_bytes()
    assert compress.decompress(tmp_path / "one", one) == big.read_bytes()


def test_zstd_level_comes_from_the_environment_and_is_checked() -> None:
    assert compress.level({}) == compress.DEFAULT_LEVEL
    assert compress.level({"PYAKET_ZSTD_LEVEL": "3"}) == 3
    with pytest.raises(BuildError, match=r"PYAKET_ZSTD_LEVEL='23' is not a zstd level; set it to a level from 1 to 22"):
        compress.level({"PYAKET_ZSTD_LEVEL": "23"})


def test_install_identity_ignores_the_entry_but_not_the_wheel(tmp_path: Path) -> None:
    first = stage(spec(tmp_path), tmp_path / "a", zstd_level=3)
    other_entry = stage(spec(tmp_path, entry_value="app.other:main"), tmp_path / "b", zstd_level=3)
    assert first["payload_hash"] == other_entry["payload_hash"]
    (tmp_path / "app-1.0-py3-none-any.whl").write_bytes(b"rebuilt wheel")
    rebuilt = stage(spec(tmp_path), tmp_path / "c", zstd_level=3)
    assert rebuilt["payload_hash"] != first["payload_hash"]


def test_stale_files_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    stage(spec(tmp_path), folder, zstd_level=3)
    stage(spec(tmp_path, uv=None), folder, zstd_level=3)
    assert [name for name in files_in(folder) if not name.startswith("blobs/")] == ["frames.json", "manifest.json"]
    assert len(files_in(folder)) == 4  # the wheel's blob and its record


def test_extras_are_in_the_manifest_and_the_install_identity(tmp_path: Path) -> None:
    plain = stage(spec(tmp_path), tmp_path / "a", zstd_level=3)
    assert plain["extras"] == []
    with_cli = stage(spec(tmp_path, extras=("cli",)), tmp_path / "b", zstd_level=3)
    assert with_cli["extras"] == ["cli"]
    assert with_cli["payload_hash"] != plain["payload_hash"]  # another install: other packages in the venv
