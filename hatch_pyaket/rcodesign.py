"""`rcodesign` (the apple-codesign crate): Apple code signing and notarization from any OS.

Found as `$RCODESIGN`, on PATH, or in the plugin's cache; otherwise installed there once with
`cargo install` (about 3 minutes on 2 cores) and reused by every later build.

    python -m hatch_pyaket.rcodesign [--notarize]   # install it ahead of time (CI setup)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from hatch_pyaket import fetch, fsio
from hatch_pyaket.errors import ToolchainError
from hatch_pyaket.toolchain import cargo_executable

VERSION = "0.29.0"
CRATE = "apple-codesign"
Report = Callable[[str], None]


def cached_path(notarize: bool, environ: Mapping[str, str] | None = None) -> Path:
    """Where the plugin installs it: one folder per version and feature set."""
    flavour = f"{VERSION}-notarize" if notarize else VERSION
    exe = "rcodesign.exe" if sys.platform == "win32" else "rcodesign"
    return fetch.cache_dir(environ) / "tools" / "rcodesign" / flavour / "bin" / exe


def has_notarize(rcodesign: str) -> bool:
    """Builds without the `notarize` feature have no notary-* commands."""
    try:
        result = subprocess.run([rcodesign, "notary-submit", "--help"], check=False, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def find(notarize: bool, report: Report, environ: Mapping[str, str] | None = None) -> str:
    """An rcodesign that can sign (and notarize, if asked): the user's, a cached one, or a fresh install."""
    environ = os.environ if environ is None else environ
    given = environ.get("RCODESIGN")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise ToolchainError(f"RCODESIGN={given!r} is not an executable file; fix the path or unset RCODESIGN")
        if notarize and not has_notarize(given):
            raise ToolchainError(
                f"RCODESIGN={given!r} was built without notarization support (no `notary-submit`); "
                f"reinstall it with `cargo install {CRATE} --locked` (the notarize feature is on by default) "
                "or unset RCODESIGN to let hatch-pyaket install one"
            )
        return given
    on_path = shutil.which("rcodesign", path=environ.get("PATH"))
    if on_path and (not notarize or has_notarize(on_path)):
        return on_path
    for flavour in (True,) if notarize else (False, True):
        cached = cached_path(flavour, environ)
        if cached.is_file():
            return str(cached)
    return str(install(notarize, report, environ))


def install(notarize: bool, report: Report, environ: Mapping[str, str] | None = None) -> Path:
    """`cargo install apple-codesign` into the cache, one build at a time; cargo's progress goes to stderr."""
    environ = os.environ if environ is None else environ
    destination = cached_path(notarize, environ)
    root = destination.parent.parent
    cargo = cargo_executable(environ)
    if not cargo:
        raise ToolchainError(
            f"signing for macOS needs rcodesign, and installing it needs cargo (not found); "
            f"install it yourself (`cargo install {CRATE} --locked`) and set RCODESIGN to its path"
        )
    with fsio.locked(
        root.parent / f".install-{root.name}.lock",
        what=f"the rcodesign install folder {root}",
        doing="installing rcodesign",
        report=report,
    ):
        if destination.is_file():  # another build installed it while this one waited
            return destination
        features = ["--features", "notarize"] if notarize else []
        command = [
            cargo, "install", CRATE, "--version", VERSION, "--locked", "--no-default-features", *features,
            "--root", str(root),
        ]  # fmt: skip
        build_dir = root.parent / f".build-{root.name}"
        report(
            f"pyaket: installing rcodesign {VERSION} for macOS signing{' and notarization' if notarize else ''} "
            f"into {root} (once per cache; about 3-5 minutes): {' '.join(command)}"
        )
        started = time.monotonic()
        # A host tool: settings meant for the launcher's cross builds must not reach this one.
        env = {k: v for k, v in environ.items() if k not in {"CARGO_BUILD_TARGET", "CARGO_UNSTABLE_BUILD_STD"}}
        env["CARGO_TARGET_DIR"] = str(build_dir)
        try:
            result = subprocess.run(command, check=False, env=env, stdout=sys.stderr)
        except OSError as error:
            raise ToolchainError(f"could not start {cargo!r}: {error}") from None
        if result.returncode != 0 or not destination.is_file():
            raise ToolchainError(
                f"installing rcodesign failed (exit code {result.returncode}; see cargo's output above): "
                f"{' '.join(command)}; install it yourself and set RCODESIGN to its path"
            )
        shutil.rmtree(build_dir, ignore_errors=True)
        report(f"pyaket: installed rcodesign {VERSION} in {time.monotonic() - started:.0f} s: {destination}")
    return destination


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    notarize = "--notarize" in args
    path = find(notarize, lambda line: print(line, file=sys.stderr))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
