"""Signing `SHA256SUMS` for self-updating launchers: `SHA256SUMS.minisig` beside it.

The secret key comes from the environment variable the `update` table names (`secret-key-env`,
default PYAKET_UPDATE_KEY): the text of the file `minisign -G -W -s update.key` wrote, or that
file's path. It is read before any compile (a wrong key fails the build in seconds) and never
printed. Without it the build still succeeds, unsigned, and says so: launchers refuse to update
from an unsigned release.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hatch_pyaket import fsio
from hatch_pyaket.artifacts import SIGNATURE_SUFFIX
from hatch_pyaket.errors import BuildError
from hatch_pyaket.minisign import SecretKey, load_secret_key
from hatch_pyaket.update_config import UpdateConfig


@dataclass(frozen=True)
class ChecksumSigner:
    key: SecretKey

    def sign(self, checksums: Path) -> Path:
        """Write `<checksums>.minisig` for the file as it is now (the caller holds the output lock)."""
        signature = checksums.with_name(checksums.name + SIGNATURE_SUFFIX)
        text = self.key.sign(checksums.read_bytes(), file_name=checksums.name)
        fsio.write_atomic(signature, text, mode=0o644)
        return signature


def _key_text(value: str, env: str) -> str:
    """The variable holds the key file's text, or the path of that file."""
    if "\n" not in value.strip() and len(value) < 4096 and not value.strip().startswith("RW"):
        path = Path(value.strip()).expanduser()
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise BuildError(
                f"${env} is neither a minisign secret key (the text of the file `minisign -G -W -s update.key` "
                f"writes) nor the path of one: reading {path} failed ({error.__class__.__name__})"
            ) from None
    return value


def preflight(
    update: UpdateConfig | None, *, environ: Mapping[str, str] | None = None, report: Callable[[str], None]
) -> ChecksumSigner | None:
    """The signer for this build's SHA256SUMS, or None (no update table, or no key: said in the log)."""
    if update is None:
        return None
    environ = os.environ if environ is None else environ
    env = update.secret_key_env
    value = environ.get(env, "")
    if not value.strip():
        report(
            f"pyaket: SHA256SUMS is not signed: ${env} is not set. Launchers of this build update only from "
            f"releases whose SHA256SUMS is signed; release builds set {env} to the secret key (README, 'Self-update')"
        )
        return None
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise BuildError(
            f"signing SHA256SUMS (${env} is set) needs the `cryptography` package: add hatch-pyaket[update] "
            "(or cryptography) to [build-system] requires"
        ) from None
    password = environ.get(update.password_env) if update.password_env else None
    key = load_secret_key(_key_text(value, env), password, where=f"the secret key in ${env}")
    if key.public_key != update.public_key:
        raise BuildError(
            f"the secret key in ${env} (key id {key.public_key.id_text}) does not belong to the update table's "
            f"public key (key id {update.public_key.id_text}): launchers built now would refuse every release "
            f"signed with it. Set {env} to the secret key made together with that public key, or change the public key"
        )
    report(f"pyaket: SHA256SUMS will be signed with the minisign key {key.public_key.id_text} (${env})")
    return ChecksumSigner(key)
