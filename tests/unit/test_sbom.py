"""The SBOM's parts: the lock's pins and `# via` graph, declared licences, the launcher's crates, rendering."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from hatch_pyaket import __version__, artifacts, sbom
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target
from tests.conftest import ROOT

H = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("anyio", "anyio2", "certifi", "httpx", "idna", "te")}

# As `uv pip compile --generate-hashes --no-header --universal` writes it (httpx and certifi requested directly).
LOCK = f"""\
anyio==4.16.0 \\
    --hash=sha256:{H["anyio"]} \\
    --hash=sha256:{H["anyio2"]}
    # via httpx
certifi==2026.10.19.post1 \\
    --hash=sha256:{H["certifi"]}
    # via
    #   httpcore
    #   httpx
httpx==0.28.1 \\
    --hash=sha256:{H["httpx"]}
idna==3.20 \\
    --hash=sha256:{H["idna"]}
    # via
    #   anyio
    #   httpx
typing-extensions==4.16.0 ; python_full_version < '3.15' \\
    --hash=sha256:{H["te"]}
    # via anyio
"""


def test_parse_via_reads_single_and_multi_line_annotations() -> None:
    assert sbom.parse_via(LOCK) == {
        "anyio": {"httpx"},
        "certifi": {"httpcore", "httpx"},  # httpcore is not pinned here: certifi is still httpx's
        "httpx": set(),
        "idna": {"anyio", "httpx"},
        "typing-extensions": {"anyio"},
    }


def test_pins_become_components_with_the_locks_hashes_and_the_via_graph(tmp_path: Path) -> None:
    found = sbom.Inventory(sbom.Package("exe", "app", "1.0", kind="application"))
    sbom.python_packages(found, "pkg:pypi/app@1.0", "app", LOCK, wheels=[])
    anyio = found.packages["pkg:pypi/anyio@4.16.0"]
    assert anyio.purl == anyio.ref and anyio.version == "4.16.0"
    assert anyio.hashes == tuple(sorted((H["anyio"], H["anyio2"])))
    assert anyio.licences == ()  # no embedded wheel: left out, never guessed
    te = found.packages["pkg:pypi/typing-extensions@4.16.0"]
    assert te.properties == (("pyaket:marker", 'python_full_version < "3.15"'),)
    assert found.edges == {
        "pkg:pypi/app@1.0": {"pkg:pypi/httpx@0.28.1"},
        "pkg:pypi/httpx@0.28.1": {
            "pkg:pypi/anyio@4.16.0",
            "pkg:pypi/certifi@2026.10.19.post1",
            "pkg:pypi/idna@3.20",
        },
        "pkg:pypi/anyio@4.16.0": {"pkg:pypi/idna@3.20", "pkg:pypi/typing-extensions@4.16.0"},
    }


def test_a_pin_via_the_app_itself_hangs_under_the_app() -> None:
    """With extras the lock resolves `app[extra] @ file://...` and says `# via app`."""
    lock = f"click==8.1.0 \\\n    --hash=sha256:{H['httpx']}\n    # via my-app\n"
    found = sbom.Inventory(sbom.Package("exe", "my-app", "1.0", kind="application"))
    sbom.python_packages(found, "pkg:pypi/my-app@1.0", "My_App", lock, wheels=[])
    assert found.edges == {"pkg:pypi/my-app@1.0": {"pkg:pypi/click@8.1.0"}}


def test_a_lock_line_without_a_pin_is_named_as_written() -> None:
    """It cannot install with --require-hashes anyway; its SBOM still says what was asked for."""
    found = sbom.Inventory(sbom.Package("exe", "app", "1.0"))
    lock = "thing @ git+https://example.org/thing.git\n" + LOCK
    sbom.python_packages(found, "pkg:pypi/app@1.0", "app", lock, wheels=[])
    thing = found.packages["pyaket:requirement/thing"]
    assert (thing.version, thing.purl, thing.hashes) == ("", None, ())
    assert thing.properties == (("pyaket:requirement", "thing @ git+https://example.org/thing.git"),)
    assert "pyaket:requirement/thing" in found.edges["pkg:pypi/app@1.0"]
    assert "pkg:pypi/httpx@0.28.1" in found.edges["pkg:pypi/app@1.0"]


def _wheel(folder: Path, name: str, version: str, headers: str) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:  # rewritten when asked again
        archive.writestr(f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.4\nName: {name}\n{headers}\n")
    return path


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("License-Expression: MIT OR Apache-2.0\nLicense: ignored\n", ("MIT OR Apache-2.0",)),
        ("License: BSD-3-Clause\n", ("BSD-3-Clause",)),
        ("License: Copyright (c) someone\n        all the text of it\n", ()),  # a licence's text, not its name
        ("License: UNKNOWN\nClassifier: License :: OSI Approved :: BSD License\n", ("BSD License",)),
        (
            (
                "Classifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved :: BSD License\n"
                "Classifier: Programming Language :: Python\n"
            ),
            ("BSD License", "MIT License"),
        ),
        ("Classifier: Programming Language :: Python\n", ()),
    ],
)
def test_licences_are_what_the_wheel_declares(tmp_path: Path, headers: str, expected: tuple[str, ...]) -> None:
    wheel = _wheel(tmp_path, "thing", "1.0", headers)
    assert sbom.declared_licences(sbom.wheel_metadata(wheel)) == expected


def test_embedded_wheels_give_the_pins_their_licences(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "anyio", "4.16.0", "License-Expression: MIT\n")
    found = sbom.Inventory(sbom.Package("exe", "app", "1.0"))
    sbom.python_packages(found, "pkg:pypi/app@1.0", "app", LOCK, wheels=[wheel])
    assert found.packages["pkg:pypi/anyio@4.16.0"].licences == ("MIT",)
    assert found.packages["pkg:pypi/idna@3.20"].licences == ()


def _metadata() -> dict[str, object]:
    """The shape of `cargo metadata --format-version 1` for a launcher with a build dependency and a dev one."""

    def package(name: str, version: str, licence: str | None = "MIT") -> dict[str, object]:
        source = None if name.startswith("pyaket-") else "registry+https://github.com/rust-lang/crates.io-index"
        return {"id": f"{name}@{version}", "name": name, "version": version, "license": licence, "source": source}

    def dep(pkg: str, *kinds: str | None) -> dict[str, object]:
        return {"pkg": pkg, "dep_kinds": [{"kind": k, "target": None} for k in kinds]}

    return {
        "packages": [
            package("pyaket-launcher", "0.1.0"),
            package("pyaket-core", "0.1.0"),
            package("anyhow", "1.0.0", "MIT OR Apache-2.0"),
            package("zstd", "0.14.3"),
            package("zstd-safe", "8.2.0"),
            package("serde_json", "1.0.0"),
            package("cc", "1.0.0", None),
        ],
        "resolve": {
            "nodes": [
                {"id": "pyaket-launcher@0.1.0", "deps": [dep("pyaket-core@0.1.0", None), dep("zstd@0.14.3", "build")]},
                {
                    "id": "pyaket-core@0.1.0",
                    "deps": [dep("anyhow@1.0.0", None), dep("zstd-safe@8.2.0", None), dep("serde_json@1.0.0", "dev")],
                },
                {"id": "anyhow@1.0.0", "deps": []},
                {"id": "zstd@0.14.3", "deps": [dep("zstd-safe@8.2.0", None)]},
                {"id": "zstd-safe@8.2.0", "deps": [dep("cc@1.0.0", "build")]},
                {"id": "serde_json@1.0.0", "deps": []},
                {"id": "cc@1.0.0", "deps": []},
            ]
        },
    }


def test_linked_crates_follow_normal_edges_only() -> None:
    crates = sbom.linked_crates(_metadata())
    assert sorted(crates) == [("anyhow", "1.0.0"), ("pyaket-core", "0.1.0"), ("pyaket-launcher", "0.1.0"), ("zstd-safe", "8.2.0")]  # fmt: skip
    assert crates[("pyaket-core", "0.1.0")].deps == (("anyhow", "1.0.0"), ("zstd-safe", "8.2.0"))
    assert crates[("anyhow", "1.0.0")].licence == "MIT OR Apache-2.0"


def test_the_real_cargo_lock_gives_every_registry_crate_a_checksum() -> None:
    checksums = sbom.parse_cargo_lock((ROOT / "rust_template" / "Cargo.lock").read_text())
    registry = {key: value for key, value in checksums.items() if not key[0].startswith("pyaket-")}
    assert registry and all(len(value) == 64 for value in registry.values())
    assert any(name == "zstd-safe" for name, _ in registry)


def test_without_cargo_metadata_the_lock_graph_is_a_superset() -> None:
    """Cargo.lock does not mark build dependencies: the fallback lists cc (zstd-sys's build script) too."""
    crates = sbom.lock_crates((ROOT / "rust_template" / "Cargo.lock").read_text())
    names = {name for name, _ in crates}
    assert {key[0] for key, crate in crates.items() if crate.workspace} == {
        "pyaket-launcher",
        "pyaket-core",
        "pyaket-payload",
        "pyaket-manifest",
    }
    assert {"pyaket-launcher", "pyaket-core", "pyaket-payload", "anyhow", "zstd-safe", "cc"} <= names


def test_crate_licences_and_purls_are_spelt_as_the_specs_say() -> None:
    assert sbom.cargo_licence("MIT/Apache-2.0") == "MIT OR Apache-2.0"
    assert sbom.cargo_licence("MIT OR Apache-2.0") == "MIT OR Apache-2.0"
    assert sbom.purl("cargo", "zstd-sys", "2.1.2+zstd.1.5.7") == "pkg:cargo/zstd-sys@2.1.2%2Bzstd.1.5.7"
    assert sbom.pypi_purl("Foo_Bar", "1.0") == "pkg:pypi/foo-bar@1.0"


def test_without_cargo_the_crates_come_from_cargo_lock_with_a_warning(tmp_path: Path) -> None:
    messages: list[str] = []
    environ = {"CARGO": str(tmp_path / "no-cargo"), "PATH": ""}
    crates, source = sbom.launcher_crates(ROOT / "rust_template", TARGET.triple, (), environ, messages.append)
    assert source == "Cargo.lock (build-time crates included)"
    assert len(messages) == 1 and "cargo metadata failed for the SBOM" in messages[0]
    checksums = sbom.parse_cargo_lock((ROOT / "rust_template" / "Cargo.lock").read_text())
    zstd_safe = next(c for c in crates.values() if c.name == "zstd-safe")
    assert zstd_safe.checksum == checksums[(zstd_safe.name, zstd_safe.version)]


def test_the_crates_follow_the_launchers_features() -> None:
    # Self-update's HTTPS client and the embedded Python's tar.gz reader are linked only with their features.
    def names(*features: str) -> set[str]:
        crates, source = sbom.launcher_crates(ROOT / "rust_template", TARGET.triple, features, {**os.environ}, print)
        assert source == "cargo metadata (normal dependencies)"
        return {c.name for c in crates.values()}

    plain, both = names(), names("update", "python-archive")
    assert {"zstd-safe", "sha2", "anyhow"} <= plain
    assert not {"ureq", "rustls", "minisign-verify", "tar", "flate2"} & plain
    assert {"ureq", "rustls", "minisign-verify", "tar", "flate2"} <= both
    assert names("python-archive") - plain >= {"tar", "flate2"} and "ureq" not in names("python-archive")


def test_workspace_crates_fold_into_the_launcher() -> None:
    crates = {
        key: sbom.Crate(c.name, c.version, c.licence, "" if c.workspace else "cd" * 32, c.deps, c.workspace)
        for key, c in sbom.linked_crates(_metadata()).items()
    }
    found = sbom.Inventory(sbom.Package("exe", "app", "1.0"))
    found.add(sbom.Package("launcher", "pyaket-launcher", "9"))
    sbom.add_crates(found, "launcher", crates, "cargo metadata")
    assert sorted(found.packages) == ["launcher", "pkg:cargo/anyhow@1.0.0", "pkg:cargo/zstd-safe@8.2.0"]
    assert found.packages["pkg:cargo/anyhow@1.0.0"].hashes == ("cd" * 32,)
    assert found.edges == {"launcher": {"pkg:cargo/anyhow@1.0.0", "pkg:cargo/zstd-safe@8.2.0"}}
    assert ("pyaket:crates-from", "cargo metadata") in found.packages["launcher"].properties


def _inventory(tmp_path: Path, lock: str = LOCK) -> sbom.Inventory:
    wheel = _wheel(tmp_path, "example_app", "1.0.0", "License-Expression: MIT\n")
    uv = tmp_path / ("ef" * 32) / "uv"
    uv.parent.mkdir(exist_ok=True)
    uv.write_bytes(b"uv")
    staged = {
        "payload_hash": "12" * 32,
        "manifest_hash": "34" * 32,
        "python_archive": "python.tar.gz",
        "files": {
            wheel.name: {"sha256": "56" * 32},
            "uv": {"sha256": "78" * 32},
            "python.tar.gz": {"sha256": "9a" * 32},
        },
    }
    crates = {
        ("pyaket-launcher", "0.1.0"): sbom.Crate("pyaket-launcher", "0.1.0", "MIT", "", (("anyhow", "1.0.0"),), True),
        ("anyhow", "1.0.0"): sbom.Crate("anyhow", "1.0.0", "MIT OR Apache-2.0", "cd" * 32, ()),
    }
    return sbom.inventory(
        executable_name="example-app-1.0.0-x86_64-unknown-linux-gnu",
        entry="example-app",
        app_name="example-app",
        app_version="1.0.0",
        target="x86_64-unknown-linux-gnu",
        staged=staged,
        wheel=wheel,
        lock_text=lock,
        wheels=[],
        uv=uv,
        uv_version="0.9.0",
        python_archive=tmp_path / "cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz",
        python_version="3.12",
        crates=crates,
        crates_source="cargo metadata",
    )


WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def test_the_rendered_sbom_is_valid_cyclonedx_and_names_every_part(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = sbom.render(_inventory(tmp_path, lock="thing @ git+https://example.org/thing.git\n" + LOCK), WHEN)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    data = json.loads(text)
    assert data["specVersion"] == "1.6" and data["metadata"]["timestamp"] == "2024-01-02T03:04:05+00:00"
    root = data["metadata"]["component"]
    assert (root["name"], root["type"], root["bom-ref"]) == (
        "example-app",
        "application",
        "example-app-1.0.0-x86_64-unknown-linux-gnu",
    )
    assert "hashes" not in root  # signing changes the executable after this is written
    assert {"name": "pyaket:payload_hash", "value": "12" * 32} in root["properties"]
    components = {c["bom-ref"]: c for c in data["components"]}
    assert len(components) == len(data["components"]) == 11
    assert "version" not in components["pyaket:requirement/thing"]
    app = components["pkg:pypi/example-app@1.0.0"]
    assert app["hashes"] == [{"alg": "SHA-256", "content": "56" * 32}]
    assert app["licenses"] == [{"license": {"id": "MIT"}}]
    uv = components["pkg:pypi/uv@0.9.0"]
    assert uv["hashes"][0]["content"] == "78" * 32 and uv["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert {"name": "pyaket:uv-wheel-sha256", "value": "ef" * 32} in uv["properties"]
    python = components["pkg:generic/cpython@3.12.7"]
    assert python["hashes"][0]["content"] == "9a" * 32
    anyhow = components["pkg:cargo/anyhow@1.0.0"]
    assert anyhow["purl"] == "pkg:cargo/anyhow@1.0.0" and anyhow["hashes"][0]["content"] == "cd" * 32
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in data["dependencies"]}
    launcher = f"pkg:pypi/hatch-pyaket@{__version__}#pyaket-launcher"
    assert graph[root["bom-ref"]] == {
        "pkg:pypi/example-app@1.0.0",
        "pkg:pypi/uv@0.9.0",
        "pkg:generic/cpython@3.12.7",
        launcher,
    }
    assert graph["pkg:pypi/example-app@1.0.0"] == {"pkg:pypi/httpx@0.28.1", "pyaket:requirement/thing"}
    assert graph[launcher] == {"pkg:cargo/anyhow@1.0.0"}
    assert data["metadata"]["tools"]["components"][0]["name"] == "hatch-pyaket"


def test_rendering_is_deterministic_and_the_serial_follows_the_content(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    first = sbom.render(_inventory(tmp_path / "a"), WHEN)
    second = sbom.render(_inventory(tmp_path / "b"), WHEN)
    assert first == second
    other = sbom.render(_inventory(tmp_path / "c", lock=LOCK.replace("3.20", "3.21")), WHEN)
    serial = json.loads(first)["serialNumber"]
    assert serial.startswith("urn:uuid:") and serial != json.loads(other)["serialNumber"]
    later = sbom.render(_inventory(tmp_path / "a"), WHEN + datetime.timedelta(seconds=1))
    assert json.loads(later)["serialNumber"] != serial


def test_the_timestamp_comes_from_source_date_epoch() -> None:
    assert sbom.timestamp({"SOURCE_DATE_EPOCH": "1704164645"}) == WHEN
    assert sbom.timestamp({}).tzinfo is datetime.timezone.utc
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH='soon' is not a number"):
        sbom.timestamp({"SOURCE_DATE_EPOCH": "soon"})


TARGET = Target("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu", None)


def _artifact(folder: Path, name: str, content: bytes, bom: str) -> artifacts.Artifact:
    source = folder.parent / f"built-{name}"
    source.write_bytes(content)
    placed = artifacts.place(source, folder / name)
    return artifacts.record(placed, TARGET, name, "cargo", sbom=bom)


BOM = '{"a": 1}\n'


def test_indexes_list_the_sbom_and_a_build_without_one_removes_the_stale_one(tmp_path: Path) -> None:
    dist, cache = tmp_path / "dist", tmp_path / "cache"
    dist.mkdir()
    artifacts.write_indexes(dist, "app", "1.0", [_artifact(dist, "app", b"1", BOM)], cache=cache, report=print)
    assert (dist / "app.cdx.json").read_text() == BOM
    assert (dist / artifacts.CHECKSUMS).read_text().splitlines() == [
        f"{hashlib.sha256(b'1').hexdigest()}  app",
        f"{hashlib.sha256(BOM.encode()).hexdigest()}  app.cdx.json",
    ]
    (entry,) = json.loads((dist / artifacts.MANIFEST).read_text())["executables"]
    assert entry["sbom"] == "app.cdx.json"

    artifacts.write_indexes(dist, "app", "1.0", [_artifact(dist, "app", b"2", "")], cache=cache, report=print)
    assert not (dist / "app.cdx.json").exists()
    assert (dist / artifacts.CHECKSUMS).read_text() == f"{hashlib.sha256(b'2').hexdigest()}  app\n"
    (entry,) = json.loads((dist / artifacts.MANIFEST).read_text())["executables"]
    assert entry["sbom"] is None


def test_the_sbom_setting_is_validated_with_its_path() -> None:
    from hatch_pyaket.config import ProjectFacts, parse_config
    from hatch_pyaket.errors import ConfigError

    project = ProjectFacts("example-app", "1.0.0", ">=3.9", {"example-app": "example_app.cli:main"}, {})

    def parse(table: dict[str, object]) -> bool:
        return parse_config(table, project, host_triple=TARGET.triple, root=Path("/project")).sbom

    assert parse({}) is True and parse({"sbom": False}) is False
    with pytest.raises(ConfigError) as error:
        parse({"sbom": "no"})
    assert "tool.hatch.build.hooks.pyaket.sbom: must be true or false, not 'no'" in str(error.value)
