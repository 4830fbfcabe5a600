//! Publishing a directory atomically: build it in a temp dir next to its
//! destination, then rename it into place, so a reader sees either nothing or
//! the complete dir (like a-scie/jump's `atomic_path`).
//!
//! Each temp dir `<parent>/.tmp-<kind><pid>-<nanos>-<n>` has an owner file
//! `<same name>.owner` that its creator holds an exclusive OS lock on for the
//! dir's whole life. The OS drops the lock when the creator dies however it
//! dies (`kill -9` included), so [`clean_stale`] tells a dead owner's garbage
//! from a live install without trusting pids (which are reused, and mean
//! nothing across containers sharing a home). The owner file is created
//! before the dir and removed after it, so a temp dir without an owner file
//! is always garbage (or left by a launcher older than this scheme).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::dirs::TMP_PREFIX;

const OWNER_SUFFIX: &str = ".owner";

/// A name no other process uses, starting with TMP_PREFIX so that a crash's
/// leftovers are recognised and removed.
pub(crate) fn tmp_name(kind: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TMP_PREFIX}{kind}{}-{nanos}-{n}", std::process::id())
}

/// A temp dir being filled; removed on drop unless published.
pub(crate) struct TempDir {
    path: PathBuf,
    owner_path: PathBuf,
    /// Holding it (locked) is what makes the dir ours.
    owner: Option<File>,
    published: bool,
}

impl TempDir {
    /// Creates `<parent>/.tmp-<kind>...` (and `parent` if needed).
    pub fn new(parent: &Path, kind: &str) -> Result<TempDir> {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        // A cleaner may lock and delete a fresh owner file before we lock it
        // (it sees no dir yet): then ours is an unlinked file, try another name.
        for _ in 0..8 {
            let name = tmp_name(kind);
            let owner_path = parent.join(format!("{name}{OWNER_SUFFIX}"));
            let owner = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&owner_path)
                .with_context(|| format!("creating {}", owner_path.display()))?;
            owner
                .lock()
                .with_context(|| format!("locking {}", owner_path.display()))?;
            if !same_file(&owner, &owner_path) {
                continue;
            }
            let path = parent.join(&name);
            let mut dir = TempDir {
                path,
                owner_path,
                owner: Some(owner),
                published: false,
            };
            if let Err(e) = fs::create_dir(&dir.path) {
                // Nothing to remove but the owner file.
                dir.published = true;
                let _ = fs::remove_file(&dir.owner_path);
                return Err(e).with_context(|| format!("creating {}", dir.path.display()));
            }
            return Ok(dir);
        }
        bail!("cannot create a temp dir in {}", parent.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the dir to `dest` (which must not exist), durably: its
    /// entries are flushed first, the parent's new entry after. File
    /// contents the caller cares about must be synced by the caller
    /// ([`sync_file`]): which ones are worth it depends on the dir.
    pub fn publish(mut self, dest: &Path) -> Result<()> {
        sync_dir(&self.path)?;
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        self.published = true;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.published && remove_any(&self.path).is_err() {
            // Keep the owner file: without it the leftover would look like
            // garbage to a cleaner, which is right, but removing the dir
            // failed for a reason (Windows: a file still open) it may hit too.
            return;
        }
        let _ = fs::remove_file(&self.owner_path);
        drop(self.owner.take());
    }
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        // Windows does not delete a file while it is open.
        let _ = file;
        path.is_file()
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        _ => fs::remove_file(path),
    }
}

/// Removes the temp dirs (and owner files) in `dir` whose owner is gone;
/// returns how many it removed. Best effort: a live owner's dir is left
/// alone, failures are skipped (the next cleaner tries again).
pub(crate) fn clean_stale(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    let mut owners = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TMP_PREFIX) {
            continue;
        }
        if name.ends_with(OWNER_SUFFIX) {
            owners.push(entry.path());
            continue;
        }
        let path = entry.path();
        let owner_path = dir.join(format!("{name}{OWNER_SUFFIX}"));
        let lock = match try_lock_owner(&owner_path) {
            Owner::Live => continue,
            Owner::Dead(lock) => Some(lock),
            Owner::Missing => None,
        };
        if remove_any(&path).is_ok() {
            removed += 1;
            if lock.is_some() {
                let _ = fs::remove_file(&owner_path);
            }
        }
    }
    // Owner files left without a dir: a crash between removing the dir and
    // the file, or right after a publish.
    for owner_path in owners {
        let dir_path = owner_path.with_extension("");
        if dir_path.exists() {
            continue;
        }
        if let Owner::Dead(_lock) = try_lock_owner(&owner_path) {
            let _ = fs::remove_file(&owner_path);
        }
    }
    removed
}

