"""The `signing.macos` and `signing.windows` tables: what to sign with, validated with TOML paths.

Secrets never live in pyproject.toml: the tables name environment variables (`...-env`) or files
(`...-file`) that hold them, and are read only when a build signs (see signing.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hatch_pyaket.errors import Problem

if TYPE_CHECKING:
    from hatch_pyaket.config import _Reader

APPLE_TIMESTAMP_URL = "http://timestamp.apple.com/ts01"
WINDOWS_TIMESTAMP_URL = "http://timestamp.digicert.com"
NO_TIMESTAMP = "none"
DEFAULT_NOTARY_WAIT = 900

SIGNING_KEYS = ("macos", "windows")
MACOS_KEYS = (
    "p12-file",
    "p12-base64-env",
    "p12-password-env",
    "p12-password-file",
    "identifier",
    "team-id",
    "timestamp-url",
    "entitlements",
    "notarize",
)
NOTARIZE_KEYS = (
    "issuer-id",
    "issuer-id-env",
    "key-id",
    "key-id-env",
    "private-key-env",
    "private-key-file",
    "wait-seconds",
)
WINDOWS_KEYS = (
    "p12-file",
    "p12-base64-env",
    "p12-password-env",
    "p12-password-file",
    "pkcs11-module",
    "pkcs11-engine",
    "pkcs11-key",
    "cert-file",
    "pin-env",
    "pin-file",
    "command",
    "timestamp-url",
    "description",
    "url",
)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


@dataclass(frozen=True)
class Secret:
    """Where a secret comes from: an environment variable or a file; `where` is its TOML path."""

    where: str
    env: str = ""
    file: Path | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True)
class P12:
    """A PKCS#12 (.p12/.pfx) certificate and key: a file, or its base64 in an environment variable."""

    where: str
    file: Path | None
    base64_env: str
    password: Secret


@dataclass(frozen=True)
class Notarize:
    issuer_id: Secret | str
    key_id: Secret | str
    private_key: Secret
    wait_seconds: int  # 0: submit and do not wait for Apple's verdict


@dataclass(frozen=True)
class MacosSigning:
    where: str
    p12: P12
    identifier: str  # "" means the executable's base name
    team_id: str  # "": rcodesign takes it from an Apple-issued certificate
    timestamp_url: str  # NO_TIMESTAMP for none
    entitlements: Path | None
    notarize: Notarize | None


@dataclass(frozen=True)
class Pkcs11:
    module: Path
    engine: Path | None
    key: str
    cert_file: Path
    pin: Secret | None


@dataclass(frozen=True)
class WindowsSigning:
    where: str
    p12: P12 | None = None
    pkcs11: Pkcs11 | None = None
    command: tuple[str, ...] = ()  # a user's signing command; "{file}" is the executable's path
    timestamp_url: str = WINDOWS_TIMESTAMP_URL
    description: str = ""
    url: str = ""


@dataclass(frozen=True)
class SigningConfig:
    macos: MacosSigning | None = None
    windows: WindowsSigning | None = None

    def __bool__(self) -> bool:
        return self.macos is not None or self.windows is not None


def parse_signing(r: _Reader, root: Path) -> SigningConfig:
    """`[<hook>.signing]`: absent means no signing."""
    if "signing" not in r.table:
        return SigningConfig()
    table = r.subtable("signing")
    sub = type(r)(table, r.at("signing"), r.problems)
    sub.check_unknown(SIGNING_KEYS)
    macos = _parse_macos(sub, root) if "macos" in table else None
    windows = _parse_windows(sub, root) if "windows" in table else None
    if not table:
        r.problem("signing", "is empty; add a [signing.macos] or [signing.windows] table, or remove it")
    return SigningConfig(macos, windows)


def _table(r: _Reader, key: str, known: tuple[str, ...]) -> _Reader:
    sub = type(r)(r.subtable(key), r.at(key), r.problems)
    sub.check_unknown(known)
    return sub


def _env_name(r: _Reader, key: str) -> str:
    name = r.string(key) or ""
    if key in r.table and not _ENV_NAME_RE.match(name):
        r.problem(key, f"{name!r} is not an environment variable name; give the NAME of the variable holding it")
        return ""
    return name


def _path(r: _Reader, key: str, root: Path, what: str) -> Path | None:
    value = r.string(key)
    if value is None:
        return None
    path = (root / value).resolve()
    if not path.is_file():
        r.problem(key, f"{value!r}: no such file (looked at {path}); give the path of {what}")
        return None
    return path


