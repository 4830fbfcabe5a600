"""Finding rcodesign: $RCODESIGN, PATH, the plugin cache, else `cargo install` into the cache, once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hatch_pyaket import rcodesign
from hatch_pyaket.errors import ToolchainError

FAKE_CARGO = """#!{python}
import json, sys
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
root = Path(args[args.index("--root") + 1])
(root / "bin").mkdir(parents=True, exist_ok=True)
exe = root / "bin" / "rcodesign"
exe.write_text("#!/bin/sh\\n[ \\"$1\\" = notary-submit ] && exit {notary_exit}\\nexit 0\\n")
exe.chmod(0o755)
print("   Compiling apple-codesign v0.29.0", file=sys.stderr)
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _environ(tmp_path: Path, notary_exit: int = 1) -> tuple[dict[str, str], Path]:
    log = tmp_path / "cargo.log"
    cargo = _script(tmp_path / "cargo", FAKE_CARGO.format(python=sys.executable, log=str(log), notary_exit=notary_exit))
    return {"CARGO": str(cargo), "HATCH_PYAKET_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/nonexistent"}, log


def test_installs_once_into_the_cache_then_reuses_it(tmp_path: Path) -> None:
    environ, log = _environ(tmp_path)
    lines: list[str] = []
    first = rcodesign.find(False, lines.append, environ)
    assert first == str(tmp_path / "cache" / "tools" / "rcodesign" / rcodesign.VERSION / "bin" / "rcodesign")
    (command,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert command[:6] == [
        "install",
        "apple-codesign",
        "--version",
        rcodesign.VERSION,
        "--locked",
        "--no-default-features",
    ]
    assert "--features" not in command
    assert any("installing rcodesign" in line for line in lines) and any(
        "installed rcodesign" in line for line in lines
    )
    assert rcodesign.find(False, lines.append, environ) == first
    assert len(log.read_text().splitlines()) == 1, "the second build must reuse the cached rcodesign"


def test_notarization_installs_the_notarize_flavour(tmp_path: Path) -> None:
    environ, log = _environ(tmp_path, notary_exit=0)
    path = rcodesign.find(True, lambda line: None, environ)
    assert f"{rcodesign.VERSION}-notarize" in path
    (command,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert command[command.index("--features") + 1] == "notarize"
    # A signing-only build may use the notarize flavour it finds rather than install another.
    assert rcodesign.find(False, lambda line: None, environ) == path


def test_rcodesign_env_must_be_an_executable_with_notary_support_when_notarizing(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="RCODESIGN='/nope' is not an executable file"):
        rcodesign.find(False, lambda line: None, {"RCODESIGN": "/nope"})
    plain = _script(tmp_path / "rcodesign", '#!/bin/sh\n[ "$1" = notary-submit ] && exit 2\nexit 0\n')
    assert rcodesign.find(False, lambda line: None, {"RCODESIGN": str(plain)}) == str(plain)
    with pytest.raises(ToolchainError, match="built without notarization support"):
        rcodesign.find(True, lambda line: None, {"RCODESIGN": str(plain)})


def test_no_cargo_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # cargo_executable looks at the process's PATH
    environ = {"HATCH_PYAKET_CACHE_DIR": str(tmp_path), "PATH": "/nonexistent"}
    with pytest.raises(ToolchainError, match="installing it needs cargo \\(not found\\)"):
        rcodesign.find(False, lambda line: None, environ)
