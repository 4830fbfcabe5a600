//! `install` and `uninstall`: a copy of the launcher in the user's bin dir,
//! under the app's console name, so that `my-app --help` works from any
//! shell. No root, no shell-profile or registry edits: when the bin dir is
//! not on PATH, the line that would add it is printed, not run.
//!
//! Ownership: a file at the destination is replaced or removed only when it
//! is ours. Each install records `<sha256>\t<path>` of the copy it made in
//! `<app dir>/.pyaket-bin`; a file is ours when it is listed there with the
//! same content, or is byte-identical to the running launcher. Anything else
//! (another program of the same name, our copy edited by hand, a copy whose
//! record was deleted with the install root) is refused with its path: the
//! user removes it. Scanning the file for the app's name would also accept
//! another app whose name contains this one's.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::atomic::{self, tmp_name};
use crate::dirs::{env_nonempty, Layout, MARKER};
use crate::{install, lock, manage, secure, shared_uv, versions, Payload};
use versions::PARKED;

/// The record of installed copies, in the app dir.
const RECORD: &str = ".pyaket-bin";

macro_rules! errln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stderr(), $($arg)*); }};
}

/// File name of the installed copy: the console script's name (what the
/// user types), else the install name; `.exe` on Windows.
pub(crate) fn installed_name(
    entry_name: &str,
    install_name: &str,
    windows: bool,
) -> Result<String> {
    let name = if entry_name.is_empty() {
        install_name
    } else {
        entry_name
    };
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name.contains(['/', '\\', ':', '\0'])
    {
        bail!("cannot install on PATH: {name:?} is not a usable file name for the app's command");
    }
    Ok(if windows && !name.to_ascii_lowercase().ends_with(".exe") {
        format!("{name}.exe")
    } else {
        name.to_string()
    })
}

/// The user's bin dir: `XDG_BIN_HOME` or `~/.local/bin` on Unix;
/// `%LOCALAPPDATA%\Programs\<vendor or pyaket>\bin` on Windows, which no
/// installer puts on PATH by itself (we print how; editing the user's PATH
/// in the registry is left to the user).
pub(crate) fn bin_dir(vendor: &str) -> Result<PathBuf> {
    if cfg!(windows) {
        let Some(local) = env_nonempty("LOCALAPPDATA") else {
            bail!("cannot find the bin dir: LOCALAPPDATA is not set");
        };
        let vendor = if vendor.is_empty() { "pyaket" } else { vendor };
        return Ok(PathBuf::from(local)
            .join("Programs")
            .join(vendor)
            .join("bin"));
    }
    // Like XDG_DATA_HOME: a relative value is invalid and ignored.
    if let Some(dir) = env_nonempty("XDG_BIN_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir);
        }
    }
    let Some(home) = env_nonempty("HOME") else {
        bail!("cannot find the bin dir: HOME is not set (set XDG_BIN_HOME)");
    };
    Ok(PathBuf::from(home).join(".local").join("bin"))
}

/// Whether `dir` is one of the entries of a PATH value (the same path
/// spelled with a trailing slash, or through a symlink, counts).
pub(crate) fn on_path(dir: &Path, path_var: &OsStr) -> bool {
    let real = fs::canonicalize(dir).ok();
    std::env::split_paths(path_var).any(|entry| {
        if entry.as_os_str().is_empty() {
            return false;
        }
        if same_spelling(&entry, dir) {
            return true;
        }
        real.is_some() && fs::canonicalize(&entry).ok() == real
    })
}

fn same_spelling(a: &Path, b: &Path) -> bool {
    if cfg!(windows) {
        let norm = |p: &Path| {
            p.to_string_lossy()
                .trim_end_matches(['\\', '/'])
                .to_lowercase()
        };
        norm(a) == norm(b)
    } else {
        a == b
    }
}

/// The line the user could run (or add to their profile) to put `dir` on PATH.
fn path_hint(dir: &Path) -> String {
    if cfg!(windows) {
        format!(
            "[Environment]::SetEnvironmentVariable(\"Path\", [Environment]::GetEnvironmentVariable(\"Path\", \"User\") + \";{}\", \"User\")",
            dir.display()
        )
    } else {
        let shown = dir.to_string_lossy();
        let home = env_nonempty("HOME").map(|h| h.to_string_lossy().into_owned());
        let shown = match home.as_deref().and_then(|h| shown.strip_prefix(h)) {
            Some(rest) if rest.starts_with('/') => format!("$HOME{rest}"),
            _ => shown.into_owned(),
        };
        format!("export PATH=\"{shown}:$PATH\"")
    }
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::payload::hex(&hasher.finalize()))
}

