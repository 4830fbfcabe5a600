//! The payload contract between the plugin and the launcher, owned here.
//!
//! hatch_pyaket/payload.py writes `manifest.json`; payload/build.rs parses it
//! with this crate ([`json`]), checks it and generates the launcher's
//! static [`Manifest`]; pyaket-core runs with that static and recomputes its
//! two hashes with this crate. docs/payload-contract.md describes the fields
//! in a table. `tests/contract.rs` fails when the three disagree: the golden
//! manifest Python writes (tests/unit/test_manifest_golden.py), the fields
//! listed by [`Manifest::fields`] and the doc's table.
//!
//! A new field: the struct, [`Manifest::fields`], `json::parse` and
//! `json::Manifest::to_rust` here, `manifest()` in payload.py, the doc's table.

#[cfg(feature = "hashes")]
use sha2::{Digest, Sha256};

pub mod json;
pub mod parse;

/// The only manifest schema this launcher reads; part of `manifest_hash`.
pub const SCHEMA: u64 = 1;

/// How the app is started, from the project's entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `pkg.module:attr.path`, like a console script.
    Script,
    /// A module run like `python -m`.
    Module,
    /// Python source code.
    Code,
}

impl EntryKind {
    pub const ALL: [EntryKind; 3] = [EntryKind::Script, EntryKind::Module, EntryKind::Code];

    /// The name in the manifest (`entry.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Script => "script",
            EntryKind::Module => "module",
            EntryKind::Code => "code",
        }
    }

    pub fn parse(name: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    pub value: &'a str,
    /// The executable's base name: the script's name, or the project's
    /// (its release file is `<name>-<version>-<target>[.exe]`); empty if unknown.
    pub name: &'a str,
}

/// Where `update` (pyaket-core's update.rs) finds new releases, from the
/// project's `update` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateSource<'a> {
    /// The folder (ending in `/`) that holds the latest release's `SHA256SUMS`,
    /// `SHA256SUMS.minisig` and executables.
    pub url: &'a str,
    /// The minisign public key (the base64 line) `SHA256SUMS.minisig` must verify with.
    pub public_key: &'a str,
    /// This executable's published file name with `{version}` for the version:
    /// `<entry name>-{version}-<target>[.exe]`.
    pub file: &'a str,
}

/// One file of the payload as the manifest describes it.
#[derive(Debug, Clone, Copy)]
pub struct FileMeta<'a> {
    /// Relative path with `/` separators (see [`check_rel_path`]).
    pub name: &'a str,
    /// Lowercase hex sha256 of the content.
    pub sha256: &'a str,
    pub size: u64,
    pub executable: bool,
}

impl<'a> AsRef<FileMeta<'a>> for FileMeta<'a> {
    fn as_ref(&self) -> &FileMeta<'a> {
        self
    }
}

/// Everything the launcher knows about the app. `F` is what the launcher
/// keeps per file: [`FileMeta`] here, plus the embedded frames in pyaket-core.
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a, F = FileMeta<'a>> {
    pub app: &'a str,
    pub version: &'a str,
    pub install_name: &'a str,
    pub vendor: &'a str,
    pub target: &'a str,
    pub entry: Entry<'a>,
    pub python: &'a str,
    pub wheel: &'a str,
    pub uv: Option<&'a str>,
    pub uv_version: &'a str,
    pub lock: Option<&'a str>,
    pub wheels: &'a [&'a str],
    pub python_archive: Option<&'a str>,
    /// The interpreter inside the unpacked `python_archive` (`/` separators);
    /// set exactly when `python_archive` is.
    pub python_interpreter: Option<&'a str>,
    /// Extras of the app's wheel to install (normalized, sorted).
    pub extras: &'a [&'a str],
    pub self_command: Option<&'a str>,
    pub keep_versions: u32,
    pub gui: bool,
    /// sha256 of the install identity; its first 12 digits name the install dir.
    pub payload_hash: &'a str,
    /// sha256 of every other field and file.
    pub manifest_hash: &'a str,
    /// None: the project configured no self-update.
    pub update: Option<UpdateSource<'a>>,
    pub files: &'a [F],
}

/// What a top-level field of manifest.json is covered by. Every field but
/// `manifest_hash` itself is in `manifest_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// In `payload_hash` too: it decides what gets installed (for `files`:
    /// each file's sha256 only).
    Identity,
    /// In `payload_hash` when not empty (payloads from before the field keep
    /// their install dir).
    IdentityWhenNonEmpty,
    /// Only in `manifest_hash`: launchers differing only here share one install.
    ManifestOnly,
    /// `manifest_hash` itself.
    Itself,
}

