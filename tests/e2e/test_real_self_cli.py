"""A real CLI with its own `self` command: hatch (`hatch self report|restore|update`), from its PyPI sdist.

Hits PyPI: downloads hatch's sdist, resolves its dependencies at build time (the embedded lock) and installs
them at first run; the machine's Python stands in for a downloaded one (PYAKET_PYTHON). Needs hatch-vcs,
hatch's build requirement, in this environment (the `test` extra has it).

Every argument must reach the app: `<exe> self --help` is hatch's help, management goes through PYAKET_SELF.
The executable keeps its release name while hatch's usage line says `hatch`.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import HOST_TRIPLE, build, manage, run

pytestmark = [pytest.mark.e2e, pytest.mark.network]

HATCH_VERSION = "1.18.2"
HOOK = '\n[tool.hatch.build.hooks.pyaket]\ntargets = ["host"]\n'


@pytest.fixture(scope="module")
def hatch_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatch_vcs", reason="hatch's sdist builds with hatch-vcs (pip install hatch-vcs)")
    folder = tmp_path_factory.mktemp("hatch")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"hatch=={HATCH_VERSION}"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    with tarfile.open(folder / f"hatch-{HATCH_VERSION}.tar.gz") as sdist:
        sdist.extractall(folder, filter="data")
    # Not a git checkout: hatch-vcs takes the version from the folder name (parentdir_prefix_version).
    project = folder / f"hatch-{HATCH_VERSION}"
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    requires = 'requires = ["hatchling>=1.27", "hatch-vcs>=0.3.0"]'
    assert requires in text, "hatch's build requirements changed"
    text = text.replace(requires, 'requires = ["hatchling>=1.27", "hatch-vcs>=0.3.0", "hatch-pyaket"]')
    pyproject.write_text(text + HOOK)
    # An unpacked sdist (hatch-vcs reads the version from its PKG-INFO): executables only when asked.
    build(project, "--wheel", env={"HATCH_PYAKET_REQUIRED": "1"})
    exe = project / "dist" / f"hatch-{HATCH_VERSION}-{HOST_TRIPLE}"
    assert exe.is_file(), sorted(p.name for p in (project / "dist").iterdir())
    return exe


def test_self_belongs_to_hatch_and_pyaket_self_to_the_launcher(hatch_exe: Path, install_root: Path) -> None:
    env = {"PYAKET_PYTHON": sys.executable}
    shown = run(hatch_exe, ["self", "--help"], install_root=install_root, env=env, timeout=240)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    # hatch's own group, with its prog read from the console script rather than the release file name.
    assert "Usage: hatch self [OPTIONS] COMMAND [ARGS]..." in shown.stdout, shown.stdout
    for line in ("report   Generate a pre-populated GitHub issue", "restore  Restore the installation"):
        assert line in shown.stdout, shown.stdout
    assert "pyaket launcher" not in shown.stdout + shown.stderr

    # `self restore` is hatch's (which refuses outside its own binary builds): the launcher reinstalls nothing.
    restore = run(hatch_exe, ["self", "restore"], install_root=install_root, env=env)
    assert (restore.returncode, restore.stderr) == (1, "Hatch is not installed as a binary\n"), restore

    info = manage(hatch_exe, "info", install_root=install_root, env=env)
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert "app          hatch" in lines and f"version      {HATCH_VERSION}" in lines, info.stdout
    assert "installed    yes" in lines
    usage = manage(hatch_exe, "help", install_root=install_root)
    assert usage.returncode == 0 and f"usage: PYAKET_SELF=<command> {hatch_exe}" in usage.stdout
