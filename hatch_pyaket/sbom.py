"""A CycloneDX SBOM for each executable: what it embeds and what it installs on first run.

Components: the app's wheel; every pin of the embedded lock (version, purl, the lock's sha256 hashes, the
licence its wheel declares when the build embeds the wheels); the embedded uv; the embedded Python; and the
Rust crates the launcher links for the target (`cargo metadata --filter-platform`, normal dependency edges
only, so build scripts' crates such as `cc` or `zstd` are left out), with Cargo.lock's checksums.

The executable's own sha256 is not in its SBOM: the SBOM is written beside it and listed in SHA256SUMS, and
signing (after this build) changes the executable's bytes. `pyaket:payload_hash` ties the two instead: the
launcher embeds that string and reports it (`PYAKET_SELF=info`).

`inventory` gathers plain data (unit-testable without cargo); `render` turns it into CycloneDX JSON with
cyclonedx-python-lib, deterministically: sorted components, refs derived from names, a serial number
derived from the content and a timestamp from SOURCE_DATE_EPOCH when set.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from functools import cache
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from hatch_pyaket import __version__, artifacts, locking, toolchain
from hatch_pyaket.errors import BuildError
from hatch_pyaket.progress import Report

SUFFIX = artifacts.SBOM_SUFFIX
UV_LICENCE = "MIT OR Apache-2.0"
PYTHON_LICENCE = "PSF-2.0"
LAUNCHER = toolchain.LAUNCHER_PACKAGE
# Fixed namespace for serial numbers: uuid5(namespace, digest of the SBOM's content).
_SERIAL_NAMESPACE = uuid.UUID("8d0b7a52-7f43-5b6e-9c55-2e0c6a1f3d10")
_LONG_LICENCE = 120  # a License field longer than this (or multi-line) is the licence's text, not its name


@dataclass(frozen=True)
class Package:
    """One component, independent of the CycloneDX library."""

    ref: str
    name: str
    version: str
    purl: str | None = None
    hashes: tuple[str, ...] = ()  # sha256, hex
    licences: tuple[str, ...] = ()  # one SPDX expression, or SPDX ids / licence names; () when unknown
    kind: str = "library"  # CycloneDX component type
    description: str = ""
    properties: tuple[tuple[str, str], ...] = ()


@dataclass
class Inventory:
    executable: Package
    packages: dict[str, Package] = field(default_factory=dict)  # by ref
    edges: dict[str, set[str]] = field(default_factory=dict)  # ref -> refs it depends on

    def add(self, package: Package) -> None:
        known = self.packages.get(package.ref)
        if known is not None:  # one version pinned twice under different markers: one component
            hashes = tuple(sorted({*known.hashes, *package.hashes}))
            package = Package(**{**known.__dict__, "hashes": hashes})
        self.packages[package.ref] = package

    def depend(self, parent: str, child: str) -> None:
        self.edges.setdefault(parent, set()).add(child)


# The lock: pins and `# via` annotations


def parse_via(lock_text: str) -> dict[str, set[str]]:
    """For each pinned name (normalized), the names uv's `# via` comments say require it.

    A pin without a comment is a direct requirement; `-r ...` sources are kept as they are."""
    via: dict[str, set[str]] = {}
    current: str | None = None
    collecting = False
    for raw in lock_text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw[:1].isspace() and not line.startswith(("#", "-")):
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            current = canonicalize_name(match.group(0)) if match else None
            collecting = False
            if current is not None:
                via.setdefault(current, set())
            continue
        if current is None or not line.startswith("#"):
            continue
        comment = line[1:].strip()
        if comment == "via":
            collecting = True
        elif comment.startswith("via "):
            via[current].add(_via_name(comment[4:]))
            collecting = False
        elif collecting and comment:
            via[current].add(_via_name(comment))
    return via


def _via_name(text: str) -> str:
    text = text.strip()
    return text if text.startswith("-") else canonicalize_name(text.split(" ", 1)[0].split("[", 1)[0])


def purl(kind: str, name: str, version: str) -> str:
    """A package URL, encoded as the spec says (`+` in a version is `%2B`); also the component's bom-ref."""
    from packageurl import PackageURL

    return str(PackageURL(kind, name=name, version=version).to_string())


def pypi_purl(name: str, version: str) -> str:
    return purl("pypi", canonicalize_name(name), version)


