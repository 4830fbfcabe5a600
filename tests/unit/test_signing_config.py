"""The signing tables: validation with TOML paths, and the preflight's checks of secrets (no compiling)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hatch_pyaket import signing
from hatch_pyaket.config import ProjectFacts, PyaketConfig, parse_config
from hatch_pyaket.errors import ConfigError
from hatch_pyaket.targets import parse_target

FACTS = ProjectFacts("example-app", "1.0.0", ">=3.9", {"example-app": "example_app.cli:main"}, {})
HOST = "x86_64-unknown-linux-gnu"
WIN = parse_target("x86_64-pc-windows-gnu", HOST)
PATH = "tool.hatch.build.hooks.pyaket.signing"


def parse(
    signing_table: dict[str, Any], root: Path, targets: tuple[str, ...] = ("x86_64-pc-windows-gnu",)
) -> PyaketConfig:
    return parse_config({"targets": list(targets), "signing": signing_table}, FACTS, host_triple=HOST, root=root)


def problems(signing_table: dict[str, Any], root: Path) -> str:
    with pytest.raises(ConfigError) as error:
        parse(signing_table, root)
    return str(error.value)


def test_signing_is_off_unless_configured(tmp_path: Path) -> None:
    config = parse_config({}, FACTS, host_triple=HOST, root=tmp_path)
    assert not config.signing


def test_a_windows_command_table_parses(tmp_path: Path) -> None:
    config = parse({"windows": {"command": ["jsign", "--storetype", "TRUSTEDSIGNING", "{file}"]}}, tmp_path)
    assert config.signing.windows is not None
    assert config.signing.windows.command == ("jsign", "--storetype", "TRUSTEDSIGNING", "{file}")


def test_macos_with_notarization_parses(tmp_path: Path) -> None:
    table = {
        "macos": {
            "p12-base64-env": "MACOS_P12",
            "p12-password-env": "MACOS_P12_PASSWORD",
            "identifier": "com.example.app",
            "notarize": {"issuer-id-env": "ISSUER", "key-id": "ABC123DEF4", "private-key-env": "P8"},
        }
    }
    macos = parse(table, tmp_path, ("aarch64-apple-darwin",)).signing.macos
    assert macos is not None and macos.notarize is not None
    assert macos.notarize.key_id == "ABC123DEF4" and macos.notarize.wait_seconds == 900
    assert macos.timestamp_url == "http://timestamp.apple.com/ts01"


def test_every_problem_is_named_with_its_toml_path(tmp_path: Path) -> None:
    text = problems(
        {
            "macos": {"p12-file": "missing.p12", "p12-password": "hunter2", "notarize": True},
            "windows": {"p12-file": "x.pfx", "command": ["jsign", "{file}"]},
            "linux": {},
        },
        tmp_path,
    )
    assert f"{PATH}.linux: unknown setting" in text
    assert f"{PATH}.macos.p12-password: unknown setting; did you mean 'p12-password-env'?" in text
    assert f"{PATH}.macos.p12-file: 'missing.p12': no such file" in text
    assert f"{PATH}.macos.p12-password-env: is missing" in text and "never write the secret itself" in text
    assert f"{PATH}.macos.notarize: must be a table" in text
    assert f"{PATH}.windows.command: conflicts with {PATH}.windows.p12-file" in text
    assert "hunter2" not in text


def test_command_needs_the_file_placeholder_and_no_osslsigncode_options(tmp_path: Path) -> None:
    text = problems({"windows": {"command": ["signtool", "sign"], "timestamp-url": "http://ts"}}, tmp_path)
    assert f'{PATH}.windows.command: never mentions "{{file}}"' in text
    assert f"{PATH}.windows.timestamp-url: is used only with p12-file or pkcs11-module" in text


def test_notarization_needs_a_timestamp_and_env_names(tmp_path: Path) -> None:
    table = {
        "macos": {
            "p12-base64-env": "MACOS P12",
            "p12-password-env": "PW",
            "timestamp-url": "none",
            "notarize": {"issuer-id": "x", "key-id": "y", "private-key-env": "P8"},
        }
    }
    text = problems(table, tmp_path)
    assert f"{PATH}.macos.p12-base64-env: 'MACOS P12' is not an environment variable name" in text
    assert f'{PATH}.macos.timestamp-url: is "none", but Apple notarizes only signatures with a secure timestamp' in text


def test_a_table_for_no_configured_target_is_a_warning(tmp_path: Path) -> None:
    config = parse({"windows": {"command": ["jsign", "{file}"]}}, tmp_path, ("x86_64-unknown-linux-gnu",))
    assert any("signing.windows: no windows target is configured" in w for w in config.warnings)


def _pfx(tmp_path: Path, password: str) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
         "-days", "1", "-subj", "/CN=t"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-out", "w.pfx", "-inkey", "k.pem", "-in", "c.pem", "-passout",
         f"pass:{password}"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    return tmp_path / "w.pfx"


def _preflight(config: PyaketConfig, tmp_path: Path, environ: dict[str, str]) -> signing.Signer | None:
    lines: list[str] = []
    signer = signing.preflight(
        config.signing, config.targets, tmp_path / "scratch", report=lines.append, environ=environ
    )
    return signer


def test_preflight_reports_missing_and_empty_variables_and_bad_base64(tmp_path: Path) -> None:
    config = parse({"windows": {"p12-base64-env": "P12", "p12-password-env": "PW"}}, tmp_path)
    with pytest.raises(ConfigError) as error:
        _preflight(config, tmp_path, {"PATH": "/usr/bin", "P12": "not base64 !!", "PW": ""})
    text = str(error.value)
    assert f"{PATH}.windows.p12-password-env: environment variable PW is empty" in text
    assert "environment variable P12 is not base64" in text
    assert "nothing was compiled" in text
    assert "not base64 !!" not in text


def test_preflight_checks_the_password_of_a_pfx(tmp_path: Path) -> None:
    pfx = _pfx(tmp_path, "right-Passw0rd")
    encoded = base64.b64encode(pfx.read_bytes()).decode()
    config = parse({"windows": {"p12-base64-env": "P12", "p12-password-env": "PW"}}, tmp_path)
    with pytest.raises(ConfigError, match="the password is wrong") as error:
        _preflight(config, tmp_path, {"PATH": "/usr/bin", "P12": encoded, "PW": "wrong-Passw0rd"})
    assert "wrong-Passw0rd" not in str(error.value)
    signer = _preflight(config, tmp_path, {"PATH": "/usr/bin", "P12": encoded, "PW": "right-Passw0rd"})
    assert signer is not None and signer.windows is not None
    command = signer.windows.command(Path("in.exe"), Path("out.exe"), "example-app")
    assert "right-Passw0rd" not in " ".join(command)  # the password goes in a private file
    password_file = Path(command[command.index("-readpass") + 1])
    assert password_file.read_text() == "right-Passw0rd" and password_file.stat().st_mode & 0o077 == 0
    assert command[-4:] == ["-in", "in.exe", "-out", "out.exe"]
    assert command[command.index("-ts") : command.index("-ts") + 2] == ["-ts", "http://timestamp.digicert.com"]


def test_hatch_pyaket_signing_off_builds_unsigned(tmp_path: Path) -> None:
    config = parse({"windows": {"p12-base64-env": "P12", "p12-password-env": "PW"}}, tmp_path)
    lines: list[str] = []
    signer = signing.preflight(
        config.signing, config.targets, tmp_path, report=lines.append, environ={"HATCH_PYAKET_SIGNING": "0"}
    )
    assert signer is None and "NOT signed" in lines[0]


def test_redactor_hides_whole_values_and_lines_of_keys() -> None:
    redact = signing.Redactor()
    redact.add(
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
    )
    redact.add("pw")
    text = redact("key MIGHAgEAMBMGByqGSM49AgEGCCqGSM49 and AwEHBG0wawIBAQQg, pw")
    assert text == "key *** and ***, ***"
