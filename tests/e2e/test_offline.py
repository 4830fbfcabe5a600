"""Offline, locked and reproducible executables (host target, real builds, real runs)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_pyaket import fetch, payload
from hatch_pyaket.config import DEFAULT_UV_VERSION
from hatch_pyaket.targets import parse_target
from tests.e2e.helpers import HOST_TRIPLE, build, executables, installed_versions, staged_payload
from tests.example import copy_example
from tests.helpers_python import make_relocatable_python
from tests.localserver import serve

pytestmark = pytest.mark.e2e

EXE_NAME = f"example-app-1.0.0-{HOST_TRIPLE}"
RELEASE = "20990101"


def make_mirror(root: Path, archive: Path, *, lie: bool = False) -> None:
    """A python-build-standalone release folder as the plugin expects it: assets + SHA256SUMS."""
    release = root / RELEASE
    release.mkdir(parents=True)
    name = archive.name.replace("+local-", f"+{RELEASE}-")
    shutil.copyfile(archive, release / name)
    digest = hashlib.sha256((release / name).read_bytes()).hexdigest()
    if lie:
        digest = hashlib.sha256(b"something else").hexdigest()
    (release / "SHA256SUMS").write_text(f"{digest}  {name}\n")


def run_exe(
    exe: Path, args: list[str], env: dict[str, str], *, no_network: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [str(exe), *args]
    if no_network:
        # A fresh network namespace: only a loopback that is down; any connection fails at once.
        command = ["unshare", "--net", *command] if os.geteuid() == 0 else ["unshare", "-rn", *command]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)


@dataclass(frozen=True)
class OfflineBuild:
    exe: Path
    lock: str
    wheels: list[str]
    payload: dict[str, object]  # the staged manifest


@pytest.fixture(scope="module")
def offline_build(tmp_path_factory: pytest.TempPathFactory) -> OfflineBuild:
    """offline = true + a Python "downloaded" from a loopback python-build-standalone mirror."""
    work = tmp_path_factory.mktemp("offline")
    make_mirror(work / "mirror", make_relocatable_python(work / "python"))
    project = copy_example(work, hook={"python": "3.11", "offline": True, "embed-python": "download"})
    with serve(work / "mirror") as url:
        build(project, "--wheel", env={"HATCH_PYAKET_PYTHON_MIRROR": url, "HATCH_PYAKET_PYTHON_RELEASE": RELEASE})
    staged = staged_payload()
    manifest = json.loads((staged / "manifest.json").read_text())
    return OfflineBuild(
        exe=project / "dist" / EXE_NAME,
        lock=payload.staged_file(staged, "requirements.txt").decode(),
        wheels=[Path(key).name for key in manifest["wheels"]],
        payload=manifest,
    )


def test_offline_first_run_needs_no_network(offline_build: OfflineBuild, tmp_path: Path) -> None:
    env = {
        "PYAKET_INSTALL_DIR": str(tmp_path / "apps"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),  # nothing cached helps
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".pyenv" not in p),
    }
    result = run_exe(offline_build.exe, ["offline ✓", "--exit", "4"], env, no_network=True)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "first run, installing into" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("example-app 1.0.0 (colorama 0.4.6, python 3.11")
    assert json.loads(lines[1].removeprefix("args: ")) == ["offline ✓"]
    (version_dir,) = installed_versions(tmp_path / "apps")
    # The app runs on the embedded Python, unpacked beside the app's versions.
    python_dirs = [p for p in (tmp_path / "apps" / "pyaket" / "example-app").iterdir() if p.name.startswith("python-")]
    assert len(python_dirs) == 1
    site = next((version_dir / "venv" / "lib").glob("python3.*/site-packages"))
    installed = sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))
    pinned = sorted(
        line.split(" ")[0].replace("==", "-")
        for line in offline_build.lock.splitlines()
        if "==" in line and not line.startswith(" ")
    )
    assert installed == sorted([*pinned, "example_app-1.0.0"]), (installed, pinned)
    again = run_exe(offline_build.exe, ["again"], env, no_network=True)
    assert again.returncode == 0 and again.stderr == ""


def test_offline_payload_holds_the_locked_wheels(offline_build: OfflineBuild) -> None:
    assert offline_build.wheels == ["colorama-0.4.6-py2.py3-none-any.whl"]
    assert "colorama==0.4.6" in offline_build.lock and "--hash=sha256:" in offline_build.lock


def test_offline_sbom_has_the_wheels_licences_and_the_embedded_python(offline_build: OfflineBuild) -> None:
    bom = json.loads(offline_build.exe.with_name(offline_build.exe.name + ".cdx.json").read_text())
    components = {c["name"]: c for c in bom["components"]}
    # colorama 0.4.6 declares its licence by classifier only: named as such, not guessed as an SPDX id.
    assert components["colorama"]["licenses"] == [{"license": {"name": "BSD License"}}]
    python = components["cpython"]
    files = offline_build.payload["files"]
    assert python["hashes"] == [{"alg": "SHA-256", "content": files["python.tar.gz"]["sha256"]}]  # type: ignore[index]
    assert python["version"].startswith("3.11.") and python["purl"] == f"pkg:generic/cpython@{python['version']}"
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert python["bom-ref"] in graph[bom["metadata"]["component"]["bom-ref"]]
    # The launcher unpacks the Python with the crates of its `python-archive` feature, so they are listed.
    crates = {c["name"] for c in bom["components"] if c.get("purl", "").startswith("pkg:cargo/")}
    assert {"tar", "flate2", "zstd-safe"} <= crates


def test_a_wrong_python_checksum_fails_the_build_clearly(tmp_path: Path) -> None:
    make_mirror(tmp_path / "mirror", make_relocatable_python(tmp_path / "python"), lie=True)
    project = copy_example(tmp_path, hook={"python": "3.11", "embed-python": "download"})
    with serve(tmp_path / "mirror") as url:
        result = build(
            project,
            "--wheel",
            env={"HATCH_PYAKET_PYTHON_MIRROR": url, "HATCH_PYAKET_PYTHON_RELEASE": RELEASE},
            check=False,
        )
    assert result.returncode != 0
    assert "does not match its published sha256" in result.stderr and "embed-python" in result.stderr
    assert executables(project / "dist") == []


def _local_index(root: Path, *wheels: Path) -> None:
    """A PEP 691 simple index on disk, one project per wheel, served by tests.localserver."""
    for wheel in wheels:
        name = wheel.name.split("-")[0].lower()
        (root / "files").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, root / "files" / wheel.name)
        page = root / "simple" / name
        page.mkdir(parents=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        entry = {"filename": wheel.name, "url": f"../../files/{wheel.name}", "hashes": {"sha256": digest}}
        meta = {"meta": {"api-version": "1.0"}, "name": name, "files": [entry]}
        (page / "index.json").write_text(json.dumps(meta))


def test_locked_install_refuses_a_tampered_wheel(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "colorama==0.4.6", "-d", str(downloads)],
        check=True,
    )
    (wheel,) = downloads.glob("colorama-*.whl")
    # The index serves the uv wheel the plugin embeds too (taken from the plugin's download cache).
    fetch.uv_binary(parse_target(HOST_TRIPLE), DEFAULT_UV_VERSION)
    (uv_wheel,) = (fetch.cache_dir() / "uv" / "wheels").glob(f"uv-{DEFAULT_UV_VERSION}-*manylinux*x86_64*.whl")
    _local_index(tmp_path / "index", wheel, uv_wheel)
    project = copy_example(tmp_path)
    with serve(tmp_path / "index") as url:
        build(project, "--wheel", env={"HATCH_PYAKET_INDEX_URL": f"{url}/simple"})
        lock = payload.staged_file(staged_payload(), "requirements.txt").decode()
        assert "colorama==0.4.6" in lock and hashlib.sha256(wheel.read_bytes()).hexdigest() in lock
        exe = project / "dist" / EXE_NAME
        served = tmp_path / "index" / "files" / wheel.name
        with zipfile.ZipFile(served, "a") as archive:  # still a valid wheel, but not the locked bytes
            archive.writestr("colorama/injected.py", "print('owned')\n")
        env = {
            "PYAKET_INSTALL_DIR": str(tmp_path / "apps"),
            "UV_INDEX_URL": f"{url}/simple",
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        }
        refused = run_exe(exe, [], env)
        assert refused.returncode != 0
        assert "hash" in refused.stderr.lower() and "colorama" in refused.stderr
        assert installed_versions(tmp_path / "apps") == []
        shutil.copyfile(wheel, served)
        accepted = run_exe(exe, ["ok"], env)
        assert accepted.returncode == 0, accepted.stderr
        assert 'args: ["ok"]' in accepted.stdout


def test_builds_are_reproducible_across_directories_and_time(tmp_path: Path) -> None:
    digests = []
    for name in ("first", "second"):
        project = copy_example(tmp_path / name)
        build(project, "--wheel")
        digests.append(hashlib.sha256((project / "dist" / EXE_NAME).read_bytes()).hexdigest())
        # The second build compresses every file again (no staged or cached blob): the same bytes come out.
        shutil.rmtree(staged_payload() / "blobs")
        shutil.rmtree(fetch.cache_dir() / "blobs", ignore_errors=True)
    assert digests[0] == digests[1]
