"""`hatch build -t pyaket`: a build target of its own that makes only the executables.

It builds the project's wheel with hatchling's WheelBuilder (not kept), then the launchers for every
configured target into `<build dir>/pyaket/` (`dist/pyaket/`), named
`<script or project>-<version>-<target>[.exe]`, with `SHA256SUMS`.

Settings: `[tool.hatch.build.targets.pyaket]` when it holds any hatch-pyaket setting, else the
hook's table `[tool.hatch.build.hooks.pyaket]`, else the defaults (the host, the only script).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.plugin.manager import PluginManager

from hatch_pyaket.config import KNOWN_KEYS, PyaketConfig, parse_config
from hatch_pyaket.errors import ToolchainError
from hatch_pyaket.hatch_project import build_wheel, project_facts
from hatch_pyaket.pipeline import App, build_executables
from hatch_pyaket.toolchain import cargo_executable, host_triple

TARGET_NAME = "pyaket"
HOOK_TABLE = "tool.hatch.build.hooks.pyaket"
# Keys every hatchling target table may hold; they configure hatchling, not us.
HATCHLING_TARGET_KEYS = frozenset(
    {
        "hooks",
        "versions",
        "directory",
        "dependencies",
        "require-runtime-dependencies",
        "require-runtime-features",
    }
)


class PyaketBuilderConfig(BuilderConfig):
    pass


class PyaketBuilder(BuilderInterface[PyaketBuilderConfig, PluginManager]):
    PLUGIN_NAME = TARGET_NAME

    def get_version_api(self) -> dict[str, Callable[..., str]]:
        return {"standard": self.build_standard}

    def get_default_versions(self) -> list[str]:
        return ["standard"]

    def clean(self, directory: str, versions: list[str]) -> None:
        shutil.rmtree(Path(directory, self.PLUGIN_NAME), ignore_errors=True)

    def settings(self) -> tuple[Any, str]:
        """The settings table (whatever the TOML holds there; parse_config checks it) and its TOML path."""
        own = {k: v for k, v in self.target_config.items() if k not in HATCHLING_TARGET_KEYS}
        if any(key in KNOWN_KEYS for key in own):
            return own, f"tool.hatch.build.targets.{TARGET_NAME}"
        hooks = self.build_config.get("hooks", {})
        table = hooks.get("pyaket", {}) if isinstance(hooks, dict) else {}
        # Not a table: parse_config says so, naming the table and the fix.
        return (dict(table) if isinstance(table, dict) else table), HOOK_TABLE

    def load_config(self) -> PyaketConfig:
        table, path = self.settings()
        return parse_config(
            table, project_facts(self.metadata), path=path, host_triple=host_triple(), root=Path(self.root)
        )

    def build_standard(self, directory: str, **build_data: Any) -> str:
        config = self.load_config()
        for warning in config.warnings:
            self.app.display_warning(f"pyaket: WARNING: {warning}")
        if not cargo_executable():
            raise ToolchainError(
                "hatch-pyaket: `hatch build -t pyaket` needs cargo, which was not found (looked at $CARGO and PATH). "
                "Install Rust (https://rustup.rs)"
            )
        output_dir = Path(directory, self.PLUGIN_NAME)
        app = App(self.metadata.name, self.metadata.version)
        with tempfile.TemporaryDirectory(prefix="pyaket-wheel-") as temp:
            build_executables(config, app, build_wheel(self, Path(temp)), output_dir, report=self.app.display_info)
        return str(output_dir)

    @classmethod
    def get_config_class(cls) -> type[PyaketBuilderConfig]:
        return PyaketBuilderConfig
