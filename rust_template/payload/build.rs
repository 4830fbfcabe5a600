//! Turns `$PYAKET_PAYLOAD_DIR` (manifest.json + files, see
//! docs/payload-contract.md) into `$OUT_DIR/payload.rs`, embedding every file
//! as zstd frames of about 8 MiB, which the launcher decompresses in parallel.
//!
//! Compressed blobs are kept in `$OUT_DIR/blobs/` by content hash, level and
//! frame size: compressing a 37 MB uv at level 19 takes ~30 s of CPU, and it
//! rarely changes between builds. Blobs of the files that outlive one build
//! (uv, an embedded Python, dependency wheels) are also shared through
//! `$PYAKET_BLOB_CACHE`, so a fresh target dir does not compress them again.
//! Output is deterministic for identical input (sorted keys, fixed level and
//! frame size, pinned zstd version in Cargo.lock).

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const DEFAULT_LEVEL: i32 = 19;

/// Upper bound of a frame's decompressed size. Smaller frames decompress on
/// more cores but compress worse: for uv, 8 MiB frames cost 3 % in size
/// (13.06 vs 12.64 MB) and halve the decompression time on 2 cores.
const FRAME_BYTES: usize = 8 << 20;

fn main() {
    if let Err(msg) = run() {
        eprintln!("\nerror: pyaket payload: {msg}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo::rerun-if-env-changed=PYAKET_PAYLOAD_DIR");
    println!("cargo::rerun-if-env-changed=PYAKET_ZSTD_LEVEL");
    println!("cargo::rerun-if-env-changed=PYAKET_BLOB_CACHE");
    let dir = match env::var_os("PYAKET_PAYLOAD_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            return Err("PYAKET_PAYLOAD_DIR is not set. It must name a directory holding \
                        manifest.json and the files it lists (the hatch-pyaket build hook sets it)."
                .into())
        }
    };
    let level = match env::var("PYAKET_ZSTD_LEVEL") {
        Ok(v) if !v.is_empty() => v
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=22).contains(l))
            .ok_or_else(|| format!("PYAKET_ZSTD_LEVEL={v:?} is not a level in 1..=22"))?,
        _ => DEFAULT_LEVEL,
    };
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    let manifest_path = dir.join("manifest.json");
    println!("cargo::rerun-if-changed={}", manifest_path.display());
    let text = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let m: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", manifest_path.display()))?;
    let m = Manifest(m.as_object().ok_or("manifest.json must be a JSON object")?);

    let schema = m.u64("schema")?;
    if schema != 1 {
        return Err(format!(
            "unsupported manifest schema {schema} (this launcher reads schema 1)"
        ));
    }

    let files =
        m.0.get("files")
            .and_then(Value::as_object)
            .ok_or("`files` must be an object")?;
    let file_key = |key: &str| -> Result<Option<String>, String> {
        match m.opt_str(key)? {
            Some(k) if files.contains_key(&k) => Ok(Some(k)),
            Some(k) => Err(format!("`{key}` names {k:?}, which is not in `files`")),
            None => Ok(None),
        }
    };
    let wheel = file_key("wheel")?.ok_or("`wheel` is required")?;
    let uv = file_key("uv")?;
    let lock = file_key("lock")?;
    let python_archive = file_key("python_archive")?;
    let mut wheels = Vec::new();
    for w in
        m.0.get("wheels")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    {
        let w = w.as_str().ok_or("`wheels` must be a list of strings")?;
        if !files.contains_key(w) {
            return Err(format!("`wheels` names {w:?}, which is not in `files`"));
        }
        wheels.push(w.to_string());
    }

    // Files that outlive one app build, worth compressing once per machine.
    let shared_cache = env::var_os("PYAKET_BLOB_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let outlives_build = |name: &String| {
        uv.as_ref() == Some(name) || python_archive.as_ref() == Some(name) || wheels.contains(name)
    };
    let blob_dir = out_dir.join("blobs");
    fs::create_dir_all(&blob_dir)
        .map_err(|e| format!("cannot create {}: {e}", blob_dir.display()))?;

    let mut used_blobs = BTreeSet::new();
    let mut files_code = String::new();
    // (name, sha256, size, executable) as embedded, for checking the hashes.
    let mut embedded: Vec<(String, String, u64, bool)> = Vec::new();
    // serde_json's Map is a BTreeMap (no preserve_order): keys come sorted.
    for (name, meta) in files {
        check_rel_path(name)?;
        let meta = Manifest(
            meta.as_object()
                .ok_or_else(|| format!("files[{name:?}] must be an object"))?,
        );
        let sha256 = meta.str("sha256")?.to_ascii_lowercase();
        let size = meta.u64("size")?;
        let executable = meta.bool("executable")?;
        let path = name.split('/').fold(dir.clone(), |p, part| p.join(part));
        println!("cargo::rerun-if-changed={}", path.display());
        let data = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if data.len() as u64 != size {
            return Err(format!(
                "{}: size is {} bytes, manifest says {size}",
                path.display(),
                data.len()
            ));
        }
        let got = hex(&Sha256::digest(&data));
        if got != sha256 {
            return Err(format!(
                "{}: sha256 is {got}, manifest says {sha256}",
                path.display()
            ));
        }
        let shared = shared_cache.as_deref().filter(|_| outlives_build(name));
        let blob = Blob::get(&data, &sha256, level, &blob_dir, shared)?;
        let frames_code: String = blob
            .frames
            .iter()
            .map(|f| {
                format!(
                    "pyaket_core::Frame {{ end: {}, size: {}, sha256: {:?} }}, ",
                    f.end, f.size, f.sha256
                )
            })
            .collect();
        let _ = writeln!(
            files_code,
            "        pyaket_core::PayloadFile {{ name: {name:?}, sha256: {sha256:?}, size: {size}, \
             executable: {executable}, data: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/blobs/{}\")), \
             frames: &[{frames_code}] }},",
            blob.name
        );
        used_blobs.insert(blob.name);
        embedded.push((name.clone(), sha256, size, executable));
    }
    // Drop blobs of files no longer embedded, so OUT_DIR does not grow with every wheel.
    if let Ok(entries) = fs::read_dir(&blob_dir) {
        for entry in entries.flatten() {
            if !used_blobs.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    let entry =
        m.0.get("entry")
            .and_then(Value::as_object)
            .ok_or("`entry` must be an object")?;
    let entry = Manifest(entry);
    let kind = match entry.str("kind")?.as_str() {
        "script" => "Script",
        "module" => "Module",
        "code" => "Code",
        other => {
            return Err(format!(
                "unknown entry kind {other:?} (script, module or code)"
            ))
        }
    };
    let entry_value = entry.str("value")?;
    if entry_value.trim().is_empty() {
        return Err("`entry.value` is empty".into());
    }
    // The launcher compares it with its own file name (run.rs): a separator
    // could never match.
    let entry_name = entry.str("name")?;
    if entry_name.contains(['/', '\\']) {
        return Err(format!(
            "`entry.name` {entry_name:?} holds a path separator"
        ));
    }

    let app = m.str("app")?;
    let version = m.str("version")?;
    let install_name = m.str("install_name")?;
    let vendor = m.str("vendor")?;
    check_dir_name("version", &version, false)?;
    check_dir_name("install_name", &install_name, false)?;
    check_dir_name("vendor", &vendor, true)?;
    let payload_hash = m.str("payload_hash")?.to_ascii_lowercase();
    if payload_hash.len() < 12 || !payload_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`payload_hash` {payload_hash:?} is not a hex digest"
        ));
    }
    let manifest_hash = m.str("manifest_hash")?.to_ascii_lowercase();
    if manifest_hash.len() != 64 || !manifest_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`manifest_hash` {manifest_hash:?} is not a sha256 hex digest"
        ));
    }
    let keep_versions =
        u32::try_from(m.u64("keep_versions")?).map_err(|_| "`keep_versions` is too large")?;
    let self_command = m.opt_str("self_command")?;
    if self_command.as_deref() == Some("") {
        return Err("`self_command` is empty (use null to disable it)".into());
    }
    let target = m.str("target")?;
    let python = m.str("python")?;
    let uv_version = m.str("uv_version")?;
    let python_interpreter = m.opt_str("python_interpreter")?;
    let extras: Vec<String> = match m.0.get("extras") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|e| e.as_str().map(str::to_string)).collect())
            .ok_or("`extras` must be a list of strings")?,
    };
    let gui = m.bool("gui")?;
    let update = match m.0.get("update") {
        None | Some(Value::Null) => None,
        Some(Value::Object(u)) => {
            let u = Manifest(u);
            let (url, public_key, file) = (u.str("url")?, u.str("public_key")?, u.str("file")?);
            if !file.contains("{version}") {
                return Err(format!("`update.file` {file:?} has no {{version}}"));
            }
            Some((url, public_key, file))
        }
        Some(_) => return Err("`update` must be an object or null".into()),
    };
    let update_json = match &update {
        None => Value::Null,
        Some((url, public_key, file)) => {
            json!({"url": url, "public_key": public_key, "file": file})
        }
    };
    let update_code = match &update {
        None => "None".to_string(),
        Some((url, public_key, file)) => format!(
            "Some(pyaket_core::UpdateSource {{ url: {url:?}, public_key: {public_key:?}, file: {file:?} }})"
        ),
    };

    // The launcher recomputes both hashes from what it embeds (pyaket-core's
    // integrity.rs). Rebuilding the manifest here from the values this script
    // carries, not from the JSON, fails the build when the plugin writes a
    // field that the launcher would not carry.
    let files_meta: Map<String, Value> = embedded
        .iter()
        .map(|(name, sha, size, exe)| {
            let meta = json!({"sha256": sha, "size": size, "executable": exe});
            (name.clone(), meta)
        })
        .collect();
    let files_sha: Map<String, Value> = embedded
        .iter()
        .map(|(name, sha, _, _)| (name.clone(), json!(sha)))
        .collect();
    let identity = json!({
        "app": app, "version": version, "install_name": install_name, "vendor": vendor,
        "target": target, "python": python, "wheel": wheel, "uv": uv, "uv_version": uv_version,
        "lock": lock, "wheels": wheels, "python_archive": python_archive,
        "python_interpreter": python_interpreter, "files": files_sha,
    });
    let mut identity = identity;
    if !extras.is_empty() {
        // payload.py adds them only when there are some (older payloads keep their hash).
        identity["extras"] = json!(extras);
    }
    let whole = json!({
        "schema": schema, "app": app, "version": version, "install_name": install_name,
        "vendor": vendor, "target": target,
        "entry": {"kind": entry.str("kind")?, "value": entry_value, "name": entry_name},
        "python": python, "wheel": wheel, "uv": uv, "uv_version": uv_version, "lock": lock,
        "wheels": wheels, "python_archive": python_archive,
        "python_interpreter": python_interpreter, "self_command": self_command,
        "keep_versions": keep_versions, "gui": gui, "extras": extras, "payload_hash": payload_hash,
        "update": update_json, "files": files_meta,
    });
    for (key, value, expected) in [
        ("payload_hash", &identity, &payload_hash),
        ("manifest_hash", &whole, &manifest_hash),
    ] {
        let got = hex(&Sha256::digest(canonical(value).as_bytes()));
        if &got != expected {
            return Err(format!(
                "`{key}` is {expected} but the values this launcher embeds hash to {got}: the \
                 manifest was edited by hand, or the plugin and this template disagree on its \
                 fields (see docs/payload-contract.md)"
            ));
        }
    }

    let mut code = String::new();
    let _ = write!(
        code,
        "// @generated by pyaket-payload's build.rs from $PYAKET_PAYLOAD_DIR/manifest.json\n\
         pub static PAYLOAD: pyaket_core::Payload = pyaket_core::Payload {{\n\
         \x20   app: {app:?},\n\
         \x20   version: {version:?},\n\
         \x20   install_name: {install_name:?},\n\
         \x20   vendor: {vendor:?},\n\
         \x20   target: {target:?},\n\
         \x20   entry: pyaket_core::Entry {{ kind: pyaket_core::EntryKind::{kind}, value: {entry_value:?}, name: {entry_name:?} }},\n\
         \x20   python: {python:?},\n\
         \x20   wheel: {wheel:?},\n\
         \x20   uv: {uv:?},\n\
         \x20   uv_version: {uv_version:?},\n\
         \x20   lock: {lock:?},\n\
         \x20   wheels: &{wheels:?},\n\
         \x20   python_archive: {python_archive:?},\n\
         \x20   python_interpreter: {python_interpreter:?},\n\
         \x20   extras: &{extras:?},\n\
         \x20   self_command: {self_command:?},\n\
         \x20   keep_versions: {keep_versions},\n\
         \x20   gui: {gui},\n\
         \x20   payload_hash: {payload_hash:?},\n\
         \x20   manifest_hash: {manifest_hash:?},\n\
         \x20   update: {update_code},\n\
         \x20   files: &[\n{files_code}    ],\n\
         }};\n",
    );
    let out = out_dir.join("payload.rs");
    // Rewriting identical content would still be fine, but skipping it keeps mtimes stable.
    if fs::read_to_string(&out).ok().as_deref() != Some(code.as_str()) {
        fs::write(&out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

/// One file's frames, concatenated, in `$OUT_DIR/blobs/<name>`.
struct Blob {
    name: String,
    frames: Vec<FrameInfo>,
}

struct FrameInfo {
    /// End offset in the blob.
    end: usize,
    /// Decompressed size.
    size: usize,
    sha256: String,
}

impl Blob {
    /// The blob of `data`: already in `blob_dir`, copied from the shared
    /// cache, or compressed now (and then shared).
    fn get(
        data: &[u8],
        sha256: &str,
        level: i32,
        blob_dir: &Path,
        shared: Option<&Path>,
    ) -> Result<Blob, String> {
        let name = format!("{sha256}-{level}-{}m.zst", FRAME_BYTES >> 20);
        let parts: Vec<&[u8]> = frame_sizes(data.len())
            .into_iter()
            .scan(0usize, |start, n| {
                let part = &data[*start..*start + n];
                *start += n;
                Some(part)
            })
            .collect();
        let path = blob_dir.join(&name);
        let candidates = [Some(path.clone()), shared.map(|d| d.join(&name))];
        for candidate in candidates.iter().flatten() {
            let Ok(z) = fs::read(candidate) else { continue };
            // A damaged or foreign file is not an error: compress again.
            if let Some(frames) = frames_of(&z, &parts) {
                if candidate != &path {
                    write_atomic(&path, &z)?;
                }
                return Ok(Blob { name, frames });
            }
        }
        let z = compress_parts(&parts, level)?;
        let frames = frames_of(&z, &parts)
            .ok_or_else(|| format!("zstd: the frames of {name} do not decode to the input"))?;
        write_atomic(&path, &z)?;
        if let Some(dir) = shared {
            // Best effort: a read-only or full cache only costs the next build time.
            if let Err(e) = fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| write_atomic(&dir.join(&name), &z))
            {
                println!("cargo::warning=PYAKET_BLOB_CACHE: {e}");
            }
        }
        Ok(Blob { name, frames })
    }
}

/// Equal parts of at most FRAME_BYTES (at least one, for an empty file).
fn frame_sizes(len: usize) -> Vec<usize> {
    let n = len.div_ceil(FRAME_BYTES).max(1);
    (0..n).map(|i| len / n + usize::from(i < len % n)).collect()
}

/// The frames of blob `z` if it holds exactly `parts`, each compressed alone
/// (sizes from the frame headers, sha256 from `parts`).
fn frames_of(z: &[u8], parts: &[&[u8]]) -> Option<Vec<FrameInfo>> {
    use zstd::zstd_safe;
    let mut frames = Vec::with_capacity(parts.len());
    let mut start = 0;
    for part in parts {
        let rest = z.get(start..)?;
        let len = zstd_safe::find_frame_compressed_size(rest).ok()?;
        let size = zstd_safe::get_frame_content_size(rest).ok()??;
        if size != part.len() as u64 {
            return None;
        }
        start += len;
        frames.push(FrameInfo {
            end: start,
            size: part.len(),
            sha256: hex(&Sha256::digest(part)),
        });
    }
    (start == z.len()).then_some(frames)
}

/// Compresses each part as its own frame, on every core.
fn compress_parts(parts: &[&[u8]], level: i32) -> Result<Vec<u8>, String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, parts.len());
    let next = AtomicUsize::new(0);
    let worker = || -> Result<Vec<(usize, Vec<u8>)>, String> {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts.get(i) else {
                return Ok(done);
            };
            done.push((i, compress_frame(part, level)?));
        }
    };
    let mut frames = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| "zstd: a compression thread panicked".to_string())?
            })
            .collect::<Result<Vec<_>, String>>()
    })?
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    frames.sort_by_key(|(i, _)| *i);
    Ok(frames.into_iter().flat_map(|(_, z)| z).collect())
}