def wheel_metadata(wheel: Path) -> Mapping[str, object]:
    """The headers of a wheel's METADATA (an email.message.Message)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            text = archive.read(names[0]).decode("utf-8", "replace") if len(names) == 1 else ""
    except (OSError, zipfile.BadZipFile, KeyError):
        return {}
    return Parser().parsestr(text, headersonly=True)  # type: ignore[return-value]


def declared_licences(metadata: Mapping[str, object]) -> tuple[str, ...]:
    """What a wheel declares: License-Expression, else a short License field, else its licence classifiers.

    Nothing is inferred from file contents; () when the wheel declares nothing usable."""
    expression = str(metadata.get("License-Expression") or "").strip()
    if expression:
        return (expression,)
    text = str(metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= _LONG_LICENCE and text.upper() not in {"UNKNOWN", "NONE"}:
        return (text,)
    get_all = getattr(metadata, "get_all", None)
    classifiers = [str(c) for c in (get_all("Classifier") or [])] if get_all else []
    return tuple(
        sorted({c.split("::")[-1].strip() for c in classifiers if c.startswith("License ::") and c.count("::") >= 2})
    )


def _pins(inventory: Inventory, lock_text: str, refs: dict[str, list[str]]) -> list[locking.Pin]:
    """The lock's hash-pinned lines; any other requirement (a URL, say) becomes a component named by
    its line, without version or hash, rather than failing the build over its SBOM."""
    pins = []
    for entry in locking._lock_entries(lock_text):
        if entry.startswith("-"):
            continue
        try:
            pins += locking.parse_lock(entry)
        except BuildError:
            spec = " ".join(w for w in entry.split(" ") if not w.startswith("--hash="))
            try:
                name = canonicalize_name(Requirement(spec).name)
            except InvalidRequirement:
                continue
            ref = f"pyaket:requirement/{name}"
            inventory.add(Package(ref, name, "", properties=(("pyaket:requirement", spec),)))
            refs.setdefault(name, []).append(ref)
    return pins


def python_packages(inventory: Inventory, app_ref: str, app_name: str, lock_text: str, wheels: Iterable[Path]) -> None:
    """Every pin of the lock as a component, the app -> direct pins -> their pins graph, and licences from
    the embedded wheels (none without them: no network at build time for this)."""
    licences: dict[tuple[str, str], tuple[str, ...]] = {}
    for wheel in wheels:
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        declared = declared_licences(wheel_metadata(wheel))
        if declared:
            licences[(str(name), str(version))] = declared
    refs: dict[str, list[str]] = {}
    for pin in _pins(inventory, lock_text, refs):
        ref = pypi_purl(pin.name, pin.version)
        properties = (("pyaket:marker", str(pin.marker)),) if pin.marker is not None else ()
        inventory.add(
            Package(
                ref,
                pin.name,
                pin.version,
                purl=ref,
                hashes=tuple(sorted(pin.hashes)),
                licences=licences.get((pin.name, pin.version), ()),
                properties=properties,
            )
        )
        refs.setdefault(pin.name, []).append(ref)
    app = canonicalize_name(app_name)
    via = parse_via(lock_text)
    for dependent, children in refs.items():
        parents = {p for p in via.get(dependent, set()) if p in refs and p != dependent}
        for child in children:
            if (
                not parents
                or app in via.get(dependent, set())
                or any(p.startswith("-") for p in via.get(dependent, ()))
            ):
                inventory.depend(app_ref, child)
            for parent in parents:
                for parent_ref in refs[parent]:
                    inventory.depend(parent_ref, child)


# The launcher's crates


@dataclass(frozen=True)
class Crate:
    name: str
    version: str
    licence: str
    checksum: str
    deps: tuple[tuple[str, str], ...]  # (name, version) of its normal dependencies
    workspace: bool = False  # one of the launcher's own crates (no registry source)


def parse_cargo_lock(text: str) -> dict[tuple[str, str], str]:
    """(name, version) -> checksum (sha256 of the .crate) for every registry package of a Cargo.lock."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    data = tomllib.loads(text)
    return {(p["name"], p["version"]): p.get("checksum", "") for p in data.get("package", [])}


