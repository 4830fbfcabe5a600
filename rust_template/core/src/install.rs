//! First run: extract the payload, build a venv with uv, publish it atomically.
//!
//! Everything happens under the app lock in `<app dir>/.tmp-<pid>-<nanos>/`,
//! which is renamed to the version dir only after the marker is written, so
//! a version dir either is complete or does not exist. A crash leaves only a
//! `.tmp-*` dir, removed by the next install (holding the lock proves that
//! nobody else is using it).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::dirs::{self, env_nonempty, Layout, MARKER, PYTHON_PREFIX, TMP_PREFIX};
use crate::lock;
use crate::shared_uv::shared_uv;
use crate::versions::{prune_versions, remove_dir_locked};
use crate::Payload;

/// Where install progress and uv's output go: the console, or the app's
/// install.log for GUI apps (which have no console on Windows).
pub(crate) struct Out {
    log: Option<File>,
}

impl Out {
    pub fn new(p: &Payload, layout: &Layout) -> Result<Out> {
        let log = if p.gui { Some(open_log(layout)?) } else { None };
        Ok(Out { log })
    }

    /// Stdio for uv: never our stdout, which may be piped into another
    /// program expecting only the app's output.
    fn stdio(&self) -> Result<Stdio> {
        Ok(match &self.log {
            Some(f) => Stdio::from(f.try_clone().context("duplicating the log file handle")?),
            None => Stdio::from(io::stderr()),
        })
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.log {
            Some(f) => f.write(buf),
            None => io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.log {
            Some(f) => f.flush(),
            None => io::stderr().flush(),
        }
    }
}

pub(crate) fn open_log(layout: &Layout) -> Result<File> {
    fs::create_dir_all(&layout.app_dir)
        .with_context(|| format!("creating {}", layout.app_dir.display()))?;
    let path = layout.log_file();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Installs this version unless another process did it meanwhile.
pub(crate) fn ensure_installed(p: &Payload, layout: &Layout) -> Result<()> {
    let mut out = Out::new(p, layout)?;
    let _lock = lock::acquire(layout, &mut out)?;
    if layout.is_installed() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{} {}: first run, installing into {} ...",
        p.app,
        p.version,
        layout.version_dir.display()
    );
    install_locked(p, layout, &mut out)?;
    prune_versions(p, layout, &mut out);
    Ok(())
}

/// Removes this version (if installed) and installs it again.
pub(crate) fn reinstall(p: &Payload, layout: &Layout, out: &mut Out) -> Result<()> {
    let _lock = lock::acquire(layout, out)?;
    remove_dir_locked(layout, &layout.version_dir)?;
    install_locked(p, layout, out)?;
    prune_versions(p, layout, out);
    Ok(())
}

/// Caller holds the lock.
pub(crate) fn install_locked(p: &Payload, layout: &Layout, out: &mut Out) -> Result<()> {
    clean_stale_tmp(&layout.app_dir);
    let tmp = layout.app_dir.join(tmp_name(""));
    let result = fs::create_dir(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))
        .and_then(|()| build_version(p, layout, &tmp, out));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.with_context(|| format!("installing {} {} failed", p.app, p.version))
}

