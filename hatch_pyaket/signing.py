"""Code signing of the placed executables, from any build OS (Linux included).

- macOS: Developer ID signature with the hardened runtime and a secure timestamp, by `rcodesign`;
  then, if configured, notarization (`rcodesign notary-submit` of a zip of the executable; a bare
  executable cannot be stapled, Gatekeeper looks its ticket up online).
- Windows: Authenticode with an RFC 3161 timestamp, by `osslsigncode` from a PKCS#12 file or a
  PKCS#11 token, or by the user's own command (cloud HSMs: jsign, Azure Trusted Signing, signtool).

`preflight` runs before anything is compiled: it finds the tools (installing rcodesign if needed),
reads every secret, and checks the certificates open with their passwords, so a bad credential costs
seconds, not a build. Secrets are handed to tools in files (mode 0600, in the build's scratch folder),
never on a command line, and every message passes through `Redactor`.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import shutil
import struct
import subprocess
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hatch_pyaket import artifacts, fetch, fsio, rcodesign
from hatch_pyaket.errors import (
    BuildError,
    ConfigError,
    Problem,
    PyaketError,
    ToolchainError,
)
from hatch_pyaket.signing_config import (
    NO_TIMESTAMP,
    P12,
    MacosSigning,
    Notarize,
    Secret,
    SigningConfig,
    WindowsSigning,
)
from hatch_pyaket.targets import Target

Report = Callable[[str], None]
OFF_VALUES = {"0", "false", "no", "off"}
# Signing never takes long; a tool that hangs (a prompt for a PIN, a dead time-stamp server) must not hang the build.
SIGN_TIMEOUT = 600


class Redactor:
    """Replaces every known secret (and each line of multi-line ones) with ***."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def add(self, value: str) -> None:
        for piece in {value, value.strip(), *value.splitlines()}:
            piece = piece.strip()
            # Very short values (a PEM's "-----END...", a 1-char PIN) would shred messages; whole values are still hidden.
            if piece and (len(piece) >= 4 or piece == value.strip()) and not piece.startswith("-----"):
                self.secrets.append(piece)
        self.secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


@dataclass
class _Vault:
    """Secrets read from the environment or files, written to private files for the tools."""

    folder: Path
    environ: Mapping[str, str]
    redact: Redactor
    problems: list[Problem] = field(default_factory=list)

    def read(self, secret: Secret, what: str) -> str | None:
        if secret.env:
            value = self.environ.get(secret.env)
            if value is None:
                self.problems.append(
                    Problem(secret.where, f"environment variable {secret.env} is not set; it must hold {what}")
                )
                return None
            if not value.strip():
                self.problems.append(
                    Problem(
                        secret.where,
                        f"environment variable {secret.env} is empty; it must hold {what} (in GitHub Actions, a "
                        "secret that does not exist in this repository or environment reads as empty)",
                    )
                )
                return None
        else:
            assert secret.file is not None
            try:
                value = secret.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                self.problems.append(Problem(secret.where, f"cannot read {secret.file}: {error}"))
                return None
        self.redact.add(value)
        return value

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.folder / name
        data = content.encode() if isinstance(content, str) else content
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def password_file(self, secret: Secret, name: str, what: str) -> Path | None:
        """The first line of a password (as rcodesign and osslsigncode read it), in a private file."""
        value = self.read(secret, what)
        if value is None:
            return None
        return self.file(name, value.splitlines()[0] if value.strip() else "")

    def p12(self, p12: P12, name: str) -> tuple[Path, Path] | None:
        password = self.password_file(p12.password, f"{name}.password", "the PKCS#12 password")
        if p12.file is not None:
            path: Path | None = p12.file
        else:
            encoded = self.read(Secret(p12.where, env=p12.base64_env), "the base64 of a .p12/.pfx file")
            path = None
            if encoded is not None:
                try:
                    path = self.file(f"{name}.p12", base64.b64decode("".join(encoded.split()), validate=True))
                except (binascii.Error, ValueError):
                    self.problems.append(
                        Problem(
                            p12.where,
                            f"environment variable {p12.base64_env} is not base64; set it to the output of "
                            "`base64 -w0 certificate.p12`",
                        )
                    )
        return (path, password) if path is not None and password is not None else None


def run_tool(command: Sequence[str], redact: Redactor, *, what: str, timeout: float = SIGN_TIMEOUT) -> str:
    """Run a signing tool; its output is returned, or shown (redacted) in the error if it fails."""
    try:
        result = subprocess.run(
            list(command), check=False, capture_output=True, text=True, timeout=timeout, errors="replace"
        )
    except OSError as error:
        raise ToolchainError(redact(f"could not start {command[0]!r} for {what}: {error}")) from None
    except subprocess.TimeoutExpired:
        raise BuildError(redact(f"{what} did not finish in {timeout:.0f} s: {shlex.join(command)}")) from None
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise BuildError(
            redact(f"{what} failed (exit code {result.returncode}): {shlex.join(command)}\n{_indent(output)}")
        )
    return redact(output)


