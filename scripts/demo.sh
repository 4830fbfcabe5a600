#!/usr/bin/env bash
# The main job on a fresh machine: build example_project into an executable with `hatch build`, run it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${DEMO_DIR:-$(mktemp -d)}"
python3 -m pip install -q hatch build

# hatch-pyaket is not on PyPI yet: build it here and let hatch's build environment find it.
python3 -m build -q --wheel --outdir "$work/plugin" "$root"
export PIP_FIND_LINKS="${PIP_FIND_LINKS:+$PIP_FIND_LINKS }$work/plugin" UV_FIND_LINKS="$work/plugin"

rm -rf "$work/example_project"
cp -r "$root/example_project" "$work/example_project"
cd "$work/example_project"
hatch build
ls -l dist/
triple="$(rustc -vV | sed -n 's/^host: //p')"
exe="dist/example-app-1.0.0-$triple"
export PYAKET_INSTALL_DIR="$work/apps"  # a private install root, so the demo always shows a first run
echo "--- first run (installs), then a second run:"
"$exe" "hello world" --exit 0
"$exe" again