/// `(sha256, path)` of each copy this app installed.
fn read_record(layout: &Layout) -> Vec<(String, PathBuf)> {
    let text = fs::read_to_string(layout.app_dir.join(RECORD)).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(sha, path)| (sha.to_string(), PathBuf::from(path)))
        .collect()
}

fn write_record(layout: &Layout, entries: &[(String, PathBuf)]) -> Result<()> {
    let path = layout.app_dir.join(RECORD);
    if entries.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let text: String = entries
        .iter()
        .map(|(sha, p)| format!("{sha}\t{}\n", p.display()))
        .collect();
    let tmp = layout.app_dir.join(tmp_name("bin-"));
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// What is at the destination.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Nothing,
    /// Byte-identical to the running launcher.
    Same,
    /// A copy this app installed (another version of it, say).
    Ours,
    /// Not ours: left alone.
    Foreign,
}

fn classify(dest: &Path, own_sha: Option<&str>, record: &[(String, PathBuf)]) -> Result<Found> {
    let meta = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dest.display())),
        Ok(m) => m,
    };
    // A symlink or a dir is the user's doing, whatever it points at.
    if !meta.is_file() {
        return Ok(Found::Foreign);
    }
    let sha = sha256_file(dest).with_context(|| format!("reading {}", dest.display()))?;
    if own_sha == Some(sha.as_str()) {
        return Ok(Found::Same);
    }
    let recorded = record.iter().any(|(s, p)| *s == sha && p == dest);
    Ok(if recorded {
        Found::Ours
    } else {
        Found::Foreign
    })
}

