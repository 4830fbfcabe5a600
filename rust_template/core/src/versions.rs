//! Removing installed versions without pulling them from under running apps.
//!
//! A version's marker file is also its "in use" lock: every starting app
//! holds a shared lock on it for as long as it runs (see `run::enter`), and
//! whoever removes a version (remove, restore, pruning, clean; always under
//! the app lock) first takes it exclusively. Pruning and clean skip a version
//! in use and leave it to a later prune; remove and restore wait, bounded.
//!
//! While waiting, the remover renames the marker to [`PARKED`]: apps started
//! meanwhile no longer find it and take the install path, which waits for the
//! app lock the remover holds. Without that, apps started one after another
//! would keep the version in use forever (a shared lock is granted while an
//! exclusive one waits). The parked file is the same inode, so the running
//! apps' locks still count; on giving up it gets its name back.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::dirs::{Layout, MARKER, PYTHON_PREFIX};
use crate::lock::{self, Wait};
use crate::Payload;

/// The marker's name while a remover waits for the apps using it to exit.
/// A remover killed meanwhile leaves it: the version then looks not
/// installed, and the next run installs it again, replacing the dir with
/// [`remove_dir_locked`] (which still honours the apps' locks on it).
pub(crate) const PARKED: &str = ".pyaket-removing";

/// What to do when apps of a version are running.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InUse {
    /// Wait for them (bounded), then fail.
    Wait,
    /// Keep the version; a later prune removes it.
    Skip,
}

/// The exclusive lock on a version's marker: no app of it runs, none can start.
struct Claim {
    _file: Option<File>,
}

