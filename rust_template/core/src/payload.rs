//! The embedded payload: the manifest as static data, files as zstd frames.

use std::fs::{self, File};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pyaket_manifest::{FileMeta, Manifest};
use sha2::{Digest, Sha256};

/// One embedded file: the manifest's description of it ([`FileMeta`]: name,
/// sha256, size, executable bit, read through `Deref`) and its content cut
/// into equal parts, each compressed as its own zstd frame so that the parts
/// decompress in parallel (uv is ~37 MB; one frame would keep a first run
/// waiting on one core).
#[derive(Debug)]
pub struct PayloadFile {
    pub meta: FileMeta<'static>,
    /// The frames, concatenated.
    pub data: &'static [u8],
    pub frames: &'static [Frame],
}

impl Deref for PayloadFile {
    type Target = FileMeta<'static>;
    fn deref(&self) -> &FileMeta<'static> {
        &self.meta
    }
}

impl AsRef<FileMeta<'static>> for PayloadFile {
    fn as_ref(&self) -> &FileMeta<'static> {
        &self.meta
    }
}

/// One zstd frame of a [`PayloadFile`], in content order.
#[derive(Debug)]
pub struct Frame {
    /// End of the frame in [`PayloadFile::data`]; it starts where the previous one ends.
    pub end: usize,
    /// Decompressed size.
    pub size: usize,
    /// Lowercase hex sha256 of the decompressed part.
    pub sha256: &'static str,
}

/// Everything the launcher knows about the app: the manifest (the contract,
/// owned by pyaket-manifest; its fields read through `Deref`: `p.app`,
/// `p.entry` ...) with the embedded files. See docs/payload-contract.md.
#[derive(Debug)]
pub struct Payload {
    pub manifest: Manifest<'static, PayloadFile>,
}

impl Deref for Payload {
    type Target = Manifest<'static, PayloadFile>;
    fn deref(&self) -> &Manifest<'static, PayloadFile> {
        &self.manifest
    }
}

impl Payload {
    pub fn file(&self, name: &str) -> Result<&'static PayloadFile> {
        match self.manifest.files.iter().find(|f| f.name == name) {
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

/// A frame with where it comes from and where it goes.
struct Part {
    index: usize,
    frame: &'static Frame,
    src: &'static [u8],
    offset: u64,
}

impl PayloadFile {
    fn parts(&self) -> Result<Vec<Part>> {
        let mut parts = Vec::with_capacity(self.frames.len());
        let (mut start, mut offset) = (0usize, 0u64);
        for (index, frame) in self.frames.iter().enumerate() {
            let Some(src) = self.data.get(start..frame.end) else {
                bail!(
                    "embedded {}: frame {index} lies outside the data; the executable is corrupted",
                    self.name
                );
            };
            parts.push(Part {
                index,
                frame,
                src,
                offset,
            });
            start = frame.end;
            offset += frame.size as u64;
        }
        if offset != self.size || start != self.data.len() {
            bail!(
                "embedded {}: frames add up to {offset} bytes, expected {}; the executable is corrupted",
                self.name,
                self.size
            );
        }
        Ok(parts)
    }

    /// Runs `job` on every part, spread over the available cores; `job`
    /// gets a buffer big enough for any part.
    fn in_parallel(&self, job: &(dyn Fn(&Part, &mut Vec<u8>) -> Result<()> + Sync)) -> Result<()> {
        let parts = self.parts()?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, parts.len().max(1));
        let biggest = parts.iter().map(|p| p.frame.size).max().unwrap_or(0);
        // Equal-sized frames: dealing them out round-robin balances the threads.
        let work = |first: usize| -> Result<()> {
            let mut buf: Vec<u8> = Vec::with_capacity(biggest);
            for part in parts.iter().skip(first).step_by(threads) {
                job(part, &mut buf)?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .map(|first| scope.spawn(move || work(first)))
                .collect();
            let mut result = work(0);
            for helper in helpers {
                let joined = helper
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")));
                result = result.and(joined);
            }
            result
        })
    }

    /// Decompresses and verifies every frame, spread over the available
    /// cores, handing each verified part to `sink(offset, bytes)`.
    fn for_each_part(&self, sink: &(dyn Fn(u64, &[u8]) -> Result<()> + Sync)) -> Result<()> {
        self.in_parallel(&|part, buf| {
            self.decode(part, buf)?;
            sink(part.offset, buf)
        })
    }

    fn decode(&self, part: &Part, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let n = zstd_safe::decompress(buf, part.src).map_err(|code| {
            anyhow::anyhow!(
                "embedded {} (frame {}): {}; the executable is corrupted",
                self.name,
                part.index,
                zstd_safe::get_error_name(code)
            )
        })?;
        if n != part.frame.size {
            bail!(
                "embedded {} (frame {}): {n} bytes, expected {}; the executable is corrupted",
                self.name,
                part.index,
                part.frame.size
            );
        }
        let got = hex(&Sha256::digest(&buf[..]));
        if got != part.frame.sha256 {
            bail!(
                "embedded {} (frame {}): sha256 mismatch (expected {}, got {got}); the executable is corrupted",
                self.name,
                part.index,
                part.frame.sha256
            );
        }
        Ok(())
    }

    /// Decompresses everything and checks sizes and hashes, writing nothing.
    pub fn verify(&self) -> Result<()> {
        self.for_each_part(&|_, _| Ok(()))
    }

    /// Checks that the file at `path` has this content: its size, then the
    /// sha256 of each part against the manifest's, parts read and hashed in
    /// parallel (no decompression; sha2 uses SHA-NI where the CPU has it).
    /// The error says what differs.
    pub fn verify_file(&self, path: &Path) -> Result<()> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len != self.size {
            bail!("{len} bytes, expected {}", self.size);
        }
        self.in_parallel(&|part, buf| {
            buf.resize(part.frame.size, 0);
            read_exact_at(&file, buf, part.offset)
                .with_context(|| format!("reading {}", path.display()))?;
            let got = hex(&Sha256::digest(&buf[..]));
            if got != part.frame.sha256 {
                bail!(
                    "bytes {}..{} differ from the embedded {} (sha256 {got}, expected {})",
                    part.offset,
                    part.offset + part.frame.size as u64,
                    self.name,
                    part.frame.sha256
                );
            }
            Ok(())
        })
    }

    /// Writes the verified file to `<dir>/<name>`, executable bit included.
    pub fn extract_to(&self, dir: &Path) -> Result<PathBuf> {
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
        file.set_len(self.size)
            .with_context(|| format!("writing {}", path.display()))?;
        self.for_each_part(&|offset, bytes| {
            write_all_at(&file, bytes, offset)
                .with_context(|| format!("writing {}", path.display()))
        })
        .with_context(|| format!("extracting {}", path.display()))?;
        Ok(path)
    }
}

/// Positional write, so that threads can fill their parts of one file.
#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

/// Positional read of exactly `buf.len()` bytes.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) use pyaket_manifest::hex;
