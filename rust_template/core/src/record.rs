//! Installed files checked against the `RECORD` of each installed
//! distribution (PEP 376 / the wheel spec): `path,sha256=<urlsafe b64>,size`.
//!
//! `check` reports what differs; `restore` reinstalls and, when a
//! file still differs (uv links files from its cache, so a file edited in
//! place can have changed the cached copy too), reinstalls once more with
//! uv's cache bypassed.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::dirs::Layout;
use crate::install;
use crate::out::Out;
use crate::Payload;

/// An installed file that is not what its RECORD says.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// The `*.dist-info` dir whose RECORD lists the file.
    pub dist_info: String,
    pub kind: ProblemKind,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ProblemKind {
    Missing,
    /// Different content (sha256, or size when the hash is not sha256).
    Modified,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ProblemKind::Missing => "missing",
            ProblemKind::Modified => "modified",
        };
        write!(
            f,
            "{what}: {} (listed in {}/RECORD)",
            self.path.display(),
            self.dist_info
        )
    }
}

/// The site-packages dirs of a venv (one, normally).
fn site_packages(venv: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if cfg!(windows) {
        found.push(venv.join("Lib").join("site-packages"));
    } else {
        let lib = venv.join("lib");
        let entries = fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", lib.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("python") || name.starts_with("pypy") {
                found.push(entry.path().join("site-packages"));
            }
        }
    }
    found.retain(|d| d.is_dir());
    if found.is_empty() {
        bail!("no site-packages dir in {}", venv.display());
    }
    Ok(found)
}

/// Checks every file that a `RECORD` in the venv's site-packages lists with
/// a hash (RECORD itself and `.pyc` files have none and are skipped).
pub fn verify_env(venv: &Path) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for site in site_packages(venv)? {
        let entries = fs::read_dir(&site).with_context(|| format!("reading {}", site.display()))?;
        let mut dist_infos: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "dist-info"))
            .collect();
        dist_infos.sort();
        for dist_info in dist_infos {
            let record = dist_info.join("RECORD");
            let text = match fs::read_to_string(&record) {
                Ok(text) => text,
                // A distribution without RECORD cannot be checked; its files
                // then simply are not listed anywhere.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", record.display())),
            };
            let dist_name = dist_info
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for line in text.lines() {
                let Some(entry) = parse_line(line) else {
                    continue;
                };
                if let Some(kind) = check_entry(&site, &entry)? {
                    problems.push(Problem {
                        path: site.join(&entry.path),
                        dist_info: dist_name.clone(),
                        kind,
                    });
                }
            }
        }
    }
    Ok(problems)
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    path: String,
    hash: String,
    size: Option<u64>,
}

/// One RECORD row (CSV: fields may be quoted, `""` is a quote); rows
/// without a hash give None.
fn parse_line(line: &str) -> Option<Entry> {
    let mut fields = Vec::with_capacity(3);
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    let mut fields = fields.into_iter();
    let path = fields.next().filter(|p| !p.is_empty())?;
    let hash = fields.next().filter(|h| !h.is_empty())?;
    let size = fields.next().and_then(|s| s.parse().ok());
    Some(Entry { path, hash, size })
}

fn check_entry(site: &Path, entry: &Entry) -> Result<Option<ProblemKind>> {
    let path = site.join(&entry.path);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(ProblemKind::Missing)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if entry.size.is_some_and(|size| size != meta.len()) {
        return Ok(Some(ProblemKind::Modified));
    }
    let Some(expected) = entry.hash.strip_prefix("sha256=") else {
        // Other algorithms are allowed by the spec but not written by uv or pip.
        return Ok(None);
    };
    let got = urlsafe_b64_nopad(&sha256_file(&path)?);
    Ok((got != expected).then_some(ProblemKind::Modified))
}

fn sha256_file(path: &Path) -> Result<Vec<u8>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