/// Ok(None): in use, and `InUse::Skip`.
fn claim(dir: &Path, policy: InUse, out: &mut dyn Write) -> Result<Option<Claim>> {
    let marker = dir.join(MARKER);
    let parked = dir.join(PARKED);
    let (path, file) = match open_existing(&marker)? {
        Some(file) => (&marker, file),
        None => match open_existing(&parked)? {
            Some(file) => (&parked, file),
            // Not an installed version (no app can have started from it).
            None => return Ok(Some(Claim { _file: None })),
        },
    };
    if lock::try_lock(&file, true).with_context(|| format!("locking {}", path.display()))? {
        return Ok(Some(Claim { _file: Some(file) }));
    }
    if policy == InUse::Skip {
        return Ok(None);
    }
    let parked_now = path == &marker && fs::rename(&marker, &parked).is_ok();
    let holder = || {
        let pids = lock::flock_holders(&file);
        (!pids.is_empty()).then(|| {
            pids.into_iter()
                .map(lock::describe_pid)
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let what = format!("{} is in use by a running app", dir.display());
    let wait = Wait {
        what: &what,
        hint: "close the app, then try again",
        holder: &holder,
    };
    match lock::lock_bounded(&file, true, &wait, out) {
        Ok(()) => Ok(Some(Claim { _file: Some(file) })),
        Err(e) => {
            if parked_now {
                let _ = fs::rename(&parked, &marker);
            }
            Err(e)
        }
    }
}

fn open_existing(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// Removes `dir`; when it is an installed version with apps running, waits
/// for them (bounded, telling stderr) and fails if they do not exit. Caller
/// holds the app lock.
pub(crate) fn remove_dir_locked(layout: &Layout, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    match claim(dir, InUse::Wait, &mut io::stderr())? {
        Some(claim) => delete_claimed(layout, dir, claim),
        // InUse::Wait either claims or fails.
        None => bail!("{} is in use by a running app", dir.display()),
    }
}

/// Deletes a claimed version. On Windows a directory with an open file in it
/// cannot be renamed, so the claim goes first; an app starting in that
/// instant makes the rename fail (an error, not a vanished environment).
fn delete_claimed(layout: &Layout, dir: &Path, claim: Claim) -> Result<()> {
    #[cfg(windows)]
    drop(claim);
    let result = delete(layout, dir);
    #[cfg(not(windows))]
    drop(claim);
    result
}

/// Moves `dir` out of the way atomically (so a half-deleted version never
/// looks installed), then deletes it.
fn delete(layout: &Layout, dir: &Path) -> Result<()> {
    let trash = layout.app_dir.join(crate::atomic::tmp_name("rm-"));
    fs::rename(dir, &trash).with_context(|| format!("removing {}", dir.display()))?;
    fs::remove_dir_all(&trash).with_context(|| format!("removing {}", dir.display()))
}

/// Installed version dirs of this app other than the current one, newest
/// first; with those whose remover died while waiting (marker parked), which
/// would otherwise stay forever.
pub(crate) fn other_versions(layout: &Layout) -> Vec<PathBuf> {
    let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
    for path in version_like_dirs(layout) {
        if path == layout.version_dir {
            continue;
        }
        let marker = fs::metadata(path.join(MARKER)).or_else(|_| fs::metadata(path.join(PARKED)));
        if let Ok(meta) = marker {
            found.push((meta.modified().unwrap_or(UNIX_EPOCH), path));
        }
    }
    found.sort_by_key(|(mtime, _)| std::cmp::Reverse(*mtime));
    found.into_iter().map(|(_, path)| path).collect()
}

/// Entries of the app dir that may be versions (not `.lock`, `.tmp-*`, `python-*`).
fn version_like_dirs(layout: &Layout) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(&layout.app_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && !name.starts_with(PYTHON_PREFIX)
        })
        .map(|e| e.path())
        .collect()
}

/// Keeps `keep_versions` installed versions (the current one included), and
/// those in use by running apps; failures only warn, the app itself is
/// installed fine. Caller holds the app lock.
pub(crate) fn prune_versions(p: &Payload, layout: &Layout, out: &mut dyn Write) {
    if p.keep_versions == 0 {
        return;
    }
    let keep_others = (p.keep_versions - 1) as usize;
    remove_versions(
        layout,
        other_versions(layout).into_iter().skip(keep_others),
        &crate::manage::how_to_run(p, "clean"),
        out,
    );
}

/// Removes the versions not in use, then the Pythons no version needs;
/// returns how many versions were removed. Caller holds the app lock.
/// `clean`: how to run the clean command, for the versions kept in use.
pub(crate) fn remove_versions(
    layout: &Layout,
    dirs: impl Iterator<Item = PathBuf>,
    clean: &str,
    out: &mut dyn Write,
) -> usize {
    let mut removed = 0;
    for dir in dirs {
        let result = claim(&dir, InUse::Skip, out).and_then(|claim| match claim {
            Some(claim) => delete_claimed(layout, &dir, claim).map(|()| true),
            None => Ok(false),
        });
        match result {
            Ok(true) => removed += 1,
            Ok(false) => {
                let _ = writeln!(
                    out,
                    "{} is in use by a running app, kept (a later install or {clean} removes it)",
                    dir.display()
                );
            }
            Err(e) => {
                let _ = writeln!(out, "warning: {e:#}");
            }
        }
    }
    prune_pythons(layout, out);
    removed
}

/// Removes `python-*` dirs that no venv's pyvenv.cfg points into.
fn prune_pythons(layout: &Layout, out: &mut dyn Write) {
    let Ok(entries) = fs::read_dir(&layout.app_dir) else {
        return;
    };
    let pythons: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PYTHON_PREFIX))
        .map(|e| e.path())
        .collect();
    if pythons.is_empty() {
        return;
    }
    // Every version dir counts, whatever its marker says: one kept because it
    // is in use, or whose remover died with the marker parked, may run.
    let cfgs: Vec<String> = version_like_dirs(layout)
        .into_iter()
        .filter_map(|dir| fs::read_to_string(dir.join("venv").join("pyvenv.cfg")).ok())
        .collect();
    for python in pythons {
        // uv may have written the canonical path (e.g. /private/tmp on macOS).
        let mut needles = vec![python.to_string_lossy().into_owned()];
        if let Ok(real) = fs::canonicalize(&python) {
            needles.push(real.to_string_lossy().into_owned());
        }
        let used = cfgs
            .iter()
            .any(|cfg| needles.iter().any(|n| cfg.contains(n.as_str())));
        if !used {
            if let Err(e) = delete(layout, &python) {
                let _ = writeln!(out, "warning: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{TEST_ENV, TIMEOUT_VAR};

    fn layout(name: &str) -> Layout {
        let app_dir =
            std::env::temp_dir().join(format!("pyaket-versions-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&app_dir);
        fs::create_dir_all(&app_dir).unwrap();
        Layout {
            root: app_dir.clone(),
            version_dir: app_dir.join("3-ccc"),
            app_dir,
        }
    }

    fn install(layout: &Layout, name: &str) -> PathBuf {
        let dir = layout.app_dir.join(name);
        fs::create_dir_all(dir.join("venv")).unwrap();
        fs::write(dir.join(MARKER), "version=x\n").unwrap();
        dir
    }

    /// What a running app holds (see `run::enter`).
    fn running(dir: &Path) -> File {
        let file = File::open(dir.join(MARKER)).unwrap();
        assert!(lock::try_lock(&file, false).unwrap());
        file
    }

    #[test]
    fn pruning_keeps_versions_in_use() {
        let layout = layout("prune");
        let old = install(&layout, "1-aaa");
        let used = install(&layout, "2-bbb");
        let orphan = install(&layout, "0-zzz");
        fs::rename(orphan.join(MARKER), orphan.join(PARKED)).unwrap();
        let app = running(&used);
        let mut out = Vec::new();
        let removed = remove_versions(
            &layout,
            other_versions(&layout).into_iter(),
            "`clean`",
            &mut out,
        );
        assert_eq!(removed, 2);
        assert!(!old.exists() && !orphan.exists() && used.join(MARKER).is_file());
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(&format!(
                "{} is in use by a running app, kept",
                used.display()
            )),
            "{out}"
        );
        // Once the app exited, the next prune removes it.
        drop(app);
        assert_eq!(
            remove_versions(
                &layout,
                other_versions(&layout).into_iter(),
                "`clean`",
                &mut Vec::new()
            ),
            1
        );
        assert!(!used.exists());
        let _ = fs::remove_dir_all(&layout.app_dir);
    }

    #[test]
    fn removal_waits_bounded_and_puts_the_marker_back() {
        let layout = layout("remove");
        let dir = install(&layout, "3-ccc");
        let app = running(&dir);
        let _env = TEST_ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var(TIMEOUT_VAR, "0.2");
        let mut out = Vec::new();
        // While waiting, the marker is parked: new apps do not start from it.
        let err = claim(&dir, InUse::Wait, &mut out).err().unwrap();
        assert!(
            format!("{err:#}").contains("is in use by a running app"),
            "{err:#}"
        );
        assert!(dir.join(MARKER).is_file() && !dir.join(PARKED).exists());
        // A parked marker (its remover died) still protects the running app.
        fs::rename(dir.join(MARKER), dir.join(PARKED)).unwrap();
        assert!(remove_dir_locked(&layout, &dir).is_err());
        assert!(dir.join(PARKED).is_file());
        drop(app);
        remove_dir_locked(&layout, &dir).unwrap();
        std::env::remove_var(TIMEOUT_VAR);
        assert!(!dir.exists());
        let _ = fs::remove_dir_all(&layout.app_dir);
    }
}
