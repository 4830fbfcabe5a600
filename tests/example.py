"""The example project (`example_project/`) copied for a test or a benchmark, with its pyproject.toml changed
as data: read with tomllib, changed tables merged in, written back by the small TOML writer below.

    project = copy_example(tmp_path, hook={"vendor": "acme", "target": {"x86_64-pc-windows-gnu": {"env": {...}}}})
    edit_pyproject(project, {"project": {"version": "1.0.1"}})

A `None` value removes a key. The writer knows what pyproject files hold (tables, strings, numbers,
booleans, arrays, inline tables inside arrays); comments are not kept.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
HOOK_PATH = ("tool", "hatch", "build", "hooks", "pyaket")


def copy_example(
    folder: Path,
    name: str = "example_project",
    *,
    hook: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Path:
    """`example_project/` copied to `folder/name` (without dist/ and build/); `hook` is merged into its
    `[tool.hatch.build.hooks.pyaket]` and `changes` into the whole file."""
    destination = folder / name
    shutil.copytree(EXAMPLE, destination, ignore=shutil.ignore_patterns("dist", "build"))
    if hook or changes:
        edit_pyproject(destination, changes, hook=hook)
    return destination


def edit_pyproject(
    project: Path, changes: Mapping[str, Any] | None = None, *, hook: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge `changes` (nested tables) and `hook` (the hook's table) into `project/pyproject.toml`; the new data."""
    path = project / "pyproject.toml"
    data = tomllib.loads(path.read_text())
    if changes:
        _merge(data, changes)
    if hook:
        nested: dict[str, Any] = dict(hook)
        for key in reversed(HOOK_PATH):
            nested = {key: nested}
        _merge(data, nested)
    path.write_text(dumps(data))
    return data


def _merge(into: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for `data`: a `[table]` per mapping, its plain values first."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    values = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (values or not tables):
        lines += ["", f"[{'.'.join(_key(part) for part in path)}]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in values]
    for key, sub in tables:
        _table(lines, (*path, key), sub)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r} ({type(value).__name__})")
