//! The Python embedded as a python-build-standalone `install_only` archive:
//! unpacked once per archive into the app dir, shared by the versions that
//! embed it.

use std::fs;
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
        extract(&archive, staging.path())
            .with_context(|| format!("unpacking {name} into {}", staging.path().display()))?;
        fs::remove_file(&archive).with_context(|| format!("removing {}", archive.display()))?;
        atomic::flush_tree(staging.path())?;
        staging.publish(&dir)?;
    }
    // Where the interpreter is inside the archive is the plugin's knowledge
    // (hatch_pyaket/pythons.py checks the archive holds it); the manifest
    // carries it (pyaket-manifest checks it is a relative path).
    let Some(interpreter) = p.python_interpreter else {
        bail!(
            "the manifest embeds {name} without a python_interpreter; the executable is corrupted"
        )
    };
    let exe = interpreter
        .split('/')
        .fold(dir.clone(), |d, part| d.join(part));
    if !exe.is_file() {
        bail!(
            "no Python interpreter at {} (the manifest's python_interpreter in {name}); remove {} \
             and run the app again to unpack it anew",
            exe.display(),
            dir.display()
        )
    }
    Ok(exe)
}

/// The tar.gz reader is compiled in only for projects that embed a Python (the
/// plugin then builds with the `python-archive` feature): tar, flate2 and
/// miniz_oxide cost ~4 s of CPU in every other project's first build.
#[cfg(feature = "python-archive")]
fn extract(archive: &Path, into: &Path) -> Result<()> {
    use std::fs::File;
    use std::io::BufReader;
    let reader = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(reader)));
    tar.set_preserve_mtime(true);
    Ok(tar.unpack(into)?)
}

#[cfg(not(feature = "python-archive"))]
fn extract(_archive: &Path, _into: &Path) -> Result<()> {
    bail!(
        "this launcher was compiled without the `python-archive` feature, which its embedded Python \
         needs; the executable was not built by hatch-pyaket as published"
    )
}
