//! Exclusive per-app lock, so concurrent first runs install once.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;

use anyhow::{Context, Result};

use crate::dirs::Layout;

/// Held while installing or removing; released when dropped (closing the
/// file releases the OS lock, also if the process dies).
pub(crate) struct AppLock {
    _file: File,
}

pub(crate) fn acquire(layout: &Layout, out: &mut dyn Write) -> Result<AppLock> {
    fs::create_dir_all(&layout.app_dir)
        .with_context(|| format!("creating {}", layout.app_dir.display()))?;
    let path = layout.lock_file();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let _ = writeln!(
                out,
                "waiting for another process to finish installing in {} ...",
                layout.app_dir.display()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(AppLock { _file: file })
}