def _indent(text: str) -> str:
    lines = text.splitlines()[-40:]
    return "\n".join(f"    {line}" for line in lines) or "    (no output)"


def has_authenticode(path: Path) -> bool:
    """Whether a PE file has a certificate table (data directory 4), i.e. an Authenticode signature."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if len(head) < 64 or head[:2] != b"MZ":
        return False
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    optional = pe + 24
    if head[pe : pe + 4] != b"PE\0\0" or optional + 2 > len(head):
        return False
    magic = struct.unpack_from("<H", head, optional)[0]
    directories = optional + (96 if magic == 0x10B else 112)
    entry = directories + 4 * 8
    if entry + 8 > len(head):
        return False
    address, size = struct.unpack_from("<II", head, entry)
    return address != 0 and size != 0


@dataclass
class MacosSigner:
    config: MacosSigning
    tool: str
    p12: Path
    password: Path
    api_key: Path | None  # rcodesign's JSON form of the App Store Connect key, for notarization

    def command(self, source: Path, output: Path, identifier: str) -> list[str]:
        command = [
            self.tool, "sign",
            "--p12-file", str(self.p12), "--p12-password-file", str(self.password),
            "--code-signature-flags", "runtime",
            "--binary-identifier", identifier,
            "--timestamp-url", self.config.timestamp_url,
        ]  # fmt: skip
        if self.config.team_id:
            command += ["--team-name", self.config.team_id]
        if self.config.entitlements is not None:
            command += ["--entitlements-xml-file", str(self.config.entitlements)]
        return [*command, str(source), str(output)]

    def notary_command(self, archive: Path) -> list[str]:
        assert self.api_key is not None and self.config.notarize is not None
        wait = self.config.notarize.wait_seconds
        waiting = ["--wait", "--max-wait-seconds", str(wait)] if wait else []
        return [self.tool, "notary-submit", "--api-key-file", str(self.api_key), *waiting, str(archive)]


@dataclass
class WindowsSigner:
    config: WindowsSigning
    tool: str
    credentials: list[str]  # osslsigncode's options naming the key, certificate and password files

    def command(self, source: Path, output: Path, description: str) -> list[str]:
        if self.config.command:
            return [part.replace("{file}", str(output)) for part in self.config.command]
        command = [self.tool, "sign", *self.credentials, "-h", "sha256", "-n", self.config.description or description]
        if self.config.url:
            command += ["-i", self.config.url]
        if self.config.timestamp_url != NO_TIMESTAMP:
            command += ["-ts", self.config.timestamp_url]
        return [*command, "-in", str(source), "-out", str(output)]


@dataclass
class Signer:
    macos: MacosSigner | None
    windows: WindowsSigner | None
    folder: Path
    redact: Redactor
    report: Report
    timings: list[tuple[str, float]] = field(default_factory=list)

    def applies_to(self, target: Target) -> bool:
        return (target.os == "macos" and self.macos is not None) or (
            target.os == "windows" and self.windows is not None
        )

    def sign(self, path: Path, target: Target, entry: str) -> None:
        """Sign `path` (an executable in the output folder) and atomically replace it with the signed one.

        If signing fails, the unsigned file is removed from the output folder: a release step that
        uploads `dist/*` must not ship it as if it were signed.
        """
        if not self.applies_to(target):
            return
        try:
            work = self._sign(path, target, entry)
        except BaseException:
            path.unlink(missing_ok=True)
            self.report(f"pyaket: removed the unsigned {path.name} from {path.parent}")
            raise
        if target.os == "macos" and self.macos is not None and self.macos.api_key is not None:
            self.notarize(path, work)

    def _sign(self, path: Path, target: Target, entry: str) -> Path:
        work = self.folder / "files" / target.name / entry
        work.mkdir(parents=True, exist_ok=True)
        signed = work / path.name
        signed.unlink(missing_ok=True)
        started = time.monotonic()
        if target.os == "macos":
            assert self.macos is not None
            identifier = self.macos.config.identifier or entry
            command = self.macos.command(path, signed, identifier)
            how = f"Developer ID, hardened runtime, identifier {identifier}, {self._timestamp(self.macos.config.timestamp_url)}"
        else:
            assert self.windows is not None
            command = self.windows.command(path, signed, entry)
            if self.windows.config.command:
                shutil.copyfile(path, signed)  # the user's command signs in place
                how = "Authenticode, your signing command"
            else:
                how = f"Authenticode sha256, {self._timestamp(self.windows.config.timestamp_url)}"
        self.report(self.redact(f"pyaket: signing {path.name} ({how}): {shlex.join(command)}"))
        run_tool(command, self.redact, what=f"signing {path.name}")
        if not signed.is_file():
            raise BuildError(f"signing {path.name} reported success but wrote no {signed}")
        if target.os == "windows" and not has_authenticode(signed):
            raise BuildError(
                self.redact(
                    f"signing {path.name} exited 0 but the file has no Authenticode signature: "
                    f"{shlex.join(command)}; the command must sign the file named by {{file}} in place"
                )
            )
        # Atomic: a reader of the output folder sees the unsigned file or the signed one, never a mix.
        fsio.copy_atomic(signed, path, mode=0o755)
        elapsed = time.monotonic() - started
        self.timings.append((path.name, elapsed))
        self.report(f"pyaket: signed {path.name} in {elapsed:.2f} s")
        return work

    def notarize(self, path: Path, work: Path) -> None:
        """Submit a zip of the signed executable to Apple's notary service (no stapling: bare executables can't be)."""
        assert self.macos is not None
        archive = work / f"{path.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            info = zipfile.ZipInfo.from_file(path, path.name)
            info.external_attr = (0o100755 & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, path.read_bytes())
        command = self.macos.notary_command(archive)
        wait = self.macos.config.notarize.wait_seconds if self.macos.config.notarize else 0
        self.report(
            self.redact(
                f"pyaket: notarizing {path.name} with Apple"
                + (f" (waiting up to {wait} s for the verdict)" if wait else " (not waiting for the verdict)")
                + f": {shlex.join(command)}"
            )
        )
        started = time.monotonic()
        output = run_tool(command, self.redact, what=f"notarizing {path.name}", timeout=max(wait, 0) + SIGN_TIMEOUT)
        for line in output.splitlines()[-5:]:
            self.report(f"pyaket:   {line}")
        self.report(f"pyaket: notarization of {path.name} done in {time.monotonic() - started:.0f} s")

    @staticmethod
    def _timestamp(url: str) -> str:
        return "no timestamp" if url == NO_TIMESTAMP else f"timestamp {url}"


def disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("HATCH_PYAKET_SIGNING", "").strip().lower() in OFF_VALUES


def preflight(
    signing: SigningConfig,
    targets: Sequence[Target],
    scratch: Path,
    *,
    report: Report,
    environ: Mapping[str, str] | None = None,
) -> Signer | None:
    """Everything signing needs, checked before compiling; None when no target is to be signed."""
    environ = os.environ if environ is None else environ
    oses = {target.os for target in targets}
    macos = signing.macos if "macos" in oses else None
    windows = signing.windows if "windows" in oses else None
    if macos is None and windows is None:
        return None
    if disabled(environ):
        report("pyaket: WARNING: HATCH_PYAKET_SIGNING is off: the executables are NOT signed")
        return None
    folder = scratch / "signing"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    vault = _Vault(folder, environ, Redactor())
    mac_signer = _macos(macos, vault, report) if macos else None
    win_signer = _windows(windows, vault, environ) if windows else None
    if vault.problems:
        error = ConfigError([Problem(p.path, vault.redact(p.message)) for p in vault.problems])
        error.args = (
            f"{error}\n  (found by the signing preflight: nothing was compiled; HATCH_PYAKET_SIGNING=0 builds unsigned)",
        )
        raise error
    return Signer(mac_signer, win_signer, folder, vault.redact, report)


def _macos(config: MacosSigning, vault: _Vault, report: Report) -> MacosSigner | None:
    files = vault.p12(config.p12, "macos")
    notary_key = _notary_inputs(config.notarize, vault) if config.notarize else None
    if files is None or (config.notarize is not None and notary_key is None):
        return None
    try:
        tool = rcodesign.find(config.notarize is not None, report, vault.environ)
    except PyaketError as error:
        vault.problems.append(Problem(config.where, str(error)))
        return None
    p12, password = files
    try:
        run_tool(
            [tool, "analyze-certificate", "--p12-file", str(p12), "--p12-password-file", str(password)],
            vault.redact,
            what="opening the macOS signing certificate",
            timeout=120,
        )
    except BuildError as error:
        hint = ""
        if "incorrect password" in str(error):
            hint = (
                "; either the password is wrong, or the .p12 uses OpenSSL 3's default AES encryption, which rcodesign "
                "cannot read: re-export it with `openssl pkcs12 -export -legacy ...` (or from Keychain Access)"
            )
        vault.problems.append(Problem(config.p12.where, f"{error}{hint}"))
        return None
    api_key = None
    if notary_key is not None:
        issuer, key_id, private_key = notary_key
        api_key = vault.folder / "app-store-connect-key.json"
        try:
            run_tool(
                [
                    tool,
                    "encode-app-store-connect-api-key",
                    "--output-path",
                    str(api_key),
                    issuer,
                    key_id,
                    str(private_key),
                ],
                vault.redact,
                what="reading the App Store Connect API key",
                timeout=120,
            )
        except BuildError as error:
            assert config.notarize is not None
            vault.problems.append(
                Problem(
                    config.notarize.private_key.where, f"{error}; give the AuthKey_<ID>.p8 file's text as downloaded"
                )
            )
            return None
        os.chmod(api_key, 0o600)
    return MacosSigner(config, tool, p12, password, api_key)


def _notary_inputs(notarize: Notarize, vault: _Vault) -> tuple[str, str, Path] | None:
    def value(item: Secret | str, what: str) -> str | None:
        if isinstance(item, str):
            return item
        read = vault.read(item, what)
        return read.strip() if read is not None else None

    issuer = value(notarize.issuer_id, "the App Store Connect issuer ID")
    key_id = value(notarize.key_id, "the App Store Connect API key ID")
    text = vault.read(notarize.private_key, "the App Store Connect API private key (the .p8 file's text)")
    if issuer is None or key_id is None or text is None:
        return None
    if "PRIVATE KEY-----" not in text:
        vault.problems.append(
            Problem(
                notarize.private_key.where,
                f"{notarize.private_key.describe()} does not hold a PEM private key (-----BEGIN PRIVATE KEY-----); "
                "give the AuthKey_<ID>.p8 file's text as downloaded from App Store Connect",
            )
        )
        return None
    return issuer, key_id, vault.file("app-store-connect-key.p8", text)


def _windows(config: WindowsSigning, vault: _Vault, environ: Mapping[str, str]) -> WindowsSigner | None:
    if config.command:
        program = config.command[0]
        if not (shutil.which(program, path=environ.get("PATH")) or Path(program).is_file()):
            vault.problems.append(
                Problem(
                    f"{config.where}.command", f"{program!r} was not found on PATH; install it or give its full path"
                )
            )
            return None
        return WindowsSigner(config, program, [])
    tool = environ.get("OSSLSIGNCODE") or shutil.which("osslsigncode", path=environ.get("PATH"))
    if not tool:
        vault.problems.append(
            Problem(
                config.where,
                "osslsigncode was not found (looked at $OSSLSIGNCODE and PATH); install it "
                "(apt-get install osslsigncode, brew install osslsigncode) or set OSSLSIGNCODE",
            )
        )
    credentials: list[str] = []
    if config.p12 is not None:
        files = vault.p12(config.p12, "windows")
        if files is None:
            return None
        p12, password = files
        problem = _check_p12(p12, password)
        if problem:
            vault.problems.append(Problem(config.p12.where, problem))
            return None
        credentials = ["-pkcs12", str(p12), "-readpass", str(password)]
    elif config.pkcs11 is not None:
        token = config.pkcs11
        if token.engine is not None:
            credentials += ["-pkcs11engine", str(token.engine)]
        credentials += ["-pkcs11module", str(token.module), "-certs", str(token.cert_file), "-key", token.key]
        if token.pin is not None:
            pin = vault.password_file(token.pin, "windows.pin", "the token's PIN")
            if pin is None:
                return None
            credentials += ["-readpass", str(pin)]
    return WindowsSigner(config, tool, credentials) if tool else None


def _check_p12(p12: Path, password_file: Path) -> str:
    """'' if the PKCS#12 opens with its password; else what is wrong. Unchecked if neither
    `cryptography` nor `openssl` is at hand (osslsigncode then reports it at signing time)."""
    password = password_file.read_bytes()
    try:
        data = p12.read_bytes()
    except OSError as error:
        return f"cannot read {p12}: {error}"
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:
        return _check_p12_openssl(p12, password_file)
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, password or None)
    except ValueError:
        return f"{p12.name}: the password is wrong, or the file is not a PKCS#12 (.p12/.pfx) file"
    if key is None or cert is None:
        return f"{p12.name} holds no private key and certificate pair; export both into it"
    return ""


def _check_p12_openssl(p12: Path, password_file: Path) -> str:
    openssl = shutil.which("openssl")
    if not openssl:
        return ""
    for extra in ([], ["-legacy"]):
        result = subprocess.run(
            [openssl, "pkcs12", *extra, "-in", str(p12), "-noout", "-passin", f"file:{password_file}"],
            capture_output=True,
        )
        if result.returncode == 0:
            return ""
    return f"{p12.name}: the password is wrong, or the file is not a PKCS#12 (.p12/.pfx) file"


def placed_after_signing(path: Path) -> artifacts.Placed:
    """The output folder's file as signing left it: the checksums and the manifest describe these bytes."""
    identity = artifacts.file_identity(path)
    return artifacts.Placed(path, identity[1], fetch.sha256_file(path), identity)
