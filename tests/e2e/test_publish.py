"""docs/publishing.md's PyPI recipes, run as written against a local PyPI-compatible server (pypiserver).

A `dist/` made by the hook holds executables, `SHA256SUMS` and `pyaket-manifest.json` beside the wheel
and sdist; each recipe must upload exactly the wheel and the sdist.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.helpers import build, executables
from tests.example import copy_example

pytestmark = pytest.mark.e2e

DOC = (ROOT / "docs" / "publishing.md").read_text()
WORKFLOW = (ROOT / "docs" / "github-actions-release.yml").read_text()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("publish"))
    # sdist, then the wheel from that sdist: a release build, so executables are asked for.
    build(project, env={"HATCH_PYAKET_REQUIRED": "1"})
    dist = project / "dist"
    assert executables(dist) and (dist / "SHA256SUMS").is_file()
    return dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A pypiserver on loopback that accepts any upload; yields its upload URL and package folder."""
    packages = tmp_path / "packages"
    packages.mkdir()
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-a",
            ".",
            "-P",
            ".",
            str(packages),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pypiserver did not start: {server.communicate()[1]!r}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/", packages
    finally:
        server.terminate()
        server.wait(timeout=10)


def _uploaded(packages: Path) -> list[str]:
    return sorted(p.name for p in packages.iterdir())


def _twine_upload(url: str, files: list[str]) -> None:
    upload = subprocess.run(
        ["twine", "upload", "--non-interactive", "--repository-url", url, "-u", "x", "-p", "x", *files],
        capture_output=True,
        text=True,
    )
    assert upload.returncode == 0, upload.stdout + upload.stderr


def _pypi_files(dist: Path) -> list[str]:
    return sorted(p.name for p in dist.iterdir() if p.name.endswith((".whl", ".tar.gz")))


def test_hatch_publish_uploads_only_the_wheel_and_sdist(dist: Path, index: tuple[str, Path]) -> None:
    url, packages = index
    assert "`hatch publish` uploads only wheels and sdists" in DOC
    result = subprocess.run(
        ["hatch", "publish", "--repo", url, "--user", "x", "--auth", "x", "--no-prompt", str(dist)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _uploaded(packages) == _pypi_files(dist)


def test_twine_needs_the_wheel_and_sdist_named(dist: Path, index: tuple[str, Path]) -> None:
    url, packages = index
    # The caveat the doc gives: twine refuses a dist/ with executables in it...
    whole = subprocess.run(["twine", "check", *map(str, sorted(dist.iterdir()))], capture_output=True, text=True)
    assert whole.returncode != 0 and "Unknown distribution format" in whole.stdout + whole.stderr
    assert "twine check dist/*.whl dist/*.tar.gz" in DOC and "twine upload dist/*.whl dist/*.tar.gz" in DOC
    # ...and the documented commands work.
    files = [str(p) for p in sorted(dist.glob("*.whl")) + sorted(dist.glob("*.tar.gz"))]
    check = subprocess.run(["twine", "check", *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    _twine_upload(url, files)
    assert _uploaded(packages) == _pypi_files(dist)


def test_the_workflow_gives_the_official_action_a_folder_without_executables(
    dist: Path, index: tuple[str, Path], tmp_path: Path
) -> None:
    """The release workflow's step, run as written; the action then runs `twine check` and `twine upload` on it."""
    url, packages = index
    step = "mkdir pypi && cp dist/*.whl dist/*.tar.gz pypi/"
    assert f"run: {step}" in WORKFLOW and "packages-dir: pypi/" in WORKFLOW
    assert "pypa/gh-action-pypi-publish" in WORKFLOW and "mint-token" not in WORKFLOW
    work = tmp_path / "job"
    shutil.copytree(dist, work / "dist")
    subprocess.run(["bash", "-c", step], cwd=work, check=True)
    folder = sorted(str(p) for p in (work / "pypi").iterdir())
    assert subprocess.run(["twine", "check", *folder], capture_output=True).returncode == 0
    _twine_upload(url, folder)
    assert _uploaded(packages) == _pypi_files(dist)