def _secret(r: _Reader, stem: str, root: Path, what: str, *, required: bool = True) -> Secret | None:
    """`<stem>-env` or `<stem>-file`: exactly one."""
    env_key, file_key = f"{stem}-env", f"{stem}-file"
    given = [key for key in (env_key, file_key) if key in r.table]
    if len(given) > 1:
        r.problem(file_key, f"conflicts with {r.at(env_key)}; give one of them")
        return None
    if not given:
        if required:
            r.problem(
                env_key,
                f'is missing: name the environment variable holding {what} ({env_key} = "NAME"), '
                f'or a file holding it ({file_key} = "path"); never write the secret itself in pyproject.toml',
            )
        return None
    if given[0] == env_key:
        name = _env_name(r, env_key)
        return Secret(r.at(env_key), env=name) if name else None
    path = _path(r, file_key, root, what)
    return Secret(r.at(file_key), file=path) if path else None


def _p12(r: _Reader, root: Path) -> P12 | None:
    given = [key for key in ("p12-file", "p12-base64-env") if key in r.table]
    if len(given) > 1:
        r.problem("p12-base64-env", f"conflicts with {r.at('p12-file')}; give one of them")
        return None
    if not given:
        return None
    file = _path(r, "p12-file", root, "a PKCS#12 (.p12/.pfx) certificate file") if given[0] == "p12-file" else None
    env = _env_name(r, "p12-base64-env") if given[0] == "p12-base64-env" else ""
    password = _secret(r, "p12-password", root, "the PKCS#12 password")
    if (file is None and not env) or password is None:
        return None
    return P12(r.at(given[0]), file, env, password)


def _timestamp_url(r: _Reader, default: str) -> str:
    url = r.string("timestamp-url", default) or default
    if url != NO_TIMESTAMP and not re.match(r"^https?://", url):
        r.problem("timestamp-url", f'{url!r} is not an http(s) URL of an RFC 3161 time-stamp server, nor "none"')
    return url


def _parse_macos(parent: _Reader, root: Path) -> MacosSigning | None:
    r = _table(parent, "macos", MACOS_KEYS)
    if not isinstance(parent.table.get("macos"), Mapping):
        return None
    p12 = _p12(r, root)
    if p12 is None and not any(k in r.table for k in ("p12-file", "p12-base64-env")):
        r.problem(
            "p12-file",
            'is missing: give the Developer ID Application certificate as a .p12 file (p12-file = "path") '
            'or as base64 in an environment variable (p12-base64-env = "NAME")',
        )
    identifier = r.string("identifier", "") or ""
    if identifier and not _IDENTIFIER_RE.match(identifier):
        r.problem("identifier", f"{identifier!r} is not a bundle identifier like 'com.example.app'")
    team_id = r.string("team-id", "") or ""
    if team_id and not re.match(r"^[A-Z0-9]{10}$", team_id):
        r.problem("team-id", f"{team_id!r} is not an Apple team ID (10 capital letters or digits, like 'A1B2C3D4E5')")
    timestamp_url = _timestamp_url(r, APPLE_TIMESTAMP_URL)
    entitlements = _path(r, "entitlements", root, "an entitlements .plist")
    notarize = _parse_notarize(r, root) if "notarize" in r.table else None
    if notarize is not None and timestamp_url == NO_TIMESTAMP:
        r.problem("timestamp-url", 'is "none", but Apple notarizes only signatures with a secure timestamp')
    if p12 is None:
        return None
    return MacosSigning(r.path, p12, identifier, team_id, timestamp_url, entitlements, notarize)


def _plain_or_secret(r: _Reader, key: str, root: Path, what: str) -> Secret | str | None:
    if key in r.table and f"{key}-env" in r.table:
        r.problem(f"{key}-env", f"conflicts with {r.at(key)}; give one of them")
        return None
    if key in r.table:
        value = r.string(key) or ""
        if not value.strip():
            r.problem(key, f"is empty; give {what}")
        return value
    secret = _secret(r, key, root, what, required=False) if f"{key}-env" in r.table else None
    if secret is None and f"{key}-env" not in r.table:
        r.problem(key, f'is missing: give {what} ({key} = "..." or {key}-env = "NAME")')
    return secret


