//! First run: extract the payload, build a venv with uv, publish it atomically.
//!
//! Everything happens under the app lock in a temp dir of the app dir
//! ([`TempDir`]), renamed to the version dir only after the marker is
//! written, so a version dir either is complete or does not exist. A crash
//! leaves only the temp dir, which the next install (or `clean`)
//! removes once its owner is gone.
//!
//! How uv installs, and why (figures: uv 0.13.9, warm uv cache, ext4, two
//! busy cores; medians of 7):
//! - `--link-mode=copy`: uv's default on Linux hardlinks every installed file
//!   to its global cache, so editing one app's file in place edits the cache
//!   and every other environment installed from it; `clone` is no way out,
//!   uv falls back to hardlinks where the filesystem cannot reflink (ext4:
//!   717 of 753 files hardlinked). Copying costs little next to a first run:
//!   `uv venv` + `uv pip install` without bytecode, example app (colorama):
//!   hardlink 68 ms, copy 81 ms, clone 59 ms; an app with rich, click and
//!   httpx (753 files, 11 MB): hardlink 153 ms, copy 484 ms (min 74 vs 195),
//!   clone 138 ms, while that app's whole first run takes ~1.7-2.7 s.
//! - `--compile-bytecode`: without it every run of a read-only install, or
//!   with PYTHONDONTWRITEBYTECODE=1, compiles every import again. Warm start
//!   of the rich/click/httpx app with PYTHONDONTWRITEBYTECODE=1 (user CPU):
//!   147 ms compiled vs 359 ms not, 137 ms for a `pip install`ed venv of the
//!   same wheel; unset: 131 ms vs 135 ms vs 141 ms. It costs the first run
//!   ~1.3-2 s for that app (~150 ms for the example), the same as
//!   `uv venv` + `uv pip install --compile-bytecode`: first run 2.73 s vs
//!   2.72 s (example: 0.49 s vs 0.55 s).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::atomic::{self, TempDir};
use crate::dirs::{self, env_nonempty, Layout, MARKER};
use crate::lock;
use crate::out::Out;
use crate::python_archive;
use crate::shared_uv::shared_uv;
use crate::uv;
use crate::versions::{prune_versions, remove_dir_locked};
use crate::Payload;

/// `uv pip install --link-mode`; see the module doc.
const LINK_MODE: &str = "--link-mode=copy";

/// Installs this version unless another process did it meanwhile.
pub(crate) fn ensure_installed(p: &Payload, layout: &Layout) -> Result<()> {
    let mut out = Out::new(p, layout)?;
    let result = (|| {
        let _lock = lock::acquire(layout, &mut out)?;
        if layout.is_installed() {
            return Ok(());
        }
        // Only now: a launcher waiting for the lock must die of Ctrl+C at once.
        uv::catch_signals();
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
    })();
    // The temp dir and the lock are gone by now.
    uv::die_if_interrupted();
    result
}

/// Removes this version (if installed) and installs it again.
pub(crate) fn reinstall(p: &Payload, layout: &Layout, out: &mut Out) -> Result<()> {
    let result = (|| {
        let _lock = lock::acquire(layout, out)?;
        uv::catch_signals();
        remove_dir_locked(layout, &layout.version_dir)?;
        install_locked(p, layout, out)?;
        prune_versions(p, layout, out);
        Ok(())
    })();
    uv::die_if_interrupted();
    result
}

/// Caller holds the lock.
pub(crate) fn install_locked(p: &Payload, layout: &Layout, out: &mut Out) -> Result<()> {
    remove_stale_temps(layout);
    TempDir::new(&layout.app_dir, "")
        .and_then(|tmp| build_version(p, layout, tmp, out))
        .with_context(|| format!("installing {} {} failed", p.app, p.version))
}

/// Removes the temp dirs of crashed installs and uv extractions under the
/// install root (those whose owner process is gone; see [`atomic`]) and
/// returns how many. Every install does it, and so does `clean`, both under
/// the app lock (a live `remove` elsewhere holds it while deleting its
/// `.tmp-rm-*` dir, which has no owner file).
pub(crate) fn remove_stale_temps(layout: &Layout) -> usize {
    atomic::clean_stale(&layout.app_dir)
        + atomic::clean_stale(&crate::shared_uv::base_dir(&layout.root))
}

