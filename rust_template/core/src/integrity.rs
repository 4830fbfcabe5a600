//! The manifest's two hashes, recomputed from the values the launcher uses.
//!
//! The plugin (hatch_pyaket/payload.py) writes `payload_hash` over the
//! install-identity fields (scripts of one app that differ only in their
//! entry share one install) and `manifest_hash` over every field and file.
//! Both are sha256 of a canonical JSON text: Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
//! Recomputing them from the [`Payload`] the launcher runs with catches a
//! flipped byte in any embedded string (entry, python request, vendor, a
//! file's sha256 ...), which the per-frame hashes of the files do not cover.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

use crate::payload::hex;
use crate::{EntryKind, Payload};

/// The only schema build.rs accepts; part of the hashed manifest.
const SCHEMA: u64 = 1;

/// A JSON value, just enough for the manifest.
#[derive(Debug)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Int(u64),
    Str(&'a str),
    List(Vec<Json<'a>>),
    /// Written with its keys sorted, whatever the order here.
    Obj(Vec<(&'a str, Json<'a>)>),
}

impl<'a> Json<'a> {
    fn opt(value: Option<&'a str>) -> Json<'a> {
        value.map_or(Json::Null, Json::Str)
    }

    /// The canonical text (see the module doc).
    pub(crate) fn canonical(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => out.push_str(&n.to_string()),
            Json::Str(s) => write_str(s, out),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                // Python sorts keys by code point; UTF-8 byte order is the same order.
                let mut sorted: Vec<&(&str, Json)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string as Python's `ensure_ascii=True` writes it: printable ASCII
/// (space to `~`) as is except `"` and `\`, the five short escapes, and
/// everything else (controls, DEL, non-ASCII) as `\uXXXX` UTF-16 units in
/// lowercase hex.
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

impl Payload {
    fn entry_kind_name(&self) -> &'static str {
        match self.entry.kind {
            EntryKind::Script => "script",
            EntryKind::Module => "module",
            EntryKind::Code => "code",
        }
    }

    /// The install identity (payload.py's `_INSTALL_FIELDS` and what it adds
    /// to them), without the files: in both hashes.
    fn install_fields(&self) -> Vec<(&'static str, Json<'static>)> {
        vec![
            ("app", Json::Str(self.app)),
            ("version", Json::Str(self.version)),
            ("install_name", Json::Str(self.install_name)),
            ("vendor", Json::Str(self.vendor)),
            ("target", Json::Str(self.target)),
            ("python", Json::Str(self.python)),
            ("wheel", Json::Str(self.wheel)),
            ("uv", Json::opt(self.uv)),
            ("uv_version", Json::Str(self.uv_version)),
            ("lock", Json::opt(self.lock)),
            (
                "wheels",
                Json::List(self.wheels.iter().map(|w| Json::Str(w)).collect()),
            ),
            ("python_archive", Json::opt(self.python_archive)),
            ("python_interpreter", Json::opt(self.python_interpreter)),
        ]
    }

    /// What `payload_hash` covers: the install identity with each file's sha256.
    pub(crate) fn identity_json(&self) -> Json<'static> {
        let files = self
            .files
            .iter()
            .map(|f| (f.name, Json::Str(f.sha256)))
            .collect();
        let mut fields = self.install_fields();
        fields.push(("files", Json::Obj(files)));
        // payload.py adds them only when there are some, so that payloads
        // without extras kept the hash they had before the field existed.
        if !self.extras.is_empty() {
            fields.push(("extras", self.extras_json()));
        }
        Json::Obj(fields)
    }

    fn extras_json(&self) -> Json<'static> {
        Json::List(self.extras.iter().map(|e| Json::Str(e)).collect())
    }

    fn update_json(&self) -> Json<'static> {
        match &self.update {
            None => Json::Null,
            Some(u) => Json::Obj(vec![
                ("url", Json::Str(u.url)),
                ("public_key", Json::Str(u.public_key)),
                ("file", Json::Str(u.file)),
            ]),
        }
    }

    /// The whole manifest as payload.py wrote it, minus `manifest_hash` itself.
    pub(crate) fn manifest_json(&self) -> Json<'static> {
        let files = self
            .files
            .iter()
            .map(|f| {
                let meta = Json::Obj(vec![
                    ("sha256", Json::Str(f.sha256)),
                    ("size", Json::Int(f.size)),
                    ("executable", Json::Bool(f.executable)),
                ]);
                (f.name, meta)
            })
            .collect();
        let mut fields = self.install_fields();
        fields.extend([
            ("schema", Json::Int(SCHEMA)),
            (
                "entry",
                Json::Obj(vec![
                    ("kind", Json::Str(self.entry_kind_name())),
                    ("value", Json::Str(self.entry.value)),
                    ("name", Json::Str(self.entry.name)),
                ]),
            ),
            ("self_command", Json::opt(self.self_command)),
            ("keep_versions", Json::Int(u64::from(self.keep_versions))),
            ("gui", Json::Bool(self.gui)),
            ("extras", self.extras_json()),
            ("payload_hash", Json::Str(self.payload_hash)),
            ("update", self.update_json()),
            ("files", Json::Obj(files)),
        ]);
        Json::Obj(fields)
    }

    pub fn computed_payload_hash(&self) -> String {
        sha256_hex(&self.identity_json().canonical())
    }

    pub fn computed_manifest_hash(&self) -> String {
        sha256_hex(&self.manifest_json().canonical())
    }

    /// Fails when an embedded manifest value differs from what the plugin
    /// hashed: a few hundred bytes of strings, cheap enough for every install.
    pub fn check_hashes(&self) -> Result<()> {
        let manifest = self.computed_manifest_hash();
        if manifest != self.manifest_hash {
            bail!(
                "the embedded manifest does not match its manifest_hash (expected {}, got {manifest}): \
                 a value in this executable (entry, python request, vendor, a file's hash ...) was altered; \
                 the executable is corrupted, download it again",
                self.manifest_hash
            );
        }
        let identity = self.computed_payload_hash();
        if identity != self.payload_hash {
            bail!(
                "the embedded manifest does not match its payload_hash (expected {}, got {identity}); \
                 the executable is corrupted, download it again",
                self.payload_hash
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Json;
    use crate::{Entry, EntryKind, Payload, PayloadFile};
    use serde_json::Value;

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_string().into_boxed_str())
    }

    /// The Payload build.rs would generate from a manifest.
    fn payload_from(m: &Value) -> Payload {
        let s = |key: &str| leak(m[key].as_str().unwrap());
        let opt = |key: &str| m[key].as_str().map(leak);
        let files: Vec<PayloadFile> = m["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, meta)| PayloadFile {
                name: leak(name),
                sha256: leak(meta["sha256"].as_str().unwrap()),
                size: meta["size"].as_u64().unwrap(),
                executable: meta["executable"].as_bool().unwrap(),
                data: &[],
                frames: &[],
            })
            .collect();
        let kind = match m["entry"]["kind"].as_str().unwrap() {
            "script" => EntryKind::Script,
            "module" => EntryKind::Module,
            _ => EntryKind::Code,
        };
        let wheels: Vec<&'static str> = m["wheels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| leak(w.as_str().unwrap()))
            .collect();
        Payload {
            app: s("app"),
            version: s("version"),
            install_name: s("install_name"),
            vendor: s("vendor"),
            target: s("target"),
            entry: Entry {
                kind,
                value: leak(m["entry"]["value"].as_str().unwrap()),
                name: leak(m["entry"]["name"].as_str().unwrap()),
            },
            python: s("python"),
            wheel: s("wheel"),
            uv: opt("uv"),
            uv_version: s("uv_version"),
            lock: opt("lock"),
            wheels: Box::leak(wheels.into_boxed_slice()),
            python_archive: opt("python_archive"),
            python_interpreter: opt("python_interpreter"),
            extras: Box::leak(
                m["extras"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| leak(e.as_str().unwrap()))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
                    .into_boxed_slice(),
            ),
            self_command: opt("self_command"),
            keep_versions: m["keep_versions"].as_u64().unwrap() as u32,
            gui: m["gui"].as_bool().unwrap(),
            payload_hash: s("payload_hash"),
            manifest_hash: s("manifest_hash"),
            update: m["update"].as_object().map(|u| crate::UpdateSource {
                url: leak(u["url"].as_str().unwrap()),
                public_key: leak(u["public_key"].as_str().unwrap()),
                file: leak(u["file"].as_str().unwrap()),
            }),
            files: Box::leak(files.into_boxed_slice()),
        }
    }

    /// Written by payload.py (tests/unit/test_manifest_golden.py checks that
    /// it still writes exactly this): both sides must hash it the same way.
    const GOLDEN: &str = include_str!("../tests/golden-manifest.json");

    #[test]
    fn golden_manifest_hashes_match_python() {
        let m: Value = serde_json::from_str(GOLDEN).unwrap();
        let p = payload_from(&m);
        assert_eq!(p.computed_payload_hash(), p.payload_hash);
        assert_eq!(p.computed_manifest_hash(), p.manifest_hash);
        p.check_hashes().unwrap();
    }

    #[test]
    fn any_changed_field_fails_the_check() {
        let m: Value = serde_json::from_str(GOLDEN).unwrap();
        let mut p = payload_from(&m);
        p.entry.value = "print('other')";
        let err = p.check_hashes().unwrap_err().to_string();
        assert!(err.contains("manifest_hash"), "{err}");
        let mut p = payload_from(&m);
        p.entry.name = "other";
        assert!(p.check_hashes().is_err());
        let mut p = payload_from(&m);
        p.gui = false;
        assert!(p.check_hashes().is_err());
        // The update source: a swapped key must not pass as the built one.
        let mut p = payload_from(&m);
        let update = p
            .update
            .as_mut()
            .expect("the golden manifest configures update");
        update.public_key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        assert!(p.check_hashes().is_err());
        // An identity field: caught by manifest_hash first, payload_hash too.
        let mut p = payload_from(&m);
        p.python = ">=3.8";
        assert_ne!(p.computed_payload_hash(), p.payload_hash);
        assert!(p.check_hashes().is_err());
    }

    #[test]
    fn strings_are_escaped_like_python_ensure_ascii() {
        // Expected texts from python3: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        let cases = [
            ("plain text: a-z_0.9 ~", r#""plain text: a-z_0.9 ~""#),
            ("\"quoted\" \\ /slash", r#""\"quoted\" \\ /slash""#),
            ("\t\n\r\u{8}\u{c}", r#""\t\n\r\b\f""#),
            ("\u{0}\u{1}\u{1f}\u{7f}", r#""\u0000\u0001\u001f\u007f""#),
            ("h\u{e9}llo \u{2713}", r#""h\u00e9llo \u2713""#),
            ("\u{1d11e}\u{ffff}", r#""\ud834\udd1e\uffff""#),
            ("\u{80}\u{85}\u{a0}", r#""\u0080\u0085\u00a0""#),
            ("", r#""""#),
        ];
        for (value, expected) in cases {
            assert_eq!(Json::Str(value).canonical(), expected, "{value:?}");
        }
    }

    #[test]
    fn objects_sort_keys_by_code_point_and_nest_compactly() {
        let value = Json::Obj(vec![
            ("\u{1d11e}", Json::Int(4)),
            (
                "b",
                Json::List(vec![Json::Null, Json::Bool(true), Json::Bool(false)]),
            ),
            ("\u{ffff}", Json::Int(3)),
            (
                "a",
                Json::Obj(vec![("z", Json::Int(0)), ("y", Json::List(vec![]))]),
            ),
            ("\u{e9}", Json::Int(18446744073709551615)),
            ("B", Json::Obj(vec![])),
        ]);
        // python3: json.dumps({"\U0001d11e": 4, "b": [None, True, False], "\uffff": 3,
        //   "a": {"z": 0, "y": []}, "\xe9": 2**64-1, "B": {}}, sort_keys=True, separators=(",", ":"))
        assert_eq!(
            value.canonical(),
            r#"{"B":{},"a":{"y":[],"z":0},"b":[null,true,false],"\u00e9":18446744073709551615,"\uffff":3,"\ud834\udd1e":4}"#
        );
    }
}
