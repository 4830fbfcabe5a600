from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from hatch_pyaket import pythons
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import parse_target
from tests.localserver import serve

RELEASE = pythons.DEFAULT_PBS_RELEASE


def tiny_archive(label: str, windows: bool = False) -> bytes:
    """An install_only-shaped tar.gz whose interpreter file holds `label`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = "python/python.exe" if windows else "python/bin/python3"
        info = tarfile.TarInfo(member)
        info.size = len(label.encode())
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(label.encode()))
    return buffer.getvalue()


ASSETS = [
    ("3.12.5", "x86_64-unknown-linux-gnu", "install_only"),
    ("3.12.7", "x86_64-unknown-linux-gnu", "install_only"),
    ("3.12.7", "x86_64-unknown-linux-gnu", "install_only_stripped"),
    ("3.12.7", "x86_64_v3-unknown-linux-gnu", "install_only"),
    ("3.12.7", "x86_64-unknown-linux-gnu-freethreaded", "install_only"),
    ("3.13.1", "x86_64-unknown-linux-gnu", "install_only"),
    ("3.14.0rc2", "x86_64-unknown-linux-gnu", "install_only"),
    ("3.12.7", "aarch64-unknown-linux-gnu", "install_only"),
    ("3.12.7", "x86_64-unknown-linux-musl", "install_only"),
    ("3.12.5", "x86_64-pc-windows-msvc", "install_only"),
    ("3.12.7", "x86_64-pc-windows-msvc", "install_only"),
    ("3.13.1", "aarch64-apple-darwin", "install_only"),
    ("3.13.1", "ppc64le-unknown-linux-gnu", "install_only"),
]


def asset_name(version: str, triple: str, flavor: str) -> str:
    return f"cpython-{version}+{RELEASE}-{triple}-{flavor}.tar.gz"


def make_release(root: Path, *, wrong_sum_for: str | None = None) -> dict[str, bytes]:
    """A release folder `<root>/<RELEASE>/` with the assets, SHA256SUMS and some noise."""
    folder = root / RELEASE
    folder.mkdir(parents=True)
    contents: dict[str, bytes] = {}
    lines = []
    for version, triple, flavor in ASSETS:
        name = asset_name(version, triple, flavor)
        data = tiny_archive(name, windows="windows" in triple)
        (folder / name).write_bytes(data)
        contents[name] = data
        digest = "0" * 64 if name == wrong_sum_for else hashlib.sha256(data).hexdigest()
        lines.append(f"{digest}  {name}")
    noise = f"cpython-3.12.7+{RELEASE}-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst"
    lines.append(f"{'1' * 64}  {noise}")
    (folder / "SHA256SUMS").write_text("\n".join(sorted(lines, key=lambda line: line.split()[1])) + "\n")
    return contents


def env_for(url: str) -> dict[str, str]:
    return {"HATCH_PYAKET_PYTHON_MIRROR": url}


@pytest.mark.parametrize(
    ("target", "version", "expected"),
    [
        ("x86_64-unknown-linux-gnu", "3.12", asset_name("3.12.7", "x86_64-unknown-linux-gnu", "install_only_stripped")),
        ("x86_64-unknown-linux-gnu.2.28", "3.12.5", asset_name("3.12.5", "x86_64-unknown-linux-gnu", "install_only")),
        ("x86_64-unknown-linux-gnu", "3.13", asset_name("3.13.1", "x86_64-unknown-linux-gnu", "install_only")),
        ("x86_64-unknown-linux-gnu", "3.14.0rc2", asset_name("3.14.0rc2", "x86_64-unknown-linux-gnu", "install_only")),
        ("aarch64-unknown-linux-gnu.2.17", "3.12", asset_name("3.12.7", "aarch64-unknown-linux-gnu", "install_only")),
        ("x86_64-unknown-linux-musl", "3.12", asset_name("3.12.7", "x86_64-unknown-linux-musl", "install_only")),
        ("x86_64-pc-windows-msvc", "3.12", asset_name("3.12.7", "x86_64-pc-windows-msvc", "install_only")),
        ("x86_64-pc-windows-gnu", "3.12.5", asset_name("3.12.5", "x86_64-pc-windows-msvc", "install_only")),
        ("aarch64-apple-darwin", "3.13", asset_name("3.13.1", "aarch64-apple-darwin", "install_only")),
        ("powerpc64le-unknown-linux-gnu", "3.13", asset_name("3.13.1", "ppc64le-unknown-linux-gnu", "install_only")),
    ],
)
def test_the_right_archive_is_chosen_and_cached(tmp_path: Path, target: str, version: str, expected: str) -> None:
    contents = make_release(tmp_path / "srv")
    with serve(tmp_path / "srv") as url:
        archive = pythons.python_archive(
            "download", parse_target(target), version, cache=tmp_path / "cache", environ=env_for(url)
        )
    assert archive == tmp_path / "cache" / "pythons" / expected
    assert archive.read_bytes() == contents[expected]
    # Served again from the cache, even with the file gone from the mirror.
    (tmp_path / "srv" / RELEASE / expected).unlink()
    with serve(tmp_path / "srv") as url:
        again = pythons.python_archive(
            "download", parse_target(target), version, cache=tmp_path / "cache", environ=env_for(url)
        )
    assert again == archive


def test_a_wrong_checksum_fails_and_caches_nothing(tmp_path: Path) -> None:
    bad = asset_name("3.13.1", "aarch64-apple-darwin", "install_only")
    make_release(tmp_path / "srv", wrong_sum_for=bad)
    with serve(tmp_path / "srv") as url, pytest.raises(BuildError) as caught:
        pythons.python_archive(
            "download", parse_target("aarch64-apple-darwin"), "3.13", cache=tmp_path / "cache", environ=env_for(url)
        )
    message = str(caught.value)
    assert "does not match its published sha256" in message and "3.13.1" in message and "embed-python" in message
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_missing_version_lists_what_the_release_has(tmp_path: Path) -> None:
    make_release(tmp_path / "srv")
    with serve(tmp_path / "srv") as url, pytest.raises(BuildError) as caught:
        pythons.python_archive(
            "download", parse_target("x86_64-unknown-linux-gnu"), "3.10", cache=tmp_path / "c", environ=env_for(url)
        )
    message = str(caught.value)
    assert f"release {RELEASE} has no Python 3.10 for x86_64-unknown-linux-gnu" in message
    assert "it has 3.12.5, 3.12.7, 3.13.1, 3.14.0rc2 for it" in message
    assert "HATCH_PYAKET_PYTHON_RELEASE" in message and "embed-python" in message


def test_a_prerelease_is_only_taken_when_named(tmp_path: Path) -> None:
    make_release(tmp_path / "srv")
    with serve(tmp_path / "srv") as url, pytest.raises(BuildError, match=r"it has .*3.14.0rc2"):
        pythons.python_archive(
            "download", parse_target("x86_64-unknown-linux-gnu"), "3.14", cache=tmp_path / "c", environ=env_for(url)
        )


def test_a_target_without_builds_says_so(tmp_path: Path) -> None:
    make_release(tmp_path / "srv")
    with (
        serve(tmp_path / "srv") as url,
        pytest.raises(BuildError, match=r"i686-unknown-linux-musl\).*no build for it at all"),
    ):
        pythons.python_archive(
            "download", parse_target("i686-unknown-linux-musl"), "3.12", cache=tmp_path / "c", environ=env_for(url)
        )


def test_another_release_can_be_chosen(tmp_path: Path) -> None:
    make_release(tmp_path / "srv")
    shutil.move(tmp_path / "srv" / RELEASE, tmp_path / "srv" / "20990101")
    with serve(tmp_path / "srv") as url:
        env = {**env_for(url), "HATCH_PYAKET_PYTHON_RELEASE": "20990101"}
        archive = pythons.python_archive(
            "download", parse_target("x86_64-pc-windows-msvc"), "3.12", cache=tmp_path / "c", environ=env
        )
    assert archive.name == asset_name("3.12.7", "x86_64-pc-windows-msvc", "install_only")


@pytest.mark.parametrize("version", [">=3.9", "3", "three", ""])
def test_a_version_that_is_not_one_version_is_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(BuildError, match=r"like '3.12' or '3.12.7'"):
        pythons.choose([], parse_target("x86_64-unknown-linux-gnu"), version, RELEASE)


def test_an_unreachable_mirror_names_the_setting(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        pass  # the port is closed now
    with pytest.raises(BuildError, match="HATCH_PYAKET_PYTHON_MIRROR"):
        pythons.python_archive(
            "download", parse_target("x86_64-unknown-linux-gnu"), "3.12", cache=tmp_path / "c", environ=env_for(url)
        )


def test_a_local_archive_is_used_as_it_is(tmp_path: Path) -> None:
    local = tmp_path / "my-python.tar.gz"
    local.write_bytes(tiny_archive("mine"))
    assert (
        pythons.python_archive(
            str(local), parse_target("x86_64-unknown-linux-gnu"), "3.12", cache=tmp_path / "c", environ={}
        )
        == local
    )
    windows = tmp_path / "win.tar.gz"
    windows.write_bytes(tiny_archive("mine", windows=True))
    target = parse_target("x86_64-pc-windows-gnu")
    assert pythons.python_archive(str(windows), target, "3.12", cache=tmp_path / "c", environ={}) == windows
    assert not (tmp_path / "c").exists()


def test_a_missing_or_wrong_local_archive_is_refused(tmp_path: Path) -> None:
    linux = parse_target("x86_64-unknown-linux-gnu")
    with pytest.raises(BuildError, match=r"embed-python .*no such file"):
        pythons.python_archive(str(tmp_path / "nope.tar.gz"), linux, "3.12", cache=tmp_path / "c", environ={})
    zipped = tmp_path / "python.zip"
    zipped.write_bytes(b"PK")
    with pytest.raises(BuildError, match=r"embed-python .*not a \.tar\.gz"):
        pythons.python_archive(str(zipped), linux, "3.12", cache=tmp_path / "c", environ={})
    windows_build = tmp_path / "windows.tar.gz"
    windows_build.write_bytes(tiny_archive("win", windows=True))
    with pytest.raises(BuildError, match=r"holds no python/bin/python3"):
        pythons.python_archive(str(windows_build), linux, "3.12", cache=tmp_path / "c", environ={})
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not gzip")
    with pytest.raises(BuildError, match="not a readable"):
        pythons.python_archive(str(garbage), linux, "3.12", cache=tmp_path / "c", environ={})


def test_interpreter_path() -> None:
    assert pythons.interpreter_path(parse_target("x86_64-unknown-linux-gnu")) == "python/bin/python3"
    assert pythons.interpreter_path(parse_target("aarch64-apple-darwin")) == "python/bin/python3"
    assert pythons.interpreter_path(parse_target("x86_64-pc-windows-gnu")) == "python/python.exe"


def test_parse_sums_keeps_only_install_only_archives() -> None:
    text = "\n".join(
        [
            f"{'a' * 64}  cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz",
            f"{'b' * 64}  cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
            f"{'c' * 64}  cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-debug-full.tar.zst",
            f"{'d' * 64} *cpython-3.13.0+20241016-aarch64-apple-darwin-install_only.tar.gz",
            "garbage line",
        ]
    )
    assets = pythons.parse_sums(text)
    assert [(str(a.version), a.triple, a.flavor) for a in assets] == [
        ("3.12.7", "x86_64-unknown-linux-gnu", "install_only"),
        ("3.12.7", "x86_64-unknown-linux-gnu", "install_only_stripped"),
        ("3.13.0", "aarch64-apple-darwin", "install_only"),
    ]


@pytest.mark.skipif(
    sys.platform != "linux" or not sysconfig.get_config_var("Py_ENABLE_SHARED") or not shutil.which("patchelf"),
    reason="packs a shared-libpython Linux CPython with patchelf",
)
def test_the_relocatable_test_python_is_accepted_and_runs(tmp_path: Path) -> None:
    from tests.helpers_python import make_relocatable_python

    archive = make_relocatable_python(tmp_path / "archives")
    host = parse_target("x86_64-unknown-linux-gnu")
    assert pythons.python_archive(str(archive), host, "3.11", cache=tmp_path / "c", environ={}) == archive
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert not any("/site-packages/" in n or "/test/" in n or "__pycache__" in n for n in names)
    result = subprocess.run(
        [
            str(tmp_path / "unpacked" / pythons.interpreter_path(host)),
            "-c",
            "import ssl, sqlite3, json, sys; print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert result.stdout.strip() == str(tmp_path / "unpacked" / "python")
