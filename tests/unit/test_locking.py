from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hatch_pyaket import locking
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import parse_target
from tests.localserver import serve


def make_wheel(folder: Path, name: str, requires: list[str], version: str = "1.0") -> Path:
    """A minimal wheel whose METADATA lists `requires` as Requires-Dist."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n\n")
        archive.writestr(
            f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{name}-{version}.dist-info/RECORD", "")  # uv reads it when resolving the wheel itself
    return wheel


def pins(lock_text: str) -> dict[str, str]:
    return {pin.name: pin.version for pin in locking.parse_lock(lock_text)}


# --- requirements of a wheel --------------------------------------------------------------------


def download(lock_text: str, triple: str, url: str, tmp_path: Path, out: str = "out") -> list[Path]:
    """download_wheels for Python 3.12 from the test index at `url`, with a shared cache."""
    return locking.download_wheels(
        lock_text, parse_target(triple), "3.12", tmp_path / out, index_url=f"{url}/simple", cache=tmp_path / "c"
    )


def test_wheel_requirements_drop_extras_only_ones(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "demo",
        [
            "colorama>=0.4",
            'six; python_version >= "3"',
            'pytest; extra == "test"',
            "coverage[toml]; python_version < '3.20' and extra == 'test'",
            'pywin32; sys_platform == "win32"',
            "colorama>=0.4",
        ],
    )
    assert locking.wheel_requirements(wheel) == [
        "colorama>=0.4",
        'six; python_version >= "3"',
        'pywin32; sys_platform == "win32"',
    ]


def test_a_wheel_without_dependencies_locks_to_nothing_without_running_uv(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", ['pytest; extra == "test"'])
    text = locking.lock(wheel, uv=tmp_path / "no-uv", python_version="3.12", target=None, index_url=None)
    assert text == ""
    assert locking.parse_lock(text) == []


# --- uv's platform names and the command line ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "platform"),
    [
        ("x86_64-unknown-linux-gnu", "x86_64-manylinux_2_17"),
        ("x86_64-unknown-linux-gnu.2.28", "x86_64-manylinux_2_28"),
        ("x86_64-unknown-linux-gnu.2.30", "x86_64-manylinux_2_28"),
        ("aarch64-unknown-linux-gnu.2.35", "aarch64-manylinux_2_35"),
        ("x86_64-unknown-linux-musl", "x86_64-unknown-linux-musl"),
        ("x86_64-pc-windows-gnu", "x86_64-pc-windows-msvc"),
        ("aarch64-pc-windows-msvc", "aarch64-pc-windows-msvc"),
        ("aarch64-apple-darwin", "aarch64-apple-darwin"),
        ("riscv64gc-unknown-linux-gnu", "riscv64-unknown-linux"),
        ("armv7-unknown-linux-gnueabihf", None),
        ("i686-unknown-linux-musl", None),
    ],
)
def test_uv_python_platform(target: str, platform: str | None) -> None:
    assert locking.uv_python_platform(parse_target(target)) == platform


def fake_uv(tmp_path: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
    """A uv stand-in that records its arguments and stdin, then answers as told."""
    script = tmp_path / "fake-uv"
    record = tmp_path / "uv-call.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'stdin': sys.stdin.read()}}, open({str(record)!r}, 'w'))\n"
        f"sys.stdout.write({stdout!r}); sys.stderr.write({stderr!r}); sys.exit({code})\n"
    )
    script.chmod(0o755)
    return script


def test_lock_command_line(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "demo", ["six", 'colorama; sys_platform == "win32"'])
    uv = fake_uv(tmp_path, stdout="six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    text = locking.lock(
        wheel,
        uv=uv,
        python_version="3.12",
        target=parse_target("x86_64-unknown-linux-gnu.2.28"),
        index_url="http://i/simple",
    )
    assert pins(text) == {"six": "1.17.0"}
    call = json.loads((tmp_path / "uv-call.json").read_text())
    argv = call["argv"]
    assert argv[:4] == ["pip", "compile", "-", "--no-config"]
    for flag in ("--generate-hashes", "--no-header"):
        assert flag in argv
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert argv[argv.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert argv[argv.index("--index-url") + 1] == "http://i/simple"
    assert "--universal" not in argv
    assert call["stdin"].splitlines() == ["six", 'colorama; sys_platform == "win32"']

    locking.lock(wheel, uv=uv, python_version="3.11", target=None, index_url=None)
    argv = json.loads((tmp_path / "uv-call.json").read_text())["argv"]
    assert "--universal" in argv and "--python-platform" not in argv and "--index-url" not in argv


def test_a_failed_resolution_names_uv_s_reason_and_the_setting(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "demo", ["nope>=99"])
    uv = fake_uv(
        tmp_path,
        stderr="warning: something minor\nerror: No solution found when resolving dependencies\n"
        "  cause: Because nope was not found in the package registry\n",
        code=1,
    )
    with pytest.raises(BuildError) as caught:
        locking.lock(wheel, uv=uv, python_version="3.12", target=parse_target("x86_64-pc-windows-msvc"), index_url=None)
    message = str(caught.value)
    assert "No solution found" in message and "nope was not found" in message
    assert "x86_64-pc-windows-msvc" in message and "lock = false" in message
    assert "warning: something minor" not in message


def test_host_uv_honours_the_environment(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path)
    assert locking.host_uv({"HATCH_PYAKET_UV": str(uv)}) == uv
    with pytest.raises(BuildError, match="HATCH_PYAKET_UV"):
        locking.host_uv({"HATCH_PYAKET_UV": str(tmp_path / "missing")})


# --- against PyPI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_uv() -> Path:
    return locking.host_uv()


@pytest.mark.network
def test_lock_against_pypi_for_a_target_and_universally(tmp_path: Path, real_uv: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", ["colorama>=0.4", "six", 'pytest; extra == "test"'])
    for target in (parse_target("x86_64-pc-windows-gnu"), parse_target("x86_64-unknown-linux-gnu"), None):
        text = locking.lock(wheel, uv=real_uv, python_version="3.12", target=target, index_url=None)
        entries = locking.parse_lock(text)
        assert {e.name for e in entries} == {"colorama", "six"}, text
        for entry in entries:
            assert f"{entry.name}=={entry.version}" in text.replace("\\\n", "")
            assert entry.hashes and all(len(h) == 64 for h in entry.hashes)
        assert "pytest" not in text


@pytest.mark.network
def test_an_unresolvable_dependency_fails_clearly_against_pypi(tmp_path: Path, real_uv: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", ["six>=999"])
    with pytest.raises(BuildError, match=r"(?s)six.*lock = false"):
        locking.lock(
            wheel, uv=real_uv, python_version="3.12", target=parse_target("x86_64-pc-windows-msvc"), index_url=None
        )


@pytest.mark.network
def test_a_lock_with_extras_has_their_dependencies_by_their_markers(tmp_path: Path, real_uv: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "demo",
        [
            "colorama>=0.4",
            'six; extra == "cli"',
            'idna; extra == "cli" and sys_platform == "win32"',
            'pytest; extra == "test"',
        ],
    )
    linux = locking.lock(
        wheel, uv=real_uv, python_version="3.12", target=parse_target("x86_64-unknown-linux-gnu"), index_url=None,
        extras=("cli",),
    )  # fmt: skip
    assert set(pins(linux)) == {"colorama", "six"}, linux
    windows = locking.lock(
        wheel, uv=real_uv, python_version="3.12", target=parse_target("x86_64-pc-windows-msvc"), index_url=None,
        extras=("cli",),
    )  # fmt: skip
    assert set(pins(windows)) == {"colorama", "six", "idna"}, windows
    universal = locking.lock(wheel, uv=real_uv, python_version="3.12", target=None, index_url=None, extras=("cli",))
    assert {pin.name: str(pin.marker) if pin.marker else "" for pin in locking.parse_lock(universal)} == {
        "colorama": "", "six": "", "idna": 'sys_platform == "win32"'
    }  # fmt: skip
    # The app itself is not pinned (the launcher adds its wheel by hash), nor its path written into the lock.
    assert str(tmp_path) not in universal and "demo" not in pins(universal)
    assert locking.count_pins(universal) == 3


def test_lock_command_line_with_extras(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "demo", ['six; extra == "cli"'])
    uv = fake_uv(tmp_path, stdout="")
    locking.lock(wheel, uv=uv, python_version="3.12", target=None, index_url=None, extras=("cli", "http2"))
    call = json.loads((tmp_path / "uv-call.json").read_text())
    assert call["stdin"] == f"demo[cli,http2] @ {wheel.resolve().as_uri()}\n"
    assert call["argv"][call["argv"].index("--no-emit-package") + 1] == "demo"


# --- wheels from a local index ------------------------------------------------------------------


def wheel_bytes(filename: str) -> bytes:
    """A distinct, valid zip per filename."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("content.txt", date_time=(1980, 1, 1, 0, 0, 0)), filename.encode())
    return buffer.getvalue()


