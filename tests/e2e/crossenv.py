"""The cross-compilation environment made by .ci/setup-cross.sh, for tests of foreign targets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

# A target whose std rustup cannot download here is built with std from source (Debian's rust-src):
# the hook's per-target `env` for it.
BUILD_STD = {"RUSTC_BOOTSTRAP": "1", "CARGO_UNSTABLE_BUILD_STD": "std,panic_abort"}


def cross_dir() -> Path:
    return Path(os.environ.get("PYAKET_CROSS_DIR") or Path.home() / ".cache" / "pyaket-cross")


def load_cross_env() -> dict[str, str]:
    """The environment after `source $CROSS_DIR/env.sh`; skips (or fails under CI) when it is missing."""
    env_file = cross_dir() / "env.sh"
    if not env_file.is_file():
        reason = f"cross toolchain not set up ({env_file} missing): run `bash .ci/setup-cross.sh`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    output = subprocess.run(["bash", "-c", f'source "{env_file}" && env -0'], capture_output=True, check=True).stdout
    env = dict(item.split("=", 1) for item in output.decode().split("\0") if "=" in item)
    env.pop("PYAKET_INSTALL_DIR", None)
    return env
