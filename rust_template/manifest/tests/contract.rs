//! The contract's three copies agree: the golden manifest payload.py writes
//! (tests/unit/test_manifest_golden.py checks it writes exactly this file),
//! this crate's reader and field list, and the field table in
//! docs/payload-contract.md (which the Python test checks too).

use pyaket_manifest::{json, Coverage, EntryKind, Manifest};

const GOLDEN: &str = include_str!("golden-manifest.json");
const DOC: &str = include_str!("../../../docs/payload-contract.md");

fn golden() -> Manifest<'static> {
    json::parse(GOLDEN).expect("the golden manifest parses and passes every check")
}

/// The doc's field table: (field, its "in payload_hash" cell).
fn doc_table() -> Vec<(String, String)> {
    let table = DOC
        .split("<!-- manifest-fields")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /manifest-fields -->").next())
        .expect("docs/payload-contract.md has the manifest-fields table");
    table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].trim_matches('`').to_string(), cells[1].to_string())
        })
        .collect()
}

#[test]
fn golden_manifest_hashes_match_python() {
    let m = golden();
    assert_eq!(m.computed_payload_hash(), m.payload_hash);
    assert_eq!(m.computed_manifest_hash(), m.manifest_hash);
}

#[test]
fn the_reader_knows_exactly_the_fields_the_writer_wrote() {
    let written = pyaket_manifest::parse::parse(GOLDEN).unwrap();
    let mut written: Vec<&str> = written
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut read: Vec<&str> = golden().fields().iter().map(|f| f.0).collect();
    written.sort_unstable();
    read.sort_unstable();
    assert_eq!(written, read);
}

#[test]
fn the_doc_table_lists_the_fields_and_what_payload_hash_covers() {
    let doc = doc_table();
    let fields = golden().fields();
    let names = |v: Vec<&str>| v.join(", ");
    assert_eq!(
        names(doc.iter().map(|(n, _)| n.as_str()).collect()),
        names(fields.iter().map(|f| f.0).collect()),
        "the table in docs/payload-contract.md and Manifest::fields() list other fields (or another order)"
    );
    for ((name, cell), (_, coverage, _)) in doc.iter().zip(&fields) {
        let expected = match coverage {
            Coverage::Identity => cell.starts_with("yes"),
            Coverage::IdentityWhenNonEmpty => cell == "when not empty",
            Coverage::ManifestOnly => cell == "no",
            Coverage::Itself => cell.starts_with("no (itself)"),
        };
        assert!(
            expected,
            "docs/payload-contract.md says {cell:?} for `{name}` in payload_hash; the crate: {coverage:?}"
        );
    }
}

#[test]
fn the_doc_names_the_entry_kinds() {
    let line = DOC
        .lines()
        .find(|l| l.starts_with("`entry.kind` is one of:"))
        .expect("docs/payload-contract.md names the entry kinds");
    let documented: Vec<&str> = line
        .split(':')
        .nth(1)
        .unwrap()
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    let known: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(documented, known);
    for kind in EntryKind::ALL {
        assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
    }
}

#[test]
fn changed_values_fail_the_check() {
    let m = golden();
    let mut changed = m;
    changed.entry.value = "print('other')";
    let err = changed.check_hashes().unwrap_err();
    assert_eq!(err.field, "manifest_hash");
    // Only in manifest_hash: the install identity stays.
    assert_eq!(changed.computed_payload_hash(), m.payload_hash);
    let mut changed = m;
    changed.python = ">=3.8";
    assert_ne!(changed.computed_payload_hash(), m.payload_hash);
    let mut changed = m;
    changed.extras = &[];
    assert_ne!(changed.computed_payload_hash(), m.payload_hash);
}

#[test]
fn the_parser_refuses_what_the_contract_forbids() {
    let edit = |from: &str, to: &str| {
        assert!(GOLDEN.contains(from), "{from}");
        json::parse(&GOLDEN.replacen(from, to, 1)).unwrap_err()
    };
    assert!(edit("\"schema\": 1", "\"schema\": 2").contains("unsupported manifest schema 2"));
    assert!(edit("\"gui\": true", "\"gui\": true, \"new_field\": 1")
        .contains("unknown manifest key `new_field`"));
    assert!(edit("\"kind\": \"code\"", "\"kind\": \"binary\"")
        .contains("unknown entry kind \"binary\" (script, module, code)"));
    assert!(edit(
        "\"python_interpreter\": \"python/bin/python3\"",
        "\"python_interpreter\": null"
    )
    .contains("`python_archive` needs a `python_interpreter`"));
    assert!(edit(
        "\"python_interpreter\": \"python/bin/python3\"",
        "\"python_interpreter\": \"../python3\""
    )
    .contains("`python_interpreter`"));
    assert!(edit("\"vendor\": \"acme\"", "\"vendor\": \"ac/me\"")
        .contains("`vendor` \"ac/me\" cannot be used as a directory name"));
    // A value changed by hand: the hashes no longer match.
    assert!(edit("\"keep_versions\": 3", "\"keep_versions\": 4").contains("`manifest_hash` is"));
    assert!(edit("\"wheel\": \"cafe_app", "\"wheel\": \"other").contains("which is not in `files`"));
}

#[test]
fn generated_code_names_every_field() {
    let m = golden();
    let code = m.to_rust("k", &[]);
    for (name, _, _) in m.fields() {
        if !matches!(name, "schema") {
            assert!(
                code.contains(&format!("{name}: ")),
                "to_rust() leaves out `{name}`"
            );
        }
    }
}
