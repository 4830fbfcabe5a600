"""Trust faults on real executables: install dirs other users can write to, a tampered executable, modified
installed files. The example is built once for the module; every test works on its own install root or copy."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hatch_pyaket.fetch import cache_dir
from hatch_pyaket.pipeline import target_dir
from tests.e2e.helpers import HOST_TRIPLE, build, installed_versions, manage, run
from tests.example import copy_example

pytestmark = pytest.mark.e2e

# Distinct strings, so that the test finds each exactly once in the executable.
VENDOR = "trustvendor"
PYTHON = ">=3.9.1"
ENTRY = "example_app.cli:main"
OTHER_USER = "pyaket-trust-other"


def installed(root: Path) -> list[Path]:
    return installed_versions(root, vendor=VENDOR)


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("trust"), hook={"vendor": VENDOR, "python": PYTHON})
    build(project, "--wheel")
    return project / "dist" / f"example-app-1.0.0-{HOST_TRIPLE}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fine install root: ours, 0755."""
    path = tmp_path / "apps"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


def info(exe: Path, root: Path) -> dict[str, str]:
    result = manage(exe, "info", install_root=root)
    assert result.returncode == 0, result.stderr
    return {line[:13].strip(): line[13:] for line in result.stdout.splitlines()}


def plant(exe: Path, root: Path, sentinel: Path) -> None:
    """What an attacker with write access to `root` leaves: an installed-looking venv whose python writes
    `sentinel`, and a shared uv of the right size doing the same."""
    shown = info(exe, root)
    version_dir = Path(shown["install dir"])
    python = version_dir / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    script = f"#!/bin/sh\necho pwned >> {sentinel}\n"
    python.write_text(script)
    python.chmod(0o755)
    (version_dir / ".pyaket-installed").write_text("planted\n")
    uv = Path(re.search(r"unpacked once into (.+)\)", shown["uv"])[1])  # type: ignore[index]
    size = int(re.search(r"(?m)^ok    uv \((\d+) bytes\)", manage(exe, "check", install_root=root).stdout)[1])  # type: ignore[index]
    uv.parent.mkdir(parents=True)
    uv.write_bytes(script.encode().ljust(size, b"#"))
    uv.chmod(0o755)


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, *fix: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "refusing to use " in result.stderr and str(path) in result.stderr, result.stderr
    for text in fix:
        assert text in result.stderr, result.stderr


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o1777])
def test_a_root_others_can_write_is_refused_and_nothing_runs_from_it(
    exe: Path, root: Path, tmp_path: Path, mode: int
) -> None:
    sentinel = tmp_path / "pwned"
    plant(exe, root, sentinel)
    root.chmod(mode)
    for command in ("", "restore"):  # an empty PYAKET_SELF runs the app
        result = manage(exe, command, install_root=root)
        assert_refused(result, root, f"mode {mode:04o}", f"chmod go-w {root}", "PYAKET_INSTALL_DIR")
    checked = manage(exe, "check", install_root=root)
    assert checked.returncode == 1 and f"FAIL  install dirs: refusing to use the install root {root}" in checked.stdout
    # Without the planted venv, a first run would start the planted uv: refused too.
    shutil.rmtree(next(root.glob(f"{VENDOR}/example-app/1.0.0-*")))
    assert_refused(run(exe, [], install_root=root), root, "chmod go-w")
    assert not sentinel.exists()


def test_a_parent_others_can_write_is_refused_unless_sticky(exe: Path, tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    root = parent / "apps"
    root.mkdir(mode=0o755)
    sentinel = tmp_path / "pwned"
    plant(exe, root, sentinel)
    parent.chmod(0o777)
    result = run(exe, [], install_root=root)
    assert_refused(result, parent, "a parent directory of the install root", f"chmod go-w {parent}")
    assert not sentinel.exists()


@pytest.fixture
def other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root: chown to another user")
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not available to create another user")
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER], check=True)
    return pwd.getpwnam(OTHER_USER)