/// A JSON value, just enough for the manifest.
#[derive(Debug, Clone)]
pub enum Json<'a> {
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

    fn strs(values: &[&'a str]) -> Json<'a> {
        Json::List(values.iter().map(|v| Json::Str(v)).collect())
    }

    fn is_empty(&self) -> bool {
        match self {
            Json::List(items) => items.is_empty(),
            Json::Obj(fields) => fields.is_empty(),
            Json::Null => true,
            _ => false,
        }
    }

    /// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"),
    /// ensure_ascii=True)`, the text both hashes are taken of.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => out.push_str(&format!("{n}")),
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

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(feature = "hashes")]
fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// A recomputed hash that differs from the manifest's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `manifest_hash` or `payload_hash`.
    pub field: &'static str,
    pub expected: String,
    pub got: String,
}

impl<'a, F: AsRef<FileMeta<'a>>> Manifest<'a, F> {
    /// Every top-level field of manifest.json, in the order of the doc's
    /// table, with what covers it and its value: the one list both hashes
    /// (and the contract test) are made from.
    pub fn fields(&self) -> Vec<(&'static str, Coverage, Json<'a>)> {
        use Coverage::*;
        let files = self.files.iter().map(|f| {
            let f = f.as_ref();
            let meta = Json::Obj(vec![
                ("sha256", Json::Str(f.sha256)),
                ("size", Json::Int(f.size)),
                ("executable", Json::Bool(f.executable)),
            ]);
            (f.name, meta)
        });
        vec![
            ("schema", ManifestOnly, Json::Int(SCHEMA)),
            ("app", Identity, Json::Str(self.app)),
            ("version", Identity, Json::Str(self.version)),
            ("install_name", Identity, Json::Str(self.install_name)),
            ("vendor", Identity, Json::Str(self.vendor)),
            ("target", Identity, Json::Str(self.target)),
            (
                "entry",
                ManifestOnly,
                Json::Obj(vec![
                    ("kind", Json::Str(self.entry.kind.as_str())),
                    ("value", Json::Str(self.entry.value)),
                    ("name", Json::Str(self.entry.name)),
                ]),
            ),
            ("python", Identity, Json::Str(self.python)),
            ("wheel", Identity, Json::Str(self.wheel)),
            ("uv", Identity, Json::opt(self.uv)),
            ("uv_version", Identity, Json::Str(self.uv_version)),
            ("lock", Identity, Json::opt(self.lock)),
            ("wheels", Identity, Json::strs(self.wheels)),
            ("python_archive", Identity, Json::opt(self.python_archive)),
            (
                "python_interpreter",
                Identity,
                Json::opt(self.python_interpreter),
            ),
            ("self_command", ManifestOnly, Json::opt(self.self_command)),
            (
                "keep_versions",
                ManifestOnly,
                Json::Int(u64::from(self.keep_versions)),
            ),
            ("gui", ManifestOnly, Json::Bool(self.gui)),
            ("extras", IdentityWhenNonEmpty, Json::strs(self.extras)),
            ("payload_hash", ManifestOnly, Json::Str(self.payload_hash)),
            ("manifest_hash", Itself, Json::Str(self.manifest_hash)),
            (
                "update",
                ManifestOnly,
                self.update.map_or(Json::Null, |u| {
                    Json::Obj(vec![
                        ("url", Json::Str(u.url)),
                        ("public_key", Json::Str(u.public_key)),
                        ("file", Json::Str(u.file)),
                    ])
                }),
            ),
            ("files", Identity, Json::Obj(files.collect())),
        ]
    }

    /// What `payload_hash` is the sha256 of: the identity fields, `files` as
    /// `{name: sha256}`.
    pub fn identity_json(&self) -> Json<'a> {
        let fields = self
            .fields()
            .into_iter()
            .filter_map(|(name, coverage, value)| {
                let value = match (name, coverage, value) {
                    ("files", _, _) => Json::Obj(
                        self.files
                            .iter()
                            .map(|f| (f.as_ref().name, Json::Str(f.as_ref().sha256)))
                            .collect(),
                    ),
                    (_, Coverage::Identity, value) => value,
                    (_, Coverage::IdentityWhenNonEmpty, value) if !value.is_empty() => value,
                    _ => return None,
                };
                Some((name, value))
            });
        Json::Obj(fields.collect())
    }

    /// What `manifest_hash` is the sha256 of: every field but itself.
    pub fn manifest_json(&self) -> Json<'a> {
        let fields = self
            .fields()
            .into_iter()
            .filter(|(_, coverage, _)| *coverage != Coverage::Itself)
            .map(|(name, _, value)| (name, value));
        Json::Obj(fields.collect())
    }

    #[cfg(feature = "hashes")]
    pub fn computed_payload_hash(&self) -> String {
        sha256_hex(&self.identity_json().canonical())
    }

    #[cfg(feature = "hashes")]
    pub fn computed_manifest_hash(&self) -> String {
        sha256_hex(&self.manifest_json().canonical())
    }

    /// Both hashes recomputed from these values: `manifest_hash` first (it
    /// covers everything), then `payload_hash`.
    #[cfg(feature = "hashes")]
    pub fn check_hashes(&self) -> Result<(), Mismatch> {
        let manifest = self.computed_manifest_hash();
        if manifest != self.manifest_hash {
            return Err(Mismatch {
                field: "manifest_hash",
                expected: self.manifest_hash.into(),
                got: manifest,
            });
        }
        let identity = self.computed_payload_hash();
        if identity != self.payload_hash {
            return Err(Mismatch {
                field: "payload_hash",
                expected: self.payload_hash.into(),
                got: identity,
            });
        }
        Ok(())
    }

    pub fn file(&self, name: &str) -> Option<&F> {
        self.files.iter().find(|f| f.as_ref().name == name)
    }

    /// The contract's checks on the values (the payload build script runs
    /// them; docs/payload-contract.md lists them), hashes last when this
    /// crate computes them (the `hashes` feature).
    pub fn check(&self) -> Result<(), String> {
        for f in self.files {
            check_rel_path(f.as_ref().name)?;
            let sha = f.as_ref().sha256;
            if sha.len() != 64 || !is_lower_hex(sha) {
                return Err(format!(
                    "files[{:?}].sha256 {sha:?} is not a lowercase sha256 hex digest",
                    f.as_ref().name
                ));
            }
        }
        let named = [
            ("wheel", Some(self.wheel)),
            ("uv", self.uv),
            ("lock", self.lock),
            ("python_archive", self.python_archive),
        ];
        let wheels = self.wheels.iter().map(|w| ("wheels", Some(*w)));
        for (key, name) in named.into_iter().chain(wheels) {
            if let Some(name) = name {
                if self.file(name).is_none() {
                    return Err(format!("`{key}` names {name:?}, which is not in `files`"));
                }
            }
        }
        match (self.python_archive, self.python_interpreter) {
            (Some(_), Some(path)) => {
                check_rel_path(path).map_err(|e| format!("`python_interpreter`: {e}"))?
            }
            (None, None) => {}
            (Some(_), None) => return Err("`python_archive` needs a `python_interpreter`".into()),
            (None, Some(_)) => {
                return Err("`python_interpreter` is set without a `python_archive`".into())
            }
        }
        if self.entry.value.trim().is_empty() {
            return Err("`entry.value` is empty".into());
        }
        // The launcher compares it with its own file name: a separator could never match.
        if self.entry.name.contains(['/', '\\']) {
            return Err(format!(
                "`entry.name` {:?} holds a path separator",
                self.entry.name
            ));
        }
        check_dir_name("version", self.version, false)?;
        check_dir_name("install_name", self.install_name, false)?;
        check_dir_name("vendor", self.vendor, true)?;
        if let Some(u) = self.update {
            if !u.file.contains("{version}") {
                return Err(format!("`update.file` {:?} has no {{version}}", u.file));
            }
        }
        if self.self_command == Some("") {
            return Err("`self_command` is empty (use null to disable it)".into());
        }
        if self.payload_hash.len() < 12 || !is_lower_hex(self.payload_hash) {
            return Err(format!(
                "`payload_hash` {:?} is not a lowercase hex digest",
                self.payload_hash
            ));
        }
        if self.manifest_hash.len() != 64 || !is_lower_hex(self.manifest_hash) {
            return Err(format!(
                "`manifest_hash` {:?} is not a lowercase sha256 hex digest",
                self.manifest_hash
            ));
        }
        #[cfg(feature = "hashes")]
        self.check_hashes().map_err(|m| {
            format!(
                "`{}` is {} but the manifest's values hash to {}: the manifest was edited by hand, \
                 or the plugin and this template disagree on its fields (see docs/payload-contract.md)",
                m.field, m.expected, m.got
            )
        })?;
        Ok(())
    }

    /// The same manifest with other per-file values (same order, same names).
    pub fn with_files<G>(&self, files: &'a [G]) -> Manifest<'a, G> {
        Manifest {
            app: self.app,
            version: self.version,
            install_name: self.install_name,
            vendor: self.vendor,
            target: self.target,
            entry: self.entry,
            python: self.python,
            wheel: self.wheel,
            uv: self.uv,
            uv_version: self.uv_version,
            lock: self.lock,
            wheels: self.wheels,
            python_archive: self.python_archive,
            python_interpreter: self.python_interpreter,
            extras: self.extras,
            self_command: self.self_command,
            keep_versions: self.keep_versions,
            gui: self.gui,
            payload_hash: self.payload_hash,
            manifest_hash: self.manifest_hash,
            update: self.update,
            files,
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// File keys (and `python_interpreter`) become paths under a directory at
/// run time: relative, `/`-separated, no way out of it.
pub fn check_rel_path(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains(':')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be a relative path with `/` separators, without `.`/`..`"
        ))
    }
}

/// `version`, `install_name` and `vendor` name directories.
pub fn check_dir_name(key: &str, value: &str, empty_ok: bool) -> Result<(), String> {
    if value.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err(format!("`{key}` is empty"))
        };
    }
    let bad = value == "."
        || value == ".."
        || value.starts_with('.')
        || value.chars().any(|c| {
            matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control()
        });
    if bad {
        return Err(format!(
            "`{key}` {value:?} cannot be used as a directory name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Json;

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
