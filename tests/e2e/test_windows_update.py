"""Self-update of a Windows executable, under Wine: `PYAKET_SELF=update` renames the running v1 aside (Windows
cannot replace or delete a running file), puts v2 in its place and runs it there; the next update removes the file
moved aside; a refused update leaves v1 byte for byte. v1 and v2 are windows-gnu builds with the `update` feature
(HTTPS client, signature check), served from loopback over plain http as the update table allows.

Needs the cross toolchain from .ci/setup-cross.sh (windows-gnu build, wine64 with the ProcessPrng stub).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import build_variant, fresh_copy, make_key_pair
from tests.localserver import serve

pytestmark = [pytest.mark.e2e, pytest.mark.cross]

WINDOWS = "x86_64-pc-windows-gnu"


def winpath(path: Path) -> str:
    """The path as a Windows program under Wine sees it (drive Z: is /)."""
    return "Z:" + str(path).replace("/", "\\")


@dataclass(frozen=True)
class Release:
    wine: str
    env: dict[str, str]
    v1: Path  # v1's executable, kept aside
    served: Path  # v2's dist folder, as the update URL serves it

    def v2(self) -> Path:
        return self.served / f"example-app-2.0.0-{WINDOWS}.exe"

    def self_command(
        self, exe: Path, command: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        root = exe.parent.parent / "root"
        return subprocess.run(
            [self.wine, str(exe), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**self.env, "PYAKET_SELF": command, "PYAKET_INSTALL_DIR": winpath(root), **(env or {})},
            timeout=300,
        )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    env = load_cross_env()
    wine = env.get("PYAKET_CROSS_WINE") or shutil.which("wine64", path=env.get("PATH")) or ""
    if not wine or not Path(wine).exists():
        pytest.skip("wine is not installed (.ci/setup-cross.sh ran with CROSS_SKIP_WINE=1?)")
    folder = tmp_path_factory.mktemp("winupdate")
    public, secret = make_key_pair(folder, "update")
    served = folder / "served"
    served.mkdir()
    with serve(served) as url:
        settings: dict[str, object] = {
            "targets": [WINDOWS],
            "target": {WINDOWS: {"env": BUILD_STD}},
            "update": {"url": f"{url}/", "public-key-file": str(public)},
        }
        build_env = {**env, "PYAKET_UPDATE_KEY": str(secret)}
        v1 = build_variant(folder, version="1.0.0", settings=settings, env=build_env, target=WINDOWS)
        kept = folder / "v1" / v1.name
        kept.parent.mkdir()
        shutil.copy2(v1, kept)
        v2 = build_variant(folder, version="2.0.0", env=build_env, target=WINDOWS)
        shutil.copytree(v2.parent, served, dirs_exist_ok=True)
        yield Release(wine, env, kept, served)


@pytest.fixture
def exe(release: Release, tmp_path: Path) -> Path:
    """A fresh copy of v1 where a user keeps it."""
    return fresh_copy(release.v1, tmp_path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reported_version(release: Release, exe: Path) -> str:
    info = release.self_command(exe, "info")
    assert info.returncode == 0, info.stdout + info.stderr
    return next(line.split()[1] for line in info.stdout.splitlines() if line.startswith("version"))


def test_the_running_executable_is_swapped_for_the_new_one(release: Release, exe: Path) -> None:
    assert reported_version(release, exe) == "1.0.0"
    checked = release.self_command(exe, "update", ["--check"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2.0.0" in checked.stdout + checked.stderr and sha256(exe) == sha256(release.v1)

    updated = release.self_command(exe, "update")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert sha256(exe) == sha256(release.v2()), "the file in place is not the published v2"
    assert reported_version(release, exe) == "2.0.0"
    # v1 ran the update, so Windows let it be renamed aside but not deleted; no download is left behind.
    old = exe.with_name(exe.name + ".old")
    assert sorted(p.name for p in exe.parent.iterdir()) == sorted([exe.name, old.name])
    assert sha256(old) == sha256(release.v1)
    # The next update (here: v2 finding itself up to date) or start of the app removes it.
    again = release.self_command(exe, "update")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in exe.parent.iterdir()) == [exe.name]


def test_a_refused_update_leaves_the_running_file_as_it_was(release: Release, exe: Path) -> None:
    sums = release.served / "SHA256SUMS"
    original = sums.read_text()
    try:
        # Signed for v2, then changed: the signature no longer matches.
        sums.write_text(original.replace(sha256(release.v2()), "0" * 64))
        refused = release.self_command(exe, "update")
    finally:
        sums.write_text(original)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "was not changed." in refused.stderr
    assert sha256(exe) == sha256(release.v1)
    assert sorted(p.name for p in exe.parent.iterdir()) == [exe.name]
