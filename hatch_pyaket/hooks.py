"""Registration with hatchling through pluggy; nothing else."""

from __future__ import annotations

from hatchling.plugin import hookimpl

from hatch_pyaket.builder import PyaketBuilder
from hatch_pyaket.plugin import PyaketBuildHook


@hookimpl
def hatch_register_build_hook() -> type[PyaketBuildHook]:
    return PyaketBuildHook


@hookimpl
def hatch_register_builder() -> type[PyaketBuilder]:
    return PyaketBuilder
