//! The embedded uv, extracted once per machine and shared by every pyaket app
//! that embeds the same build: `<install root>/.pyaket/uv/<version>-<sha12>/`.
//!
//! Decompressing uv (~37 MB) is most of a first run's own cost; sharing it
//! makes an app's upgrades, its `restore` and every other app embedding
//! the same uv skip it. A dir appears only complete (extracted into a temp
//! dir, flushed to disk, renamed), but a file that was complete once can be
//! damaged since (a disk error, a zeroed block after a power loss, a user),
//! so it is verified by content before each install uses it: hashing its
//! 38 MB in two threads costs ~66 ms of CPU (`check` with and without
//! a shared copy, on two loaded cores: 188 vs 75 ms wall), decompressing
//! it again ~200 ms, and a first run with a kept uv ~260 ms. The `.pyaket` dir
//! cannot collide with an app: vendor and install names never start with a
//! dot.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::atomic::{self, tmp_name, TempDir};
use crate::dirs::TMP_PREFIX;
use crate::PayloadFile;

/// Shared uv builds no app has used for this long are deleted when another
/// one is extracted. Using one refreshes its `last-used` stamp, so a uv in
/// use is never removed under an app about to run it.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
const LAST_USED: &str = "last-used";

/// Path of the shared uv binary for the embedded `file`, verified by
/// content; extracted first if this machine does not have a good copy.
pub(crate) fn shared_uv(root: &Path, file: &PayloadFile, version: &str) -> Result<PathBuf> {
    let base = base_dir(root);
    let dir = base.join(dir_name(file, version));
    let exe = dir.join(exe_name(file));
    if file.verify_file(&exe).is_ok() {
        touch(&dir);
        return Ok(exe);
    }
    atomic::clean_stale(&base);
    let tmp = TempDir::new(&base, "")?;
    let extracted = file.extract_to(tmp.path())?;
    atomic::sync_file(&extracted)?;
    touch(tmp.path());
    if dir.exists() {
        if file.verify_file(&exe).is_ok() {
            // Another app replaced it meanwhile; ours is dropped.
            return Ok(exe);
        }
        // Damaged (truncated, zeroed): moved aside in one step, so that no
        // other app sees it half deleted, then replaced.
        let trash = base.join(tmp_name("rm-"));
        if fs::rename(&dir, &trash).is_ok() {
            let _ = fs::remove_dir_all(&trash);
        }
    }
    if let Err(e) = tmp.publish(&dir) {
        // Another app published the same uv meanwhile: use theirs.
        file.verify_file(&exe).map_err(|_| e)?;
    }
    prune(&base, &dir);
    Ok(exe)
}

/// What `check` says about the shared copy.
pub(crate) enum Status {
    Ok,
    Damaged(String),
    Missing,
}

/// Verifies the shared copy of `file` without touching it.
pub(crate) fn status(root: &Path, file: &PayloadFile, version: &str) -> (PathBuf, Status) {
    let exe = location(root, file, version);
    let status = if !exe.exists() {
        Status::Missing
    } else {
        match file.verify_file(&exe) {
            Ok(()) => Status::Ok,
            Err(e) => Status::Damaged(format!("{e:#}")),
        }
    };
    (exe, status)
}

/// One line for `check` on stdout; true if the shared uv is damaged.
pub(crate) fn print_check(p: &crate::Payload, layout: &crate::dirs::Layout) -> bool {
    use std::io::Write;
    let (Some(name), None) = (p.uv, crate::dirs::env_nonempty("PYAKET_UV")) else {
        return false;
    };
    let Ok(file) = p.file(name) else {
        return false;
    };
    let (exe, status) = status(&layout.root, file, p.uv_version);
    let line = match &status {
        Status::Ok => format!("ok    shared uv {}", exe.display()),
        Status::Damaged(why) => format!(
            "FAIL  shared uv {}: damaged ({why}); the next install or {} replaces it",
            exe.display(),
            crate::manage::how_to_run(p, "restore")
        ),
        Status::Missing => format!("-     shared uv {}: not unpacked yet", exe.display()),
    };
    let _ = writeln!(std::io::stdout(), "{line}");
    matches!(status, Status::Damaged(_))
}

/// Where the shared copy of the embedded `file` is (or will be).
pub(crate) fn location(root: &Path, file: &PayloadFile, version: &str) -> PathBuf {
    base_dir(root)
        .join(dir_name(file, version))
        .join(exe_name(file))
}

pub(crate) fn base_dir(root: &Path) -> PathBuf {
    root.join(".pyaket").join("uv")
}

fn dir_name(file: &PayloadFile, version: &str) -> String {
    let sha12 = file.sha256.get(..12).unwrap_or(file.sha256);
    let version: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if version.is_empty() {
        sha12.to_string()
    } else {
        format!("{version}-{sha12}")
    }
}

fn exe_name(file: &PayloadFile) -> &'static str {
    file.name.rsplit('/').next().unwrap_or(file.name)
}

/// A file of its own: the exe may be running (no writing to it), and
/// Windows cannot open a dir to set its times.
fn touch(dir: &Path) {
    let _ = fs::write(dir.join(LAST_USED), b"");
}

fn last_used(dir: &Path) -> Option<SystemTime> {
    let stamp = fs::metadata(dir.join(LAST_USED)).or_else(|_| fs::metadata(dir));
    stamp.and_then(|m| m.modified()).ok()
}

/// Best effort: removes other shared uv builds unused for UNUSED_FOR (temp
/// dirs are [`atomic::clean_stale`]'s: their owner may be alive).
fn prune(base: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        if path == keep || entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let unused = last_used(&path)
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > UNUSED_FOR);
        if unused {
            let _ = fs::remove_dir_all(&path);
        }
    }
}
