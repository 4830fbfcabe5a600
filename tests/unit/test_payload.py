from __future__ import annotations

import json
import os
from pathlib import Path

from hatch_pyaket.payload import PayloadSpec, stage


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


def test_stage_writes_manifest_and_files(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    data = stage(spec(tmp_path), folder)
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == data
    assert sorted(p.name for p in folder.iterdir()) == ["app-1.0-py3-none-any.whl", "manifest.json", "uv"]
    assert data["files"]["uv"]["executable"] is True  # type: ignore[index]
    assert data["files"]["app-1.0-py3-none-any.whl"]["size"] == 5  # type: ignore[index]


def test_unchanged_payload_is_not_rewritten(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    stage(spec(tmp_path), folder)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    for p in folder.iterdir():
        os.utime(p, ns=(1, 1))
    stage(spec(tmp_path), folder)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == {name: 1 for name in stamps}


def test_install_identity_ignores_the_entry_but_not_the_wheel(tmp_path: Path) -> None:
    first = stage(spec(tmp_path), tmp_path / "a")
    other_entry = stage(spec(tmp_path, entry_value="app.other:main"), tmp_path / "b")
    assert first["payload_hash"] == other_entry["payload_hash"]
    (tmp_path / "app-1.0-py3-none-any.whl").write_bytes(b"rebuilt wheel")
    rebuilt = stage(spec(tmp_path), tmp_path / "c")
    assert rebuilt["payload_hash"] != first["payload_hash"]


def test_stale_files_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    stage(spec(tmp_path), folder)
    stage(spec(tmp_path, uv=None), folder)
    assert sorted(p.name for p in folder.iterdir()) == ["app-1.0-py3-none-any.whl", "manifest.json"]


def test_extras_are_in_the_manifest_and_the_install_identity(tmp_path: Path) -> None:
    plain = stage(spec(tmp_path), tmp_path / "a")
    assert plain["extras"] == []
    with_cli = stage(spec(tmp_path, extras=("cli",)), tmp_path / "b")
    assert with_cli["extras"] == ["cli"]
    assert with_cli["payload_hash"] != plain["payload_hash"]  # another install: other packages in the venv
