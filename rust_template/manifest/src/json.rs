//! manifest.json and frames.json as the plugin writes them, parsed for
//! payload/build.rs, and the launcher's static generated from them. Only the
//! build script calls this: nothing of it is linked into the launcher.

use std::collections::BTreeMap;

use crate::parse::Value;

use crate::{check_rel_path, Entry, EntryKind, FileMeta, Manifest, UpdateSource, SCHEMA};

/// Parsed once per build script run: leaking gives the values the same
/// `'static` lifetime as the launcher's static.
fn leak(s: &str) -> &'static str {
    Box::leak(s.into())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

struct Obj<'v> {
    map: &'v BTreeMap<String, Value>,
    /// Where the object is, for messages ("" = the top level).
    at: &'static str,
}

impl<'v> Obj<'v> {
    fn new(value: &'v Value, at: &'static str) -> Result<Obj<'v>, String> {
        match value.as_object() {
            Some(map) => Ok(Obj { map, at }),
            None => Err(format!("`{at}` must be a JSON object")),
        }
    }
    fn name(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }
    fn get(&self, key: &str) -> Result<&'v Value, String> {
        self.map
            .get(key)
            .ok_or_else(|| format!("manifest key `{}` is missing", self.name(key)))
    }
    fn str(&self, key: &str) -> Result<&'static str, String> {
        match self.get(key)? {
            Value::Str(s) => Ok(leak(s)),
            _ => Err(format!("`{}` must be a string", self.name(key))),
        }
    }
    fn opt_str(&self, key: &str) -> Result<Option<&'static str>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(leak(s))),
            Some(_) => Err(format!("`{}` must be a string or null", self.name(key))),
        }
    }
    fn u64(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| format!("`{}` must be a non-negative integer", self.name(key)))
    }
    fn bool(&self, key: &str) -> Result<bool, String> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| format!("`{}` must be true or false", self.name(key)))
    }
    /// A list of strings; absent = empty.
    fn strs(&self, key: &str) -> Result<&'static [&'static str], String> {
        let Some(value) = self.map.get(key) else {
            return Ok(&[]);
        };
        let list: Option<Vec<&'static str>> = value
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_str().map(leak)).collect());
        list.map(leak_slice)
            .ok_or_else(|| format!("`{}` must be a list of strings", self.name(key)))
    }
    /// Keys this reader does not know would be dropped silently.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(format!(
                "unknown manifest key `{}`: written by a newer plugin than this launcher template \
                 (see docs/payload-contract.md)",
                self.name(k)
            )),
        }
    }
}

/// Parses manifest.json and runs the contract's checks on it
/// ([`Manifest::check`], both hashes included).
pub fn parse(text: &str) -> Result<Manifest<'static>, String> {
    let value = crate::parse::parse(text)?;
    let m = Obj::new(&value, "")?;
    let schema = m.u64("schema")?;
    if schema != SCHEMA {
        return Err(format!(
            "unsupported manifest schema {schema} (this launcher reads schema {SCHEMA})"
        ));
    }
    let files_value = Obj::new(m.get("files")?, "files")?;
    let mut files = Vec::with_capacity(files_value.map.len());
    // A BTreeMap: names come sorted, as payload.py sorts them.
    for (name, meta) in files_value.map {
        let meta = Obj::new(meta, "files[..]")?;
        meta.only(&["sha256", "size", "executable"])?;
        files.push(FileMeta {
            name: leak(name),
            sha256: meta.str("sha256")?,
            size: meta.u64("size")?,
            executable: meta.bool("executable")?,
        });
    }
    let entry = Obj::new(m.get("entry")?, "entry")?;
    entry.only(&["kind", "value", "name"])?;
    let kind = entry.str("kind")?;
    let kind = EntryKind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown entry kind {kind:?} ({})", known.join(", "))
    })?;
    let update = match m.map.get("update") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let u = Obj::new(value, "update")?;
            u.only(&["url", "public_key", "file"])?;
            Some(UpdateSource {
                url: u.str("url")?,
                public_key: u.str("public_key")?,
                file: u.str("file")?,
            })
        }
    };
    let manifest = Manifest {
        app: m.str("app")?,
        version: m.str("version")?,
        install_name: m.str("install_name")?,
        vendor: m.str("vendor")?,
        target: m.str("target")?,
        entry: Entry {
            kind,
            value: entry.str("value")?,
            name: entry.str("name")?,
        },
        python: m.str("python")?,
        wheel: m.str("wheel")?,
        uv: m.opt_str("uv")?,
        uv_version: m.str("uv_version")?,
        lock: m.opt_str("lock")?,
        wheels: m.strs("wheels")?,
        python_archive: m.opt_str("python_archive")?,
        python_interpreter: m.opt_str("python_interpreter")?,
        extras: m.strs("extras")?,
        self_command: m.opt_str("self_command")?,
        keep_versions: u32::try_from(m.u64("keep_versions")?)
            .map_err(|_| "`keep_versions` is too large")?,
        gui: m.bool("gui")?,
        payload_hash: m.str("payload_hash")?,
        manifest_hash: m.str("manifest_hash")?,
        update,
        files: leak_slice(files),
    };
    let known: Vec<&str> = manifest.fields().iter().map(|f| f.0).collect();
    m.only(&known)?;
    manifest.check()?;
    Ok(manifest)
}