def _parse_notarize(parent: _Reader, root: Path) -> Notarize | None:
    value = parent.table.get("notarize")
    if value is False:
        return None
    if not isinstance(value, Mapping):
        parent.problem(
            "notarize",
            "must be a table with your App Store Connect API key: [...signing.macos.notarize] with issuer-id, "
            "key-id and private-key-env (or private-key-file)",
        )
        return None
    r = _table(parent, "notarize", NOTARIZE_KEYS)
    issuer = _plain_or_secret(r, "issuer-id", root, "the App Store Connect issuer ID (a UUID)")
    key_id = _plain_or_secret(r, "key-id", root, "the App Store Connect API key ID (like 'DEADBEEF42')")
    private_key = _secret(r, "private-key", root, "the API key's private key (the AuthKey_<ID>.p8 text)")
    wait = r.integer("wait-seconds", DEFAULT_NOTARY_WAIT, 0, 86400, " (0 submits without waiting for Apple)")
    if issuer is None or key_id is None or private_key is None:
        return None
    return Notarize(issuer, key_id, private_key, wait)


def _parse_windows(parent: _Reader, root: Path) -> WindowsSigning | None:
    r = _table(parent, "windows", WINDOWS_KEYS)
    if not isinstance(parent.table.get("windows"), Mapping):
        return None
    ways = [key for key in ("p12-file", "p12-base64-env", "pkcs11-module", "command") if key in r.table]
    if "p12-file" in ways and "p12-base64-env" in ways:
        ways.remove("p12-base64-env")  # reported by _p12
    if len(ways) > 1:
        r.problem(
            ways[1], f"conflicts with {r.at(ways[0])}; sign with one of a PKCS#12 file, a PKCS#11 token or a command"
        )
        return None
    if not ways:
        r.problem(
            "p12-file",
            "is missing: sign with a PKCS#12 file (p12-file or p12-base64-env), a PKCS#11 token (pkcs11-module) "
            'or your own command (command = ["jsign", ..., "{file}"])',
        )
        return None
    description = r.string("description", "") or ""
    url = r.string("url", "") or ""
    if ways[0] == "command":
        for key in ("timestamp-url", "description", "url"):
            if key in r.table:
                r.problem(key, "is used only with p12-file or pkcs11-module; pass it to your signing command instead")
        command = r.string_list("command") or []
        if not command:
            if "command" in r.table and isinstance(r.table["command"], list):
                r.problem("command", 'is empty; give the signing command as an array, e.g. ["jsign", ..., "{file}"]')
            return None
        if not any("{file}" in part for part in command):
            r.problem("command", 'never mentions "{file}", where the executable\'s path goes; add it')
            return None
        return WindowsSigning(r.path, command=tuple(command))
    timestamp_url = _timestamp_url(r, WINDOWS_TIMESTAMP_URL)
    if ways[0] == "pkcs11-module":
        module = _path(r, "pkcs11-module", root, "the token's PKCS#11 module (.so)")
        engine = _path(r, "pkcs11-engine", root, "the OpenSSL PKCS#11 engine (.so)")
        key = r.string("pkcs11-key") or ""
        if not key:
            r.problem(
                "pkcs11-key", 'is missing: give the key\'s PKCS#11 URI, e.g. "pkcs11:token=...;object=...;type=private"'
            )
        cert_file = _path(r, "cert-file", root, "the code signing certificate (PEM, with its chain)")
        if "cert-file" not in r.table:
            r.problem(
                "cert-file", "is missing: give the code signing certificate chain (PEM) that goes with the token's key"
            )
        pin = _secret(r, "pin", root, "the token's PIN", required=False)
        if module is None or not key or cert_file is None:
            return None
        return WindowsSigning(
            r.path,
            pkcs11=Pkcs11(module, engine, key, cert_file, pin),
            timestamp_url=timestamp_url,
            description=description,
            url=url,
        )
    p12 = _p12(r, root)
    if p12 is None:
        return None
    return WindowsSigning(r.path, p12=p12, timestamp_url=timestamp_url, description=description, url=url)


def unused_tables(signing: SigningConfig, oses: set[str], path: str) -> list[Problem]:
    """Warnings for a signing table no configured target uses."""
    return [
        Problem(f"{path}.signing.{name}", f"no {name} target is configured, so nothing is signed with it")
        for name, table in (("macos", signing.macos), ("windows", signing.windows))
        if table is not None and name not in oses
    ]
