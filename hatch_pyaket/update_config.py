"""The `update` table: where a launcher's `PYAKET_SELF=update` finds new releases, and the key they are signed with.

    [tool.hatch.build.hooks.pyaket.update]
    github = "owner/repo"             # or url = "https://example.com/my-app/latest/"
    public-key = "RWQ..."             # or public-key-file = "update.pub"
    secret-key-env = "PYAKET_UPDATE_KEY"   # the default; read only when a build signs

The secret key never lives in pyproject.toml: a build signs `SHA256SUMS` when the environment
variable `secret-key-env` names holds the secret key file's text (or the path of that file).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hatch_pyaket.minisign import MinisignError, PublicKey

if TYPE_CHECKING:
    from hatch_pyaket.config import _Reader

UPDATE_KEYS = ("url", "github", "public-key", "public-key-file", "secret-key-env", "password-env")
DEFAULT_SECRET_KEY_ENV = "PYAKET_UPDATE_KEY"
_GITHUB_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class UpdateConfig:
    url: str  # the folder holding the latest release's SHA256SUMS, SHA256SUMS.minisig and executables; ends in /
    public_key: PublicKey
    secret_key_env: str = DEFAULT_SECRET_KEY_ENV
    password_env: str | None = None


def github_url(repository: str) -> str:
    """GitHub's documented link to an asset of a repository's latest release, without the asset's name."""
    return f"https://github.com/{repository}/releases/latest/download/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str) -> tuple[str, str | None]:
    """(the URL as a folder ending in /, a problem or None)."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return value, f"{value!r} is not an https:// URL of the folder that holds the latest release's files"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return value, (
            f"{value!r} uses http://, which anyone on the way could answer; use https:// "
            "(http:// is allowed only for 127.0.0.1, ::1 and localhost, for tests)"
        )
    if parts.query or parts.fragment:
        return value, f"{value!r} has a ?query or #fragment; give the folder's URL, the launcher adds the file names"
    if "{" in value or "}" in value:
        return value, (
            f"{value!r} holds a placeholder; the launcher cannot know the new version before reading the release, "
            'so give the folder that always holds the latest release (GitHub: github = "owner/repo")'
        )
    return (value if value.endswith("/") else value + "/"), None


def parse_update(r: _Reader, root: Path) -> UpdateConfig | None:
    if "update" not in r.table:
        return None
    table: Mapping[str, object] = r.subtable("update")
    from hatch_pyaket.config import _Reader

    sub = _Reader(table, r.at("update"), r.problems)
    for secret in ("secret-key", "private-key", "secret-key-file"):
        if secret in table:
            sub.problem(
                secret,
                "the secret key must never be in pyproject.toml (anyone with the repository could sign releases); "
                f'remove it, keep the key in your CI secrets and name the variable that holds it: secret-key-env = "{DEFAULT_SECRET_KEY_ENV}"',
            )
    sub.check_unknown(UPDATE_KEYS + tuple(k for k in ("secret-key", "private-key", "secret-key-file") if k in table))

    url = ""
    given = [key for key in ("url", "github") if key in table]
    if len(given) != 1:
        sub.problem(
            "url",
            'set one of url = "https://..." (the folder of the latest release\'s files) or github = "owner/repo"'
            + (", not both" if len(given) == 2 else ""),
        )
    elif given[0] == "url":
        value = sub.string("url") or ""
        url, problem = check_url(value)
        if problem:
            sub.problem("url", problem)
    else:
        value = sub.string("github") or ""
        if not _GITHUB_RE.match(value):
            sub.problem("github", f'{value!r} is not a GitHub repository like "owner/repo"')
        url = github_url(value)

    key = _parse_public_key(sub, root)
    secret_key_env = sub.string("secret-key-env", DEFAULT_SECRET_KEY_ENV) or ""
    if not _ENV_NAME_RE.match(secret_key_env):
        sub.problem("secret-key-env", f"{secret_key_env!r} is not an environment variable name")
    password_env = sub.string("password-env")
    if password_env is not None and not _ENV_NAME_RE.match(password_env):
        sub.problem("password-env", f"{password_env!r} is not an environment variable name")
    if key is None or not url:
        return None
    return UpdateConfig(url, key, secret_key_env, password_env)


def _parse_public_key(sub: _Reader, root: Path) -> PublicKey | None:
    given = [key for key in ("public-key", "public-key-file") if key in sub.table]
    if len(given) != 1:
        sub.problem(
            "public-key",
            'set one of public-key = "RWQ..." (the second line of the .pub file `minisign -G -W -p update.pub '
            '-s update.key` made) or public-key-file = "update.pub"' + (", not both" if len(given) == 2 else ""),
        )
        return None
    if given[0] == "public-key":
        text = sub.string("public-key") or ""
    else:
        value = sub.string("public-key-file") or ""
        path = (root / value).resolve()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            sub.problem("public-key-file", f"{value!r}: cannot read {path} ({error}); give the .pub file minisign made")
            return None
    try:
        return PublicKey.parse(text)
    except MinisignError as error:
        sub.problem(given[0], f"{text.strip()[:60]!r} {error}")
        return None