fn compress_frame(data: &[u8], level: i32) -> Result<Vec<u8>, String> {
    let mut c = zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd: {e}"))?;
    // The size lets the decoder check each frame; the checksum is redundant with sha256.
    c.include_contentsize(true)
        .map_err(|e| format!("zstd: {e}"))?;
    c.include_checksum(false)
        .map_err(|e| format!("zstd: {e}"))?;
    c.compress(data).map_err(|e| format!("zstd: {e}"))
}

/// Readers (other builds sharing the cache) see the whole file or none.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Keys become paths under the extraction dir at run time: no escaping it.
fn check_rel_path(name: &str) -> Result<(), String> {
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
            "file key {name:?} must be a relative path with `/` separators, without `.`/`..`"
        ))
    }
}

fn check_dir_name(key: &str, value: &str, empty_ok: bool) -> Result<(), String> {
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

struct Manifest<'a>(&'a Map<String, Value>);

impl Manifest<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0
            .get(key)
            .ok_or_else(|| format!("manifest key `{key}` is missing"))
    }
    fn str(&self, key: &str) -> Result<String, String> {
        self.get(key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`{key}` must be a string"))
    }
    fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string or null")),
        }
    }
    fn u64(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
    }
    fn bool(&self, key: &str) -> Result<bool, String> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| format!("`{key}` must be true or false"))
    }
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`:
/// serde_json writes sorted keys (its Map is a BTreeMap) and the same escapes
/// for ASCII except DEL, so only DEL and non-ASCII, which can only occur
/// inside strings, still need `\uXXXX` escapes.
fn canonical(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c < '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
