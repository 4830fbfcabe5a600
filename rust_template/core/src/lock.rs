//! File locks: the per-app install lock, and the per-version "in use" lock.
//!
//! Both are OS advisory locks (flock on Unix, LockFileEx on Windows), so they
//! are released when their holder dies, however it dies: a dead holder never
//! blocks anyone. A live but stuck holder (stopped with Ctrl-Z, hung) only
//! makes others wait for a bounded time ([`timeout`]), with a line every few
//! seconds saying who holds the lock.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dirs::{env_nonempty, Layout};

/// Environment variable: how many seconds to wait for a lock before giving up.
pub(crate) const TIMEOUT_VAR: &str = "PYAKET_LOCK_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a waiter says it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The bounded wait, from `PYAKET_LOCK_TIMEOUT` (seconds, fractions allowed).
pub(crate) fn timeout() -> Result<Duration> {
    let Some(value) = env_nonempty(TIMEOUT_VAR) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        _ => bail!(
            "{TIMEOUT_VAR}={text} is not a number of seconds (e.g. {TIMEOUT_VAR}=60; the default is {})",
            DEFAULT_TIMEOUT.as_secs()
        ),
    }
}

/// What a waiter is waiting for, for its messages.
pub(crate) struct Wait<'a> {
    /// "another process is installing or removing example-app in /x/y"
    pub what: &'a str,
    /// Added to the error after the timeout: what the user can do.
    pub hint: &'a str,
    /// Who holds the lock now ("pid 123 (stopped)"), asked again at each report.
    pub holder: &'a dyn Fn() -> Option<String>,
}

/// Locks `file` (exclusive or shared), waiting at most [`timeout`] while
/// telling `out` who holds it. Polls: an OS lock call has no timeout, and a
/// blocked call could not report progress.
pub(crate) fn lock_bounded(
    file: &File,
    exclusive: bool,
    wait: &Wait,
    out: &mut dyn Write,
) -> Result<()> {
    if try_lock(file, exclusive)? {
        return Ok(());
    }
    let limit = timeout()?;
    let holder = |w: &Wait| match (w.holder)() {
        Some(h) => format!(" (held by {h})"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "waiting: {}{}; giving up after {}s ({TIMEOUT_VAR}) ...",
        wait.what,
        holder(wait),
        limit.as_secs_f64()
    );
    let start = Instant::now();
    let mut next_report = REPORT_EVERY;
    let mut pause = Duration::from_millis(10);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            bail!(
                "gave up after {:.0}s: {}{}; {} (set {TIMEOUT_VAR} to wait longer)",
                elapsed.as_secs_f64(),
                wait.what,
                holder(wait),
                wait.hint
            );
        }
        if elapsed >= next_report {
            let _ = writeln!(
                out,
                "still waiting after {}s: {}{} ...",
                elapsed.as_secs(),
                wait.what,
                holder(wait)
            );
            next_report += REPORT_EVERY;
        }
        thread::sleep(pause.min(limit - elapsed));
        pause = (pause * 2).min(Duration::from_millis(200));
        if try_lock(file, exclusive)? {
            return Ok(());
        }
    }
}

/// Ok(false) when another process holds a conflicting lock.
pub(crate) fn try_lock(file: &File, exclusive: bool) -> Result<bool> {
    let result = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e).context("locking a file"),
    }
}

/// Held while installing or removing; released when dropped (closing the
/// file releases the OS lock, also if the process dies).
pub(crate) struct AppLock {
    file: File,
}

impl Drop for AppLock {
    fn drop(&mut self) {
        // The pid must not outlive the lock: a waiter seeing an old pid in
        // the file while someone else holds the lock would name the wrong
        // process. (A holder killed with -9 leaves its pid, but then the lock
        // is free and nobody waits; see `holder_pid` for the short window.)
        let _ = self.file.set_len(0);
    }
}

