"""`PYAKET_SELF=update <exe>`: a v1 executable replaces itself with v2 from a local HTTP server serving v2's dist
folder (SHA256SUMS signed by the build, cross-checked with the real `minisign` CLI), and refuses, exit 1 with the old
file intact byte for byte, a bad signature, another key, a tampered executable, a downgrade and a download cut short."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    HOST_TRIPLE,
    build_variant,
    finish_sleeping,
    fresh_copy,
    make_key_pair,
    manage,
    run,
    start_sleeping,
)
from tests.localserver import serve

pytestmark = pytest.mark.e2e

NAME = "example-app"
HOST = HOST_TRIPLE


@dataclass
class Server:
    """Serves `root`; a name in `cut` is sent with its full Content-Length but only that many bytes."""

    root: Path
    url: str = ""
    cut: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = Server(tmp_path_factory.mktemp("served"))
    with serve(state.root, cut=state.cut) as url:
        state.url = f"{url}/"
        yield state


@dataclass(frozen=True)
class Keys:
    public: Path
    secret: Path
    other_secret: Path  # a second key pair's secret key: "the wrong key"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    public, secret = make_key_pair(folder, "update")
    _, other = make_key_pair(folder, "other")
    return Keys(public, secret, other)


@dataclass(frozen=True)
class Builds:
    v1: Path  # the executable
    v1_dist: Path  # v1's release folder (a downgrade's)
    v2_dist: Path  # v2's dist folder: executable, SBOM, SHA256SUMS, SHA256SUMS.minisig


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, server: Server, keys: Keys) -> Builds:
    folder = tmp_path_factory.mktemp("update")
    settings: dict[str, object] = {"update": {"url": server.url, "public-key-file": str(keys.public)}}
    env = {"PYAKET_UPDATE_KEY": str(keys.secret)}  # the path of the key file (its text works too)
    v1 = build_variant(folder, version="1.0.0", settings=settings, env=env)
    saved = folder / "v1"
    shutil.copytree(v1.parent, saved)
    v2 = build_variant(folder, version="2.0.0", env={"PYAKET_UPDATE_KEY": keys.secret.read_text()})
    return Builds(saved / v1.name, saved, v2.parent)


@pytest.fixture
def exe(builds: Builds, tmp_path: Path) -> Path:
    """A fresh copy of v1 (each test may replace it)."""
    return fresh_copy(builds.v1, tmp_path)


@pytest.fixture
def release(builds: Builds, server: Server) -> Iterator[Path]:
    """v2's dist, served afresh for each test (which may damage it)."""
    if server.root.exists():
        shutil.rmtree(server.root)
    shutil.copytree(builds.v2_dist, server.root)
    server.cut.clear()
    yield server.root
    server.cut.clear()


def v2_name() -> str:
    return f"{NAME}-2.0.0-{HOST}"


def version_of(exe: Path, install_root: Path) -> str:
    result = manage(exe, "info", install_root=install_root)
    assert result.returncode == 0, result.stderr
    return next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("version"))


def refused(exe: Path, install_root: Path, *args: str) -> str:
    before = exe.read_bytes()
    result = manage(exe, "update", args, install_root=install_root)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert exe.read_bytes() == before, "a refused update changed the executable"
    assert f"{exe} was not changed." in result.stderr
    assert sorted(p.name for p in exe.parent.iterdir()) == [exe.name], "a refused update left files behind"
    return result.stderr


