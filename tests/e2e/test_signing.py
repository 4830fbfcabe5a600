"""Signing from Linux: a real build of aarch64-apple-darwin and x86_64-pc-windows-gnu, signed with
certificates made here (openssl), timestamped by a local RFC 3161 server, checked with
osslsigncode, lief and a parse of the Mach-O CodeDirectory.

Notarization cannot reach Apple from here (and rcodesign's notary URL is fixed): `RCODESIGN`
points at a wrapper that runs the real rcodesign for everything but the notary commands, and
records what those received (command line, the zip, the API key).

Needs the cross toolchain (.ci/setup-cross.sh) and rcodesign (installed into the plugin cache on
first use, ~3 minutes; `python -m hatch_pyaket.rcodesign` does it ahead of time).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hatch_pyaket import rcodesign, signing
from hatch_pyaket.errors import BuildError
from hatch_pyaket.signing_config import WindowsSigning
from hatch_pyaket.targets import parse_target
from tests.e2e.crossenv import BUILD_STD, load_cross_env
from tests.e2e.helpers import build
from tests.example import copy_example
from tests.signing_support import (
    CS_RUNTIME,
    P12_PASSWORD,
    Certificates,
    check_page_hashes,
    macho_signature,
    make_certificates,
    timestamp_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.cross]

MAC = "aarch64-apple-darwin"
WIN = "x86_64-pc-windows-gnu"
IDENTIFIER = "com.example.app"
ISSUER = "69a6de70-1c2b-47e3-e053-5b8c7c11a4d1"
KEY_ID = "TESTKEY42X"

FAKE_RCODESIGN = '''#!{python}
"""rcodesign, except that the notary commands are recorded instead of sent to Apple."""
import json, shutil, sys
from pathlib import Path
REAL, RECORD = {real!r}, Path({record!r})
args = sys.argv[1:]
with (RECORD / "calls.jsonl").open("a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["notary-submit"]:
    if "--help" in args:
        sys.exit(0)
    key = Path(args[args.index("--api-key-file") + 1])
    shutil.copy(key, RECORD / "api-key.json")
    shutil.copy(args[-1], RECORD / Path(args[-1]).name)
    print("fake notary: submission 0b6c4f9e accepted")
    sys.exit(0)
if args[:1] == ["encode-app-store-connect-api-key"]:
    out = Path(args[args.index("--output-path") + 1])
    issuer, key_id, pem = args[-3:]
    out.write_text(json.dumps({{"issuer_id": issuer, "key_id": key_id, "private_key": Path(pem).read_text()}}))
    sys.exit(0)
import os
os.execv(REAL, [REAL, *args])
'''


@dataclass(frozen=True)
class SignedBuild:
    dist: Path
    env: dict[str, str]
    output: str
    certs: Certificates
    record: Path
    tsa_requests: list[str]
    p12_base64: str
    private_key: str
    real_rcodesign: str
    seconds: float

    def exe(self, target: str) -> Path:
        return self.dist / f"example-app-1.0.0-{target}{'.exe' if 'windows' in target else ''}"


@pytest.fixture(scope="module")
def real_rcodesign() -> str:
    """The real rcodesign (installed into the plugin cache the first time: the test then takes ~3 minutes more)."""
    return rcodesign.find(False, lambda line: print(line, file=sys.stderr))


def _project(tmp: Path, signing: dict[str, Any], targets: list[str]) -> Path:
    per_target = {t: {"env": BUILD_STD} for t in targets}
    return copy_example(tmp, hook={"targets": targets, "target": per_target, "signing": signing})


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, real_rcodesign: str) -> Iterator[SignedBuild]:
    env = load_cross_env()
    tmp = tmp_path_factory.mktemp("signing")
    certs = make_certificates(tmp / "certs")
    record = tmp / "notary"
    record.mkdir()
    fake = tmp / "bin" / "rcodesign"
    fake.parent.mkdir()
    fake.write_text(FAKE_RCODESIGN.format(python=sys.executable, real=real_rcodesign, record=str(record)))
    fake.chmod(0o755)
    key = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p12_base64 = base64.b64encode(certs.macos_p12.read_bytes()).decode()
    with timestamp_server(certs) as tsa:
        signing = {
            "macos": {
                "p12-base64-env": "TEST_MACOS_P12",
                "p12-password-env": "TEST_P12_PASSWORD",
                "identifier": IDENTIFIER,
                "team-id": "TEAM123456",
                "timestamp-url": tsa.url,
                "notarize": {
                    "issuer-id": ISSUER,
                    "key-id-env": "TEST_API_KEY_ID",
                    "private-key-env": "TEST_API_PRIVATE_KEY",
                    "wait-seconds": 60,
                },
            },
            "windows": {
                "p12-file": str(certs.windows_p12),
                "p12-password-file": str(certs.folder / "password.txt"),
                "timestamp-url": tsa.url,
                "description": "Example App",
                "url": "https://example.com/app",
            },
        }
        project = _project(tmp, signing, [MAC, WIN])
        (certs.folder / "password.txt").write_text(P12_PASSWORD + "\n")
        build_env = {
            **env,
            "RCODESIGN": str(fake),
            "TEST_MACOS_P12": p12_base64,
            "TEST_P12_PASSWORD": P12_PASSWORD,
            "TEST_API_KEY_ID": KEY_ID,
            "TEST_API_PRIVATE_KEY": key,
        }
        started = time.monotonic()
        result = build(project, "--wheel", env=build_env)
        yield SignedBuild(
            project / "dist",
            env,
            result.stdout + result.stderr,
            certs,
            record,
            tsa.requests,
            p12_base64,
            key,
            real_rcodesign,
            time.monotonic() - started,
        )


def test_windows_signature_verifies_with_osslsigncode_and_lief(signed: SignedBuild) -> None:
    exe = signed.exe(WIN)
    verified = subprocess.run(
        ["osslsigncode", "verify", "-CAfile", str(signed.certs.cert), "-TSA-CAfile", str(signed.certs.tsa_cert),
         "-in", str(exe)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    text = verified.stdout + verified.stderr
    assert verified.returncode == 0, text
    assert "Signature verification: ok" in text
    assert "Test Time Stamping Authority" in text  # the RFC 3161 countersignature from the local TSA
    assert "https://example.com/app" in text and "Example App" in text
    import lief

    binary = lief.PE.parse(str(exe))
    assert binary.has_signatures
    assert binary.verify_signature() == lief.PE.Signature.VERIFICATION_FLAGS.OK
    signer = binary.signatures[0].signers[0]
    assert "Test Developer" in str(signer.cert.subject)


def test_macos_signature_has_runtime_identifier_cms_and_timestamp(signed: SignedBuild) -> None:
    exe = signed.exe(MAC)
    signature = macho_signature(exe)
    assert signature.code_directories, "no CodeDirectory"
    for directory in signature.code_directories:
        assert directory.identifier == IDENTIFIER
        assert directory.team_id == "TEAM123456"
        assert directory.hash_type == 2  # SHA-256
        assert directory.flags & CS_RUNTIME, f"flags {directory.flags:#x} lack the hardened runtime"
        assert directory.code_limit == signature.data_offset
        check_page_hashes(exe, directory)
    assert signature.cms, "no CMS signature: ad-hoc only"
    cms = signed.record.parent / "signature.cms"
    cms.write_bytes(signature.cms)
    certs = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", str(cms), "-print_certs", "-noout"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Test Developer" in certs
    # The secure timestamp is an unsigned attribute holding the TSA's token (with its certificate).
    assert b"Test Time Stamping Authority" in signature.cms
    import lief

    binary = lief.MachO.parse(str(exe)).at(0)
    assert binary.has_code_signature
    info = subprocess.run(
        [signed.real_rcodesign, "print-signature-info", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    assert "RUNTIME" in info.upper() and IDENTIFIER in info


def test_checksums_and_manifest_describe_the_signed_bytes(signed: SignedBuild) -> None:
    sums = dict(reversed(line.split("  ", 1)) for line in (signed.dist / "SHA256SUMS").read_text().splitlines())
    manifest = json.loads((signed.dist / "pyaket-manifest.json").read_text())
    entries = {entry["file"]: entry for entry in manifest["executables"]}
    for target in (MAC, WIN):
        exe = signed.exe(target)
        digest = hashlib.sha256(exe.read_bytes()).hexdigest()
        assert sums[exe.name] == digest, target
        assert entries[exe.name]["sha256"] == digest, target
        assert entries[exe.name]["size"] == exe.stat().st_size, target
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=signed.dist, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_the_local_timestamp_server_stamped_both(signed: SignedBuild) -> None:
    assert len(signed.tsa_requests) >= 2, signed.tsa_requests
    assert all("timestamp-query" in kind for kind in signed.tsa_requests), signed.tsa_requests


def test_notarization_submits_a_zip_of_the_signed_executable(signed: SignedBuild) -> None:
    calls = [json.loads(line) for line in (signed.record / "calls.jsonl").read_text().splitlines()]
    encode = [c for c in calls if c[0] == "encode-app-store-connect-api-key"]
    assert len(encode) == 1 and encode[0][-3:-1] == [ISSUER, KEY_ID]
    submits = [c for c in calls if c[0] == "notary-submit" and "--help" not in c]
    assert len(submits) == 1, calls
    submit = submits[0]
    assert submit[1:3] == ["--api-key-file", submit[2]] and submit[3:6] == ["--wait", "--max-wait-seconds", "60"]
    exe = signed.exe(MAC)
    archive = signed.record / Path(submit[-1]).name
    assert archive.name == f"{exe.name}.zip"
    with zipfile.ZipFile(archive) as bundle:
        (info,) = bundle.infolist()
        assert info.filename == exe.name
        assert bundle.read(info) == exe.read_bytes(), "the zip must hold the signed executable"
        assert stat.S_IMODE(info.external_attr >> 16) == 0o755
    key = json.loads((signed.record / "api-key.json").read_text())
    assert key == {"issuer_id": ISSUER, "key_id": KEY_ID, "private_key": signed.private_key}
    # Only the macOS executable goes to Apple, signed before it is submitted.
    sign_calls = [c for c in calls if c[0] == "sign"]
    assert len(sign_calls) == 1 and calls.index(sign_calls[0]) < calls.index(submit)
    assert "notarizing example-app-1.0.0-aarch64-apple-darwin" in signed.output
    assert "fake notary: submission 0b6c4f9e accepted" in signed.output


def test_no_secret_reaches_the_build_output(signed: SignedBuild) -> None:
    secrets = [P12_PASSWORD, signed.p12_base64, signed.p12_base64[:40]]
    secrets += [line for line in signed.private_key.splitlines() if line and not line.startswith("-----")]
    for secret in secrets:
        assert secret not in signed.output
    assert re.search(r"pyaket: signed example-app-1\.0\.0-aarch64-apple-darwin in \d+\.\d+ s", signed.output)
    assert re.search(r"pyaket: signed example-app-1\.0\.0-x86_64-pc-windows-gnu\.exe in \d+\.\d+ s", signed.output)
    timings = re.findall(r"pyaket: signed (\S+) in (\d+\.\d+) s", signed.output)
    print(f"\nsigning times: {timings}; whole build {signed.seconds:.0f} s")


def test_signed_windows_executable_runs_under_wine(signed: SignedBuild, tmp_path: Path) -> None:
    wine = signed.env.get("PYAKET_CROSS_WINE", "wine64")
    if not shutil.which(wine):
        pytest.skip("wine is not installed")
    env = {**signed.env, "PYAKET_INSTALL_DIR": str(tmp_path / "apps"), "PYAKET_SELF": "check"}
    result = subprocess.run([wine, str(signed.exe(WIN))], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: " in result.stdout and "embedded files verified" in result.stdout, result.stdout


@contextlib.contextmanager
def _unsigned_copy(signed: SignedBuild, folder: Path) -> Iterator[Path]:
    copy = folder / signed.exe(WIN).name
    subprocess.run(
        ["osslsigncode", "remove-signature", "-in", str(signed.exe(WIN)), "-out", str(copy)],
        capture_output=True,
        check=True,
    )
    assert not signing.has_authenticode(copy)
    yield copy


def _command_signer(command: list[str], scratch: Path) -> signing.Signer:
    config = WindowsSigning("tool.hatch.build.hooks.pyaket.signing.windows", command=tuple(command))
    from hatch_pyaket.signing_config import SigningConfig

    signer = signing.preflight(
        SigningConfig(windows=config), [parse_target(WIN, WIN)], scratch, report=lambda line: None, environ=os.environ
    )
    assert signer is not None
    return signer


def test_a_user_signing_command_receives_the_file_and_signs_it(signed: SignedBuild, tmp_path: Path) -> None:
    script = 'osslsigncode sign -pkcs12 "$2" -readpass "$3" -h sha256 -in "$1" -out "$1.signed" && mv "$1.signed" "$1"'
    password = tmp_path / "pw"
    password.write_text(P12_PASSWORD)
    command = ["sh", "-c", script, "sign", "{file}", str(signed.certs.windows_p12), str(password)]
    with _unsigned_copy(signed, tmp_path) as exe:
        _command_signer(command, tmp_path / "scratch").sign(exe, parse_target(WIN, WIN), "example-app")
        verified = subprocess.run(
            ["osslsigncode", "verify", "-CAfile", str(signed.certs.cert), "-in", str(exe)],
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0 and "Signature verification: ok" in verified.stdout, verified.stdout


def test_a_user_command_that_does_not_sign_is_an_error(signed: SignedBuild, tmp_path: Path) -> None:
    with _unsigned_copy(signed, tmp_path) as exe:
        before = exe.read_bytes()
        signer = _command_signer(["true", "{file}"], tmp_path / "scratch")
        with pytest.raises(BuildError, match="no Authenticode signature"):
            signer.sign(exe, parse_target(WIN, WIN), "example-app")
        assert before and not exe.exists(), "a file that failed signing must not stay in the output folder"


# The signing table ("{pfx}" and "{aes}" stand for the test certificates' files), the environment, the error.
PREFLIGHT_CASES: dict[str, tuple[dict[str, Any], dict[str, str], str]] = {
    "missing-env": (
        {"windows": {"p12-file": "{pfx}", "p12-password-env": "TEST_NOT_SET_PW"}},
        {},
        r"signing\.windows\.p12-password-env: environment variable TEST_NOT_SET_PW is not set",
    ),
    "wrong-windows-password": (
        {"windows": {"p12-file": "{pfx}", "p12-password-env": "TEST_PW"}},
        {"TEST_PW": "not-the-password"},
        r"signing\.windows\.p12-file: windows\.pfx: the password is wrong",
    ),
    "aes-p12-for-rcodesign": (
        {"macos": {"p12-file": "{aes}", "p12-password-env": "TEST_PW", "timestamp-url": "none"}},
        {"TEST_PW": P12_PASSWORD},
        r"signing\.macos\.p12-file: .*incorrect password.*openssl pkcs12 -export -legacy",
    ),
}


@pytest.mark.parametrize("case", sorted(PREFLIGHT_CASES))
def test_bad_credentials_fail_before_anything_is_compiled(
    case: str, signed: SignedBuild, tmp_path: Path, real_rcodesign: str
) -> None:
    template, extra_env, expected = PREFLIGHT_CASES[case]
    files = {"{pfx}": str(signed.certs.windows_p12), "{aes}": str(signed.certs.macos_p12_aes)}
    signing = {os_: {k: files.get(v, v) for k, v in table.items()} for os_, table in template.items()}
    project = _project(tmp_path, signing, [MAC, WIN])
    env = {**signed.env, "RCODESIGN": real_rcodesign, **extra_env}
    env.pop("TEST_NOT_SET_PW", None)
    started = time.monotonic()
    result = build(project, "--wheel", env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(expected, output, re.DOTALL), output[-3000:]
    assert "nothing was compiled" in output
    assert " with zigbuild: " not in output and "Compiling" not in output
    assert "not-the-password" not in output and P12_PASSWORD not in output
    assert time.monotonic() - started < 60


SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


def test_a_pkcs11_token_signs_through_the_config(signed: SignedBuild, tmp_path: Path) -> None:
    """A SoftHSM token holding the key: pkcs11-module + pkcs11-key + cert-file + pin-env, as configured."""
    if not (SOFTHSM.is_file() and shutil.which("softhsm2-util")):
        pytest.skip("SoftHSM is not installed (apt-get install softhsm2 libengine-pkcs11-openssl)")
    pin = "4711-token-PIN"
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "TEST_TOKEN_PIN": pin}
    util = ["softhsm2-util", "--pin", pin]
    subprocess.run([*util, "--init-token", "--free", "--label", "pyaket", "--so-pin", "12345678"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    key8 = tmp_path / "key8.pem"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(signed.certs.key), "-out", str(key8)],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*util, "--import", str(key8), "--token", "pyaket", "--label", "codesign", "--id", "01"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    from hatch_pyaket.config import ProjectFacts, parse_config

    table = {
        "targets": [WIN],
        "signing": {
            "windows": {
                "pkcs11-module": str(SOFTHSM),
                "pkcs11-key": "pkcs11:token=pyaket;object=codesign;type=private",
                "cert-file": str(signed.certs.cert),
                "pin-env": "TEST_TOKEN_PIN",
                "timestamp-url": "none",
            }
        },
    }
    facts = ProjectFacts("example-app", "1.0.0", ">=3.9", {"example-app": "example_app.cli:main"}, {})
    config = parse_config(table, facts, host_triple=WIN, root=tmp_path)
    lines: list[str] = []
    os.environ["SOFTHSM2_CONF"] = str(conf)  # osslsigncode inherits the build's environment
    try:
        signer = signing.preflight(
            config.signing, config.targets, tmp_path / "scratch", report=lines.append, environ=env
        )
        assert signer is not None
        with _unsigned_copy(signed, tmp_path) as exe:
            signer.sign(exe, parse_target(WIN, WIN), "example-app")
            verified = subprocess.run(
                ["osslsigncode", "verify", "-CAfile", str(signed.certs.cert), "-in", str(exe)],
                capture_output=True,
                text=True,
                check=False,
            )
    finally:
        del os.environ["SOFTHSM2_CONF"]
    assert verified.returncode == 0 and "Signature verification: ok" in verified.stdout, verified.stdout
    assert pin not in "\n".join(lines)
    assert any("-pkcs11module" in line for line in lines)
