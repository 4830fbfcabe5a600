//! The embedded uv, extracted once per machine and shared by every pyaket app
//! that embeds the same build: `<install root>/.pyaket/uv/<version>-<sha12>/`.
//!
//! Decompressing uv (~37 MB) is most of a first run's own cost; sharing it
//! makes an app's upgrades, its `self restore` and every other app embedding
//! the same uv skip it. A dir appears only complete (extracted into a temp
//! dir, verified, renamed), so a present file is a good one. The `.pyaket`
//! dir cannot collide with an app: vendor and install names never start
//! with a dot.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::install::tmp_name;
use crate::PayloadFile;

/// Shared uv builds no app has used for this long are deleted when another
/// one is extracted. Using one refreshes its `last-used` stamp, so a uv in
/// use is never removed under an app about to run it.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
const LAST_USED: &str = "last-used";

/// Path of the shared uv binary for the embedded `file`, extracting it first
/// if this machine does not have it yet.
pub(crate) fn shared_uv(root: &Path, file: &PayloadFile, version: &str) -> Result<PathBuf> {
    let base = base_dir(root);
    let dir = base.join(dir_name(file, version));
    let exe = dir.join(exe_name(file));
    if is_complete(&exe, file) {
        touch(&dir);
        return Ok(exe);
    }
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = base.join(tmp_name(""));
    let extracted = file.extract_to(&tmp);
    let published = extracted.and_then(|_| {
        touch(&tmp);
        if dir.exists() && !is_complete(&exe, file) {
            // Damaged (truncated, emptied): a complete one replaces it.
            let _ = fs::remove_dir_all(&dir);
        }
        fs::rename(&tmp, &dir).or_else(|e| {
            // Another app extracted the same uv meanwhile: use theirs.
            if is_complete(&exe, file) {
                Ok(())
            } else {
                Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))
            }
        })
    });
    let _ = fs::remove_dir_all(&tmp);
    published?;
    prune(&base, &dir);
    Ok(exe)
}

/// Where the shared copy of the embedded `file` is (or will be).
pub(crate) fn location(root: &Path, file: &PayloadFile, version: &str) -> PathBuf {
    base_dir(root)
        .join(dir_name(file, version))
        .join(exe_name(file))
}

fn base_dir(root: &Path) -> PathBuf {
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

/// Extraction published the dir only after verifying every byte; the size
/// catches a file truncated since.
fn is_complete(exe: &Path, file: &PayloadFile) -> bool {
    fs::metadata(exe).is_ok_and(|m| m.is_file() && m.len() == file.size)
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

/// Best effort: removes other shared uv builds unused for UNUSED_FOR, and
/// temp dirs of extractions that died as long ago.
fn prune(base: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        if path == keep {
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