PROJECTS: dict[str, list[str]] = {
    "purelib": ["purelib-1.0-py3-none-any.whl", "purelib-1.0.tar.gz", "purelib-0.9-py3-none-any.whl"],
    "multi": [
        "multi-2.0-py3-none-any.whl",
        "multi-2.0-py2.py3-none-any.whl",
        "multi-2.0-cp312-cp312-win_amd64.whl",
        "multi-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "multi-2.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "multi-2.0-cp312-cp312-macosx_11_0_arm64.whl",
        "multi-2.0-cp311-cp311-win_amd64.whl",
        "multi-2.0.tar.gz",
    ],
    "binonly": ["binonly-3.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "binonly-3.1.tar.gz"],
    "sdistonly": ["sdistonly-0.5.tar.gz"],
    "abi3": ["abi3-1.0-cp39-abi3-win_amd64.whl", "abi3-1.0-cp39-abi3-musllinux_1_1_x86_64.whl"],
}


def make_index(root: Path, *, lie: dict[str, str] | None = None, serve_other: set[str] = frozenset()) -> dict[str, str]:
    """Serve PROJECTS from `root`; return filename -> sha256 of the genuine files.

    `lie` maps a filename to the sha256 the index announces for it; a name in `serve_other` is
    served with different bytes than the ones the returned hashes describe.
    """
    (root / "files").mkdir(parents=True)
    digests: dict[str, str] = {}
    for project, filenames in PROJECTS.items():
        entries = []
        for filename in filenames:
            genuine = wheel_bytes(filename)
            digests[filename] = hashlib.sha256(genuine).hexdigest()
            served = wheel_bytes(filename + "-tampered") if filename in serve_other else genuine
            (root / "files" / filename).write_bytes(served)
            announced = (lie or {}).get(filename, hashlib.sha256(served).hexdigest())
            entries.append({"filename": filename, "url": f"../../files/{filename}", "hashes": {"sha256": announced}})
        folder = root / "simple" / project
        folder.mkdir(parents=True)
        (folder / "index.json").write_text(json.dumps({"meta": {"api-version": "1.0"}, "files": entries}))
    return digests


def lock_for(digests: dict[str, str], pinned: dict[str, str], markers: dict[str, str] | None = None) -> str:
    """A lock as uv writes it: every file of the pinned version hashed."""
    lines = []
    for name, version in sorted(pinned.items()):
        hashes = sorted(digests[f] for f in PROJECTS[name] if f"-{version}" in f)
        marker = f" ; {markers[name]}" if markers and name in markers else ""
        lines.append(f"{name}=={version}{marker} \\")
        lines += [f"    --hash=sha256:{h} \\" for h in hashes[:-1]] + [f"    --hash=sha256:{hashes[-1]}"]
        lines.append("    # via -r -")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("target", "python", "expected"),
    [
        ("x86_64-pc-windows-msvc", "3.12", "multi-2.0-cp312-cp312-win_amd64.whl"),
        ("x86_64-pc-windows-gnu", "3.11.4", "multi-2.0-cp311-cp311-win_amd64.whl"),
        ("x86_64-unknown-linux-gnu", "3.12", "multi-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        ("x86_64-unknown-linux-gnu.2.31", "3.12", "multi-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        ("aarch64-apple-darwin", "3.12", "multi-2.0-cp312-cp312-macosx_11_0_arm64.whl"),
        # No binary for these: the pure wheels tie on tags, and the filename decides.
        ("x86_64-unknown-linux-musl", "3.12", "multi-2.0-py2.py3-none-any.whl"),
        ("aarch64-unknown-linux-gnu", "3.13", "multi-2.0-py2.py3-none-any.whl"),
    ],
)
def test_the_most_specific_compatible_wheel_is_chosen(tmp_path: Path, target: str, python: str, expected: str) -> None:
    digests = make_index(tmp_path / "srv")
    lock_text = lock_for(digests, {"multi": "2.0", "purelib": "1.0"})
    with serve(tmp_path / "srv") as url:
        paths = locking.download_wheels(
            lock_text,
            parse_target(target),
            python,
            tmp_path / "out",
            index_url=f"{url}/simple",
            cache=tmp_path / "cache",
        )
    assert [p.name for p in paths] == [expected, "purelib-1.0-py3-none-any.whl"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([expected, "purelib-1.0-py3-none-any.whl"])
    for path in paths:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digests[path.name]


def test_same_inputs_give_the_same_files(tmp_path: Path) -> None:
    digests = make_index(tmp_path / "srv")
    lock_text = lock_for(digests, {"multi": "2.0", "purelib": "1.0", "abi3": "1.0"})
    results = []
    with serve(tmp_path / "srv") as url:
        for run in ("a", "b"):
            paths = locking.download_wheels(
                lock_text,
                parse_target("x86_64-unknown-linux-musl"),
                "3.12",
                tmp_path / run,
                index_url=f"{url}/simple",
                cache=tmp_path / f"cache-{run}",
            )
            results.append([(p.name, p.read_bytes()) for p in paths])
    assert results[0] == results[1]
    assert [name for name, _ in results[0]] == [
        "abi3-1.0-cp39-abi3-musllinux_1_1_x86_64.whl",
        "multi-2.0-py2.py3-none-any.whl",
        "purelib-1.0-py3-none-any.whl",
    ]


def test_markers_of_a_universal_lock_are_evaluated_for_the_target(tmp_path: Path) -> None:
    digests = make_index(tmp_path / "srv")
    lock_text = lock_for(digests, {"purelib": "1.0", "binonly": "3.1"}, markers={"binonly": "sys_platform == 'linux'"})
    with serve(tmp_path / "srv") as url:
        windows = download(lock_text, "x86_64-pc-windows-msvc", url, tmp_path, out="w")
        linux = download(lock_text, "x86_64-unknown-linux-gnu", url, tmp_path, out="l")
    assert [p.name for p in windows] == ["purelib-1.0-py3-none-any.whl"]
    assert [p.name for p in linux] == [
        "binonly-3.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "purelib-1.0-py3-none-any.whl",
    ]


def test_a_linux_only_binary_is_refused_for_windows_with_the_fix(tmp_path: Path) -> None:
    digests = make_index(tmp_path / "srv")
    lock_text = lock_for(digests, {"binonly": "3.1", "purelib": "1.0"})
    with serve(tmp_path / "srv") as url, pytest.raises(BuildError) as caught:
        download(lock_text, "x86_64-pc-windows-msvc", url, tmp_path)
    message = str(caught.value)
    assert "binonly 3.1" in message and "x86_64-pc-windows-msvc" in message
    assert "manylinux_2_17_x86_64" in message
    assert 'offline = false in [tool.hatch.build.hooks.pyaket.target."x86_64-pc-windows-msvc"]' in message


def test_an_sdist_only_dependency_is_refused(tmp_path: Path) -> None:
    digests = make_index(tmp_path / "srv")
    lock_text = lock_for(digests, {"sdistonly": "0.5"})
    with (
        serve(tmp_path / "srv") as url,
        pytest.raises(BuildError, match=r"sdistonly 0\.5 .*only sdistonly-0\.5\.tar\.gz.*offline = false"),
    ):
        download(lock_text, "x86_64-unknown-linux-gnu", url, tmp_path)


def test_a_file_whose_hash_is_not_in_the_lock_is_refused(tmp_path: Path) -> None:
    name = "purelib-1.0-py3-none-any.whl"
    digests = make_index(tmp_path / "srv", serve_other={name})  # honest index, other bytes than at lock time
    lock_text = lock_for(digests, {"purelib": "1.0"})
    with (
        serve(tmp_path / "srv") as url,
        pytest.raises(BuildError, match=r"which the lock does not list for purelib==1\.0"),
    ):
        download(lock_text, "x86_64-unknown-linux-gnu", url, tmp_path)
    assert not (tmp_path / "out" / name).exists()


def test_tampered_content_behind_a_listed_hash_is_refused_and_not_kept(tmp_path: Path) -> None:
    name = "purelib-1.0-py3-none-any.whl"
    genuine = hashlib.sha256(wheel_bytes(name)).hexdigest()
    digests = make_index(tmp_path / "srv", serve_other={name}, lie={name: genuine})  # index claims the locked hash
    lock_text = lock_for(digests, {"purelib": "1.0"})
    with serve(tmp_path / "srv") as url, pytest.raises(BuildError, match="does not match"):
        download(lock_text, "x86_64-unknown-linux-gnu", url, tmp_path)
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "out" / name).exists()


def test_an_unpinned_lock_is_refused() -> None:
    with pytest.raises(BuildError, match="not pinned"):
        locking.parse_lock("six>=1.0 --hash=sha256:" + "a" * 64 + "\n")
    with pytest.raises(BuildError, match="not pinned"):
        locking.parse_lock("six==1.17.0\n")


@pytest.mark.network
def test_downloaded_wheels_install_offline_with_uv(tmp_path: Path, real_uv: Path) -> None:
    """The end of the chain: lock on PyPI, fetch for the host, install with --no-index --require-hashes."""
    wheel = make_wheel(tmp_path / "w", "demo", ["six", "colorama>=0.4"])
    host = parse_target("x86_64-unknown-linux-gnu")
    if os.uname().machine != "x86_64":
        pytest.skip("checks an install on an x86_64 Linux host")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lock_text = locking.lock(wheel, uv=real_uv, python_version=version, target=host, index_url=None)
    paths = locking.download_wheels(
        lock_text, host, version, tmp_path / "wheels", index_url="https://pypi.org/simple", cache=tmp_path / "cache"
    )
    assert sorted(p.name.split("-")[0] for p in paths) == ["colorama", "six"]
    (tmp_path / "requirements.txt").write_text(lock_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    subprocess.run(
        [str(real_uv), "venv", "--no-config", "--python", sys.executable, str(tmp_path / "venv")],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [
            str(real_uv),
            "pip",
            "install",
            "--no-config",
            "--python",
            str(tmp_path / "venv" / "bin" / "python"),
            "--no-index",
            "--find-links",
            str(tmp_path / "wheels"),
            "--require-hashes",
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
