"""The hatchling build hook: decides whether to act, then hands the wheel to the pipeline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from hatch_pyaket.config import ProjectFacts, PyaketConfig, parse_config
from hatch_pyaket.errors import ToolchainError
from hatch_pyaket.pipeline import App, build_executables
from hatch_pyaket.toolchain import cargo_executable, host_triple

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


class PyaketBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "pyaket"

    _config: PyaketConfig | None = None

    def _acts_on(self, version: str) -> bool:
        # Only a standard wheel carries the app; sdists and editable wheels are left alone.
        return self.target_name == "wheel" and version == "standard"

    @property
    def config_path(self) -> str:
        hooks = self.build_config.target_config.get("hooks", {})
        if isinstance(hooks, dict) and "pyaket" in hooks:
            return f"tool.hatch.build.targets.{self.target_name}.hooks.pyaket"
        return "tool.hatch.build.hooks.pyaket"

    def load_config(self) -> PyaketConfig:
        core = self.metadata.core
        facts = ProjectFacts(
            name=self.metadata.name,
            version=self.metadata.version,
            requires_python=core.requires_python or "",
            scripts=dict(core.scripts),
            gui_scripts=dict(core.gui_scripts),
        )
        return parse_config(
            self.config, facts, path=self.config_path, host_triple=host_triple(), root=Path(self.root)
        )

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not self._acts_on(version):
            return
        # Validate before hatchling spends time on the wheel, so bad input costs nothing.
        config = self.load_config()
        self._config = config if self._should_build(config) else None

    def _should_build(self, config: PyaketConfig) -> bool:
        """Whether to make executables in this build. See README, "Builds from an sdist"."""
        if _env_flag("HATCH_PYAKET_SKIP"):
            self.app.display_warning("pyaket: HATCH_PYAKET_SKIP is set: building the wheel without executables")
            return False
        if cargo_executable() or shutil.which("cargo"):
            return True
        required = _env_flag("HATCH_PYAKET_REQUIRED")
        if required is None:
            required = config.required
        if required is None:
            # A source tree is a developer's or a release's build; an sdist is being built to be
            # installed (pip, a distribution), where Rust is usually absent and not wanted.
            required = not Path(self.root, "PKG-INFO").is_file()
        if required:
            raise ToolchainError(
                "hatch-pyaket: cargo was not found (looked at $CARGO and PATH), so no executables can be built. "
                "Install Rust (https://rustup.rs), or set HATCH_PYAKET_SKIP=1 to build only the wheel"
            )
        self.app.display_warning(
            "pyaket: WARNING: cargo was not found; building from an sdist, so the wheel is built WITHOUT "
            "executables (set HATCH_PYAKET_REQUIRED=1 to make this an error)"
        )
        return False

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        config = self._config
        if config is None or not self._acts_on(version):
            return
        wheel = Path(artifact_path)
        output_dir = config.output_dir or wheel.parent
        build_executables(
            config,
            App(self.metadata.name, self.metadata.version),
            wheel,
            output_dir,
            report=self.app.display_info,
        )