def linked_crates(metadata: Mapping[str, Any], root: str = LAUNCHER) -> dict[tuple[str, str], Crate]:
    """The crates `root` links, from `cargo metadata --filter-platform` output: normal edges only (build
    and dev dependencies are not in the executable), workspace crates included (the caller folds them)."""
    packages = {str(p["id"]): p for p in metadata["packages"]}
    nodes = {str(n["id"]): n for n in metadata["resolve"]["nodes"]}
    start = [i for i, p in packages.items() if p["name"] == root]
    if len(start) != 1:
        raise BuildError(f"cargo metadata names {len(start)} packages {root!r}, not one")
    seen: dict[str, tuple[str, ...]] = {}
    todo = list(start)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        normal = tuple(
            str(dep["pkg"])
            for dep in nodes[current].get("deps", [])
            if any(kind.get("kind") is None for kind in dep.get("dep_kinds", [{"kind": None}]))
        )
        seen[current] = normal
        todo += normal
    crates = {}
    for ident, deps in seen.items():
        package = packages[ident]
        key = (str(package["name"]), str(package["version"]))
        crates[key] = Crate(
            key[0],
            key[1],
            str(package.get("license") or ""),
            "",
            tuple(sorted((str(packages[d]["name"]), str(packages[d]["version"])) for d in deps)),
            workspace=package.get("source") is None,
        )
    return crates


def lock_crates(lock_text: str, root: str = LAUNCHER) -> dict[tuple[str, str], Crate]:
    """Without cargo metadata: what Cargo.lock's graph reaches from `root` (it does not tell build
    dependencies apart, so build scripts' crates are included)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    packages = tomllib.loads(lock_text).get("package", [])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        by_name.setdefault(package["name"], []).append(package)

    def resolve(spec: str) -> tuple[str, str]:
        name, _, version = spec.partition(" ")
        candidates = by_name.get(name, [])
        chosen = next((c for c in candidates if not version or c["version"] == version.split(" ")[0]), None)
        if chosen is None:
            raise BuildError(f"Cargo.lock names {spec!r} as a dependency but has no such package")
        return (name, str(chosen["version"]))

    roots = [p for p in packages if p["name"] == root]
    if len(roots) != 1:
        raise BuildError(f"Cargo.lock has {len(roots)} packages {root!r}, not one")
    crates: dict[tuple[str, str], Crate] = {}
    todo = [(str(roots[0]["name"]), str(roots[0]["version"]))]
    while todo:
        key = todo.pop()
        if key in crates:
            continue
        package = next(p for p in by_name[key[0]] if p["version"] == key[1])
        deps = tuple(sorted(resolve(str(d)) for d in package.get("dependencies", [])))
        crates[key] = Crate(key[0], key[1], "", str(package.get("checksum") or ""), deps, "source" not in package)
        todo += deps
    return crates


@cache
def _cargo_metadata(
    cargo: str, manifest: str, triple: str, features: tuple[str, ...], env: tuple[tuple[str, str], ...]
) -> str:
    command = [cargo, "metadata", "--format-version", "1", "--locked", "--offline", "--manifest-path", manifest]
    command += ["--filter-platform", triple]
    if features:
        # The launcher's optional crates (self-update's HTTPS client, the tar.gz reader) are in the graph only
        # when the build turned their features on.
        command += ["--features", ",".join(f"{LAUNCHER}/{feature}" for feature in features)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=dict(env))
    if result.returncode != 0:
        raise BuildError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "cargo metadata failed")
    return result.stdout


def launcher_crates(
    template: Path, triple: str, features: Sequence[str], environ: Mapping[str, str], report: Report
) -> tuple[dict[tuple[str, str], Crate], str]:
    """The launcher's crates for `triple` and cargo `features` with Cargo.lock's checksums, and how they were
    found."""
    lock_text = (template / "Cargo.lock").read_text()
    checksums = parse_cargo_lock(lock_text)
    cargo = toolchain.cargo_executable(environ) or "cargo"
    try:
        output = _cargo_metadata(
            cargo, str(template / "Cargo.toml"), triple, tuple(features), tuple(sorted(environ.items()))
        )
        crates, source = linked_crates(json.loads(output)), "cargo metadata (normal dependencies)"
    except (OSError, ValueError, KeyError, BuildError) as error:
        report(
            f"pyaket: WARNING: cargo metadata failed for the SBOM ({error}); listing every crate Cargo.lock "
            "reaches from the launcher, build-time ones included"
        )
        crates, source = lock_crates(lock_text), "Cargo.lock (build-time crates included)"
    return {
        key: Crate(c.name, c.version, c.licence, checksums.get(key, ""), c.deps, c.workspace)
        for key, c in crates.items()
    }, source


def cargo_licence(text: str) -> str:
    """A crate's `license`, with the `/` older crates use for "or" (`MIT/Apache-2.0`) spelt as SPDX does."""
    if "/" in text and not re.search(r"\b(OR|AND|WITH)\b", text):
        return " OR ".join(part.strip() for part in text.split("/"))
    return text


