"""Test certificates (openssl), a local RFC 3161 time-stamp server, and checks of signed files.

Nothing here reaches Apple or a public time-stamp server: the TSA answers with `openssl ts -reply`.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

P12_PASSWORD = "pw-Secr3t-7f1c9a"  # what the tests must never find in a build's output

_TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Certificates:
    folder: Path
    cert: Path  # the code signing certificate (PEM, self-signed)
    key: Path
    macos_p12: Path  # -legacy (RC2/3DES): what rcodesign reads
    macos_p12_aes: Path  # OpenSSL 3's default AES encryption: rcodesign cannot read it
    windows_p12: Path
    tsa_cert: Path
    tsa_key: Path
    password: str = P12_PASSWORD

    @property
    def cert_sha256(self) -> str:
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], capture_output=True, check=True
        ).stdout
        return hashlib.sha256(der).hexdigest()


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "3",
        "-subj", "/CN=Developer ID Application: Test Developer (TEAM123456)/OU=TEAM123456",
        "-addext", "extendedKeyUsage=codeSigning", "-addext", "keyUsage=critical,digitalSignature",
        cwd=folder,
    )  # fmt: skip
    password = f"pass:{P12_PASSWORD}"
    _openssl("pkcs12", "-export", "-legacy", "-out", "macos.p12", "-inkey", "key.pem", "-in", "cert.pem",
             "-passout", password, cwd=folder)  # fmt: skip
    _openssl("pkcs12", "-export", "-out", "macos-aes.p12", "-inkey", "key.pem", "-in", "cert.pem",
             "-passout", password, cwd=folder)  # fmt: skip
    _openssl("pkcs12", "-export", "-out", "windows.pfx", "-inkey", "key.pem", "-in", "cert.pem",
             "-passout", password, cwd=folder)  # fmt: skip
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.pem", "-days", "3",
        "-subj", "/CN=Test Time Stamping Authority",
        "-addext", "extendedKeyUsage=critical,timeStamping", "-addext", "keyUsage=critical,digitalSignature",
        cwd=folder,
    )  # fmt: skip
    return Certificates(
        folder,
        folder / "cert.pem",
        folder / "key.pem",
        folder / "macos.p12",
        folder / "macos-aes.p12",
        folder / "windows.pfx",
        folder / "tsa.pem",
        folder / "tsa.key",
    )


@dataclass
class TimestampServer:
    url: str
    requests: list[str]  # Content-Type of each request served


@contextlib.contextmanager
def timestamp_server(certs: Certificates) -> Iterator[TimestampServer]:
    """An RFC 3161 time-stamp authority on 127.0.0.1, answering with `openssl ts -reply`."""
    work = Path(tempfile.mkdtemp(prefix="tsa-", dir=certs.folder))
    (work / "serial").write_text("01\n")
    config = work / "tsa.cnf"
    config.write_text(_TSA_CONFIG.format(serial=work / "serial"))
    served: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                served.append(self.headers.get("Content-Type", ""))
                query, reply = work / "query.tsq", work / "reply.tsr"
                query.write_bytes(body)
                result = subprocess.run(
                    ["openssl", "ts", "-reply", "-queryfile", str(query), "-inkey", str(certs.tsa_key),
                     "-signer", str(certs.tsa_cert), "-config", str(config), "-out", str(reply)],
                    capture_output=True,
                    check=False,
                )  # fmt: skip
                answer = reply.read_bytes() if result.returncode == 0 else b""
            if not answer:
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TimestampServer(f"http://127.0.0.1:{server.server_address[1]}/", served)
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- Mach-O code signature
CSMAGIC_EMBEDDED_SIGNATURE = 0xFADE0CC0
CSMAGIC_CODEDIRECTORY = 0xFADE0C02
CSMAGIC_BLOBWRAPPER = 0xFADE0B01
CS_RUNTIME = 0x10000
LC_CODE_SIGNATURE = 0x1D


@dataclass(frozen=True)
class CodeDirectory:
    flags: int
    identifier: str
    hash_type: int
    page_size: int
    code_limit: int
    code_hashes: list[bytes]
    team_id: str


@dataclass(frozen=True)
class MachOSignature:
    code_directories: list[CodeDirectory]
    cms: bytes  # the CMS signature (empty for ad-hoc)
    data_offset: int


def macho_signature(path: Path) -> MachOSignature:
    """Parse LC_CODE_SIGNATURE's SuperBlob (big-endian) of a thin 64-bit Mach-O."""
    data = path.read_bytes()
    magic, _cpu, _sub, _filetype, ncmds, _size, _flags, _reserved = struct.unpack_from("<IiiIIIII", data, 0)
    assert magic == 0xFEEDFACF, "not a thin 64-bit Mach-O"
    offset = 32
    sig_off = sig_size = None
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, offset)
        if cmd == LC_CODE_SIGNATURE:
            sig_off, sig_size = struct.unpack_from("<II", data, offset + 8)
        offset += cmdsize
    assert sig_off is not None and sig_size is not None, "no LC_CODE_SIGNATURE"
    blob = data[sig_off : sig_off + sig_size]
    smagic, _length, count = struct.unpack_from(">III", blob, 0)
    assert smagic == CSMAGIC_EMBEDDED_SIGNATURE
    directories: list[CodeDirectory] = []
    cms = b""
    for index in range(count):
        _slot, blob_offset = struct.unpack_from(">II", blob, 12 + 8 * index)
        bmagic, blength = struct.unpack_from(">II", blob, blob_offset)
        body = blob[blob_offset : blob_offset + blength]
        if bmagic == CSMAGIC_CODEDIRECTORY:
            directories.append(_code_directory(body))
        elif bmagic == CSMAGIC_BLOBWRAPPER:
            cms = body[8:]
    return MachOSignature(directories, cms, sig_off)


def _code_directory(cd: bytes) -> CodeDirectory:
    (_m, _l, version, flags, hash_offset, ident_offset, _nspecial, ncode, code_limit, hash_size, hash_type,
     _platform, page_log) = struct.unpack_from(">IIIIIIIIIBBBB", cd, 0)  # fmt: skip
    identifier = cd[ident_offset : cd.index(b"\0", ident_offset)].decode()
    team = ""
    if version >= 0x20200:
        team_offset = struct.unpack_from(">I", cd, 48)[0]
        if team_offset:
            team = cd[team_offset : cd.index(b"\0", team_offset)].decode()
    hashes = [cd[hash_offset + i * hash_size : hash_offset + (i + 1) * hash_size] for i in range(ncode)]
    return CodeDirectory(flags, identifier, hash_type, 1 << page_log, code_limit, hashes, team)


def check_page_hashes(path: Path, directory: CodeDirectory) -> None:
    """Every page hash of the CodeDirectory matches the file's bytes up to codeLimit."""
    data = path.read_bytes()[: directory.code_limit]
    algorithm = {1: "sha1", 2: "sha256"}[directory.hash_type]
    size = hashlib.new(algorithm).digest_size
    pages = [data[i : i + directory.page_size] for i in range(0, len(data), directory.page_size)]
    assert len(pages) == len(directory.code_hashes)
    for number, (page, expected) in enumerate(zip(pages, directory.code_hashes)):
        assert hashlib.new(algorithm, page).digest()[:size] == expected, f"page {number} hash differs"
