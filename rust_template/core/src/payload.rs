//! The embedded payload: manifest fields as static data, files as zstd blobs.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

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

#[derive(Debug)]
pub struct Entry {
    pub kind: EntryKind,
    pub value: &'static str,
}

/// One embedded file, zstd-compressed.
#[derive(Debug)]
pub struct PayloadFile {
    /// Relative path with `/` separators; validated by the payload build script.
    pub name: &'static str,
    /// Lowercase hex sha256 of the decompressed content.
    pub sha256: &'static str,
    pub size: u64,
    pub executable: bool,
    pub data: &'static [u8],
}

/// Everything the launcher knows about the app; see docs/payload-contract.md.
#[derive(Debug)]
pub struct Payload {
    pub app: &'static str,
    pub version: &'static str,
    pub install_name: &'static str,
    pub vendor: &'static str,
    pub target: &'static str,
    pub entry: Entry,
    pub python: &'static str,
    pub wheel: &'static str,
    pub uv: Option<&'static str>,
    pub uv_version: &'static str,
    pub lock: Option<&'static str>,
    pub wheels: &'static [&'static str],
    pub python_archive: Option<&'static str>,
    pub self_command: Option<&'static str>,
    pub keep_versions: u32,
    pub gui: bool,
    pub payload_hash: &'static str,
    pub files: &'static [PayloadFile],
}

impl Payload {
    pub fn file(&self, name: &str) -> Result<&'static PayloadFile> {
        match self.files.iter().find(|f| f.name == name) {
            Some(f) => Ok(f),
            None => bail!("file {name:?} is missing from the embedded payload"),
        }
    }

    /// Short payload hash used in directory names; the build script guarantees
    /// at least 12 hex digits.
    pub fn hash12(&self) -> &'static str {
        self.payload_hash.get(..12).unwrap_or(self.payload_hash)
    }
}

impl PayloadFile {
    /// Streams the decompressed content into `out`, failing if its size or
    /// sha256 differ from the manifest (a corrupted or truncated binary).
    pub fn decompress_into(&self, out: &mut dyn Write) -> Result<()> {
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(self.data)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("embedded {}: bad zstd header", self.name))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("embedded {}: decompression failed", self.name))
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", self.name))?;
            total += n as u64;
        }
        if total != self.size {
            bail!(
                "embedded {}: size mismatch (expected {} bytes, got {total}); the executable is corrupted",
                self.name,
                self.size
            );
        }
        let got = hex(&hasher.finalize());
        if got != self.sha256 {
            bail!(
                "embedded {}: sha256 mismatch (expected {}, got {got}); the executable is corrupted",
                self.name,
                self.sha256
            );
        }
        Ok(())
    }

    /// Writes the verified file to `<dir>/<name>`, executable bit included.
    pub fn extract_to(&self, dir: &Path) -> Result<std::path::PathBuf> {
        let path = self
            .name
            .split('/')
            .fold(dir.to_path_buf(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if self.executable { 0o755 } else { 0o644 });
        }
        let file = opts
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut out = io::BufWriter::with_capacity(256 * 1024, file);
        self.decompress_into(&mut out)
            .with_context(|| format!("extracting {}", path.display()))?;
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
