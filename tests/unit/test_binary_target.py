"""`hatch build -t binary` relies on how hatchling's BinaryBuilder works; these tests fail loudly if it changes.

The supported range is pinned in pyproject.toml (`hatchling>=...,<...`). When one of these fails after a
hatchling upgrade, binary_target.py and cargo_shim.py must follow hatchling (or the pin must exclude it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hatchling.builders.binary import BinaryBuilder
from hatchling.plugin.manager import PluginManager

from hatch_pyaket import binary_target
from hatch_pyaket.builder import PyaketBuilder
from hatch_pyaket.config import parse_config
from hatch_pyaket.hatch_project import without_our_hook
from hatch_pyaket.plugin import PyaketBuildHook
from tests.unit.test_config import facts

HOST = "x86_64-unknown-linux-gnu"


HOOK_SCRIPT = """
import json, os
from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class RecordingHook(BuildHookInterface):
    def _record(self, entry):
        with open(self.config["log"], "a") as log:
            log.write(json.dumps(entry) + "\\n")

    def initialize(self, version, build_data):
        os.environ["CARGO"] = self.config["cargo"]  # as our hook points hatch at the stand-in
        self._record({"call": "initialize", "version": version})

    def finalize(self, version, build_data, artifact_path):
        self._record({"call": "finalize", "artifact": artifact_path, "files": sorted(os.listdir(artifact_path))})
"""

RECORDING_CARGO = """#!{python}
import json, os, subprocess, sys
with open({log!r}, "a") as log:
    log.write(json.dumps({{"call": "cargo", "args": sys.argv[1:], "cwd": os.getcwd(),
                          "spec": os.environ.get("PYAPP_EXEC_SPEC")}}) + "\\n")
sys.exit(subprocess.call([{cargo!r}, *sys.argv[1:]]))
"""


def _recording_cargo(cargo: Path, log: Path) -> Path:
    """`cargo` (the stand-in) behind a script that logs each call: its arguments, folder and PYAPP_EXEC_SPEC."""
    wrapper = cargo.parent / "recording-cargo"
    wrapper.write_text(RECORDING_CARGO.format(python=sys.executable, log=str(log), cargo=str(cargo)))
    wrapper.chmod(0o755)
    return wrapper


def _plan(tmp_path: Path, specs: list[str], default: str) -> tuple[dict[str, object], dict[str, Path]]:
    launchers = {spec: tmp_path / f"launcher-{spec.split('.')[-1]}" for spec in specs}
    for spec, path in launchers.items():
        path.write_text(f"launcher for {spec}\n")
    output = ["release", binary_target.pyapp_exe_name(sys.platform == "win32")]
    return {
        "output": output,
        "specs": {k: str(v) for k, v in launchers.items()},
        "default": str(launchers[default]),
    }, launchers


def test_hatchling_runs_cargo_between_the_hooks_calls_as_the_stand_in_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What binary_target.py relies on, seen from outside: a build hook's initialize runs first (and the `$CARGO`
    it sets is the one hatch runs), then `$CARGO build --release --target-dir <dir>` in `$PYAPP_REPO` once per
    script with its PYAPP_EXEC_SPEC, then finalize with `dist/binary` holding hatch's files."""
    project = _project(tmp_path / "project")
    log = tmp_path / "calls.jsonl"
    plan, _ = _plan(tmp_path, ["my_app.z:main", "my_app.a:main"], "my_app.a:main")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cargo = _recording_cargo(binary_target.write_shim(scratch, plan), log)
    (project / "hatch_build.py").write_text(HOOK_SCRIPT)
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write(f'[tool.hatch.build.targets.binary.hooks.custom]\nlog = "{log}"\ncargo = "{cargo}"\n')
    monkeypatch.setenv("CARGO", str(tmp_path / "no-cargo-before-initialize"))  # restored after the test
    monkeypatch.setenv("PYAPP_REPO", str(scratch))
    monkeypatch.delenv("CARGO_BUILD_TARGET", raising=False)
    monkeypatch.setenv(binary_target.ENV_DISTRIBUTION_SOURCE, "unused")

    (artifact,) = BinaryBuilder(str(project)).build(directory=str(project / "dist"), versions=[binary_target.VERSION])

    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["call"] for c in calls] == ["initialize", "cargo", "cargo", "finalize"]
    assert calls[0]["version"] == binary_target.VERSION
    for call in calls[1:3]:
        assert call["args"][:3] == ["build", "--release", "--target-dir"] and len(call["args"]) == 4, call
        assert call["cwd"] == str(scratch)
    assert [c["spec"] for c in calls[1:3]] == ["my_app.a:main", "my_app.z:main"]  # scripts in name order
    assert calls[3]["artifact"] == artifact == str(project / "dist" / binary_target.OUTPUT_FOLDER)
    assert calls[3]["files"] == ["alpha-2.1", "zeta-2.1"]


def test_a_project_without_scripts_gets_one_binary_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "My_App"\nversion = "2.1"\n')
    plan, _ = _plan(tmp_path, ["my_app:main"], "my_app:main")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("CARGO", str(binary_target.write_shim(scratch, plan)))
    monkeypatch.setenv("PYAPP_REPO", str(scratch))
    monkeypatch.delenv("CARGO_BUILD_TARGET", raising=False)
    monkeypatch.setenv(binary_target.ENV_DISTRIBUTION_SOURCE, "unused")

    builder = BinaryBuilder(str(project))
    (artifact,) = builder.build(directory=str(project / "dist"), versions=[binary_target.VERSION])

    (request,) = binary_target.hatch_requests([], {}, builder.metadata.name, builder.metadata.version, "", False)
    assert sorted(p.name for p in Path(artifact).iterdir()) == [request.file_name]
    assert (Path(artifact) / request.file_name).read_text() == "launcher for my_app:main\n"


def test_only_the_distribution_source_keeps_hatchling_from_refusing_a_new_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """binary_target sets PYAPP_DISTRIBUTION_SOURCE so that a requires-python beyond PyApp's list builds."""
    project = _project(tmp_path / "project")
    monkeypatch.delenv(binary_target.ENV_DISTRIBUTION_SOURCE, raising=False)
    with pytest.raises(ValueError, match="requires-python"):
        BinaryBuilder(str(project)).config.python_version  # noqa: B018
    monkeypatch.setenv(binary_target.ENV_DISTRIBUTION_SOURCE, "unused")
    assert BinaryBuilder(str(project)).config.python_version == ""


def test_hatchlings_binary_target_names() -> None:
    assert BinaryBuilder.PLUGIN_NAME == binary_target.TARGET_NAME == binary_target.OUTPUT_FOLDER
    assert BinaryBuilder.get_default_versions(BinaryBuilder) == [binary_target.VERSION]  # type: ignore[arg-type]


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
