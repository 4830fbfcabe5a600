//! Where things are installed.
//!
//! `<root>/<vendor>/<install_name>/` is the app dir (lock, logs, temp dirs,
//! shared Python), `<app dir>/<version>-<hash12>/` one installed version.
//! The data dir follows the compile target (cfg!(target_os)), not the build
//! host, because the plugin cross-compiles.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::Payload;

pub(crate) const MARKER: &str = ".pyaket-installed";
pub(crate) const TMP_PREFIX: &str = ".tmp-";
pub(crate) const PYTHON_PREFIX: &str = "python-";

pub(crate) struct Layout {
    /// The install root (data dir or PYAKET_INSTALL_DIR), shared by all apps.
    pub root: PathBuf,
    pub app_dir: PathBuf,
    pub version_dir: PathBuf,
}

impl Layout {
    pub fn new(p: &Payload) -> Result<Layout> {
        let root = install_root()?;
        let mut app_dir = root.clone();
        if !p.vendor.is_empty() {
            app_dir.push(p.vendor);
        }
        app_dir.push(p.install_name);
        let version_dir = app_dir.join(version_dir_name(p));
        Ok(Layout {
            root,
            app_dir,
            version_dir,
        })
    }

    pub fn marker(&self) -> PathBuf {
        self.version_dir.join(MARKER)
    }

    pub fn is_installed(&self) -> bool {
        self.marker().is_file()
    }

    pub fn lock_file(&self) -> PathBuf {
        self.app_dir.join(".lock")
    }

    pub fn log_file(&self) -> PathBuf {
        self.app_dir.join("install.log")
    }
}

pub(crate) fn version_dir_name(p: &Payload) -> String {
    format!("{}-{}", p.version, p.hash12())
}

/// Interpreter of a venv; `gui` selects pythonw.exe on Windows.
pub(crate) fn venv_python(venv: &Path, gui: bool) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts")
            .join(if gui { "pythonw.exe" } else { "python.exe" })
    } else {
        venv.join("bin").join("python")
    }
}

/// A venv's console script `name` (what the wheel's entry points installed).
pub(crate) fn venv_script(venv: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{name}.exe"))
    } else {
        venv.join("bin").join(name)
    }
}

/// Non-empty value of an environment variable.
pub(crate) fn env_nonempty(name: &str) -> Option<OsString> {
    env::var_os(name).filter(|v| !v.is_empty())
}

pub(crate) fn install_root() -> Result<PathBuf> {
    if let Some(dir) = env_nonempty("PYAKET_INSTALL_DIR") {
        // uv runs with the app dir as cwd, so a relative root would drift.
        return std::path::absolute(PathBuf::from(&dir))
            .with_context(|| format!("PYAKET_INSTALL_DIR={}", PathBuf::from(dir).display()));
    }
    data_dir()
}

fn data_dir() -> Result<PathBuf> {
    if cfg!(windows) {
        if let Some(dir) = env_nonempty("LOCALAPPDATA") {
            return Ok(PathBuf::from(dir));
        }
        if let Some(home) = env_nonempty("USERPROFILE") {
            return Ok(PathBuf::from(home).join("AppData").join("Local"));
        }
        bail!("cannot find the data directory: LOCALAPPDATA is not set (set PYAKET_INSTALL_DIR)");
    }
    if !cfg!(target_os = "macos") {
        // The XDG spec says relative values are invalid and must be ignored.
        if let Some(dir) = env_nonempty("XDG_DATA_HOME").map(PathBuf::from) {
            if dir.is_absolute() {
                return Ok(dir);
            }
        }
    }
    let Some(home) = env_nonempty("HOME") else {
        bail!("cannot find the data directory: HOME is not set (set PYAKET_INSTALL_DIR)");
    };
    let home = PathBuf::from(home);
    Ok(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".local").join("share")
    })
}