def test_the_build_signs_sha256sums_and_minisign_verifies_it(builds: Builds, keys: Keys) -> None:
    result = subprocess.run(
        ["minisign", "-V", "-p", keys.public, "-m", builds.v2_dist / "SHA256SUMS"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "file:SHA256SUMS" in result.stdout
    assert v2_name() in (builds.v2_dist / "SHA256SUMS").read_text()


def test_check_tells_without_changing_anything(exe: Path, release: Path, install_root: Path, server: Server) -> None:
    before = exe.read_bytes()
    result = manage(exe, "update", ["--check"], install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert f"update available: {NAME} 1.0.0 -> 2.0.0 ({server.url}{v2_name()})" in result.stdout
    assert exe.read_bytes() == before
    # The same through the variable alone.
    again = manage(exe, "update --check", install_root=install_root)
    assert "update available" in again.stdout, again.stderr


def test_a_good_update_replaces_the_executable(exe: Path, release: Path, install_root: Path) -> None:
    result = manage(exe, "update", install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert f"updated {NAME} from 1.0.0 to 2.0.0 ({exe})" in result.stderr
    assert exe.read_bytes() == (release / v2_name()).read_bytes()
    assert sorted(p.name for p in exe.parent.iterdir()) == [exe.name]  # no temp file, no .old
    assert version_of(exe, install_root) == "2.0.0"
    ran = run(exe, ["hi"], install_root=install_root)
    assert ran.returncode == 0 and "example-app 2.0.0" in ran.stdout, ran.stderr
    # Now the newest: nothing to do.
    same = manage(exe, "update", install_root=install_root)
    assert same.returncode == 0 and f"{NAME} 2.0.0 is up to date" in same.stdout, same.stderr


def test_update_while_the_app_runs(exe: Path, release: Path, install_root: Path) -> None:
    proc = start_sleeping(exe, install_root, 4)
    result = manage(exe, "update", install_root=install_root)
    assert result.returncode == 0, result.stderr
    assert exe.read_bytes() == (release / v2_name()).read_bytes()
    assert proc.poll() is None, "the running app was stopped"
    finish_sleeping(proc)  # exits 0 with its v1 environment intact


def test_a_bad_signature_is_refused(exe: Path, release: Path, install_root: Path) -> None:
    sums = release / "SHA256SUMS"
    sums.write_text(sums.read_text() + f"{'0' * 64}  extra-file\n")  # changed after signing
    message = refused(exe, install_root)
    assert "SHA256SUMS.minisig" in message and "does not match SHA256SUMS" in message


def test_another_key_is_refused(exe: Path, release: Path, install_root: Path, keys: Keys) -> None:
    (release / "SHA256SUMS.minisig").unlink()
    subprocess.run(
        ["minisign", "-S", "-s", keys.other_secret, "-m", release / "SHA256SUMS"], check=True, capture_output=True
    )
    message = refused(exe, install_root)
    assert "was made with the key" in message and "trusts only the key" in message


def test_an_unsigned_release_is_refused(exe: Path, release: Path, install_root: Path) -> None:
    (release / "SHA256SUMS.minisig").unlink()
    assert "published without signing" in refused(exe, install_root)


def test_a_signature_made_by_minisign_is_accepted(exe: Path, release: Path, install_root: Path, keys: Keys) -> None:
    (release / "SHA256SUMS.minisig").unlink()
    subprocess.run(["minisign", "-S", "-s", keys.secret, "-m", release / "SHA256SUMS"], check=True, capture_output=True)
    result = manage(exe, "update", ["--check"], install_root=install_root)
    assert result.returncode == 0 and "update available" in result.stdout, result.stderr


def test_a_tampered_executable_is_refused(exe: Path, release: Path, install_root: Path) -> None:
    target = release / v2_name()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    message = refused(exe, install_root)
    assert "the file on the server is not the one that was signed" in message


def test_a_downgrade_is_refused_unless_asked(builds: Builds, release: Path, tmp_path: Path, install_root: Path) -> None:
    v2 = tmp_path / "bin" / v2_name()
    v2.parent.mkdir()
    shutil.copy2(release / v2_name(), v2)
    # The server now holds v1's release: its file and a SHA256SUMS listing it, signed by a v1 build.
    shutil.rmtree(release)
    shutil.copytree(builds.v1_dist, release)
    sums = (release / "SHA256SUMS").read_text()
    assert f"{NAME}-1.0.0-{HOST}" in sums and f"{NAME}-2.0.0-{HOST}" not in sums, sums
    message = refused(v2, install_root)
    assert "refusing to downgrade example-app from 2.0.0 to 1.0.0" in message
    assert f"run `PYAKET_SELF='update --allow-downgrade' {v2}`" in message
    allowed = manage(v2, "update", ["--allow-downgrade"], install_root=install_root)
    assert allowed.returncode == 0, allowed.stderr
    assert version_of(v2, install_root) == "1.0.0"


def test_a_download_cut_short_is_refused(exe: Path, release: Path, install_root: Path, server: Server) -> None:
    server.cut[v2_name()] = (release / v2_name()).stat().st_size // 3
    started = time.monotonic()
    message = refused(exe, install_root)
    assert "stopped after" in message and "the server closed the connection" in message, message
    assert time.monotonic() - started < 60


def test_a_signed_release_that_fails_its_self_check_is_refused(
    exe: Path, release: Path, install_root: Path, keys: Keys
) -> None:
    """The publisher signed a broken executable (a byte of its embedded payload flipped): its hash matches the
    signed SHA256SUMS, but `PYAKET_SELF=check` of the downloaded file fails before it takes the old one's place."""
    target = release / v2_name()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    sums = release / "SHA256SUMS"
    lines = [
        f"{hashlib.sha256(data).hexdigest()}  {v2_name()}" if line.endswith(f"  {v2_name()}") else line
        for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")
    (release / "SHA256SUMS.minisig").unlink()
    subprocess.run(["minisign", "-S", "-s", keys.secret, "-m", sums], check=True, capture_output=True)
    message = refused(exe, install_root)
    assert "verified example-app-2.0.0" in message
    assert "the downloaded example-app 2.0.0 failed its self-check" in message and "FAIL" in message, message


def test_an_installed_copy_stays_ours_after_an_update(
    exe: Path, release: Path, install_root: Path, tmp_path: Path
) -> None:
    """`install` records the copy's sha256; the update changes the copy, and the record follows it, so `uninstall`
    (run by another executable of the app, here the v1 download) still removes it."""
    bin_dir = tmp_path / "home-bin"
    env = {"XDG_BIN_HOME": str(bin_dir)}
    assert manage(exe, "install", install_root=install_root, env=env).returncode == 0
    copy = bin_dir / NAME
    updated = manage(copy, "update", install_root=install_root, env=env)
    assert updated.returncode == 0, updated.stderr
    assert copy.read_bytes() == (release / v2_name()).read_bytes()
    removed = manage(exe, "uninstall", install_root=install_root, env=env)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {copy}" in removed.stderr and not copy.exists()


def test_a_release_that_does_not_run_in_place_is_rolled_back(
    exe: Path, release: Path, install_root: Path, keys: Keys
) -> None:
    """The signed SHA256SUMS names v2's file as 3.0.0: hash and `check` pass, so it takes the old file's place, but
    there its `info` reports 2.0.0, and the old executable is put back (the rollback after the swap)."""
    mislabeled = f"{NAME}-3.0.0-{HOST}"
    (release / v2_name()).rename(release / mislabeled)
    sums = release / "SHA256SUMS"
    sums.write_text(sums.read_text().replace(f"  {v2_name()}\n", f"  {mislabeled}\n"))
    assert mislabeled in sums.read_text()
    (release / "SHA256SUMS.minisig").unlink()
    subprocess.run(["minisign", "-S", "-s", keys.secret, "-m", sums], check=True, capture_output=True)
    before = exe.read_bytes()
    result = manage(exe, "update", install_root=install_root)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert 'the new version did not run in place (it reports version Some("2.0.0"), expected 3.0.0)' in result.stderr
    assert f"the previous {exe} is back" in result.stderr, result.stderr
    assert exe.read_bytes() == before, "the rollback did not restore the old executable"
    assert sorted(p.name for p in exe.parent.iterdir()) == [exe.name], "the rollback left files behind"
    assert version_of(exe, install_root) == "1.0.0"