def add_crates(inventory: Inventory, launcher_ref: str, crates: Mapping[tuple[str, str], Crate], source: str) -> None:
    """Registry crates as components; the workspace's own crates are the launcher itself."""
    workspace = {key for key, crate in crates.items() if crate.workspace}

    def ref(key: tuple[str, str]) -> str:
        return launcher_ref if key in workspace else purl("cargo", key[0], key[1])

    for key, crate in crates.items():
        if key in workspace:
            continue
        ref_ = ref(key)
        inventory.add(
            Package(
                ref_,
                crate.name,
                crate.version,
                purl=ref_,
                hashes=(crate.checksum,) if crate.checksum else (),
                licences=(cargo_licence(crate.licence),) if crate.licence else (),
            )
        )
    for key, crate in crates.items():
        for dep in crate.deps:
            if dep in crates and ref(dep) != ref(key):
                inventory.depend(ref(key), ref(dep))
    launcher = inventory.packages[launcher_ref]
    inventory.packages[launcher_ref] = Package(
        **{**launcher.__dict__, "properties": (*launcher.properties, ("pyaket:crates-from", source))}
    )


# Assembling and rendering


def inventory(
    *,
    executable_name: str,
    entry: str,
    app_name: str,
    app_version: str,
    target: str,
    staged: Mapping[str, object],
    wheel: Path,
    lock_text: str,
    wheels: Iterable[Path],
    uv: Path | None,
    uv_version: str,
    python_archive: Path | None,
    python_version: str,
    crates: Mapping[tuple[str, str], Crate],
    crates_source: str,
) -> Inventory:
    """Everything one executable holds, from the staged payload manifest (its files' digests) and the rest."""
    files: Mapping[str, Mapping[str, object]] = staged.get("files", {})  # type: ignore[assignment]

    def digest(key: str | None) -> tuple[str, ...]:
        value = files.get(key, {}).get("sha256") if key else None
        return (str(value),) if value else ()

    executable = Package(
        executable_name,
        entry,
        app_version,
        kind="application",
        description=f"standalone executable of {app_name} {app_version} for {target}, built by hatch-pyaket",
        properties=(
            ("pyaket:target", target),
            ("pyaket:payload_hash", str(staged.get("payload_hash", ""))),
            ("pyaket:manifest_hash", str(staged.get("manifest_hash", ""))),
        ),
    )
    found = Inventory(executable)
    app_ref = pypi_purl(app_name, app_version)
    found.add(
        Package(
            app_ref,
            canonicalize_name(app_name),
            app_version,
            purl=app_ref,
            hashes=digest(wheel.name),
            licences=declared_licences(wheel_metadata(wheel)),
            kind="application",
            properties=(("pyaket:file", wheel.name),),
        )
    )
    found.depend(executable.ref, app_ref)
    if lock_text.strip():
        python_packages(found, app_ref, app_name, lock_text, wheels)
    if uv is not None:
        uv_ref = purl("pypi", "uv", uv_version)
        properties = [("pyaket:file", uv.name)]
        if re.fullmatch(r"[0-9a-f]{64}", uv.parent.name):  # fetch.uv_binary keeps it under its wheel's sha256
            properties.append(("pyaket:uv-wheel-sha256", uv.parent.name))
        found.add(
            Package(
                uv_ref,
                "uv",
                uv_version,
                purl=uv_ref,
                hashes=digest(uv.name),
                licences=(UV_LICENCE,),
                kind="application",
                description="uv, the installer the launcher runs on first run (the binary from its PyPI wheel)",
                properties=tuple(properties),
            )
        )
        found.depend(executable.ref, uv_ref)
    if python_archive is not None:
        match = re.match(r"cpython-(\d+\.\d+\.\d+)(?:\+(\d+))?", python_archive.name)
        version = match.group(1) if match else python_version
        python_ref = purl("generic", "cpython", version)
        properties = [("pyaket:file", python_archive.name)]
        if match and match.group(2):
            properties.append(("pyaket:python-build-standalone-release", match.group(2)))
        found.add(
            Package(
                python_ref,
                "cpython",
                version,
                purl=python_ref,
                hashes=digest(str(staged.get("python_archive") or "")),
                licences=(PYTHON_LICENCE,),
                kind="application",
                description="the embedded Python (a python-build-standalone install_only archive)",
                properties=tuple(properties),
            )
        )
        found.depend(executable.ref, python_ref)
    launcher_ref = f"pkg:pypi/hatch-pyaket@{__version__}#{LAUNCHER}"
    found.add(
        Package(
            launcher_ref,
            LAUNCHER,
            __version__,
            kind="application",
            licences=("MIT",),
            description=f"the Rust launcher of hatch-pyaket {__version__}, compiled for {target}",
        )
    )
    found.depend(executable.ref, launcher_ref)
    add_crates(found, launcher_ref, crates, crates_source)
    return found