def test_dirs_owned_by_another_user_are_refused(
    exe: Path, root: Path, tmp_path: Path, other_user: pwd.struct_passwd
) -> None:
    sentinel = tmp_path / "pwned"
    plant(exe, root, sentinel)
    os.chown(root, other_user.pw_uid, other_user.pw_gid)
    result = run(exe, [], install_root=root)
    assert_refused(result, root, f"owned by another user (uid {other_user.pw_uid}", "PYAKET_INSTALL_DIR")
    # The root is ours, but the app dir in it is not (created by the other user).
    os.chown(root, 0, 0)
    app_dir = root / VENDOR / "example-app"
    os.chown(app_dir, other_user.pw_uid, other_user.pw_gid)
    assert_refused(run(exe, [], install_root=root), app_dir, "owned by another user")
    # Same for the shared uv's dir.
    os.chown(app_dir, 0, 0)
    shutil.rmtree(app_dir)
    os.chown(root / ".pyaket" / "uv", other_user.pw_uid, other_user.pw_gid)
    assert_refused(run(exe, [], install_root=root), root / ".pyaket" / "uv", "owned by another user")
    assert not sentinel.exists() and installed(root) == []


def test_a_fine_root_works_and_gets_no_group_or_other_write_whatever_the_umask(exe: Path, root: Path) -> None:
    env = {**os.environ, "PYAKET_INSTALL_DIR": str(root)}
    first = subprocess.run(
        ["sh", "-c", 'umask 000; exec "$0" "$@"', str(exe), "hello"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("example-app 1.0.0 ")
    # uv makes its lock files (venv/.lock) writable by all on purpose; they hold no code.
    writable = [
        str(p)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & 0o022 and p.name != ".lock"
    ]
    assert writable == [], writable
    (version_dir,) = installed(root)
    assert oct(version_dir.stat().st_mode & 0o777) == oct(0o755)
    warm = run(exe, ["again"], install_root=root)
    assert warm.returncode == 0 and "installing into" not in warm.stderr
    assert manage(exe, "check", install_root=root).returncode == 0


# --- A tampered executable --------------------------------------------------------------------------------


def payload_dir(exe: Path) -> Path:
    """The staged payload (manifest.json + files) that `exe` embeds (the folder is the target's; other
    tests sharing the cache stage other targets, e.g. `x86_64-unknown-linux-gnu.2.17`, beside it)."""
    folder = target_dir(os.environ, cache_dir()) / "pyaket-payload" / HOST_TRIPLE
    payload_hash = json.loads((folder / "manifest.json").read_text())["payload_hash"]
    assert payload_hash.encode() in exe.read_bytes(), "the staged payload is not the one this executable embeds"
    return folder


def frame_table(staged: Path, key: str) -> dict[str, object]:
    """How the plugin embedded file `key` (frames.json: its blob and frames)."""
    return json.loads((staged / "frames.json").read_text())["files"][key]  # type: ignore[no-any-return]


def compressed_wheel(staged: Path, manifest: dict[str, object]) -> bytes:
    return (staged / str(frame_table(staged, str(manifest["wheel"]))["blob"])).read_bytes()


def flipped(exe: Path, copy: Path, needle: bytes, at: int, *, text: bool) -> Path:
    """A copy of `exe` with the byte at `needle` + `at` changed: to another digit inside text (so hex stays
    hex and a name stays a usable folder name), else to another byte."""
    data = bytearray(exe.read_bytes())
    assert data.count(needle) == 1, f"{needle[:40]!r} occurs {data.count(needle)} times in {exe}"
    i = data.index(needle) + at
    data[i] = (ord("0") if data[i] != ord("0") else ord("1")) if text else data[i] ^ 0x55
    copy.write_bytes(bytes(data))
    copy.chmod(0o755)
    return copy


def tampered_cases(exe: Path) -> dict[str, tuple[bytes, int, str]]:
    staged = payload_dir(exe)
    manifest = json.loads((staged / "manifest.json").read_text())
    frame0 = frame_table(staged, manifest["uv"])["frames"][0]["sha256"].encode()  # type: ignore[index]
    blob = compressed_wheel(staged, manifest)
    return {
        # name: (bytes to find, offset of the byte to flip, what `self check` must name)
        "entry": (ENTRY.encode(), len(ENTRY) - 1, "FAIL  manifest: the embedded manifest does not match"),
        "python request": (PYTHON.encode(), len(PYTHON) - 1, "FAIL  manifest"),
        "vendor": (VENDOR.encode(), 2, "FAIL  manifest"),  # also moves the install dir: checked first
        "wheel data": (blob[:64], len(blob) // 2, f"FAIL  {manifest['wheel']}"),
        "frame table": (frame0, 5, "FAIL  uv: embedded uv (frame 0): sha256 mismatch"),
    }


@pytest.mark.parametrize("region", ["entry", "python request", "vendor", "wheel data", "frame table"])
def test_a_flipped_byte_fails_check_and_the_first_run(exe: Path, root: Path, tmp_path: Path, region: str) -> None:
    assert manage(exe, "check", install_root=root).returncode == 0
    needle, at, named = tampered_cases(exe)[region]
    # The wheel blob's first bytes locate it; the flipped byte is in its middle.
    bad = flipped(exe, tmp_path / "tampered", needle, at, text=region != "wheel data")
    checked = manage(bad, "check", install_root=root)
    assert checked.returncode == 1, checked.stdout
    assert named in checked.stdout, checked.stdout
    assert checked.stdout.splitlines()[-1].startswith("FAILED: ")
    first = run(bad, [], install_root=root)
    assert first.returncode == 1 and first.stdout == "", first.stderr
    assert "corrupted" in first.stderr, first.stderr
    assert [p for p in root.glob("[!.]*/*/*") if p.name[:1].isdigit()] == []  # nothing installed, any vendor


# --- Modified installed files -----------------------------------------------------------------------------


def record_digest(path: Path) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()


def test_a_modified_installed_file_fails_check_and_restore_repairs_it(exe: Path, root: Path, tmp_path: Path) -> None:
    # A uv cache on the same file system as the install: uv hardlinks from it, so editing the installed file
    # in place edits the cached copy too, and a reinstall from the cache would bring the edit back.
    env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    assert run(exe, [], install_root=root, env=env).returncode == 0
    (version_dir,) = installed(root)
    (site,) = (version_dir / "venv" / "lib").glob("python3.*/site-packages")
    target = site / "colorama" / "__init__.py"
    (record,) = site.glob("colorama-*.dist-info/RECORD")
    listed = {row.split(",")[0]: row.split(",")[1] for row in record.read_text().splitlines()}
    assert listed["colorama/__init__.py"] == record_digest(target)
    hardlinked = target.stat().st_nlink > 1
    with target.open("r+b") as f:  # in place: same inode
        f.seek(0)
        first = f.read(1)
        f.seek(0)
        f.write(b"#" if first != b"#" else b" ")

    checked = manage(exe, "check", install_root=root, env=env)
    assert checked.returncode == 1, checked.stdout
    assert f"FAIL  installed file modified: {target} (listed in {record.parent.name}/RECORD)" in checked.stdout
    assert f"repair with `PYAKET_SELF=restore {exe}`" in checked.stdout

    restored = manage(exe, "restore", install_root=root, env=env)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == ""
    if hardlinked:
        assert "reinstalling without uv's cache" in restored.stderr, restored.stderr
    assert record_digest(target) == listed["colorama/__init__.py"]
    again = manage(exe, "check", install_root=root, env=env)
    assert again.returncode == 0, again.stdout
    assert "ok    installed files match their RECORD" in again.stdout


def test_a_missing_installed_file_is_named(exe: Path, root: Path) -> None:
    assert run(exe, [], install_root=root).returncode == 0
    (version_dir,) = installed(root)
    (site,) = (version_dir / "venv" / "lib").glob("python3.*/site-packages")
    (site / "colorama" / "ansi.py").unlink()
    checked = manage(exe, "check", install_root=root)
    assert (
        checked.returncode == 1 and f"FAIL  installed file missing: {site / 'colorama' / 'ansi.py'}" in checked.stdout
    )
