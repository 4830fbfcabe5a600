"""The minisign formats (https://jedisct1.github.io/minisign/): public keys, secret keys, signatures.

Launchers verify `SHA256SUMS.minisig` with the `minisign-verify` crate; this side writes it. No
Python library fits (py-minisign needs a newer `cryptography` than many build environments have),
and the format is small: Ed25519 (from `cryptography`) over BLAKE2b-512 of the file (hashlib), the
"prehashed" `ED` signatures that `minisign -S` writes and `minisign -V` checks.

Key pairs come from `minisign -G -W -p update.pub -s update.key` (`-W`: no password; a key made
without it needs its password, read from the environment variable `password-env` names).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass

from hatch_pyaket.errors import BuildError

_SIG_ALG = b"Ed"  # a public or secret key's algorithm: Ed25519
_PREHASHED = b"ED"  # a signature over BLAKE2b-512 of the file
_KDF_NONE = b"\0\0"
_KDF_SCRYPT = b"Sc"
_CHECKSUM_ALG = b"B2"
_PUBLIC_LEN = 2 + 8 + 32
_SECRET_LEN = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32
UNTRUSTED = "untrusted comment: "
TRUSTED = "trusted comment: "


class MinisignError(ValueError):
    """A key or signature that does not parse; the message says what is wrong with it."""


def key_id_text(key_id: bytes) -> str:
    """The key id as minisign prints it (`minisign key 8D4E...`): the little-endian number in hex."""
    return key_id[::-1].hex().upper()


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes  # 32 bytes of Ed25519 public key

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """The base64 line (`RWQ...`), or a whole `.pub` file (its comment line is skipped)."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(UNTRUSTED)]
        if len(lines) != 1:
            raise MinisignError("is not a minisign public key (one base64 line, like the second line of minisign.pub)")
        raw = _b64(lines[0], "a minisign public key")
        if len(raw) != _PUBLIC_LEN or raw[:2] != _SIG_ALG:
            raise MinisignError(
                f"is not a minisign public key: it decodes to {len(raw)} bytes, a key is {_PUBLIC_LEN} starting "
                "with 'Ed' (the line that starts with RWQ or RWS in the .pub file)"
            )
        return cls(raw[2:10], raw[10:])

    @property
    def base64(self) -> str:
        return base64.b64encode(_SIG_ALG + self.key_id + self.key).decode()

    @property
    def id_text(self) -> str:
        return key_id_text(self.key_id)

    def file_text(self) -> str:
        return f"{UNTRUSTED}minisign public key {self.id_text}\n{self.base64}\n"

    def verify(self, data: bytes, signature: str) -> str:
        """The trusted comment of `signature` (a .minisig file's text) if it signs `data`; raises otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        lines = signature.splitlines()
        if len(lines) < 4 or not lines[2].startswith(TRUSTED):
            raise MinisignError("is not a minisign signature (4 lines: two comments, two base64 lines)")
        raw = _b64(lines[1], "a minisign signature")
        if len(raw) != 2 + 8 + 64 or raw[:2] not in (_PREHASHED, _SIG_ALG):
            raise MinisignError("is not a minisign signature")
        if raw[2:10] != self.key_id:
            raise MinisignError(f"was made with the key {key_id_text(raw[2:10])}, not with {self.id_text}")
        key = Ed25519PublicKey.from_public_bytes(self.key)
        message = hashlib.blake2b(data).digest() if raw[:2] == _PREHASHED else data
        trusted = lines[2][len(TRUSTED) :]
        try:
            key.verify(raw[10:], message)
            key.verify(_b64(lines[3], "a minisign global signature"), raw[10:] + trusted.encode())
        except InvalidSignature:
            raise MinisignError("does not match the data (the data or the signature was changed)") from None
        return trusted


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes  # 32 bytes: the Ed25519 private key
    public: bytes  # 32 bytes

    @classmethod
    def parse(cls, text: str, password: str | None = None) -> SecretKey:
        """A `minisign -G` secret key file's text (or its base64 line alone)."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(UNTRUSTED)]
        if len(lines) != 1:
            raise MinisignError(
                "is not a minisign secret key (the text of the file `minisign -G -s update.key` writes)"
            )
        raw = _b64(lines[0], "a minisign secret key")
        if len(raw) != _SECRET_LEN or raw[:2] != _SIG_ALG or raw[4:6] != _CHECKSUM_ALG:
            raise MinisignError(
                f"is not a minisign secret key: it decodes to {len(raw)} bytes, a key is {_SECRET_LEN}"
                + (" (this looks like the public key)" if len(raw) == _PUBLIC_LEN else "")
            )
        kdf, salt = raw[2:4], raw[6:38]
        opslimit = int.from_bytes(raw[38:46], "little")
        memlimit = int.from_bytes(raw[46:54], "little")
        keynum = raw[54:]
        if kdf == _KDF_SCRYPT:
            if not password:
                raise MinisignError(
                    "is protected by a password: set password-env in the update table to the name of an "
                    "environment variable holding it, or make the key pair with `minisign -G -W` (no password)"
                )
            stream = _scrypt(password.encode(), salt, opslimit, memlimit, len(keynum))
            keynum = bytes(a ^ b for a, b in zip(keynum, stream))
        elif kdf != _KDF_NONE:
            raise MinisignError(f"uses an unknown key derivation {kdf!r}")
        key_id, secret, checksum = keynum[:8], keynum[8:72], keynum[72:]
        # `minisign -G -W` (0.11) leaves the checksum zero; the public half must match the seed either way.
        summed = checksum == bytes(32) and kdf == _KDF_NONE
        if not summed and hashlib.blake2b(_SIG_ALG + key_id + secret, digest_size=32).digest() != checksum:
            wrong = "the password is wrong or the key is damaged" if kdf == _KDF_SCRYPT else "the key is damaged"
            raise MinisignError(f"fails its checksum: {wrong}")
        if _public_of(secret[:32]) != secret[32:]:
            raise MinisignError("is damaged: its public half does not belong to its private half")
        return cls(key_id, secret[:32], secret[32:])

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.public)

    def sign(self, data: bytes, *, file_name: str, now: float | None = None) -> str:
        """The `.minisig` text for `data`, as `minisign -S -m <file_name>` writes it."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        signature = key.sign(hashlib.blake2b(data).digest())
        trusted = f"timestamp:{int(time.time() if now is None else now)}\tfile:{file_name}\thashed"
        global_signature = key.sign(signature + trusted.encode())
        return (
            f"{UNTRUSTED}signature from minisign secret key {key_id_text(self.key_id)}\n"
            f"{base64.b64encode(_PREHASHED + self.key_id + signature).decode()}\n"
            f"{TRUSTED}{trusted}\n"
            f"{base64.b64encode(global_signature).decode()}\n"
        )


def _public_of(seed: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MinisignError(f"is not {what}: not base64") from None


def _scrypt(password: bytes, salt: bytes, opslimit: int, memlimit: int, length: int) -> bytes:
    """libsodium's crypto_pwhash_scryptsalsa208sha256 (what minisign derives a key's mask with):
    its choice of N, r and p from opslimit and memlimit, then scrypt."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
        n_log2 = next(n for n in range(1, 63) if (1 << n) > max_n // 2)
    else:
        max_n = memlimit // (r * 128)
        n_log2 = next(n for n in range(1, 63) if (1 << n) > max_n // 2)
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max_rp // r
    n = 1 << n_log2
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=128 * r * (n + p + 2) + (1 << 20), dklen=length)


def load_secret_key(text: str, password: str | None, *, where: str) -> SecretKey:
    try:
        return SecretKey.parse(text, password)
    except MinisignError as error:
        raise BuildError(f"{where} {error}") from None