def timestamp(environ: Mapping[str, str]) -> datetime.datetime:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else now; whole seconds, UTC."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise BuildError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since 1970; fix or unset it"
            ) from None
    return datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0)


def render(found: Inventory, when: datetime.datetime) -> str:
    """CycloneDX 1.6 JSON; the same inventory and time give the same bytes."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    def component(package: Package) -> Component:
        return Component(
            name=package.name,
            version=package.version or None,
            type=ComponentType(package.kind),
            bom_ref=package.ref,
            purl=PackageURL.from_string(package.purl) if package.purl else None,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in package.hashes],
            licenses=_licences(package.licences),
            description=package.description or None,
            properties=[Property(name=k, value=v) for k, v in package.properties],
        )

    def build(serial: uuid.UUID) -> str:
        bom = Bom(serial_number=serial)
        bom.metadata.timestamp = when
        root = component(found.executable)
        bom.metadata.component = root
        bom.metadata.tools.components.add(
            Component(
                name="hatch-pyaket",
                version=__version__,
                type=ComponentType.APPLICATION,
                purl=PackageURL("pypi", name="hatch-pyaket", version=__version__),
                bom_ref=f"tool:hatch-pyaket@{__version__}",
            )
        )
        made = {ref: component(package) for ref, package in sorted(found.packages.items())}
        made[root.bom_ref.value] = root  # type: ignore[index]
        for package in made.values():
            if package is not root:
                bom.components.add(package)
        for parent in sorted(made):
            bom.register_dependency(made[parent], [made[c] for c in sorted(found.edges.get(parent, ()))])
        return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"

    draft = build(uuid.UUID(int=0))
    return build(uuid.uuid5(_SERIAL_NAMESPACE, hashlib.sha256(draft.encode()).hexdigest()))


def _licences(values: tuple[str, ...]) -> list[Any]:
    """One SPDX id per licence object; a compound SPDX expression alone (CycloneDX allows no mix); else names."""
    from cyclonedx import spdx
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression

    # is_compound_expression until cyclonedx-python-lib 11, is_expression since
    is_expression = getattr(spdx, "is_expression", None) or getattr(spdx, "is_compound_expression")  # noqa: B009
    if len(values) == 1 and spdx.fixup_id(values[0]) is None and is_expression(values[0]):
        return [LicenseExpression(values[0])]
    made: list[Any] = []
    for value in values:
        fixed = spdx.fixup_id(value)
        made.append(DisjunctiveLicense(id=fixed) if fixed is not None else DisjunctiveLicense(name=value))
    return made


def sbom_name(executable: str) -> str:
    return executable + SUFFIX


def for_executable(
    *,
    executable: Path,
    entry: str,
    app_name: str,
    app_version: str,
    target_name: str,
    triple: str,
    staged: Mapping[str, object],
    wheel: Path,
    lock: Path | None,
    wheels: Iterable[Path],
    uv: Path | None,
    uv_version: str,
    python_archive: Path | None,
    python_version: str,
    template: Path,
    features: Sequence[str],
    environ: Mapping[str, str],
    report: Report,
) -> str:
    """The SBOM text for one built executable (pipeline.build_target calls this after placing it)."""
    started = time.monotonic()
    crates, source = launcher_crates(template, triple, features, environ, report)
    found = inventory(
        executable_name=executable.name,
        entry=entry,
        app_name=app_name,
        app_version=app_version,
        target=target_name,
        staged=staged,
        wheel=wheel,
        lock_text=lock.read_text() if lock is not None else "",
        wheels=wheels,
        uv=uv,
        uv_version=uv_version,
        python_archive=python_archive,
        python_version=python_version,
        crates=crates,
        crates_source=source,
    )
    text = render(found, timestamp(environ))
    report(
        f"pyaket:   SBOM {sbom_name(executable.name)}: {len(found.packages)} components "
        f"({len(text) / 1024:.0f} KiB, {time.monotonic() - started:.2f} s)"
    )
    return text
