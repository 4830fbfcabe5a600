"""The CycloneDX SBOM beside each executable, from real builds of the example (host target)."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packageurl import PackageURL

from hatch_pyaket import locking
from hatch_pyaket.payload import staged_file
from tests.conftest import ROOT
from tests.e2e.helpers import HOST_TRIPLE, build, staged_payload
from tests.example import copy_example, edit_pyproject

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.e2e

EXE_NAME = f"example-app-1.0.0-{HOST_TRIPLE}"
SBOM_NAME = EXE_NAME + ".cdx.json"


@dataclass(frozen=True)
class SbomBuild:
    project: Path
    dist: Path
    sbom: dict[str, object]
    text: str
    lock: str  # the lock the executable embeds (as staged for build.rs)
    payload: dict[str, object]  # the staged payload manifest
    uv_sha256: str  # of the staged uv file build.rs compressed into the executable
    output: str


def _build(project: Path) -> SbomBuild:
    # No SOURCE_DATE_EPOCH: cargo would recompile zstd-sys (and all above it) each time it flips, for
    # every test that builds after this module; the unit tests check the timestamp comes from it.
    result = build(project, "--wheel")
    staged = staged_payload()
    payload = json.loads((staged / "manifest.json").read_text())
    dist = project / "dist"
    text = (dist / SBOM_NAME).read_text()
    return SbomBuild(
        project,
        dist,
        json.loads(text),
        text,
        staged_file(staged, "requirements.txt").decode(),
        payload,
        hashlib.sha256(staged_file(staged, str(payload["uv"]))).hexdigest(),
        result.stdout + result.stderr,
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[SbomBuild, SbomBuild]:
    """The example built twice, in two folders."""
    return (
        _build(copy_example(tmp_path_factory.mktemp("sbom-a"))),
        _build(copy_example(tmp_path_factory.mktemp("sbom-b"))),
    )


def _components(bom: dict[str, object]) -> dict[str, dict[str, object]]:
    return {str(c["name"]): c for c in bom["components"]}  # type: ignore[union-attr, index]


def test_the_sbom_is_valid_cyclonedx_1_6(builds: tuple[SbomBuild, SbomBuild]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    built = builds[0]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(built.text) is None
    assert built.sbom["bomFormat"] == "CycloneDX" and built.sbom["specVersion"] == "1.6"
    root = built.sbom["metadata"]["component"]  # type: ignore[index]
    assert (root["name"], root["version"], root["type"]) == ("example-app", "1.0.0", "application")
    assert {"name": "pyaket:payload_hash", "value": built.payload["payload_hash"]} in root["properties"]
    stamp = datetime.datetime.fromisoformat(str(built.sbom["metadata"]["timestamp"]))  # type: ignore[index]
    assert abs(datetime.datetime.now(tz=datetime.timezone.utc) - stamp) < datetime.timedelta(hours=1)
    assert f"SBOM {SBOM_NAME}:" in built.output


def test_it_names_the_app_and_colorama_with_the_locks_hashes(builds: tuple[SbomBuild, SbomBuild]) -> None:
    built = builds[0]
    components = _components(built.sbom)
    (pin,) = [p for p in locking.parse_lock(built.lock) if p.name == "colorama"]
    colorama = components["colorama"]
    assert colorama["version"] == pin.version and colorama["purl"] == f"pkg:pypi/colorama@{pin.version}"
    assert {h["content"] for h in colorama["hashes"]} == set(pin.hashes) and len(pin.hashes) >= 1
    app = components["example-app"]
    wheel = built.dist / "example_app-1.0.0-py3-none-any.whl"
    assert app["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(wheel.read_bytes()).hexdigest()}]
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in built.sbom["dependencies"]}  # type: ignore[union-attr]
    assert graph[app["bom-ref"]] == {colorama["bom-ref"]}


def test_it_names_the_embedded_uv_by_its_digest(builds: tuple[SbomBuild, SbomBuild]) -> None:
    built = builds[0]
    uv = _components(built.sbom)["uv"]
    assert uv["version"] == built.payload["uv_version"] and uv["purl"] == f"pkg:pypi/uv@{built.payload['uv_version']}"
    files = built.payload["files"]
    assert uv["hashes"] == [{"alg": "SHA-256", "content": built.uv_sha256}]
    assert built.uv_sha256 == files[built.payload["uv"]]["sha256"]  # type: ignore[index]
    assert uv["licenses"] == [{"expression": "MIT OR Apache-2.0"}]


def test_it_names_the_crates_the_launcher_links_with_cargo_locks_checksums(
    builds: tuple[SbomBuild, SbomBuild],
) -> None:
    built = builds[0]
    lock = tomllib.loads((ROOT / "rust_template" / "Cargo.lock").read_text())
    checksums = {p["name"]: (p["version"], p.get("checksum")) for p in lock["package"]}
    crates = {c["name"]: c for c in built.sbom["components"] if str(c.get("purl", "")).startswith("pkg:cargo/")}  # type: ignore[union-attr]
    for name in ("zstd-safe", "zstd-sys", "anyhow", "sha2", "libc"):
        version, checksum = checksums[name]
        assert crates[name]["purl"] == PackageURL("cargo", name=name, version=version).to_string()
        assert crates[name]["hashes"] == [{"alg": "SHA-256", "content": checksum}]
    # Build scripts' crates (payload's build.rs compresses with zstd; zstd-sys compiles with cc) and
    # test-only ones are not in the executable.
    assert not {"zstd", "cc", "serde_json", "pkg-config"} & set(crates)
    # Nor the optional ones this project does not use (no update table, no embedded Python).
    assert not {"ureq", "rustls", "tar", "flate2"} & set(crates)
    assert crates["anyhow"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in built.sbom["dependencies"]}  # type: ignore[union-attr]
    (launcher,) = [c for c in built.sbom["components"] if c["name"] == "pyaket-launcher"]  # type: ignore[union-attr]
    assert crates["anyhow"]["bom-ref"] in graph[launcher["bom-ref"]]
    assert crates["zstd-sys"]["bom-ref"] in graph[crates["zstd-safe"]["bom-ref"]]


def test_checksums_and_manifest_list_it_and_builds_reproduce_it(builds: tuple[SbomBuild, SbomBuild]) -> None:
    built = builds[0]
    sums = (built.dist / "SHA256SUMS").read_text()
    assert f"  {SBOM_NAME}\n" in sums and f"  {EXE_NAME}\n" in sums
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=built.dist, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and f"{SBOM_NAME}: OK" in check.stdout
    (entry,) = json.loads((built.dist / "pyaket-manifest.json").read_text())["executables"]
    assert entry["sbom"] == SBOM_NAME
    # Same sources in another folder: the same SBOM but for its time (and the serial number made from it).
    assert _timeless(builds[1].sbom) == _timeless(built.sbom)


def _timeless(bom: dict[str, object]) -> dict[str, object]:
    data = json.loads(json.dumps(bom))
    del data["metadata"]["timestamp"], data["serialNumber"]
    return data


def test_sbom_false_writes_none_and_removes_the_previous_one(builds: tuple[SbomBuild, SbomBuild]) -> None:
    project = builds[1].project
    edit_pyproject(project, hook={"sbom": False})
    build(project, "--wheel")
    dist = project / "dist"
    assert not (dist / SBOM_NAME).exists()
    assert not list(dist.glob("*.cdx.json"))
    assert SBOM_NAME not in (dist / "SHA256SUMS").read_text()
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, check=False).returncode == 0
    (entry,) = json.loads((dist / "pyaket-manifest.json").read_text())["executables"]
    assert entry["sbom"] is None
