"""`hatch build -t binary` relies on how hatchling's BinaryBuilder works; these tests fail loudly if it changes.

The supported range is pinned in pyproject.toml (`hatchling>=...,<...`). When one of these fails after a
hatchling upgrade, binary_target.py and cargo_shim.py must follow hatchling (or the pin must exclude it).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

import pytest
from hatchling.builders.binary import BinaryBuilder, BinaryBuilderConfig
from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.plugin.manager import PluginManager

from hatch_pyaket import binary_target
from hatch_pyaket.builder import PyaketBuilder
from hatch_pyaket.config import parse_config
from hatch_pyaket.hatch_project import without_our_hook
from hatch_pyaket.plugin import PyaketBuildHook
from tests.unit.test_config import facts

HOST = "x86_64-unknown-linux-gnu"


def _source(function: object) -> str:
    # Quotes differ between hatchling releases (1.26 used single quotes); compare with one style.
    return re.sub(r"\s+", " ", inspect.getsource(function)).replace("'", '"')  # type: ignore[arg-type]


def test_binary_builder_reads_the_environment_we_set() -> None:
    source = _source(BinaryBuilder.build_bootstrap)
    for needle in (
        'os.environ.get("CARGO", "")',
        'os.environ.get("PYAPP_REPO", "")',
        'os.environ.get("CARGO_BUILD_TARGET", "")',
        '[cargo_path, "build", "--release", "--target-dir", target_dir]',
        'os.path.join(target_dir, build_target, "release", exe_name)',
        'os.path.join(target_dir, "release", exe_name)',
        'exe_name = "pyapp.exe" if on_windows else "pyapp"',
        'env["PYAPP_EXEC_SPEC"] = self.metadata.core.scripts[script]',
        "for script in self.config.scripts:",
        'f"{script}-{self.metadata.version}-{build_target}"',
        'f"{self.metadata.name}-{self.metadata.version}"',
        "os.path.join(directory, self.PLUGIN_NAME)",
        "shutil.move(temp_exe_path, exe_path)",
    ):
        assert needle in source, f"hatchling's BinaryBuilder.build_bootstrap no longer contains {needle!r}"
    assert "not in os.environ" in _source(BinaryBuilderConfig.python_version.fget)
    assert binary_target.ENV_DISTRIBUTION_SOURCE in _source(BinaryBuilderConfig.python_version.fget)
    assert BinaryBuilder.PLUGIN_NAME == binary_target.TARGET_NAME == binary_target.OUTPUT_FOLDER
    assert BinaryBuilder.get_default_versions(BinaryBuilder) == [binary_target.VERSION]  # type: ignore[arg-type]


def test_hooks_run_around_the_builder_call() -> None:
    source = _source(BuilderInterface.build)
    initialize = source.index("build_hook.initialize(version, build_data)")
    build = source.index("artifact = version_api[version](directory, **build_data)")
    finalize = source.index("build_hook.finalize(version, build_data, artifact)")
    assert initialize < build < finalize


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(
        # A Python newer than PyApp's list: hatch must not refuse it (PYAPP_DISTRIBUTION_SOURCE is set).
        '[project]\nname = "My_App"\nversion = "2.1"\nrequires-python = ">=3.13"\n'
        '[project.scripts]\nzeta = "my_app.z:main"\nalpha = "my_app.a:main"\n'
    )
    return root


@pytest.mark.parametrize("build_target", ["", "aarch64-unknown-linux-gnu"])
def test_the_real_binary_builder_takes_the_shims_launchers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_target: str
) -> None:
    """hatchling's own BinaryBuilder, run for real with our stand-in cargo: no compiler involved."""
    project = _project(tmp_path / "project")
    launchers = {spec: tmp_path / f"launcher-{spec.split('.')[-1]}" for spec in ("my_app.z:main", "my_app.a:main")}
    for spec, path in launchers.items():
        path.write_text(f"launcher for {spec}\n")
    on_windows = sys.platform == "win32"
    output = [*([build_target] if build_target else []), "release", binary_target.pyapp_exe_name(on_windows)]
    plan = {
        "output": output,
        "specs": {k: str(v) for k, v in launchers.items()},
        "default": str(launchers["my_app.a:main"]),
    }
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("CARGO", str(binary_target.write_shim(scratch, plan)))
    monkeypatch.setenv("PYAPP_REPO", str(scratch))
    monkeypatch.setenv("CARGO_BUILD_TARGET", build_target)
    monkeypatch.setenv(binary_target.ENV_DISTRIBUTION_SOURCE, "unused")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p))

    builder = BinaryBuilder(str(project))
    (artifact,) = builder.build(directory=str(project / "dist"), versions=["bootstrap"])

    requests = binary_target.hatch_requests(
        binary_target.hatch_scripts(builder.config),
        builder.metadata.core.scripts,
        builder.metadata.name,
        builder.metadata.version,
        build_target,
        on_windows,
    )
    suffix = f"-{build_target}" if build_target else ""
    assert [r.file_name for r in requests] == [f"alpha-2.1{suffix}", f"zeta-2.1{suffix}"]
    assert Path(artifact) == project / "dist" / "binary"
    assert sorted(p.name for p in Path(artifact).iterdir()) == [r.file_name for r in requests]
    for request in requests:
        placed = Path(artifact) / request.file_name
        assert placed.read_text() == f"launcher for {request.exec_spec}\n"
        assert os.access(placed, os.X_OK)


