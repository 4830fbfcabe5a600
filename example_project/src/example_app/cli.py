"""The command line: `example-app [--exit N] [--stdin] [--wait] [--sleep SECONDS] [ARGS...]`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import colorama

from example_app import __version__


def _on_sigterm(signum: int, frame: object) -> None:
    print("example-app: got SIGTERM", flush=True)
    sys.exit(143)


def main() -> int:
    args = sys.argv[1:]
    code = 0
    read_stdin = wait = False
    sleep = 0.0
    rest: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--exit" and i + 1 < len(args):
            code = int(args[i + 1])
            i += 2
            continue
        if args[i] == "--sleep" and i + 1 < len(args):
            sleep = float(args[i + 1])
            i += 2
            continue
        if args[i] == "--stdin":
            read_stdin = True
        elif args[i] == "--wait":
            wait = True
        else:
            rest.append(args[i])
        i += 1
    print(f"example-app {__version__} (colorama {colorama.__version__}, python {sys.version.split()[0]})")
    print("args: " + json.dumps(rest, ensure_ascii=False))
    print(f"executable: {sys.executable}")
    if read_stdin:
        print("stdin: " + json.dumps(sys.stdin.read(), ensure_ascii=False))
    # What argparse and click would show in their usage line.
    print(f"prog: {os.path.basename(sys.argv[0])} (argv[0] {sys.argv[0]})")
    if wait:
        signal.signal(signal.SIGTERM, _on_sigterm)
        print("waiting", flush=True)
        time.sleep(60)
    if sleep:
        print("sleeping", flush=True)
        time.sleep(sleep)
        # Reads the environment's files only now: fails if it was removed meanwhile.
        from importlib.metadata import version

        print(f"slept, colorama {version('colorama')}", flush=True)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
