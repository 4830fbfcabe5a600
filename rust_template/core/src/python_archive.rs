//! The Python embedded as a python-build-standalone `install_only` archive:
//! unpacked once per archive into the app dir, shared by the versions that
//! embed it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::atomic::{self, TempDir};
use crate::dirs::{Layout, PYTHON_PREFIX};
use crate::Payload;

/// Unpacks a python-build-standalone `install_only` archive into
/// `<app dir>/python-<sha12>/`, shared by all versions embedding the same
/// archive. It lives outside the version dir because a venv's pyvenv.cfg
/// records the absolute path of its base interpreter.
pub(crate) fn unpack(
    p: &Payload,
    layout: &Layout,
    name: &str,
    payload_dir: &Path,
) -> Result<PathBuf> {
    let file = p.file(name)?;
    let dir = layout.app_dir.join(format!(
        "{PYTHON_PREFIX}{}",
        file.sha256.get(..12).unwrap_or(file.sha256)
    ));
    if !dir.is_dir() {
        let archive = file.extract_to(payload_dir)?;
        let staging = TempDir::new(&layout.app_dir, PYTHON_PREFIX)?;
        let reader =
            File::open(&archive).with_context(|| format!("opening {}", archive.display()))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(reader)));
        tar.set_preserve_mtime(true);
        tar.unpack(staging.path())
            .with_context(|| format!("unpacking {name} into {}", staging.path().display()))?;
        fs::remove_file(&archive).with_context(|| format!("removing {}", archive.display()))?;
        atomic::flush_tree(staging.path())?;
        staging.publish(&dir)?;
    }
    let candidates: &[&[&str]] = if cfg!(windows) {
        &[&["python", "python.exe"], &["python.exe"]]
    } else {
        &[&["python", "bin", "python3"], &["bin", "python3"]]
    };
    for parts in candidates {
        let exe = parts.iter().fold(dir.clone(), |d, part| d.join(part));
        if exe.is_file() {
            return Ok(exe);
        }
    }
    bail!(
        "no Python interpreter found in {} (expected a python-build-standalone install_only archive)",
        dir.display()
    )
}