/// Base64 with the URL-safe alphabet and no padding, as RECORD hashes are.
fn urlsafe_b64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// After `restore` reinstalled: the installed files must match their
/// RECORD. uv links installed files from its cache (hardlinks on Linux), so
/// editing one in place can also change the cached copy that the reinstall
/// linked again; then install once more with uv's cache bypassed
/// (UV_NO_CACHE, which the launcher passes on to uv: a temporary cache, the
/// files come from the index or the embedded wheels again).
pub(crate) fn verify_restored(p: &Payload, layout: &Layout, out: &mut Out) -> Result<()> {
    let venv = layout.version_dir.join("venv");
    let problems = verify_env(&venv)?;
    if problems.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{} installed file(s) still differ from their RECORD (uv's cache holds modified copies): \
         reinstalling without uv's cache ...",
        problems.len()
    );
    for problem in &problems {
        let _ = writeln!(out, "  {problem}");
    }
    // Single-threaded here: nothing else reads the environment meanwhile.
    std::env::set_var("UV_NO_CACHE", "1");
    install::reinstall(p, layout, out)?;
    let problems = verify_env(&venv)?;
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        bail!(
            "installed files still differ from their RECORD after reinstalling without uv's cache:\n{}",
            list.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_python_urlsafe_b64encode_without_padding() {
        // python3: base64.urlsafe_b64encode(data).rstrip(b"=")
        assert_eq!(urlsafe_b64_nopad(b""), "");
        assert_eq!(urlsafe_b64_nopad(b"f"), "Zg");
        assert_eq!(urlsafe_b64_nopad(b"fo"), "Zm8");
        assert_eq!(urlsafe_b64_nopad(b"foo"), "Zm9v");
        assert_eq!(urlsafe_b64_nopad(&[0xfb, 0xff, 0xfe]), "-__-");
        // sha256(b"") as in a RECORD.
        assert_eq!(
            urlsafe_b64_nopad(&Sha256::digest(b"")),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn record_rows_are_csv() {
        assert_eq!(
            parse_line("colorama/__init__.py,sha256=abc,266"),
            Some(Entry {
                path: "colorama/__init__.py".into(),
                hash: "sha256=abc".into(),
                size: Some(266)
            })
        );
        assert_eq!(
            parse_line("\"odd, \"\"name\"\".py\",sha256=x,\r"),
            Some(Entry {
                path: "odd, \"name\".py".into(),
                hash: "sha256=x".into(),
                size: None
            })
        );
        assert_eq!(parse_line("pkg-1.0.dist-info/RECORD,,"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn modified_and_missing_files_are_reported() {
        let venv = std::env::temp_dir().join(format!("pyaket-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&venv);
        let site = venv.join("lib").join("python3.11").join("site-packages");
        let dist = site.join("pkg-1.0.dist-info");
        fs::create_dir_all(site.join("pkg")).unwrap();
        fs::create_dir_all(&dist).unwrap();
        let hash = |data: &[u8]| urlsafe_b64_nopad(&Sha256::digest(data));
        fs::write(site.join("pkg/a.py"), b"a = 1\n").unwrap();
        fs::write(site.join("pkg/b.py"), b"b = 2\n").unwrap();
        fs::write(site.join("pkg/same_size.py"), b"c = 3\n").unwrap();
        fs::write(
            dist.join("RECORD"),
            format!(
                "pkg/a.py,sha256={},6\npkg/b.py,sha256={},6\npkg/same_size.py,sha256={},6\n\
                 pkg/gone.py,sha256={},6\npkg/__pycache__/a.cpython-311.pyc,,\npkg-1.0.dist-info/RECORD,,\n",
                hash(b"a = 1\n"),
                hash(b"b = 2\n"),
                hash(b"c = 4\n"),
                hash(b"x"),
            ),
        )
        .unwrap();
        fs::write(site.join("pkg/b.py"), b"b = 2222\n").unwrap();
        let problems = verify_env(&venv).unwrap();
        let got: Vec<(String, &ProblemKind)> = problems
            .iter()
            .map(|p| {
                (
                    p.path.strip_prefix(&site).unwrap().display().to_string(),
                    &p.kind,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("pkg/b.py".to_string(), &ProblemKind::Modified),
                ("pkg/same_size.py".to_string(), &ProblemKind::Modified),
                ("pkg/gone.py".to_string(), &ProblemKind::Missing),
            ]
        );
        assert!(problems[0].to_string().contains("pkg-1.0.dist-info/RECORD"));
        fs::remove_dir_all(&venv).unwrap();
    }
}