fn build_version(p: &Payload, layout: &Layout, tmp: TempDir, out: &mut Out) -> Result<()> {
    let payload_dir = tmp.path().join("payload");
    let venv = tmp.path().join("venv");

    let uv = uv_path(p, layout)?;
    if uv.parent().is_some_and(|d| !d.as_os_str().is_empty()) {
        uv::preflight(&uv)?;
    }
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
    let python = python_request(p, layout, &payload_dir)?;

    let make_venv = |out: &Out| -> Result<()> {
        if venv.exists() {
            fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
        }
        let mut cmd = uv::command(&uv, layout, out)?;
        cmd.args(["venv", "--no-config", "--relocatable", "--no-project"]);
        cmd.arg("--python").arg(&python).arg(&venv);
        uv::run(cmd, "venv", &uv)
    };
    make_venv(out)?;

    let venv_python = dirs::venv_python(&venv, false);
    let pip_install = |out: &Out| -> Result<Command> {
        let mut cmd = uv::command(&uv, layout, out)?;
        cmd.args([
            "pip",
            "install",
            "--no-config",
            LINK_MODE,
            "--compile-bytecode",
        ]);
        cmd.arg("--python").arg(&venv_python);
        if !find_links.is_empty() {
            cmd.args(["--offline", "--no-index"]);
            for dir in &find_links {
                cmd.arg("--find-links").arg(dir);
            }
        }
        Ok(cmd)
    };
    // A named requirement: a bare URL or path whose folder holds `#` is
    // taken for a local directory (and `--require-hashes` refuses those).
    let wheel_req = format!("{} @ {}", wheel_dist_name(&wheel)?, file_url(&wheel));
    match &lock_file {
        Some(lock_file) => {
            // One uv run for the lock and the app's wheel (pinned by its own
            // hash, so --require-hashes covers it too).
            let requirements = payload_dir.join("install-requirements.txt");
            let mut text = fs::read_to_string(lock_file)
                .with_context(|| format!("reading {}", lock_file.display()))?;
            text.push_str(&format!(
                "\n{wheel_req} --hash=sha256:{}\n",
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
            if !(cache_first && from_cache(install(out)?, &uv, out)?) {
                if cache_first {
                    // A miss fails before installing anything, but only a
                    // fresh venv proves it: a half-installed package would
                    // look installed to the second attempt.
                    make_venv(out)?;
                }
                uv::run(install(out)?, "pip install -r <lock>", &uv)?;
            }
        }
        None => {
            // Without a lock nothing else names the extras' dependencies.
            let mut cmd = pip_install(out)?;
            cmd.arg(with_extras(&wheel_req, p.extras));
            uv::run(cmd, "pip install <wheel>", &uv)?;
        }
    }

    check_bytecode(&venv_python, &venv)?;
    fs::remove_dir_all(&payload_dir)
        .with_context(|| format!("removing {}", payload_dir.display()))?;
    atomic::flush_tree(tmp.path())?;
    let marker = tmp.path().join(MARKER);
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
    atomic::sync_file(&marker)?;

    // Only reachable if someone deleted the marker by hand.
    if layout.version_dir.exists() {
        remove_dir_locked(layout, &layout.version_dir)?;
    }
    tmp.publish(&layout.version_dir)
}

/// Below this much free space after an install, the bytecode is checked.
const NEARLY_FULL: u64 = 16 << 20;

/// Loads every .pyc under the venv; prints the bad ones.
const CHECK_PYC: &str = r#"
import marshal, os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".pyc"):
            p = os.path.join(d, f)
            try:
                with open(p, "rb") as fh:
                    marshal.loads(fh.read()[16:])
            except Exception as e:
                print(f"{p} ({e})")
"#;

/// CPython writes .pyc files without checking for short writes (importlib's
/// `_write_atomic`), so on a full disk uv's `--compile-bytecode` publishes
/// truncated ones and reports success; every import of such a module then
/// fails with "EOFError: marshal data too short", in every later run. A
/// short write happens only when the disk fills up, and loading all the
/// bytecode costs ~60 ms of CPU (660 files of an app with rich, click and
/// httpx), so it is checked only when the disk is nearly full afterwards.
fn check_bytecode(python: &Path, venv: &Path) -> Result<()> {
    let Some(free) = free_space(venv) else {
        return Ok(());
    };
    if free >= NEARLY_FULL {
        return Ok(());
    }
    let run = Command::new(python)
        .args(["-I", "-S", "-c", CHECK_PYC])
        .arg(venv)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let bad = String::from_utf8_lossy(&run.stdout);
    let bad: Vec<&str> = bad.lines().filter(|l| !l.is_empty()).collect();
    if !run.status.success() || !bad.is_empty() {
        bail!(
            "the bytecode of {} file(s) was written truncated (No space left on device: {} KB free on the filesystem of {}); free some space and run again: {}",
            bad.len(),
            free_space(venv).unwrap_or(free) / 1024,
            venv.display(),
            bad.first().copied().unwrap_or("checking the bytecode failed")
        );
    }
    Ok(())
}

/// Bytes an unprivileged user may still write on the filesystem of `path`.
fn free_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The uv binary: PYAKET_UV, else the embedded one (extracted once per
/// machine, verified by content), else `uv` on PATH.
fn uv_path(p: &Payload, layout: &Layout) -> Result<PathBuf> {
    if let Some(uv) = env_nonempty("PYAKET_UV") {
        return Ok(absolute_if_path(uv).into());
    }
    match p.uv {
        Some(name) => shared_uv(&layout.root, p.file(name)?, p.uv_version),
        None => Ok(PathBuf::from(if cfg!(windows) { "uv.exe" } else { "uv" })),
    }
}

/// Runs an install with `--offline`: Ok(true) if uv's cache had everything,
/// Ok(false) on a cache miss (uv says so, having installed nothing), and the
/// error with uv's own words for any other failure (a full disk must not be
/// retried into the same venv, nor hidden behind the retry's symptoms).
fn from_cache(mut cmd: Command, uv: &Path, out: &mut Out) -> Result<bool> {
    cmd.arg("--offline");
    let run = uv::output(cmd, uv)?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    if run.status.success() {
        let _ = out.write_all(&run.stdout);
        let _ = out.write_all(&run.stderr);
        return Ok(true);
    }
    if is_cache_miss(&stderr) && uv::interrupted().is_none() {
        return Ok(false);
    }
    uv::check_status(run.status, "pip install --offline", uv, &stderr)?;
    Ok(true)
}

/// uv's words (0.13) for an offline run missing something: the resolver's
/// "Because colorama was not found in the cache ... hint: Packages were
/// unavailable because the network was disabled", or the downloader's
/// "Network connectivity is disabled, but the requested data wasn't found
/// in the cache".
fn is_cache_miss(stderr: &str) -> bool {
    !stderr.contains("os error")
        && (stderr.contains("network was disabled")
            || stderr.contains("Network connectivity is disabled"))
}

/// The distribution name of a wheel, from its file name (`name-version-...whl`).
fn wheel_dist_name(wheel: &Path) -> Result<String> {
    let file_name = wheel.file_name().map(|n| n.to_string_lossy().into_owned());
    match file_name.as_deref().and_then(|n| n.split('-').next()) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => bail!("{} is not a wheel file name", wheel.display()),
    }
}

/// `name @ url` with the extras after the name: `name[a,b] @ url`.
fn with_extras(requirement: &str, extras: &[&str]) -> String {
    match requirement.split_once(" @ ") {
        Some((name, url)) if !extras.is_empty() => format!("{name}[{}] @ {url}", extras.join(",")),
        _ => requirement.to_string(),
    }
}

/// `file://` URL of an absolute path, percent-encoded: a requirements line
/// cannot hold a raw path with spaces (`C:\Users\Jane Doe\...`) or `#`.
/// Only on Windows is `\` a separator; on Unix it is a file name character.
fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy();
    let text = if cfg!(windows) {
        text.replace('\\', "/")
    } else {
        text.into_owned()
    };
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
fn python_request(p: &Payload, layout: &Layout, payload_dir: &Path) -> Result<OsString> {
    if let Some(python) = env_nonempty("PYAKET_PYTHON") {
        return Ok(absolute_if_path(python));
    }
    if let Some(name) = p.python_archive {
        return Ok(python_archive::unpack(p, layout, name, payload_dir)?.into_os_string());
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

#[cfg(test)]
mod tests {
    use super::{file_url, is_cache_miss, wheel_dist_name, with_extras};
    use std::path::Path;

    #[test]
    fn extras_follow_the_name() {
        let req = "httpx @ file:///a/httpx-0.28.1-py3-none-any.whl";
        assert_eq!(with_extras(req, &[]), req);
        assert_eq!(
            with_extras(req, &["cli", "http2"]),
            "httpx[cli,http2] @ file:///a/httpx-0.28.1-py3-none-any.whl"
        );
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            file_url(Path::new("/home/jane doe/.local/share/x_y-1.0+local.whl")),
            "file:///home/jane%20doe/.local/share/x_y-1.0%2Blocal.whl"
        );
        assert_eq!(file_url(Path::new("/tmp/é")), "file:///tmp/%C3%A9");
        if cfg!(windows) {
            assert_eq!(
                file_url(Path::new(r"C:\Users\Jane Doe\AppData\a#b.whl")),
                "file:///C:/Users/Jane%20Doe/AppData/a%23b.whl"
            );
        } else {
            // `\` is a file name character on Unix, not a separator.
            assert_eq!(
                file_url(Path::new(r"/srv/a\b/c#d/x.whl")),
                "file:///srv/a%5Cb/c%23d/x.whl"
            );
        }
    }

    #[test]
    fn wheel_names() {
        assert_eq!(
            wheel_dist_name(Path::new("/a#b/example_app-1.0.0-py3-none-any.whl")).unwrap(),
            "example_app"
        );
        assert!(wheel_dist_name(Path::new("/")).is_err());
    }

    #[test]
    fn cache_misses_and_real_failures() {
        // uv 0.13.9, verbatim.
        assert!(is_cache_miss(
            "error: No solution found when resolving dependencies\n  cause: Because colorama was not found in the cache and you require colorama==0.4.6, we can conclude that your requirements are unsatisfiable.\n\nhint: Packages were unavailable because the network was disabled. When the network is disabled, registry packages may only be read from the cache."
        ));
        assert!(is_cache_miss(
            "error: Failed to download `colorama==0.4.6`\n  cause: Network connectivity is disabled, but the requested data wasn't found in the cache: https://files.pythonhosted.org/packages/d1/d6/x/colorama-0.4.6-py2.py3-none-any.whl"
        ));
        assert!(!is_cache_miss(
            "error: Failed to install: colorama-0.4.6-py2.py3-none-any.whl (colorama==0.4.6)\n  Caused by: failed to write to file `/x/venv/lib/python3.11/site-packages/colorama/ansi.py`: No space left on device (os error 28)"
        ));
    }
}