enum Owner {
    Live,
    Dead(File),
    Missing,
}

fn try_lock_owner(path: &Path) -> Owner {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Owner::Missing,
        // Unreadable (another user's?): not ours to judge.
        Err(_) => return Owner::Live,
    };
    match file.try_lock() {
        Ok(()) => Owner::Dead(file),
        Err(TryLockError::WouldBlock) => Owner::Live,
        Err(TryLockError::Error(_)) => Owner::Live,
    }
}

/// Flushes a file's content to disk, so that a rename publishing it cannot
/// survive a power loss that its content does not.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(cfg!(windows))
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("flushing {} to disk", path.display()))
}

/// Flushes a dir's entries (a rename into or out of it) on Unix; Windows
/// cannot open a dir as a file and NTFS journals renames itself.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        dir.sync_all()
            .with_context(|| format!("flushing {} to disk", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes a tree's files durable before a marker says they are there: for a
/// venv,
/// after a power loss, a published dir whose files were still in the page
/// cache would be a version that looks installed and fails forever (ext4
/// allocates blocks late, so new files come back empty).
///
/// fsync of each file costs ~2.3 ms a file here (60 files for the example
/// app: 140 ms; ~770 for an app with rich, click and httpx: ~1.8 s), so
/// Linux flushes the whole filesystem once with syncfs instead: measured
/// right after the example's first run on ext4, 3-20 ms (first run ~500
/// ms), and 160-195 ms with 400 MB of another program's dirty data pending.
/// That cost grows with others' pending writes, but only once per version;
/// worth it. Other systems have no syncfs: there the marker alone is
/// flushed, and a venv damaged by a crash is `restore`'s job.
pub(crate) fn flush_tree(dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let handle = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: syncfs on a descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("flushing {} to disk", dir.display()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pyaket-atomic-{name}-{}-{}",
            std::process::id(),
            tmp_name("")
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn tmp_names_differ() {
        assert_ne!(tmp_name("x"), tmp_name("x"));
        assert!(tmp_name("rm-").starts_with(".tmp-rm-"));
    }

    #[test]
    fn dropped_unpublished_dir_is_removed() {
        let root = scratch("drop");
        {
            let t = TempDir::new(&root, "").unwrap();
            fs::write(t.path().join("f"), b"x").unwrap();
            assert_eq!(names(&root).len(), 2);
        }
        assert!(names(&root).is_empty(), "{:?}", names(&root));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn publish_renames_and_leaves_no_owner() {
        let root = scratch("publish");
        let t = TempDir::new(&root, "").unwrap();
        fs::write(t.path().join("f"), b"x").unwrap();
        t.publish(&root.join("dest")).unwrap();
        assert_eq!(names(&root), ["dest"]);
        assert_eq!(fs::read(root.join("dest/f")).unwrap(), b"x");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn clean_stale_spares_live_and_removes_dead_and_ownerless() {
        let root = scratch("clean");
        let live = TempDir::new(&root, "").unwrap();
        // A dead owner: the dir and an unlocked owner file, as after kill -9.
        fs::create_dir(root.join(".tmp-123-4")).unwrap();
        fs::write(root.join(".tmp-123-4/f"), b"x").unwrap();
        fs::write(root.join(".tmp-123-4.owner"), b"").unwrap();
        // An older launcher's leftover without an owner file.
        fs::create_dir(root.join(".tmp-9-9")).unwrap();
        // A lone owner file.
        fs::write(root.join(".tmp-7-7.owner"), b"").unwrap();
        fs::create_dir(root.join("keep")).unwrap();
        assert_eq!(clean_stale(&root), 2);
        let left = names(&root);
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.contains(&"keep".to_string()));
        assert!(live.path().is_dir());
        drop(live);
        assert_eq!(names(&root), ["keep"]);
        fs::remove_dir_all(root).unwrap();
    }
}
