#!/usr/bin/env bash
# Every check and test, on a fresh machine: installs what they need (pip; apt, zig and rcodesign for the
# cross targets and signing), runs the static checks and the launcher's unit tests (seconds), then
# pytest (the end-to-end builds: minutes). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python3 -m pip install -q -e '.[test,zig,xwin]'
CROSS_PY_ARM64=1 bash .ci/setup-cross.sh

step() { printf '\n== %s\n' "$*"; }
step "ruff check, ruff format --check, mypy"
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy

step "launcher crate: cargo fmt --check, clippy -D warnings, cargo test"
(
  cd rust_template
  # The plugin's shared target dir (debug profile here, release for the builds): one cache per run.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HATCH_PYAKET_CACHE_DIR:-$HOME/.cache/hatch-pyaket}/target}"
  cargo fmt --all --check
  # pyaket-core is the launcher's code; the payload crate's build script needs a staged payload and is
  # built (and its manifest checks run) by every end-to-end build.
  cargo clippy --locked -p pyaket-core -p pyaket-manifest --all-targets -- -D warnings
  # pyaket-manifest as the payload build script compiles it (without recomputing hashes).
  cargo clippy --locked -p pyaket-manifest --no-default-features --all-targets -- -D warnings
  # pyaket-manifest's tests/contract.rs: the golden manifest, the reader and docs/payload-contract.md agree.
  cargo test --locked -p pyaket-core -p pyaket-manifest
  # Self-update (http.rs, update.rs) and the embedded Python's tar.gz reader are compiled only with these
  # features, which the plugin turns on per project.
  cargo clippy --locked -p pyaket-core --features update,python-archive --all-targets -- -D warnings
  cargo test --locked -p pyaket-core --features update,python-archive
)

step "pytest"
python3 -m pytest -ra "$@"