/// Copies `src` next to `dest`, then renames it over `dest`: a running old
/// copy keeps its inode, a reader never sees half a file. (Windows refuses
/// to replace a running exe: the rename fails, naming both paths.)
fn copy_atomically(src: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().context("the destination has no parent dir")?;
    let tmp = dir.join(tmp_name("install-"));
    let result = (|| -> Result<()> {
        let mut from = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o755);
        let mut to = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        io::copy(&mut from, &mut to).with_context(|| format!("writing {}", tmp.display()))?;
        set_executable(&tmp)?;
        to.sync_all()
            .with_context(|| format!("flushing {} to disk", tmp.display()))?;
        drop(to);
        fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        atomic::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// 0755 whatever the umask.
fn set_executable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn create_bin_dir(dir: &Path) -> Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    set_executable(dir)?;
    Ok(true)
}

/// `update` replaced `path` with a file of `sha256`: if `install` made that
/// copy, its record follows, so that `uninstall` still knows it as ours.
#[cfg(feature = "update")]
pub(crate) fn note_replaced(p: &Payload, path: &Path, sha256: &str) -> Result<()> {
    let layout = Layout::new(p)?;
    if !layout.app_dir.join(RECORD).is_file() {
        return Ok(());
    }
    let _lock = lock::acquire(&layout, &mut io::stderr())?;
    let mut record = read_record(&layout);
    let mut changed = false;
    for (sha, _) in record.iter_mut().filter(|(_, copy)| copy == path) {
        *sha = sha256.to_string();
        changed = true;
    }
    if changed {
        write_record(&layout, &record)?;
    }
    Ok(())
}

pub(crate) fn install(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    secure::check_layout(&layout)?;
    let name = installed_name(p.entry.name, p.install_name, cfg!(windows))?;
    let dir = bin_dir(p.vendor)?;
    let dest = dir.join(&name);
    let exe = std::env::current_exe().context("finding this executable's path")?;
    let own_sha = sha256_file(&exe).with_context(|| format!("reading {}", exe.display()))?;

    let mut err = io::stderr();
    let _lock = lock::acquire(&layout, &mut err)?;
    let mut record = read_record(&layout);
    let what = match classify(&dest, Some(&own_sha), &record)? {
        Found::Foreign => {
            errln!(
                "error: {} exists and was not installed by {} (it differs from this launcher and \
                 is not in {}); not replacing it. Remove or rename it yourself, then run install \
                 again",
                dest.display(),
                p.app,
                layout.app_dir.join(RECORD).display()
            );
            return Ok(1);
        }
        Found::Same => format!("{} is up to date ({} {})", dest.display(), p.app, p.version),
        found => {
            if create_bin_dir(&dir)? {
                errln!("created {}", dir.display());
            }
            copy_atomically(&exe, &dest)?;
            let verb = if found == Found::Ours {
                "replaced"
            } else {
                "installed"
            };
            format!("{verb} {} ({} {})", dest.display(), p.app, p.version)
        }
    };
    record.retain(|(_, path)| *path != dest);
    record.push((own_sha, dest.clone()));
    write_record(&layout, &record)?;
    errln!("{what}");

    let cmd = name.strip_suffix(".exe").unwrap_or(&name);
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    if on_path(&dir, &path_var) {
        errln!("{} is on PATH: run `{cmd}`", dir.display());
    } else {
        errln!(
            "{} is not on PATH: run it as {}, or add the dir to PATH (in your shell profile) with:",
            dir.display(),
            dest.display()
        );
        errln!("  {}", path_hint(&dir));
    }
    errln!(
        "undo with {}",
        manage::how_to_run_as(cmd, p.self_command, "uninstall")
    );
    Ok(0)
}

pub(crate) fn uninstall(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    secure::check_layout(&layout)?;
    let name = installed_name(p.entry.name, p.install_name, cfg!(windows))?;
    let dest = bin_dir(p.vendor)?.join(&name);
    // A copy identical to this launcher is ours even when its record went
    // with a deleted install root.
    let own_sha = std::env::current_exe()
        .ok()
        .and_then(|exe| sha256_file(&exe).ok());
    let mut err = io::stderr();
    let mut removed = 0;
    let mut kept = 0;

    // The app dir missing means nothing of ours is installed, except maybe
    // a copy whose record went with it: not provably ours, left alone.
    let lock = if layout.app_dir.is_dir() {
        Some(lock::acquire(&layout, &mut err)?)
    } else {
        None
    };
    let record = read_record(&layout);
    let mut copies: Vec<PathBuf> = record.iter().map(|(_, p)| p.clone()).collect();
    if !copies.contains(&dest) {
        copies.push(dest);
    }
    let mut left: Vec<(String, PathBuf)> = Vec::new();
    for copy in copies {
        match classify(&copy, own_sha.as_deref(), &record)? {
            Found::Nothing => {}
            Found::Ours | Found::Same => {
                fs::remove_file(&copy).with_context(|| format!("removing {}", copy.display()))?;
                errln!("removed {}", copy.display());
                removed += 1;
            }
            Found::Foreign => {
                errln!(
                    "left {} alone: not installed by {} (or changed since)",
                    copy.display(),
                    p.app
                );
                left.extend(record.iter().filter(|(_, p)| *p == copy).cloned());
            }
        }
    }
    if lock.is_some() {
        write_record(&layout, &left)?;
    }

    if lock.is_some() {
        let mut dirs = versions::other_versions(&layout);
        let current = &layout.version_dir;
        if current.join(MARKER).exists() || current.join(PARKED).exists() {
            dirs.push(current.clone());
        }
        for dir in &dirs {
            errln!("removing {}", dir.display());
        }
        let again = manage::how_to_run(p, "uninstall");
        let n = versions::remove_versions(&layout, dirs.iter().cloned(), &again, &mut err);
        removed += n;
        kept += dirs.len() - n;
        install::remove_stale_temps(&layout);
        // What an install leaves in the app dir besides versions and
        // Pythons. The lock file goes while held (so no installer starts on
        // a file about to vanish) where the OS allows it; Windows does not
        // delete an open file, so there it goes right after.
        let _ = fs::remove_file(layout.log_file());
        let _ = fs::remove_file(layout.lock_file());
        drop(lock);
        let _ = fs::remove_file(layout.lock_file());
        match fs::remove_dir(&layout.app_dir) {
            Ok(()) => {
                errln!("removed {}", layout.app_dir.display());
                removed += 1;
                // The vendor dir goes too when this was its last app.
                if let Some(vendor_dir) = layout.app_dir.parent().filter(|_| !p.vendor.is_empty()) {
                    if fs::remove_dir(vendor_dir).is_ok() {
                        errln!("removed {}", vendor_dir.display());
                    }
                }
            }
            Err(_) => errln!(
                "kept {}: it still holds files (listed by `ls -a`)",
                layout.app_dir.display()
            ),
        }
    }

    let uv_base = shared_uv::base_dir(&layout.root);
    if uv_base.exists() {
        let others = other_apps(&layout);
        if others.is_empty() {
            let trash = layout.root.join(".pyaket").join(tmp_name("rm-"));
            let gone = fs::rename(&uv_base, &trash)
                .and_then(|()| fs::remove_dir_all(&trash))
                .with_context(|| format!("removing {}", uv_base.display()));
            match gone {
                Ok(()) => {
                    errln!("removed {} (no other app uses it)", uv_base.display());
                    removed += 1;
                    let pyaket = layout.root.join(".pyaket");
                    atomic::clean_stale(&pyaket);
                    let _ = fs::remove_dir(&pyaket);
                }
                Err(e) => errln!("warning: {e:#}"),
            }
        } else {
            errln!(
                "kept the shared uv {}: other apps use it ({})",
                uv_base.display(),
                others
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    if removed == 0 && kept == 0 {
        errln!("{} is not installed: nothing to remove", p.app);
    }
    if kept > 0 {
        errln!(
            "{kept} version(s) in use by running apps were kept: run {} again once they exit",
            manage::how_to_run(p, "uninstall")
        );
        return Ok(1);
    }
    Ok(0)
}

/// Other pyaket app dirs under the install root: dirs one or two levels
/// down (`<app>` or `<vendor>/<app>`) holding an installed version or an
/// install in progress. The root may be a shared data dir
/// (`~/.local/share`), so a dir counts only with those signs.
fn other_apps(layout: &Layout) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let children = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    for first in children(&layout.root) {
        let mut candidates = vec![first.clone()];
        candidates.extend(children(&first));
        for dir in candidates {
            if dir != layout.app_dir && is_app_dir(&dir) {
                found.push(dir);
            }
        }
    }
    found
}

fn is_app_dir(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        (name.starts_with(crate::dirs::TMP_PREFIX) && name.ends_with(".owner"))
            || e.path().join(MARKER).exists()
            || e.path().join(PARKED).exists()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn the_console_name_is_preferred_and_checked() {
        assert_eq!(installed_name("my-app", "my_app", false).unwrap(), "my-app");
        assert_eq!(installed_name("", "my_app", false).unwrap(), "my_app");
        assert_eq!(installed_name("my-app", "x", true).unwrap(), "my-app.exe");
        assert_eq!(installed_name("My.EXE", "x", true).unwrap(), "My.EXE");
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "c:x"] {
            assert!(installed_name(bad, "", false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_membership() {
        let dir = std::env::temp_dir().join(format!("pyaket-path-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let other = std::env::temp_dir().join("pyaket-path-nowhere");
        let join = |parts: &[&Path]| std::env::join_paths(parts).unwrap();
        assert!(on_path(&dir, &join(&[&other, &dir])));
        assert!(!on_path(&dir, &join(&[&other])));
        assert!(!on_path(&dir, &OsString::new()));
        let mut slash = dir.clone().into_os_string();
        slash.push(std::path::MAIN_SEPARATOR_STR);
        assert!(on_path(&dir, &join(&[Path::new(&slash)])));
        #[cfg(unix)]
        {
            let link = dir.with_extension("link");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&dir, &link).unwrap();
            assert!(on_path(&dir, &join(&[&link])));
            fs::remove_file(&link).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_recorded_or_identical_files_are_ours() {
        let dir = std::env::temp_dir().join(format!("pyaket-own-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("app");
        assert_eq!(classify(&dest, None, &[]).unwrap(), Found::Nothing);
        fs::write(&dest, b"v1").unwrap();
        let sha = sha256_file(&dest).unwrap();
        assert_eq!(classify(&dest, Some(&sha), &[]).unwrap(), Found::Same);
        assert_eq!(classify(&dest, None, &[]).unwrap(), Found::Foreign);
        let record = vec![(sha.clone(), dest.clone())];
        assert_eq!(classify(&dest, None, &record).unwrap(), Found::Ours);
        // Changed since: no longer ours.
        fs::write(&dest, b"edited").unwrap();
        assert_eq!(classify(&dest, None, &record).unwrap(), Found::Foreign);
        fs::remove_dir_all(&dir).unwrap();
    }
}
