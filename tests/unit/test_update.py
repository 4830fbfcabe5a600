"""The `update` table's validation, the minisign format this side writes (cross-checked with the real `minisign`
CLI when it is installed), and signing SHA256SUMS in the output folder."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from hatch_pyaket import artifacts, update_signing
from hatch_pyaket.errors import BuildError
from hatch_pyaket.minisign import MinisignError, PublicKey, SecretKey
from hatch_pyaket.update_config import github_url
from tests.unit.test_config import PATH, parse, problems

# A key pair made by `minisign -G -W` (0.11): the tests sign with it and check the texts minisign wrote.
PUBLIC = "RWQx+eYqQVVAGYrNBXflAb52XiPqqs4vWvkebwLiuv//6g/fRXLxDX8S"
SECRET_FILE = (
    "untrusted comment: minisign encrypted secret key\n"
    "RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMfnmKkFVQBmKg0retnq9PnmbjofvhcCZQw/cl1coeN7"
    "E0qzRIXDRIorNBXflAb52XiPqqs4vWvkebwLiuv//6g/fRXLxDX8SAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
)
# Made by `minisign -S -s <that key> -m d2` for the content b"x\n".
MINISIGN_SIGNATURE = (
    "untrusted comment: signature from minisign secret key\n"
    "RUQx+eYqQVVAGQjPD+NrW7ZKW+ynnPSwsdrw4/WnQnv9gVvAVbkT6xUR3zCbnPyd2e/P4RgP0AKLB2wNu6iCttrRy2Mgko834gY=\n"
    "trusted comment: timestamp:1796118972\tfile:d2\thashed\n"
    "lrL0Vd4BPwXVw+R2n6DYY+2/Wy4oQooGq8ldS+sunzPGP5glZDCpWCJTSyez3+g7hSmNeoHDi6FvkA/WDhVDCA==\n"
)


def update_table(**settings: object) -> dict[str, object]:
    return {"update": {"url": "https://example.com/app/latest", "public-key": PUBLIC, **settings}}


def test_a_valid_table_becomes_the_release_folder_and_key() -> None:
    config = parse(update_table())
    assert config.update is not None
    assert config.update.url == "https://example.com/app/latest/"
    assert config.update.public_key.base64 == PUBLIC
    assert config.update.public_key.id_text == "194055412AE6F931"
    assert config.update.secret_key_env == "PYAKET_UPDATE_KEY"
    github = parse({"update": {"github": "acme/app", "public-key": PUBLIC}}).update
    assert github is not None and github.url == "https://github.com/acme/app/releases/latest/download/"
    assert github_url("a/b") == "https://github.com/a/b/releases/latest/download/"
    assert parse({}).update is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/rel/", "http://[::1]/rel/", "http://localhost:9/x"])
def test_plain_http_is_allowed_for_loopback_hosts_only(url: str) -> None:
    assert parse(update_table(url=url)).update is not None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com/rel/", "uses http://"),
        ("http://10.0.0.1/rel/", "uses http://"),
        ("ftp://example.com/rel/", "is not an https:// URL"),
        ("example.com/rel", "is not an https:// URL"),
        ("https://example.com/releases/{version}/", "holds a placeholder"),
        ("https://example.com/rel/?token=1", "?query"),
    ],
)
def test_bad_urls_are_refused_with_their_path(url: str, says: str) -> None:
    found = problems(update_table(url=url))
    assert len(found) == 1 and found[0].startswith(f"{PATH}.update.url:") and says in found[0], found


def test_the_key_must_parse_and_the_secret_key_must_not_be_in_the_table(tmp_path: Path) -> None:
    found = problems(update_table(**{"public-key": "RWQnotakey"}))
    assert any(f"{PATH}.update.public-key:" in p and "not a minisign public key" in p for p in found), found
    secret_line = SECRET_FILE.splitlines()[1]
    found = problems(update_table(**{"public-key": secret_line, "secret-key": secret_line}))
    assert any(f"{PATH}.update.secret-key:" in p and "never be in pyproject.toml" in p for p in found), found
    assert any(f"{PATH}.update.public-key:" in p for p in found), found
    found = problems({"update": {"url": "https://e.com/", "github": "a/b", "public-key": PUBLIC}})
    assert any("not both" in p for p in found), found
    found = problems({"update": {"github": "not a repo", "public-key-file": "missing.pub", "secret-key-env": "1X"}})
    assert any(f"{PATH}.update.github:" in p for p in found), found
    assert any(f"{PATH}.update.public-key-file:" in p and "cannot read" in p for p in found), found
    assert any(f"{PATH}.update.secret-key-env:" in p for p in found), found
    found = problems({"update": {"url": "https://e.com/"}})
    assert any("set one of public-key" in p for p in found), found
    found = problems(update_table(publickey=PUBLIC))
    assert any("did you mean 'public-key'" in p for p in found), found


def test_a_public_key_file_is_read_against_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "update.pub").write_text(f"untrusted comment: minisign public key 194055412AE6F931\n{PUBLIC}\n")
    from hatch_pyaket.config import parse_config
    from tests.unit.test_config import HOST, facts

    table = {"update": {"github": "acme/app", "public-key-file": "update.pub"}}
    config = parse_config(table, facts(), host_triple=HOST, root=tmp_path)
    assert config.update is not None and config.update.public_key.base64 == PUBLIC


def test_minisign_format_round_trip_and_a_real_minisign_signature() -> None:
    secret = SecretKey.parse(SECRET_FILE)
    public = PublicKey.parse(PUBLIC)
    assert secret.public_key == public
    signature = secret.sign(b"data\n", file_name="SHA256SUMS", now=1700000000)
    lines = signature.splitlines()
    assert lines[0] == "untrusted comment: signature from minisign secret key 194055412AE6F931"
    assert base64.b64decode(lines[1])[:2] == b"ED"  # prehashed, as minisign 0.11 writes by default
    assert lines[2] == "trusted comment: timestamp:1700000000\tfile:SHA256SUMS\thashed"
    assert public.verify(b"data\n", signature) == "timestamp:1700000000\tfile:SHA256SUMS\thashed"
    with pytest.raises(MinisignError, match="does not match"):
        public.verify(b"data!\n", signature)
    forged = signature.replace("file:SHA256SUMS", "file:OTHER")
    with pytest.raises(MinisignError, match="does not match"):
        public.verify(b"data\n", forged)
    assert public.verify(b"x\n", MINISIGN_SIGNATURE).startswith("timestamp:1796118972")
    with pytest.raises(MinisignError, match="looks like the public key"):
        SecretKey.parse(PUBLIC)


@pytest.mark.skipif(
    shutil.which("minisign") is None, reason="the minisign CLI is not installed (apt-get install minisign)"
)
def test_signatures_cross_verify_with_the_minisign_cli(tmp_path: Path) -> None:
    pub, key = tmp_path / "k.pub", tmp_path / "k.key"
    subprocess.run(["minisign", "-G", "-W", "-p", pub, "-s", key], check=True, capture_output=True)
    secret = SecretKey.parse(key.read_text())
    assert secret.public_key == PublicKey.parse(pub.read_text())
    data = tmp_path / "SHA256SUMS"
    data.write_text(f"{'a' * 64}  app-1.0-x86_64-unknown-linux-gnu\n")
    (tmp_path / "SHA256SUMS.minisig").write_text(secret.sign(data.read_bytes(), file_name=data.name))
    result = subprocess.run(["minisign", "-V", "-p", pub, "-m", data], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    other = tmp_path / "other"
    other.write_text("other\n")
    subprocess.run(["minisign", "-S", "-s", key, "-m", other], check=True, capture_output=True)
    assert "file:other" in secret.public_key.verify(other.read_bytes(), (tmp_path / "other.minisig").read_text())


def test_signing_needs_the_matching_key_and_is_skipped_without_one(tmp_path: Path) -> None:
    update = parse(update_table()).update
    said: list[str] = []
    assert update_signing.preflight(update, environ={}, report=said.append) is None
    assert "SHA256SUMS is not signed: $PYAKET_UPDATE_KEY is not set" in said[0]
    assert update_signing.preflight(None, environ={}, report=said.append) is None
    # The key file's text, or its path.
    (tmp_path / "update.key").write_text(SECRET_FILE)
    for value in (SECRET_FILE, str(tmp_path / "update.key")):
        signer = update_signing.preflight(update, environ={"PYAKET_UPDATE_KEY": value}, report=said.append)
        assert signer is not None and signer.key.public_key.base64 == PUBLIC
    assert "signed with the minisign key 194055412AE6F931" in said[-1]
    assert SECRET_FILE.splitlines()[1] not in "".join(said), "the secret key was logged"
    with pytest.raises(BuildError, match=r"neither a minisign secret key \(.*\) nor the path of one"):
        update_signing.preflight(update, environ={"PYAKET_UPDATE_KEY": "/no/such/key"}, report=said.append)
    with pytest.raises(BuildError, match="is not a minisign secret key"):
        update_signing.preflight(update, environ={"PYAKET_UPDATE_KEY": "RWQ" + "A" * 60}, report=said.append)
    other_public = PublicKey(b"\1" * 8, b"\2" * 32).base64
    other = parse(update_table(**{"public-key": other_public})).update
    with pytest.raises(BuildError, match="does not belong to the update table's public key"):
        update_signing.preflight(other, environ={"PYAKET_UPDATE_KEY": SECRET_FILE}, report=said.append)


def test_sha256sums_is_signed_under_the_output_lock_and_a_stale_signature_goes(tmp_path: Path) -> None:
    out, cache = tmp_path / "dist", tmp_path / "cache"
    out.mkdir()
    exe = out / "app-1.0-x86_64-unknown-linux-gnu"
    exe.write_bytes(b"exe")
    made = [artifacts.Artifact(exe, "x86_64-unknown-linux-gnu", "app", "cargo", 3, "ab" * 32)]
    signer = update_signing.ChecksumSigner(SecretKey.parse(SECRET_FILE))
    said: list[str] = []
    artifacts.write_indexes(out, "app", "1.0", made, cache=cache, report=said.append, sign_checksums=signer.sign)
    signature = out / "SHA256SUMS.minisig"
    assert PublicKey.parse(PUBLIC).verify((out / "SHA256SUMS").read_bytes(), signature.read_text())
    artifacts.write_indexes(out, "app", "1.0", made, cache=cache, report=said.append)
    assert not signature.exists() and "it signed the previous SHA256SUMS" in said[-1]
