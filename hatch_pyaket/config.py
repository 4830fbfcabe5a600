"""The `[tool.hatch.build.hooks.pyaket]` table: dataclasses and validation.

Validation collects every problem (with its TOML path, the bad value and what is allowed) before
raising one `ConfigError`, so a user fixes their table in one go rather than one error per build.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from hatch_pyaket import cpython, winres
from hatch_pyaket.errors import ConfigError, Problem
from hatch_pyaket.signing_config import SigningConfig, parse_signing, unused_tables
from hatch_pyaket.targets import MACOS_MIN_BY_ARCH, Target, parse_target
from hatch_pyaket.update_config import UpdateConfig, parse_update

# Keys hatchling itself reads from every hook table; they are not ours to validate.
HATCH_RESERVED_KEYS = frozenset(
    {"dependencies", "require-runtime-dependencies", "require-runtime-features", "enable-by-default"}
)

TOOLS = ("cargo", "zigbuild", "xwin")
PROFILES = {"size": "release", "speed": "release-speed"}
UV_SOURCES = ("embed", "path")
DEFAULT_UV_VERSION = "0.13.9"
DEFAULT_VENDOR = "pyaket"
# No word is reserved: every argument reaches the app (`hatch self ...` is hatch's own command);
# management runs through PYAKET_SELF=<command>. `self-command = "self"` opts a word in.
DEFAULT_SELF_COMMAND: str | None = None
DEFAULT_KEEP_VERSIONS = 2
# The launcher reads it as a u32; no one keeps more versions than this, and a typo should not compile.
MAX_KEEP_VERSIONS = 1000

_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_OBJECT_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# An entry point's value: `module:attr`, optionally followed by `[extra1, extra2]` (the extras it needs).
_ENTRY_VALUE_RE = re.compile(r"^\s*(?P<ref>[^\[\]]*?)\s*(?:\[(?P<extras>[^\[\]]*)\])?\s*$")
_EXTRA_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MACOS_VERSION_RE = re.compile(r"^(?P<major>1\d|[2-9]\d)(?:\.(?P<minor>\d{1,2})(?:\.\d{1,2})?)?$")
# The oldest macOS any Rust target supports (x86_64's 10.12); aarch64 clamps up to its own 11.0.
LOWEST_MACOS = min(MACOS_MIN_BY_ARCH.values())
# Far above any release (macOS 26 is 2025's): a typo such as "150" should not build.
MAX_MACOS_MAJOR = 99


@dataclass(frozen=True)
class Entry:
    """What one executable runs."""

    kind: str  # "script" (module:attr), "module" (run as `-m`), or "code"
    value: str
    name: str  # the executable's base name: the script's name, or the project's
    gui: bool = False
    extras: tuple[str, ...] = ()  # extras the entry point declares (`module:attr [extra1,extra2]`), normalized


@dataclass(frozen=True)
class TargetOptions:
    """Per-target settings from `[tool.hatch.build.hooks.pyaket.target."<triple>"]`; None: the global one."""

    tool: str | None = None
    cargo_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    offline: bool | None = None
    embed_python: str | None = None  # "download", an archive path, or "" for none
    extras: tuple[str, ...] = ()  # added to the global extras for this target
    macos_min: tuple[int, int] | None = None


@dataclass(frozen=True)
class PyaketConfig:
    targets: tuple[Target, ...]
    entries: tuple[Entry, ...]
    python: str  # request handed to `uv venv --python`; "" lets uv choose
    vendor: str
    install_name: str
    profile: str  # "size" or "speed"
    output_dir: Path | None  # None: hatchling's build directory
    uv: str  # "embed" or "path"
    uv_version: str
    self_command: str | None
    keep_versions: int
    required: bool | None  # None: decided by where the build runs (see plugin.py)
    lock: bool = True
    offline: bool = False
    embed_python: str = ""  # "download", an absolute archive path, or "" for none
    lock_python: str = ""  # the X.Y dependencies are resolved for
    cargo_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    target_options: Mapping[str, TargetOptions] = field(default_factory=dict)
    description: str = ""  # the project's summary, for Windows version information
    icon: Path | None = None  # a .ico file for Windows executables
    signing: SigningConfig = field(default_factory=SigningConfig)  # signing.py; off unless configured
    macos_min: tuple[int, int] | None = None  # None: MACOSX_DEPLOYMENT_TARGET, else Rust's minimum per arch
    warnings: tuple[str, ...] = ()  # settings that build but may fail later, each with its TOML path
    extras: tuple[str, ...] = ()  # the project's extras installed with it, normalized (entry points' ones included)
    sbom: bool = True  # a CycloneDX SBOM beside each executable (sbom.py)
    update: UpdateConfig | None = None  # where `PYAKET_SELF=update` looks (update_config.py); None: no self-update

    @property
    def cargo_profile(self) -> str:
        return PROFILES[self.profile]

    def options_for(self, target: Target) -> TargetOptions:
        return self.target_options.get(target.name) or self.target_options.get(target.triple) or TargetOptions()

    def macos_min_for(self, target: Target) -> tuple[int, int] | None:
        """The configured minimum macOS (per-target setting, else the global one); None when unset."""
        option = self.options_for(target).macos_min
        return self.macos_min if option is None else option

    def offline_for(self, target: Target) -> bool:
        option = self.options_for(target).offline
        return self.offline if option is None else option

    def extras_for(self, target: Target) -> tuple[str, ...]:
        """Every extra the app is installed with on `target`: global, the target's and the entry points'."""
        return tuple(sorted({*self.extras, *self.options_for(target).extras}))

    def embed_python_for(self, target: Target) -> str:
        option = self.options_for(target).embed_python
        return self.embed_python if option is None else option

    @property
    def python_is_exact(self) -> bool:
        """A version (3.12), not a specifier: locks are then made for that version and each target's platform."""
        return bool(_VERSION_RE.match(self.python)) and self.python.count(".") >= 1