def test_the_shim_refuses_anything_but_hatchlings_build(tmp_path: Path) -> None:
    from hatch_pyaket import cargo_shim

    assert cargo_shim.target_dir(["install", "pyapp", "--root", "x"]) is None
    assert cargo_shim.target_dir(["build", "--release", "--target-dir=/t"]) == "/t"
    assert cargo_shim.main([str(tmp_path / "plan.json"), "install", "pyapp"]) == 2


def test_launcher_names_follow_hatch() -> None:
    table = {
        "targets": ["x86_64-pc-windows-gnu", "host", "x86_64-unknown-linux-gnu.2.17"],
        "scripts": ["example-app"],
    }
    config = parse_config(table, facts(), host_triple=HOST, root=Path("/p"))
    names = binary_target.launcher_names(config, "1.0.0", HOST, build_target="")
    assert names == {
        ("example-app", "x86_64-pc-windows-gnu"): "example-app-1.0.0-x86_64-pc-windows-gnu.exe",
        ("example-app", HOST): "example-app-1.0.0",
        ("example-app", f"{HOST}.2.17"): f"example-app-1.0.0-{HOST}.2.17",
    }
    # With $CARGO_BUILD_TARGET set, hatch suffixes every name, so we do too.
    with_target = binary_target.launcher_names(config, "1.0.0", HOST, build_target=HOST)
    assert with_target[("example-app", HOST)] == f"example-app-1.0.0-{HOST}"


def test_scripts_the_hook_leaves_out_are_named() -> None:
    requests = binary_target.hatch_requests(
        ["a", "b"], {"a": "m:a", "b": "m:b"}, "proj", "1.0", build_target="", on_windows=False
    )
    assert [(r.script, r.exec_spec, r.file_name) for r in requests] == [("a", "m:a", "a-1.0"), ("b", "m:b", "b-1.0")]
    scripts = {"a": "m:a", "b": "m:b"}
    only_a = parse_config({"script": "a"}, facts(scripts=scripts), host_triple=HOST, root=Path("/p"))
    assert binary_target.unbuilt_scripts(requests, only_a) == ["b"]
    both = parse_config({"scripts": ["a", "b"]}, facts(scripts=scripts), host_triple=HOST, root=Path("/p"))
    assert binary_target.unbuilt_scripts(requests, both) == []
    no_scripts = binary_target.hatch_requests([], {}, "proj", "1.0", build_target="", on_windows=False)
    assert binary_target.unbuilt_scripts(no_scripts, only_a) == []


def test_the_binary_target_defaults_to_hatchs_scripts() -> None:
    assert binary_target.with_hatch_scripts({"targets": ["host"]}, ["a", "b"]) == {
        "targets": ["host"],
        "scripts": ["a", "b"],
    }
    assert binary_target.with_hatch_scripts({"script": "a"}, ["a", "b"]) == {"script": "a"}
    assert binary_target.with_hatch_scripts({}, []) == {}


def test_the_inner_wheel_build_leaves_our_hook_out() -> None:
    raw = {
        "project": {"name": "x"},
        "tool": {
            "hatch": {
                "build": {
                    "hooks": {"pyaket": {"targets": ["host"]}, "custom": {}},
                    "targets": {"wheel": {"hooks": {"pyaket": {}}, "packages": ["src/x"]}, "binary": {}},
                }
            }
        },
    }
    stripped = without_our_hook(raw)
    build = stripped["tool"]["hatch"]["build"]
    assert build["hooks"] == {"custom": {}}
    assert build["targets"]["wheel"] == {"hooks": {}, "packages": ["src/x"]}
    assert raw["tool"]["hatch"]["build"]["hooks"]["pyaket"] == {"targets": ["host"]}  # the original is untouched


def test_plugins_are_registered() -> None:
    manager = PluginManager()
    assert manager.builder.get("pyaket") is PyaketBuilder
    assert manager.build_hook.get("pyaket") is PyaketBuildHook
