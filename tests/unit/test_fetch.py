from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from hatch_pyaket import fetch
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import parse_target
from tests.localserver import serve

VERSION = "0.13.9"


def make_index(root: Path, files: dict[str, bytes], *, lie_about: str | None = None, html: bool = False) -> None:
    """A simple index for `uv` with the given wheel files (name -> uv binary content)."""
    project = root / "simple" / "uv"
    (root / "files").mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True)
    entries = []
    for name, binary in files.items():
        wheel = root / "files" / name
        exe = "uv.exe" if "win" in name else "uv"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"uv-{VERSION}.data/scripts/{exe}", binary)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if name == lie_about:
            digest = "0" * 64
        entries.append({"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": digest}})
    if html:
        links = "".join(f'<a href="{e["url"]}#sha256={e["hashes"]["sha256"]}">{e["filename"]}</a>' for e in entries)
        (project / "index.html").write_text(f"<html><body>{links}</body></html>")
    else:
        (project / "index.json").write_text(json.dumps({"meta": {"api-version": "1.0"}, "files": entries}))


WHEELS = {
    f"uv-{VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": b"linux-x86_64",
    f"uv-{VERSION}-py3-none-musllinux_1_1_x86_64.whl": b"musl-x86_64",
    f"uv-{VERSION}-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl": b"linux-aarch64",
    f"uv-{VERSION}-py3-none-win_amd64.whl": b"windows",
    f"uv-{VERSION}-py3-none-macosx_11_0_arm64.whl": b"macos-arm64",
    "uv-0.1.0-py3-none-win_amd64.whl": b"old",
}


@pytest.mark.parametrize("html", [False, True], ids=["json", "html"])
@pytest.mark.parametrize(
    ("triple", "content"),
    [
        ("x86_64-unknown-linux-gnu", b"linux-x86_64"),
        ("x86_64-unknown-linux-musl", b"musl-x86_64"),
        ("aarch64-unknown-linux-gnu.2.17", b"linux-aarch64"),
        ("x86_64-pc-windows-gnu", b"windows"),
        ("aarch64-apple-darwin", b"macos-arm64"),
    ],
)
def test_uv_binary_for_each_target_from_a_local_index(tmp_path: Path, triple: str, content: bytes, html: bool) -> None:
    make_index(tmp_path / "srv", WHEELS, html=html)
    with serve(tmp_path / "srv") as url:
        env = {"HATCH_PYAKET_INDEX_URL": f"{url}/simple", "HATCH_PYAKET_CACHE_DIR": str(tmp_path / "cache")}
        binary = fetch.uv_binary(parse_target(triple), VERSION, env)
    assert binary.read_bytes() == content
    assert binary.name == ("uv.exe" if "windows" in triple else "uv")
    assert binary.stat().st_mode & 0o111


def test_a_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    name = f"uv-{VERSION}-py3-none-win_amd64.whl"
    make_index(tmp_path / "srv", {name: b"windows"}, lie_about=name)
    with serve(tmp_path / "srv") as url:
        env = {"HATCH_PYAKET_INDEX_URL": f"{url}/simple", "HATCH_PYAKET_CACHE_DIR": str(tmp_path / "cache")}
        with pytest.raises(BuildError, match="does not match its published sha256"):
            fetch.uv_binary(parse_target("x86_64-pc-windows-msvc"), VERSION, env)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_no_wheel_for_the_target_names_the_fix(tmp_path: Path) -> None:
    make_index(tmp_path / "srv", {f"uv-{VERSION}-py3-none-win_amd64.whl": b"w"})
    with serve(tmp_path / "srv") as url:
        env = {"HATCH_PYAKET_INDEX_URL": f"{url}/simple", "HATCH_PYAKET_CACHE_DIR": str(tmp_path / "cache")}
        with pytest.raises(BuildError, match=r'uv 0.13.9 has no wheel for aarch64-apple-darwin.*uv = "path"'):
            fetch.uv_binary(parse_target("aarch64-apple-darwin"), VERSION, env)


def test_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    env = {"HATCH_PYAKET_INDEX_URL": "http://127.0.0.1:9/simple", "HATCH_PYAKET_CACHE_DIR": str(tmp_path)}
    with pytest.raises(BuildError, match=r"could not download http://127.0.0.1:9/simple/uv/.*HATCH_PYAKET_INDEX_URL"):
        fetch.uv_binary(parse_target("x86_64-unknown-linux-gnu"), VERSION, env)