@dataclass(frozen=True)
class ProjectFacts:
    """What validation needs from the project's metadata (kept apart from hatchling's objects)."""

    name: str
    version: str
    requires_python: str
    scripts: Mapping[str, str]
    gui_scripts: Mapping[str, str]
    description: str = ""
    optional_dependencies: tuple[str, ...] = ()  # the extras [project.optional-dependencies] defines, normalized


KNOWN_KEYS = (
    "targets",
    "script",
    "scripts",
    "module",
    "code",
    "gui",
    "icon",
    "python",
    "vendor",
    "install-name",
    "profile",
    "output-dir",
    "uv",
    "uv-version",
    "self-command",
    "keep-versions",
    "required",
    "lock",
    "offline",
    "embed-python",
    "cargo-args",
    "env",
    "macos-min",
    "target",
    "extras",
    "signing",
    "sbom",
    "update",
)
TARGET_KEYS = ("tool", "cargo-args", "env", "offline", "embed-python", "extras", "macos-min")
# CPython minors a lock may be resolved for, oldest first (cpython.py owns the table).
KNOWN_PYTHON_MINORS = cpython.KNOWN_MINORS


class _Reader:
    """Typed access to one TOML table that records problems instead of raising."""

    def __init__(self, table: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
        self.table = table
        self.path = path
        self.problems = problems

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if re.match(r"^[A-Za-z0-9_-]+$", key) else f'{self.path}."{key}"'

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.at(key), message))

    def check_unknown(self, known: tuple[str, ...]) -> None:
        for key in self.table:
            if key in known or key in HATCH_RESERVED_KEYS:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.problem(key, f"unknown setting; {hint}known settings: {', '.join(known)}")

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.table.get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.problem(key, f"must be a string, not {_show(value)}")
        return default

    def choice(self, key: str, choices: tuple[str, ...] | list[str], default: str) -> str:
        value = self.string(key, default)
        if value is None or value not in choices:
            self.problem(key, f"{_show(value)} is not allowed; choose one of {', '.join(map(repr, choices))}")
            return default
        return value

    def boolean(self, key: str, default: bool | None) -> bool | None:
        value = self.table.get(key, default)
        if value is None or isinstance(value, bool):
            return value
        self.problem(key, f"must be true or false, not {_show(value)}")
        return default

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None, meaning: str = "") -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, not {_show(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            allowed = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
            self.problem(key, f"must be a whole number {allowed}{meaning}, not {value}")
            return default
        return value

    def string_list(self, key: str) -> list[str] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.problem(key, f"must be an array of strings, not {_show(value)}")
            return None
        good = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.problems.append(Problem(f"{self.at(key)}[{index}]", f"must be a string, not {_show(item)}"))
        return good

    def env_table(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(key, f'must be a table of NAME = "value" strings, not {_show(value)}')
            return ()
        pairs = []
        for name, item in value.items():
            where = f"{self.at(key)}.{name}"
            if not _ENV_NAME_RE.match(name):
                self.problems.append(Problem(where, "is not a valid environment variable name"))
            elif not isinstance(item, str):
                self.problems.append(Problem(where, f"must be a string, not {_show(item)}"))
            else:
                pairs.append((name, item))
        return tuple(sorted(pairs))

    def subtable(self, key: str) -> Mapping[str, Any]:
        value = self.table.get(key, {})
        if isinstance(value, Mapping):
            return value
        self.problem(key, f"must be a table, not {_show(value)}")
        return {}


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return f"an array ({value!r})"
    if isinstance(value, Mapping):
        return "a table"
    return f"{type(value).__name__} {value!r}"


def parse_config(
    table: Mapping[str, Any],
    project: ProjectFacts,
    *,
    path: str = "tool.hatch.build.hooks.pyaket",
    host_triple: str,
    root: Path,
) -> PyaketConfig:
    """Validate the hook table against the project; raise one ConfigError listing every problem."""
    if not isinstance(table, Mapping):
        raise ConfigError([Problem(path, _not_a_table(path, table))])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    r = _Reader(table, path, problems)
    r.check_unknown(KNOWN_KEYS)

    targets = _parse_targets(r, host_triple)
    entries = _parse_entries(r, project)
    extras = _parse_extras(r, project)
    python = _parse_python(r, project, warnings)

    vendor = r.string("vendor", DEFAULT_VENDOR) or ""
    if vendor and not _NAME_RE.match(vendor):
        r.problem("vendor", f"{vendor!r} is not a usable folder name; use letters, digits, '.', '_' or '-'")
    install_name = r.string("install-name", canonicalize_name(project.name)) or ""
    if not _NAME_RE.match(install_name):
        r.problem("install-name", f"{install_name!r} is not a usable folder name; use letters, digits, '.', '_' or '-'")

    profile = r.choice("profile", tuple(PROFILES), "size")
    output = r.string("output-dir")
    output_dir = (root / output).resolve() if output else None

    uv = r.choice("uv", UV_SOURCES, "embed")
    uv_version = r.string("uv-version", DEFAULT_UV_VERSION) or DEFAULT_UV_VERSION
    if not _VERSION_RE.match(uv_version):
        r.problem("uv-version", f"{uv_version!r} is not a release version like {DEFAULT_UV_VERSION!r}")

    self_command = _parse_self_command(r)
    keep_versions = r.integer(
        "keep-versions", DEFAULT_KEEP_VERSIONS, 0, MAX_KEEP_VERSIONS, " (0 keeps every installed version)"
    )
    required = r.boolean("required", None)
    lock = bool(r.boolean("lock", True))
    offline = bool(r.boolean("offline", False))
    sbom = bool(r.boolean("sbom", True))
    embed_python = _parse_embed_python(r, root)
    icon = _parse_icon(r, root)
    macos_min = _parse_macos_min(r, None)
    cargo_args = tuple(r.string_list("cargo-args") or ())
    env = r.env_table("env")
    target_options = _parse_target_options(r, targets, host_triple, root, project)
    _warn_about_extras(r, project, entries, extras, target_options, warnings)
    signing = parse_signing(r, root)
    update = parse_update(r, root)
    warnings += unused_tables(signing, {t.os for t in targets}, path)
    lock_python = _lock_python(r, python, project)
    wants_exact = [key for key, on in (("offline", offline), ("embed-python", embed_python)) if on] + [
        f'target."{name}".{key}'
        for name, option in target_options.items()
        for key, on in (("offline", option.offline), ("embed-python", option.embed_python))
        if on
    ]
    if wants_exact and not (_VERSION_RE.match(python) and python.count(".") >= 1):
        r.problem(
            "python",
            f"{wants_exact[0]} needs an exact Python version so the embedded files match the Python that runs them; "
            f'set python = "3.X" (now {python or "unset"!r})',
        )

    if problems:
        raise ConfigError(problems)
    return PyaketConfig(
        targets=tuple(targets),
        entries=tuple(entries),
        python=python,
        vendor=vendor,
        install_name=install_name,
        profile=profile,
        output_dir=output_dir,
        uv=uv,
        uv_version=uv_version,
        self_command=self_command,
        keep_versions=keep_versions,
        required=required,
        lock=lock,
        offline=offline,
        embed_python=embed_python,
        lock_python=lock_python,
        cargo_args=cargo_args,
        env=env,
        target_options=target_options,
        description=project.description,
        icon=icon,
        signing=signing,
        macos_min=macos_min,
        warnings=tuple(str(w) for w in warnings),
        extras=tuple(sorted({*(extras or ()), *(e for entry in entries for e in entry.extras)})),
        sbom=sbom,
        update=update,
    )


def _not_a_table(path: str, value: object) -> str:
    """hatchling hands hook tables over as they are; `[[...]]` (an array of tables) is a common slip."""
    if isinstance(value, list):
        return (
            f"is an array of tables ([[{path}]]), not a table; write its header with single brackets: "
            f"[{path}] (one table holds every setting; targets = [...] lists several targets)"
        )
    return f"must be a table ([{path}]), not {_show(value)}"


def _parse_targets(r: _Reader, host_triple: str) -> list[Target]:
    names = r.string_list("targets")
    if names is None:
        return [parse_target(host_triple, host_triple)]
    if not names:
        r.problem("targets", 'is empty; name at least one target triple, e.g. targets = ["host"]')
    targets: list[Target] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        where = f"{r.at('targets')}[{index}]"
        try:
            target = parse_target(name, host_triple)
        except ValueError as error:
            r.problems.append(Problem(where, str(error)))
            continue
        if target.name in seen:
            r.problems.append(Problem(where, f"{target.name!r} is listed twice"))
            continue
        seen.add(target.name)
        targets.append(target)
    return targets


def _parse_entries(r: _Reader, project: ProjectFacts) -> list[Entry]:
    given = [key for key in ("script", "scripts", "module", "code") if key in r.table]
    gui = r.boolean("gui", None)
    all_scripts = {**project.scripts, **project.gui_scripts}
    listing = ", ".join(sorted(all_scripts)) or "none"
    if len(given) > 1:
        r.problem(given[1], f"conflicts with {r.at(given[0])}; choose one of script, scripts, module or code")
        return []

    def script_entry(name: str, where: str) -> Entry | None:
        if name not in all_scripts:
            r.problems.append(
                Problem(where, f"{name!r} is not in [project.scripts] or [project.gui-scripts]; they have: {listing}")
            )
            return None
        reference = all_scripts[name]
        parsed = parse_entry_point(reference)
        if parsed is None:
            r.problems.append(
                Problem(
                    where,
                    f"script {name!r} points at {reference!r}, not at 'module:function' ('module:function [extra]')",
                )
            )
            return None
        target, extras = parsed
        table = "gui-scripts" if name in project.gui_scripts else "scripts"
        unknown = [extra for extra in extras if extra not in project.optional_dependencies]
        if unknown:
            r.problems.append(
                Problem(
                    where,
                    f"script {name!r} ([project.{table}]: {reference!r}) needs the extra {unknown[0]!r}, which "
                    f"[project.optional-dependencies] does not define ({_known_extras(project)})",
                )
            )
            return None
        is_gui = name in project.gui_scripts if gui is None else gui
        return Entry("script", target, name, is_gui, extras)

    if not given:
        if len(all_scripts) == 1:
            name = next(iter(all_scripts))
            entry = script_entry(name, r.at("script"))
            return [entry] if entry else []
        if not all_scripts:
            r.problem(
                "script",
                'the project has no [project.scripts]; set script = "<name>", module = "pkg.module" '
                'or code = "..." to say what the executable runs',
            )
        else:
            r.problem(
                "script",
                f'the project has several scripts ({listing}); choose one with script = "<name>" '
                "or build several with scripts = [...]",
            )
        return []

    kind = given[0]
    if kind == "script":
        name = r.string("script") or ""
        entry = script_entry(name, r.at("script"))
        return [entry] if entry else []
    if kind == "scripts":
        names = r.string_list("scripts") or []
        if not names and "scripts" in r.table and isinstance(r.table["scripts"], list):
            r.problem("scripts", f"is empty; list one or more of: {listing}")
        entries = []
        for index, name in enumerate(names):
            entry = script_entry(name, f"{r.at('scripts')}[{index}]")
            if entry:
                entries.append(entry)
        return entries
    value = r.string(kind) or ""
    if kind == "module" and not _MODULE_RE.match(value):
        r.problem("module", f"{value!r} is not a dotted module name like 'my_app.cli'")
        return []
    if kind == "code" and not value.strip():
        r.problem("code", "is empty; give the Python source the executable runs")
        return []
    return [Entry(kind, value, canonicalize_name(project.name), bool(gui))]


def _parse_python(r: _Reader, project: ProjectFacts, warnings: list[Problem]) -> str:
    python = r.string("python")
    if python is None:
        # uv accepts the specifier as a request and prefers an installed interpreter that fits.
        return project.requires_python.strip()
    python = python.strip()
    if _VERSION_RE.match(python):
        parts = python.split(".")
        if len(parts) >= 2 and not _is_known_release(r, python, warnings):
            return python
        # "3.11" satisfies ">=3.11.4" if any 3.11.x does, so test both ends of the minor series.
        candidates = [python] if len(parts) == 3 else [f"{python}.0", f"{python}.99"] if len(parts) == 2 else []
        spec = SpecifierSet(project.requires_python or "")
        if candidates and not any(spec.contains(c, prereleases=True) for c in candidates):
            r.problem(
                "python", f"{python!r} does not satisfy the project's requires-python {project.requires_python!r}"
            )
        return python
    try:
        SpecifierSet(python)
    except InvalidSpecifier:
        r.problem("python", f"{python!r} is neither a version like '3.12' nor a specifier like '>=3.10'")
    return python


def _is_known_release(r: _Reader, python: str, warnings: list[Problem]) -> bool:
    """False (reported) if `python` is no CPython release: an unknown minor, or a patch past the last
    one of a finished line. A patch newer than we know of a line still released is only a warning:
    releases keep coming after this version of hatch-pyaket."""
    numbers = [int(part) for part in python.split(".")]
    minor = f"{numbers[0]}.{numbers[1]}"
    if minor not in cpython.NEWEST_PATCH:
        oldest = cpython.KNOWN_MINORS[0]
        known = f"known minors: {oldest} to {cpython.KNOWN_MINORS[-1]}"
        if tuple(numbers[:2]) < tuple(int(n) for n in oldest.split(".")):
            what = f"CPython {minor} is older than every Python hatch-pyaket builds for ({known})"
        else:
            what = f"there is no CPython {minor} ({known})"
        r.problem(
            "python", f'{python!r}: {what}; set python to one of them, e.g. "3.12", or to a range such as ">=3.11"'
        )
        return False
    newest = cpython.NEWEST_PATCH[minor]
    if len(numbers) < 3 or (newest is not None and numbers[2] <= newest):
        return True
    if minor in cpython.FINISHED:
        r.problem(
            "python",
            f"{python!r} does not exist: the {minor} line ended with {minor}.{newest} and gets no more releases; "
            f'set python = "{minor}" (its newest release) or a {minor}.x up to {minor}.{newest}',
        )
        return False
    warnings.append(
        Problem(
            r.at("python"),
            f"{python!r} is newer than the newest CPython {minor} release this hatch-pyaket knows of "
            f"({cpython.newest(minor)}); if it is not released yet, the executables fail on first run where uv "
            f'cannot find it. Set python = "{minor}" to take the newest {minor} there is',
        )
    )
    return True


def _parse_self_command(r: _Reader) -> str | None:
    value = r.table.get("self-command", DEFAULT_SELF_COMMAND)
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value or value.startswith("-") or any(c.isspace() for c in value):
        r.problem("self-command", f"must be a word such as 'self' (or false for none, the default), not {_show(value)}")
        return DEFAULT_SELF_COMMAND
    return value


def _parse_embed_python(r: _Reader, root: Path) -> str:
    """false, "download", or a path to an install_only archive (made absolute against the project root)."""
    value = r.table.get("embed-python", False)
    if value is False:
        return ""
    if not isinstance(value, str) or not value.strip():
        r.problem("embed-python", f'must be false, "download", or the path of a .tar.gz archive, not {_show(value)}')
        return ""
    if value == "download":
        return value
    path = (root / value).resolve()
    if not path.is_file():
        r.problem(
            "embed-python", f'{value!r}: no such file (looked at {path}); give an install_only .tar.gz or "download"'
        )
    return str(path)


def _parse_icon(r: _Reader, root: Path) -> Path | None:
    """A .ico file for Windows executables, relative to the project root."""
    value = r.string("icon")
    if value is None:
        return None
    path = (root / value).resolve()
    if not path.is_file():
        r.problem("icon", f"{value!r}: no such file (looked at {path}); give a Windows .ico file")
        return None
    problem = winres.check_icon(path)
    if problem:
        r.problem("icon", f"{problem}; convert it to .ico (e.g. with Pillow or ImageMagick)")
        return None
    return path


def parse_macos_version(value: str) -> tuple[int, int] | None:
    """'12', '12.0' or '10.15' (a patch part is allowed and dropped: the minimum is per minor)."""
    match = _MACOS_VERSION_RE.match(value.strip())
    if not match:
        return None
    return int(match["major"]), int(match["minor"] or 0)


def _parse_macos_min(r: _Reader, target: Target | None) -> tuple[int, int] | None:
    """The minimum macOS the executables start on: a version string, checked against what Rust supports."""
    value = r.table.get("macos-min")
    if value is None:
        return None
    if not isinstance(value, str) or parse_macos_version(value) is None:
        r.problem("macos-min", f'must be a macOS version like "11.0" or "12", not {_show(value)}')
        return None
    version = parse_macos_version(value)
    assert version is not None
    if target is not None and target.os != "macos":
        r.problem(
            "macos-min", f"only applies to *-apple-darwin targets, not {target.name!r}; remove it from this table"
        )
        return None
    floor = target.macos_floor if target is not None else LOWEST_MACOS
    assert floor is not None
    if version < floor or version[0] > MAX_MACOS_MAJOR:
        shown = f"{floor[0]}.{floor[1]}"
        what = (
            f"{target.name} starts on macOS {shown} and later" if target else f"Rust supports macOS {shown} and later"
        )
        r.problem("macos-min", f"{value!r} is not a macOS this can build for ({what}); use a version from {shown} up")
        return None
    return version


def _lock_python(r: _Reader, python: str, project: ProjectFacts) -> str:
    """The X.Y to resolve for: the exact version asked for, else the oldest one requires-python allows."""
    if _VERSION_RE.match(python) and python.count(".") >= 1:
        return ".".join(python.split(".")[:2])
    try:
        spec = SpecifierSet(python or project.requires_python or "")
    except InvalidSpecifier:
        return ""  # already reported for `python`
    for minor in KNOWN_PYTHON_MINORS:
        if any(spec.contains(f"{minor}.{patch}", prereleases=True) for patch in (0, 99)):
            return minor
    r.problem("python", f"no CPython {KNOWN_PYTHON_MINORS[0]}..{KNOWN_PYTHON_MINORS[-1]} satisfies {python!r}")
    return ""


def _parse_target_options(
    r: _Reader, targets: list[Target], host_triple: str, root: Path, project: ProjectFacts
) -> dict[str, TargetOptions]:
    tables = r.subtable("target")
    names = {t.name for t in targets} | {t.triple for t in targets}
    options: dict[str, TargetOptions] = {}
    for key, table in tables.items():
        where = f'{r.at("target")}."{key}"'
        if not isinstance(table, Mapping):
            r.problems.append(Problem(where, f"must be a table, not {_show(table)}"))
            continue
        try:
            name = parse_target(key, host_triple).name
        except ValueError as error:
            r.problems.append(Problem(where, str(error)))
            continue
        if name not in names:
            r.problems.append(
                Problem(where, f"{key!r} is not in targets ({', '.join(sorted(t.name for t in targets))})")
            )
        sub = _Reader(table, where, r.problems)
        sub.check_unknown(TARGET_KEYS)
        tool = sub.string("tool")
        if tool is not None and tool not in TOOLS:
            sub.problem("tool", f"{tool!r} is not allowed; choose one of {', '.join(map(repr, TOOLS))}")
            tool = None
        options[name] = TargetOptions(
            tool=tool,
            cargo_args=tuple(sub.string_list("cargo-args") or ()),
            env=sub.env_table("env"),
            offline=sub.boolean("offline", None),
            embed_python=_parse_embed_python(sub, root) if "embed-python" in table else None,
            extras=tuple(_parse_extras(sub, project) or ()),
            macos_min=_parse_macos_min(sub, parse_target(key, host_triple)),
        )
    return options


def parse_entry_point(value: str) -> tuple[str, tuple[str, ...]] | None:
    """`module:attr [extra1, extra2]` -> ("module:attr", normalized extras); None if it is not one.

    The bracket is the entry point's own list of the extras it needs (the packaging spec's syntax,
    as in black's `blackd = "blackd:patched_main [d]"`); it never belongs in what the launcher runs.
    """
    match = _ENTRY_VALUE_RE.match(value)
    if not match or not _OBJECT_REF_RE.match(match.group("ref")):
        return None
    extras = [part.strip() for part in (match.group("extras") or "").split(",") if part.strip()]
    if not all(_EXTRA_RE.match(extra) for extra in extras):
        return None
    return match.group("ref"), tuple(dict.fromkeys(canonicalize_name(extra) for extra in extras))


def _known_extras(project: ProjectFacts) -> str:
    if not project.optional_dependencies:
        return "the project defines no extras"
    return f"it defines: {', '.join(project.optional_dependencies)}"


def _parse_extras(r: _Reader, project: ProjectFacts) -> list[str] | None:
    """`extras = [...]`: names from [project.optional-dependencies], normalized; None when not given."""
    names = r.string_list("extras")
    if names is None:
        return None
    extras: list[str] = []
    for index, name in enumerate(names):
        normalized = canonicalize_name(name)
        if normalized in project.optional_dependencies:
            if normalized not in extras:
                extras.append(normalized)
            continue
        close = difflib.get_close_matches(normalized, project.optional_dependencies, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        r.problems.append(
            Problem(
                f"{r.at('extras')}[{index}]",
                f"{name!r} is not an extra of this project ([project.optional-dependencies]); "
                f"{hint}{_known_extras(project)}",
            )
        )
    return extras


def _warn_about_extras(
    r: _Reader,
    project: ProjectFacts,
    entries: list[Entry],
    extras: list[str] | None,
    target_options: Mapping[str, TargetOptions],
    warnings: list[Problem],
) -> None:
    """Warn when the app may need an extra nobody asked for.

    Extras an entry point declares are installed anyway (the entry point says it needs them). What
    cannot be known is whether a script that declares none (httpx's `httpx:main` needs `httpx[cli]`),
    or a `module`/`code`, imports an optional dependency: when the project has extras and the table
    names none, say so once. `extras = []` states that none is needed and silences it.
    """
    if extras is not None or not project.optional_dependencies:
        return
    if any(option.extras for option in target_options.values()) or any(entry.extras for entry in entries):
        return
    names = ", ".join(project.optional_dependencies)
    runs = ", ".join(
        {"script": f"script {entry.name!r}", "module": f"module {entry.value!r}"}.get(entry.kind, "code")
        for entry in entries
    )
    warnings.append(
        Problem(
            r.at("extras"),
            f"the project has optional dependencies ({names}) and the executables install none of them; if "
            f'what they run ({runs or "the app"}) needs one, set extras = ["..."] (extras = [] silences this)',
        )
    )
