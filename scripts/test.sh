#!/usr/bin/env bash
# Every test, on a fresh machine: installs what the tests need (pip; apt and zig for the cross
# targets), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python3 -m pip install -q -e '.[test,zig,xwin]'
CROSS_PY_ARM64=1 bash .ci/setup-cross.sh
python3 -m pytest -ra "$@"
