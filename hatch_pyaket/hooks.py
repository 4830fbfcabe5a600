"""Registration with hatchling through pluggy; nothing else."""

from __future__ import annotations

from hatchling.plugin import hookimpl

from hatch_pyaket.plugin import PyaketBuildHook


@hookimpl
def hatch_register_build_hook() -> type[PyaketBuildHook]:
    return PyaketBuildHook
