"""What the plugin takes from hatchling's project objects: the facts config validation needs, and the wheel.

Targets other than `wheel` (`hatch build -t binary`, `hatch build -t pyaket`) embed the project's
wheel too; they build it here with hatchling's own WheelBuilder, exactly as `hatch build -t wheel`
would, except that our hook is left out of that inner build (it would build executables again).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.builders.wheel import WheelBuilder
from hatchling.metadata.core import ProjectMetadata
from packaging.utils import canonicalize_name

from hatch_pyaket.config import ProjectFacts
from hatch_pyaket.errors import BuildError

HOOK_NAME = "pyaket"


def project_facts(metadata: ProjectMetadata) -> ProjectFacts:
    core = metadata.core
    return ProjectFacts(
        name=metadata.name,
        version=metadata.version,
        requires_python=core.requires_python or "",
        scripts=dict(core.scripts),
        gui_scripts=dict(core.gui_scripts),
        description=core.description or "",
        optional_dependencies=tuple(sorted(canonicalize_name(name) for name in core.optional_dependencies)),
    )


def without_our_hook(raw_config: dict[str, Any]) -> dict[str, Any]:
    """A copy of the whole pyproject table in which the wheel target does not run the pyaket hook."""
    config = copy.deepcopy(raw_config)
    build = config.get("tool", {}).get("hatch", {}).get("build", {})
    if isinstance(build, dict):
        hooks = build.get("hooks")
        if isinstance(hooks, dict):
            hooks.pop(HOOK_NAME, None)
        wheel = build.get("targets", {}).get("wheel", {}) if isinstance(build.get("targets"), dict) else {}
        if isinstance(wheel, dict) and isinstance(wheel.get("hooks"), dict):
            wheel["hooks"].pop(HOOK_NAME, None)
    return config


def build_wheel(builder: BuilderInterface, directory: Path) -> Path:
    """The project's standard wheel, built into `directory` by hatchling (other build hooks included)."""
    wheel_builder = WheelBuilder(
        builder.root,
        plugin_manager=builder.plugin_manager,
        config=without_our_hook(builder.raw_config),
        app=builder.app,
    )
    directory.mkdir(parents=True, exist_ok=True)
    built = list(
        wheel_builder.build(
            directory=str(directory), versions=["standard"], hooks_only=False, clean=False, clean_hooks_after=False
        )
    )
    if len(built) != 1 or not built[0].endswith(".whl"):
        raise BuildError(f"hatchling's wheel builder returned {built!r} instead of one .whl file")
    return Path(built[0])