/// The app's install lock. std opens files close-on-exec, so the uv
/// processes an install starts do not inherit it: if the launcher dies, the
/// lock goes with it even while an orphaned uv still runs.
pub(crate) fn acquire(layout: &Layout, out: &mut dyn Write) -> Result<AppLock> {
    fs::create_dir_all(&layout.app_dir)
        .with_context(|| format!("creating {}", layout.app_dir.display()))?;
    let path = layout.lock_file();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let what = format!(
        "another process is installing or removing this app in {}",
        layout.app_dir.display()
    );
    let holder = || holder_pid(&path).map(describe_pid);
    let wait = Wait {
        what: &what,
        hint: "if that process is stopped (Ctrl-Z), resume it (`fg`, `kill -CONT <pid>`) or end it",
        holder: &holder,
    };
    lock_bounded(&file, true, &wait, out).with_context(|| format!("locking {}", path.display()))?;
    // Best effort: the pid is only for other waiters' messages.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(AppLock { file })
}

/// The pid written in a lock file by its holder, if that process is alive.
/// (On Windows a locked file cannot be read by others: no pid there.)
fn holder_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    // Between a holder's lock and its pid write the file may still hold the
    // pid of a holder that was killed: only name a live process.
    alive(pid).then_some(pid)
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

/// "pid 123", with "(stopped)" when it is (Linux), the usual reason for a
/// lock that is never released.
pub(crate) fn describe_pid(pid: u32) -> String {
    let stopped = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        // The state follows the command name, which is in parentheses and may hold anything.
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['T', 't']))
        })
        .unwrap_or(false);
    if stopped {
        format!("pid {pid} (stopped)")
    } else {
        format!("pid {pid}")
    }
}

/// Pids holding a flock on `file` (Linux: /proc/locks), other than this one.
/// Used to name the running apps that keep a version in use.
pub(crate) fn flock_holders(file: &File) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(ino) = file.metadata().map(|m| m.ino()) else {
            return Vec::new();
        };
        let Ok(locks) = fs::read_to_string("/proc/locks") else {
            return Vec::new();
        };
        let me = std::process::id();
        let mut pids = Vec::new();
        // "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF"; waiters have "->" after the number.
        for line in locks.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&"FLOCK") || fields.len() < 6 {
                continue;
            }
            let same_file = fields[5].rsplit(':').next() == Some(ino.to_string().as_str());
            if let (true, Ok(pid)) = (same_file, fields[4].parse::<u32>()) {
                if pid != me && !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        pids
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Vec::new()
    }
}

/// Tests that set PYAKET_LOCK_TIMEOUT hold this (the environment is per process).
#[cfg(test)]
pub(crate) static TEST_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("pyaket-lock-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn bounded_wait_gives_up_and_reports() {
        let (path, held) = temp_file("bounded");
        assert!(try_lock(&held, false).unwrap());
        let other = File::open(&path).unwrap();
        // A shared lock does not block another shared lock...
        assert!(try_lock(&other, false).unwrap());
        other.unlock().unwrap();
        // ...but does block an exclusive one, for the bounded time only.
        let _env = TEST_ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var(TIMEOUT_VAR, "0.3");
        let holder = || Some("pid 42".to_string());
        let wait = Wait {
            what: "the thing is busy",
            hint: "stop it",
            holder: &holder,
        };
        let mut out = Vec::new();
        let start = Instant::now();
        let err = lock_bounded(&other, true, &wait, &mut out).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(300));
        let err = format!("{err:#}");
        assert!(err.starts_with("gave up after 0s: the thing is busy (held by pid 42); stop it (set PYAKET_LOCK_TIMEOUT"), "{err}");
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("waiting: the thing is busy (held by pid 42); giving up after 0.3s"),
            "{out}"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            flock_holders(&held),
            Vec::<u32>::new(),
            "this process is not listed"
        );
        // Released: the waiter gets it at once.
        held.unlock().unwrap();
        lock_bounded(&other, true, &wait, &mut Vec::new()).unwrap();
        std::env::remove_var(TIMEOUT_VAR);
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn dead_pids_are_not_named() {
        let (path, mut file) = temp_file("pid");
        writeln!(file, "{}", std::process::id()).unwrap();
        assert_eq!(holder_pid(&path), Some(std::process::id()));
        #[cfg(unix)]
        {
            // A pid that cannot exist (above pid_max).
            file.set_len(0).unwrap();
            file.seek(SeekFrom::Start(0)).unwrap();
            writeln!(file, "2147483600").unwrap();
            assert_eq!(holder_pid(&path), None);
        }
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }
}
