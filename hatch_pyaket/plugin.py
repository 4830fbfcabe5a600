"""The hatchling build hook: decides whether to act, then hands the wheel to the pipeline.

It acts on the `wheel` target's standard build (executables beside the wheel) and on the `binary`
target (launchers instead of PyApp in `dist/binary/`, see binary_target.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from hatch_pyaket import binary_target
from hatch_pyaket.config import PyaketConfig, parse_config
from hatch_pyaket.errors import ToolchainError
from hatch_pyaket.hatch_project import build_wheel, project_facts
from hatch_pyaket.pipeline import App, build_executables
from hatch_pyaket.toolchain import cargo_executable, host_triple

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


class PyaketBuildHook(BuildHookInterface):
    PLUGIN_NAME = "pyaket"

    _config: PyaketConfig | None = None
    _binary: binary_target.BinaryBuild | None = None

    def _acts_on(self, version: str) -> bool:
        # Only a standard wheel carries the app; sdists and editable wheels are left alone.
        return (self.target_name == "wheel" and version == "standard") or self._is_binary(version)

    def _is_binary(self, version: str) -> bool:
        return self.target_name == binary_target.TARGET_NAME and version == binary_target.VERSION

    @property
    def config_path(self) -> str:
        hooks = self.build_config.target_config.get("hooks", {})
        if isinstance(hooks, dict) and "pyaket" in hooks:
            return f"tool.hatch.build.targets.{self.target_name}.hooks.pyaket"
        return "tool.hatch.build.hooks.pyaket"

    def load_config(self) -> PyaketConfig:
        table = self.config
        if self.target_name == binary_target.TARGET_NAME:
            table = binary_target.with_hatch_scripts(table, binary_target.hatch_scripts(self.build_config))
        return parse_config(
            table, project_facts(self.metadata), path=self.config_path, host_triple=host_triple(), root=Path(self.root)
        )

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not self._acts_on(version):
            return
        # Validate before hatchling spends time on the wheel, so bad input costs nothing.
        config = self.load_config()
        for warning in config.warnings:
            self.app.display_warning(f"pyaket: WARNING: {warning}")
        self._config = config if self._should_build(config) else None
        if self._config is not None and self._is_binary(version):
            self._binary = self._prepare_binary(self._config)

    def _prepare_binary(self, config: PyaketConfig) -> binary_target.BinaryBuild:
        builder = self.build_config.builder
        return binary_target.prepare(
            config,
            App(self.metadata.name, self.metadata.version),
            lambda folder: build_wheel(builder, folder),
            output_dir=Path(self.directory, binary_target.OUTPUT_FOLDER),
            scripts=binary_target.hatch_scripts(self.build_config),
            project_scripts=dict(self.metadata.core.scripts),
            host_triple=host_triple(),
            report=self.app.display_info,
        )

    def _should_build(self, config: PyaketConfig) -> bool:
        """Whether to make executables in this build. See README, "Builds from an sdist"."""
        if _env_flag("HATCH_PYAKET_SKIP"):
            instead = (
                "hatch's own binary builder (PyApp) runs instead"
                if self.target_name == binary_target.TARGET_NAME
                else "building the wheel without executables"
            )
            self.app.display_warning(f"pyaket: HATCH_PYAKET_SKIP is set: {instead}")
            return False
        required = _env_flag("HATCH_PYAKET_REQUIRED")
        if required is None:
            required = config.required
        from_sdist = Path(self.root, "PKG-INFO").is_file()
        if from_sdist and required is not True and not self._is_binary_target():
            # Installers (pip, uv, distributions) build the wheel from the sdist into a temporary folder
            # and keep only the wheel: compiling launchers there costs a minute and hundreds of MB for
            # nothing. Neither hatchling nor the installers tell an installer apart from `python -m build`
            # (which also builds the wheel from the sdist), so a build from an sdist asks to be told.
            self.app.display_warning(
                "pyaket: building from an sdist (PKG-INFO present), so the wheel is built without executables; "
                "to get them, build from the source tree (`hatch build`, `python -m build --wheel`) or set "
                "HATCH_PYAKET_REQUIRED=1"
            )
            return False
        if cargo_executable():
            return True
        if required is None:
            required = True  # a source tree is a developer's or a release's build
        if required:
            raise ToolchainError(
                "hatch-pyaket: cargo was not found (looked at $CARGO and PATH), so no executables can be built. "
                "Install Rust (https://rustup.rs), or set HATCH_PYAKET_SKIP=1 to build only the wheel"
            )
        self.app.display_warning(
            "pyaket: WARNING: cargo was not found and required = false (or HATCH_PYAKET_REQUIRED=0): "
            "the wheel is built WITHOUT executables"
        )
        return False

    def _is_binary_target(self) -> bool:
        # `hatch build -t binary` asks for executables explicitly, wherever its sources come from.
        return self.target_name == binary_target.TARGET_NAME

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        config = self._config
        if config is None or not self._acts_on(version):
            return
        if self._binary is not None:
            binary, self._binary = self._binary, None
            binary.finish(self.app.display_info)
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
