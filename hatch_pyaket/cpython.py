"""The CPython releases this version of hatch-pyaket knows of: one table, read by config validation.

Update it with the default uv-version (config.DEFAULT_UV_VERSION): the patch numbers are the
newest each minor has in that uv's download list (`uv python list --all-versions --only-downloads`).
"""

from __future__ import annotations

# The newest patch release of each minor, oldest minor first; None: no final release yet (pre-releases only).
NEWEST_PATCH: dict[str, int | None] = {
    "3.8": 20,
    "3.9": 25,
    "3.10": 22,
    "3.11": 18,
    "3.12": 16,
    "3.13": 18,
    "3.14": 10,
    "3.15": 2,
    "3.16": None,
}
# Minors past their end of life (PEP 569, 596, 619): their newest patch is their last one.
FINISHED = frozenset({"3.8", "3.9", "3.10"})

KNOWN_MINORS = tuple(NEWEST_PATCH)


def newest(minor: str) -> str:
    """'3.12.16' for '3.12'; '3.16 (pre-releases only)' for a minor with no final release yet."""
    patch = NEWEST_PATCH[minor]
    return f"{minor}.{patch}" if patch is not None else f"{minor} (pre-releases only)"