/// How one file is embedded (frames.json): its frames, concatenated in `blob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTable {
    /// Path of the blob in the payload dir (`/` separators).
    pub blob: String,
    /// sha256 of the blob (the compressed bytes).
    pub sha256: String,
    pub frames: Vec<Frame>,
}

/// One zstd frame: a part of the file, compressed alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// End of the frame in the blob; it starts where the previous one ends.
    pub end: usize,
    /// Decompressed size.
    pub size: u64,
    /// sha256 of the decompressed part.
    pub sha256: String,
}

fn sha256_field(obj: &Obj, key: &str) -> Result<String, String> {
    let value = obj.str(key)?;
    if value.len() != 64 || !crate::is_lower_hex(value) {
        return Err(format!(
            "frames.json: `{}` {value:?} is not a lowercase sha256 hex digest",
            obj.name(key)
        ));
    }
    Ok(value.to_string())
}

/// Parses frames.json: the frame table of each file, by file name.
pub fn parse_frames(text: &str) -> Result<BTreeMap<String, FrameTable>, String> {
    let value = crate::parse::parse(text)?;
    let top = Obj::new(&value, "")?;
    let schema = top.u64("schema")?;
    if schema != SCHEMA {
        return Err(format!(
            "unsupported frames.json schema {schema} (this launcher reads schema {SCHEMA})"
        ));
    }
    let files = Obj::new(top.get("files")?, "files")?;
    let mut tables = BTreeMap::new();
    for (name, table) in files.map {
        let table = Obj::new(table, "files[..]")?;
        let blob = table.str("blob")?;
        check_rel_path(blob).map_err(|e| format!("frames.json: blob of {name:?}: {e}"))?;
        let list = table
            .get("frames")?
            .as_array()
            .ok_or_else(|| format!("frames.json: `frames` of {name:?} must be a list"))?;
        let mut frames = Vec::with_capacity(list.len());
        for frame in list {
            let frame = Obj::new(frame, "files[..].frames[..]")?;
            let end = usize::try_from(frame.u64("end")?).map_err(|_| "`end` is too large")?;
            if end <= frames.last().map_or(0, |f: &Frame| f.end) {
                return Err(format!(
                    "frames.json: the frames of {name:?} do not follow each other"
                ));
            }
            frames.push(Frame {
                end,
                size: frame.u64("size")?,
                sha256: sha256_field(&frame, "sha256")?,
            });
        }
        if frames.is_empty() {
            return Err(format!("frames.json: {name:?} has no frames"));
        }
        tables.insert(
            name.clone(),
            FrameTable {
                blob: blob.to_string(),
                sha256: sha256_field(&table, "sha256")?,
                frames,
            },
        );
    }
    Ok(tables)
}

impl FileMeta<'_> {
    /// This value as a Rust expression; `krate` is how the generated code
    /// names this crate.
    pub fn to_rust(&self, krate: &str) -> String {
        format!(
            "{krate}::FileMeta {{ name: {:?}, sha256: {:?}, size: {}, executable: {} }}",
            self.name, self.sha256, self.size, self.executable
        )
    }
}

impl Manifest<'_> {
    /// This manifest as a Rust expression of type `Manifest<'static, F>`:
    /// `files` are the `F` expressions of its files, in order; `krate` is how
    /// the generated code names this crate.
    pub fn to_rust(&self, krate: &str, files: &[String]) -> String {
        let files: String = files.iter().map(|f| format!("        {f},\n")).collect();
        let e = &self.entry;
        format!(
            "{krate}::Manifest {{\n\
             \x20   app: {:?},\n\
             \x20   version: {:?},\n\
             \x20   install_name: {:?},\n\
             \x20   vendor: {:?},\n\
             \x20   target: {:?},\n\
             \x20   entry: {krate}::Entry {{ kind: {krate}::EntryKind::{:?}, value: {:?}, name: {:?} }},\n\
             \x20   python: {:?},\n\
             \x20   wheel: {:?},\n\
             \x20   uv: {:?},\n\
             \x20   uv_version: {:?},\n\
             \x20   lock: {:?},\n\
             \x20   wheels: &{:?},\n\
             \x20   python_archive: {:?},\n\
             \x20   python_interpreter: {:?},\n\
             \x20   extras: &{:?},\n\
             \x20   self_command: {:?},\n\
             \x20   keep_versions: {},\n\
             \x20   gui: {},\n\
             \x20   payload_hash: {:?},\n\
             \x20   manifest_hash: {:?},\n\
             \x20   update: {},\n\
             \x20   files: &[\n{files}    ],\n\
             }}",
            self.app,
            self.version,
            self.install_name,
            self.vendor,
            self.target,
            e.kind,
            e.value,
            e.name,
            self.python,
            self.wheel,
            self.uv,
            self.uv_version,
            self.lock,
            self.wheels,
            self.python_archive,
            self.python_interpreter,
            self.extras,
            self.self_command,
            self.keep_versions,
            self.gui,
            self.payload_hash,
            self.manifest_hash,
            match self.update {
                None => "None".to_string(),
                Some(u) => format!(
                    "Some({krate}::UpdateSource {{ url: {:?}, public_key: {:?}, file: {:?} }})",
                    u.url, u.public_key, u.file
                ),
            },
        )
    }
}
