"""The `$CARGO` hatch's binary builder runs during `hatch build -t binary` (see binary_target.py).

hatchling calls `$CARGO build --release --target-dir <dir>` once per script, with the script's
`PYAPP_EXEC_SPEC` in the environment, and takes `<dir>/[<target>/]release/pyapp[.exe]`. This program
copies the launcher hatch-pyaket already built for that script there; nothing is compiled.

    python -m hatch_pyaket.cargo_shim <plan.json> build --release --target-dir <dir>

plan.json: {"output": [parts under <dir>], "specs": {exec spec: launcher}, "default": launcher}
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hatch_pyaket import fsio


def target_dir(cargo_args: Sequence[str]) -> str | None:
    """`<dir>` of `build ... --target-dir <dir>` (or `--target-dir=<dir>`), None for any other command."""
    if not cargo_args or cargo_args[0] != "build":
        return None
    for index, arg in enumerate(cargo_args):
        if arg == "--target-dir" and index + 1 < len(cargo_args):
            return cargo_args[index + 1]
        if arg.startswith("--target-dir="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m hatch_pyaket.cargo_shim <plan.json> <cargo arguments>", file=sys.stderr)
        return 2
    plan_file, cargo_args = args[0], args[1:]
    folder = target_dir(cargo_args)
    if folder is None:
        print(
            "hatch-pyaket: this stand-in for cargo only answers hatchling's binary builder "
            f"(`cargo build --release --target-dir DIR`), not `cargo {' '.join(cargo_args)}`. "
            "hatchling may have changed how it builds binaries: check the supported hatchling range "
            "of hatch-pyaket, or use `hatch build -t pyaket`",
            file=sys.stderr,
        )
        return 2
    plan = json.loads(Path(plan_file).read_text())
    spec = os.environ.get("PYAPP_EXEC_SPEC", "")
    launcher = plan["specs"].get(spec) or plan["default"]
    destination = Path(folder, *plan["output"])
    # hatch moves this file into dist/binary as it is: it must stay executable.
    fsio.copy_atomic(Path(launcher), destination, mode=0o755)
    print(f"hatch-pyaket: {Path(launcher).name} handed to hatch's binary builder (PyApp is not built)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
