"""One contract, two checks: the manifest payload.py writes for a tricky spec, and its two hashes, are pinned in
rust_template/manifest/tests/golden-manifest.json; the contract crate's tests (pyaket-manifest, tests/contract.rs)
parse the same file and recompute both hashes. Regenerate it with PYAKET_UPDATE_GOLDEN=1 after a deliberate change
of the contract."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from hatch_pyaket.payload import ENTRY_KINDS, INSTALL_FIELDS, INSTALL_FIELDS_WHEN_NOT_EMPTY, PayloadSpec, manifest
from tests.conftest import ROOT

GOLDEN = ROOT / "rust_template" / "manifest" / "tests" / "golden-manifest.json"

# Escapes that ensure_ascii must write the same way in Rust: quote, backslash, short escapes, other controls,
# DEL, Latin-1, BMP, astral (a surrogate pair) and the largest BMP code point.
TRICKY_CODE = 'print("h\u00e9llo\\t\u2713 \U0001d11e")\n\t\r\b\f\x00\x1f\x7f\x80\uffff # /slash'


def golden_spec() -> PayloadSpec:
    return PayloadSpec(
        app="caf\u00e9-app",
        version="1.0.0+local",
        install_name="cafe-app",
        vendor="acme",
        target="x86_64-unknown-linux-gnu",
        entry_kind="code",
        entry_value=TRICKY_CODE,
        python=">=3.9,<3.14",
        wheel=Path("cafe_app-1.0.0+local-py3-none-any.whl"),
        uv=Path("uv"),
        uv_version="0.13.9",
        self_command=None,
        keep_versions=3,
        gui=True,
        lock=Path("requirements.txt"),
        wheels=(Path("colorama-0.4.6-py2.py3-none-any.whl"), Path("z\u00fcrich-1.0-py3-none-any.whl")),
        python_archive=Path("cpython.tar.gz"),
        python_interpreter="python/bin/python3",
        extras=("cli", "http2"),
        entry_name="caf\u00e9-app",
        update_url="https://example.com/caf\u00e9/latest/",
        update_public_key="RWQx+eYqQVVAGYrNBXflAb52XiPqqs4vWvkebwLiuv//6g/fRXLxDX8S",
        update_file="caf\u00e9-app-{version}-x86_64-unknown-linux-gnu",
    )


def golden_files() -> tuple[dict[str, str], dict[str, int]]:
    keys = [
        "cafe_app-1.0.0+local-py3-none-any.whl",
        "uv",
        "requirements.txt",
        "wheels/colorama-0.4.6-py2.py3-none-any.whl",
        "wheels/z\u00fcrich-1.0-py3-none-any.whl",
        "python.tar.gz",
    ]
    digests = {key: hashlib.sha256(key.encode()).hexdigest() for key in keys}
    sizes = {key: 1000 * (i + 1) + i for i, key in enumerate(keys)}
    return digests, sizes


def test_payload_py_writes_the_golden_manifest() -> None:
    data = manifest(golden_spec(), *golden_files())
    if os.environ.get("PYAKET_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert data == json.loads(GOLDEN.read_text()), f"payload.py's manifest changed; see {__doc__}"


def test_manifest_hash_covers_every_field_and_payload_hash_only_the_install_identity() -> None:
    data = manifest(golden_spec(), *golden_files())
    rest = {key: value for key, value in data.items() if key != "manifest_hash"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert data["manifest_hash"] == hashlib.sha256(canonical).hexdigest()

    changed_entry = manifest(
        PayloadSpec(**{**golden_spec().__dict__, "entry_value": "print(1)"}),  # type: ignore[arg-type]
        *golden_files(),
    )
    assert changed_entry["payload_hash"] == data["payload_hash"]
    assert changed_entry["manifest_hash"] != data["manifest_hash"]


DOC = ROOT / "docs" / "payload-contract.md"


def doc_table() -> dict[str, str]:
    """The field table of docs/payload-contract.md: field -> its "in payload_hash" cell (the Rust contract test,
    rust_template/manifest/tests/contract.rs, reads the same table)."""
    table = DOC.read_text().split("<!-- manifest-fields")[1].split("<!-- /manifest-fields -->")[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| `")
    ]
    return {cells[0].strip("`"): cells[1] for cells in rows}


def test_the_doc_table_lists_the_fields_payload_py_writes_and_what_payload_hash_covers() -> None:
    data = manifest(golden_spec(), *golden_files())
    table = doc_table()
    assert sorted(table) == sorted(data), "docs/payload-contract.md's field table and payload.py's manifest() differ"
    assert {name for name, cell in table.items() if cell.startswith("yes")} == set(INSTALL_FIELDS)
    assert {name for name, cell in table.items() if cell == "when not empty"} == set(INSTALL_FIELDS_WHEN_NOT_EMPTY)


def test_the_doc_names_the_entry_kinds_payload_py_writes() -> None:
    (line,) = [line for line in DOC.read_text().splitlines() if line.startswith("`entry.kind` is one of:")]
    assert tuple(line.split(":", 1)[1].split("`")[1::2]) == ENTRY_KINDS