fn build_version(p: &Payload, layout: &Layout, tmp: &Path, out: &mut Out) -> Result<()> {
    let payload_dir = tmp.join("payload");
    let venv = tmp.join("venv");

    let uv = uv_path(p, layout)?;
    let wheel_file = p.file(p.wheel)?;
    let wheel = wheel_file.extract_to(&payload_dir)?;
    let lock_file = match p.lock {
        Some(name) => Some(p.file(name)?.extract_to(&payload_dir)?),
        None => None,
    };
    let mut find_links: Vec<PathBuf> = Vec::new();
    for name in p.wheels {
        let path = p.file(name)?.extract_to(&payload_dir)?;
        if let Some(dir) = path.parent() {
            if !find_links.iter().any(|d| d == dir) {
                find_links.push(dir.to_path_buf());
            }
        }
    }
    let python = python_request(p, layout, tmp, &payload_dir)?;

    let mut cmd = uv_command(&uv, layout, out)?;
    cmd.args(["venv", "--no-config", "--relocatable", "--no-project"]);
    cmd.arg("--python").arg(&python).arg(&venv);
    run_uv(cmd, "venv", &uv)?;

    let venv_python = dirs::venv_python(&venv, false);
    let pip_install = |out: &Out| -> Result<Command> {
        let mut cmd = uv_command(&uv, layout, out)?;
        cmd.args(["pip", "install", "--no-config", "--python"])
            .arg(&venv_python);
        if !find_links.is_empty() {
            cmd.args(["--offline", "--no-index"]);
            for dir in &find_links {
                cmd.arg("--find-links").arg(dir);
            }
        }
        Ok(cmd)
    };
    match &lock_file {
        Some(lock_file) => {
            // One uv run for the lock and the app's wheel (pinned by its own
            // hash, so --require-hashes covers it too).
            let requirements = payload_dir.join("install-requirements.txt");
            let mut text = fs::read_to_string(lock_file)
                .with_context(|| format!("reading {}", lock_file.display()))?;
            text.push_str(&format!(
                "\n{} --hash=sha256:{}\n",
                file_url(&wheel),
                wheel_file.sha256
            ));
            fs::write(&requirements, text)
                .with_context(|| format!("writing {}", requirements.display()))?;
            let install = |out: &Out| -> Result<Command> {
                let mut cmd = pip_install(out)?;
                cmd.arg("-r").arg(&requirements).arg("--require-hashes");
                Ok(cmd)
            };
            // Every file is pinned by hash: when uv's cache already holds them
            // all (another app, an earlier version), the index has nothing to
            // add, and asking it costs more than the whole install.
            let cache_first = find_links.is_empty() && env_nonempty("UV_OFFLINE").is_none();
            if !(cache_first && from_cache(install(out)?, out)) {
                run_uv(install(out)?, "pip install -r <lock>", &uv)?;
            }
        }
        None => {
            let mut cmd = pip_install(out)?;
            cmd.arg(&wheel);
            run_uv(cmd, "pip install <wheel>", &uv)?;
        }
    }

    fs::remove_dir_all(&payload_dir)
        .with_context(|| format!("removing {}", payload_dir.display()))?;
    let marker = tmp.join(MARKER);
    let uv_desc = match (env_nonempty("PYAKET_UV"), p.uv) {
        (Some(path), _) => format!("PYAKET_UV={}", Path::new(&path).display()),
        (None, Some(_)) => p.uv_version.to_string(),
        (None, None) => "uv from PATH".to_string(),
    };
    fs::write(
        &marker,
        format!(
            "version={}\npayload_hash={}\nuv={}\npython={}\ninstalled_at={}\n",
            p.version,
            p.payload_hash,
            uv_desc,
            Path::new(&python).display(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
    )
    .with_context(|| format!("writing {}", marker.display()))?;

    // Only reachable if someone deleted the marker by hand.
    if layout.version_dir.exists() {
        remove_dir_locked(layout, &layout.version_dir)?;
    }
    fs::rename(tmp, &layout.version_dir).with_context(|| {
        format!(
            "renaming {} to {}",
            tmp.display(),
            layout.version_dir.display()
        )
    })?;
    Ok(())
}

/// The uv binary: PYAKET_UV, else the embedded one (extracted once per
/// machine), else `uv` on PATH.
fn uv_path(p: &Payload, layout: &Layout) -> Result<PathBuf> {
    if let Some(uv) = env_nonempty("PYAKET_UV") {
        return Ok(absolute_if_path(uv).into());
    }
    match p.uv {
        Some(name) => shared_uv(&layout.root, p.file(name)?, p.uv_version),
        None => Ok(PathBuf::from(if cfg!(windows) { "uv.exe" } else { "uv" })),
    }
}

/// Runs an install with `--offline`: true if uv's cache had everything. A
/// miss fails in resolution, before anything is installed, and its
/// complaint is dropped; a hit's output goes where uv's output goes.
fn from_cache(mut cmd: Command, out: &mut Out) -> bool {
    cmd.arg("--offline")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match cmd.output() {
        Ok(run) if run.status.success() => {
            let _ = out.write_all(&run.stdout);
            let _ = out.write_all(&run.stderr);
            true
        }
        _ => false,
    }
}

/// `file://` URL of an absolute path, percent-encoded: a requirements line
/// cannot hold a raw path with spaces (`C:\Users\Jane Doe\...`).
fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut url = String::from(if text.starts_with('/') {
        "file://"
    } else {
        "file:///"
    });
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The `--python` argument of `uv venv`: PYAKET_PYTHON, else the embedded
/// Python archive's interpreter, else the manifest's request.
fn python_request(
    p: &Payload,
    layout: &Layout,
    tmp: &Path,
    payload_dir: &Path,
) -> Result<OsString> {
    if let Some(python) = env_nonempty("PYAKET_PYTHON") {
        return Ok(absolute_if_path(python));
    }
    if let Some(name) = p.python_archive {
        return Ok(install_python_archive(p, layout, name, tmp, payload_dir)?.into_os_string());
    }
    Ok(OsString::from(p.python))
}

/// uv runs in the app dir, so a relative path from the user's cwd must be made
/// absolute; a bare name ("uv", "3.12", ">=3.9") is left to uv's own lookup.
fn absolute_if_path(value: OsString) -> OsString {
    let path = Path::new(&value);
    if path.components().count() > 1 && path.is_relative() {
        if let Ok(abs) = std::path::absolute(path) {
            return abs.into_os_string();
        }
    }
    value
}

/// Unpacks a python-build-standalone `install_only` archive into
/// `<app dir>/python-<sha12>/`, shared by all versions embedding the same
/// archive. It lives outside the version dir because a venv's pyvenv.cfg
/// records the absolute path of its base interpreter.
fn install_python_archive(
    p: &Payload,
    layout: &Layout,
    name: &str,
    tmp: &Path,
    payload_dir: &Path,
) -> Result<PathBuf> {
    let file = p.file(name)?;
    let dir = layout.app_dir.join(format!(
        "{PYTHON_PREFIX}{}",
        file.sha256.get(..12).unwrap_or(file.sha256)
    ));
    if !dir.is_dir() {
        let archive = file.extract_to(payload_dir)?;
        let staging = tmp.join("python-staging");
        let reader =
            File::open(&archive).with_context(|| format!("opening {}", archive.display()))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(reader)));
        tar.set_preserve_mtime(true);
        tar.unpack(&staging)
            .with_context(|| format!("unpacking {name} into {}", staging.display()))?;
        fs::remove_file(&archive).with_context(|| format!("removing {}", archive.display()))?;
        fs::rename(&staging, &dir)
            .with_context(|| format!("renaming {} to {}", staging.display(), dir.display()))?;
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

/// Environment variables that would change what uv installs or where.
/// Network, index, TLS, proxy and cache settings stay, so the app installs
/// behind the user's proxy or mirror.
const UV_REMOVED: &[&str] = &[
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
];

const UV_KEPT: &[&str] = &[
    "UV_CACHE_DIR",
    "UV_NO_CACHE",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_KEYRING_PROVIDER",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "UV_INSECURE_HOST",
    "UV_OFFLINE",
    "UV_PYTHON_DOWNLOADS",
    "UV_PYTHON_INSTALL_DIR",
    "UV_PYTHON_INSTALL_MIRROR",
    "UV_PYPY_INSTALL_MIRROR",
    "UV_PYTHON_DOWNLOADS_JSON_URL",
    "UV_HTTP_TIMEOUT",
    "UV_REQUEST_TIMEOUT",
    "UV_HTTP_RETRIES",
    "UV_CONCURRENT_DOWNLOADS",
    "UV_CONCURRENT_BUILDS",
    "UV_CONCURRENT_INSTALLS",
    "UV_NO_PROGRESS",
    "UV_GITHUB_TOKEN",
];

/// UV_INDEX, UV_INDEX_URL, UV_INDEX_STRATEGY and UV_INDEX_<NAME>_USERNAME/PASSWORD.
const UV_KEPT_PREFIX: &str = "UV_INDEX";

fn uv_env_removed(key: &OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    // Windows environment names are case-insensitive.
    let key = key.to_ascii_uppercase();
    if UV_REMOVED.contains(&key.as_str()) {
        return true;
    }
    key.starts_with("UV_") && !key.starts_with(UV_KEPT_PREFIX) && !UV_KEPT.contains(&key.as_str())
}

fn uv_command(uv: &Path, layout: &Layout, out: &Out) -> Result<Command> {
    let mut cmd = Command::new(uv);
    if out.log.is_none() {
        // On the console the app's users get one line from us, not uv's
        // chatter about temp paths ("Activate with: ..."); errors still show.
        cmd.arg("--quiet");
    }
    // Not the user's cwd: uv would read uv.toml, pyproject.toml or .env from it.
    cmd.current_dir(&layout.app_dir);
    for (key, _) in std::env::vars_os() {
        if uv_env_removed(&key) {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(out.stdio()?)
        .stderr(out.stdio()?);
    #[cfg(windows)]
    if out.log.is_some() {
        use std::os::windows::process::CommandExt;
        // A GUI app must not flash a console window for uv.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NO_WINDOW);
    }
    Ok(cmd)
}

fn run_uv(mut cmd: Command, what: &str, uv: &Path) -> Result<()> {
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                && uv.parent().is_none_or(|d| d.as_os_str().is_empty()) =>
        {
            bail!("uv was not found on PATH (install uv or set PYAKET_UV to a uv binary)")
        }
        Err(e) => return Err(e).with_context(|| format!("running {}", uv.display())),
    };
    if !status.success() {
        bail!("`uv {what}` failed ({status})");
    }
    Ok(())
}

/// A name no other process uses, starting with TMP_PREFIX so that a crash's
/// leftovers are recognised and removed.
pub(crate) fn tmp_name(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TMP_PREFIX}{kind}{}-{nanos}", std::process::id())
}

fn clean_stale_tmp(app_dir: &Path) {
    let Ok(entries) = fs::read_dir(app_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let path = entry.path();
            // Best effort: on Windows a file may still be open by a dying process.
            if fs::remove_dir_all(&path).is_err() {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{file_url, uv_env_removed};
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn file_urls() {
        assert_eq!(
            file_url(Path::new("/home/jane doe/.local/share/x_y-1.0+local.whl")),
            "file:///home/jane%20doe/.local/share/x_y-1.0%2Blocal.whl"
        );
        assert_eq!(
            file_url(Path::new(r"C:\Users\Jane Doe\AppData\a#b.whl")),
            "file:///C:/Users/Jane%20Doe/AppData/a%23b.whl"
        );
        assert_eq!(file_url(Path::new("/tmp/é")), "file:///tmp/%C3%A9");
    }

    #[test]
    fn uv_env_filter() {
        for k in [
            "VIRTUAL_ENV",
            "PYTHONPATH",
            "UV_PYTHON",
            "UV_CONFIG_FILE",
            "UV_SYSTEM_PYTHON",
            "UV_REQUIRE_HASHES",
            "UV_PROJECT_ENVIRONMENT",
            "UV_LINK_MODE",
        ] {
            assert!(uv_env_removed(OsStr::new(k)), "{k}");
        }
        for k in [
            "UV_INDEX_URL",
            "UV_DEFAULT_INDEX",
            "UV_EXTRA_INDEX_URL",
            "UV_INDEX_FOO_PASSWORD",
            "UV_CACHE_DIR",
            "UV_NATIVE_TLS",
            "UV_OFFLINE",
            "UV_PYTHON_DOWNLOADS",
            "UV_PYTHON_INSTALL_DIR",
            "HTTPS_PROXY",
            "SSL_CERT_FILE",
            "PATH",
        ] {
            assert!(!uv_env_removed(OsStr::new(k)), "{k}");
        }
    }
}
