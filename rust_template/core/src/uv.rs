//! Running uv: the environment and stdio it gets, what happens to it when the
//! launcher is interrupted or killed, and what a failure to run it means.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{bail, Context, Result};

use crate::dirs::Layout;
use crate::out::Out;

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

pub(crate) fn env_removed(key: &OsStr) -> bool {
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

/// A uv command with the launcher's policy: quiet on a console, run in the
/// app dir, stripped environment, no stdin, and (Linux) killed with us.
pub(crate) fn command(uv: &Path, layout: &Layout, out: &Out) -> Result<Command> {
    let mut cmd = Command::new(uv);
    if out.is_console() {
        // On the console the app's users get one line from us, not uv's
        // chatter about temp paths ("Activate with: ..."); errors still show.
        cmd.arg("--quiet");
    }
    // Not the user's cwd: uv would read uv.toml, pyproject.toml or .env from it.
    cmd.current_dir(&layout.app_dir);
    for (key, _) in std::env::vars_os() {
        if env_removed(&key) {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(out.stdio()?)
        .stderr(out.stdio()?);
    #[cfg(windows)]
    if !out.is_console() {
        use std::os::windows::process::CommandExt;
        // A GUI app must not flash a console window for uv.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NO_WINDOW);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // `kill -9` of the launcher must take uv with it: an orphaned uv goes
        // on writing into a temp dir that the next run deletes under it.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
    }
    Ok(cmd)
}

/// Runs uv with its output going where the command says; fails on a
/// non-zero exit, naming `what`.
pub(crate) fn run(mut cmd: Command, what: &str, uv: &Path) -> Result<()> {
    let status = wait(spawn(&mut cmd, uv)?)?;
    check_status(status, what, uv, "")
}

/// Runs uv with stdout and stderr captured.
pub(crate) fn output(mut cmd: Command, uv: &Path) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn(&mut cmd, uv)?;
    signals::set_child(child.id());
    let result = child.wait_with_output();
    signals::set_child(0);
    result.with_context(|| format!("waiting for {}", uv.display()))
}

/// The error for a finished uv run, with `detail` (its captured stderr) if any.
pub(crate) fn check_status(status: ExitStatus, what: &str, uv: &Path, detail: &str) -> Result<()> {
    if let Some(sig) = signals::pending() {
        bail!("interrupted by signal {sig}");
    }
    if status.success() {
        return Ok(());
    }
    if let Some(why) = why_not_executable(uv) {
        bail!("{} could not be executed: {}: {why}", label(), uv.display());
    }
    // What the shell that execvp falls back to reports when the kernel
    // refused the program (qemu-user without binfmt_misc), or a missing
    // library.
    if matches!(status.code(), Some(126 | 127)) {
        bail!(
            "{} could not be executed: {}: {status} (exec format error or a missing loader or library; under qemu-user, register qemu with binfmt_misc)",
            label(),
            uv.display()
        );
    }
    let detail = detail.trim();
    if detail.is_empty() {
        bail!("`uv {what}` failed ({status})");
    }
    bail!("`uv {what}` failed ({status}):\n{detail}")
}

/// Which uv failed: the one the app embeds, or the user's PYAKET_UV.
fn label() -> &'static str {
    if crate::dirs::env_nonempty("PYAKET_UV").is_some() {
        "uv (PYAKET_UV)"
    } else {
        "the embedded uv"
    }
}

fn spawn(cmd: &mut Command, uv: &Path) -> Result<std::process::Child> {
    if let Some(sig) = signals::pending() {
        bail!("interrupted by signal {sig}");
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                && uv.parent().is_none_or(|d| d.as_os_str().is_empty()) =>
        {
            bail!("uv was not found on PATH (install uv or set PYAKET_UV to a uv binary)")
        }
        Err(e) => {
            if let Some(why) = why_not_executable(uv) {
                bail!(
                    "{} could not be executed: {}: {why} ({e})",
                    label(),
                    uv.display()
                );
            }
            return Err(e).with_context(|| format!("running {}", uv.display()));
        }
    };
    // A signal that came before the pid was known was not forwarded.
    if signals::pending().is_some() {
        signals::forward(child.id());
    }
    Ok(child)
}

fn wait(mut child: std::process::Child) -> Result<ExitStatus> {
    signals::set_child(child.id());
    let status = child.wait();
    signals::set_child(0);
    status.context("waiting for uv")
}

/// Fails if `uv` (a path) cannot be a program for this system. Checked
/// before the first run because execvp hands a file the kernel refuses
/// (ENOEXEC) to /bin/sh, whose complaints about binary garbage would be all
/// the user sees.
pub(crate) fn preflight(uv: &Path) -> Result<()> {
    if let Some(why) = why_not_executable(uv) {
        bail!("{} could not be executed: {}: {why}", label(), uv.display());
    }
    Ok(())
}

/// Why the OS would refuse to execute `path`, if it can be told from the
/// file: not a program for this system, or its loader is missing. Under
/// qemu-user without binfmt_misc, the launcher runs but uv would not.
pub(crate) fn why_not_executable(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(4096);
    let file = File::open(path).ok()?;
    file.take(4096).read_to_end(&mut head).ok()?;
    if head.starts_with(b"#!") {
        return None;
    }
    if cfg!(windows) || cfg!(target_os = "macos") {
        // PE and Mach-O: left to the OS error.
        return None;
    }
    if !head.starts_with(b"\x7fELF") {
        let first: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Some(format!(
            "exec format error: not an ELF program (it starts with {}; the file is damaged)",
            first.join(" ")
        ));
    }
    elf_problem(&head)
}

/// Machine and loader checks of an ELF header (64- and 32-bit, either byte order).
fn elf_problem(head: &[u8]) -> Option<String> {
    let is64 = *head.get(4)? == 2;
    let le = *head.get(5)? == 1;
    // An unsigned field of `n` bytes at `o`, in the header's byte order.
    let uint = |o: usize, n: usize| -> Option<u64> {
        let bytes = head.get(o..o + n)?;
        Some(bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
            acc | u64::from(b) << (8 * if le { i } else { n - 1 - i })
        }))
    };
    let u16_at = |o: usize| uint(o, 2);
    let u32_at = |o: usize| uint(o, 4);
    let u64_at = |o: usize| uint(o, 8);
    let machine = u16_at(18)?;
    if let Some(expected) = host_machine() {
        if machine != expected {
            return Some(format!(
                "exec format error: it is a program for {}, this system runs {} (running it needs qemu-user registered with binfmt_misc)",
                machine_name(machine),
                machine_name(expected),
            ));
        }
    }
    // PT_INTERP: the dynamic loader the kernel starts first.
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(32)?, u16_at(54)?, u16_at(56)?)
    } else {
        (u32_at(28)?, u16_at(42)?, u16_at(44)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).ok()?;
        if u32_at(at)? != 3 {
            continue;
        }
        let (offset, size) = if is64 {
            (u64_at(at + 8)?, u64_at(at + 32)?)
        } else {
            (u32_at(at + 4)?, u32_at(at + 16)?)
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let interp = head.get(start..end)?;
        let interp = String::from_utf8_lossy(interp.split(|&b| b == 0).next()?).into_owned();
        if !Path::new(&interp).exists() {
            return Some(format!(
                "its program interpreter (dynamic loader) {interp} is missing"
            ));
        }
    }
    None
}

fn host_machine() -> Option<u64> {
    Some(if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else if cfg!(target_arch = "x86") {
        3
    } else if cfg!(target_arch = "arm") {
        40
    } else if cfg!(target_arch = "riscv64") {
        243
    } else if cfg!(target_arch = "powerpc64") {
        21
    } else if cfg!(target_arch = "s390x") {
        22
    } else if cfg!(target_arch = "loongarch64") {
        258
    } else {
        return None;
    })
}

fn machine_name(machine: u64) -> String {
    match machine {
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        3 => "x86".into(),
        40 => "arm".into(),
        243 => "riscv".into(),
        21 => "powerpc64".into(),
        22 => "s390x".into(),
        258 => "loongarch".into(),
        other => format!("ELF machine {other}"),
    }
}

/// SIGINT, SIGTERM and SIGHUP during an install: forwarded to the running uv
/// child, whose end the install waits for; the install then unwinds (its
/// temp dirs removed on drop) and [`die_if_interrupted`] re-raises the signal
/// so the launcher dies of it, as the caller expects.
pub(crate) use signals::die_if_interrupted;
pub(crate) use signals::install as catch_signals;
pub(crate) use signals::pending as interrupted;

#[cfg(unix)]
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    static SIGNAL: AtomicI32 = AtomicI32::new(0);
    static CHILD: AtomicI32 = AtomicI32::new(0);
    const CAUGHT: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    extern "C" fn on_signal(sig: libc::c_int) {
        // Only async-signal-safe calls: atomics and kill.
        SIGNAL.store(sig, Ordering::SeqCst);
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Catches the signals whose default is to die, unless they are ignored
    /// (`nohup` ignores SIGHUP: so do we). exec() resets them for the app.
    pub(crate) fn install() {
        for sig in CAUGHT {
            // SAFETY: plain sigaction calls with zeroed, then filled structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
    }

    pub(crate) fn pending() -> Option<i32> {
        match SIGNAL.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    pub(crate) fn set_child(pid: u32) {
        CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
    }

    pub(crate) fn forward(pid: u32) {
        if let (Some(sig), Ok(pid)) = (pending(), i32::try_from(pid)) {
            // SAFETY: signals a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Dies of the caught signal, if one came; call after cleaning up.
    pub(crate) fn die_if_interrupted() {
        let Some(sig) = pending() else { return };
        // SAFETY: restores the default action, unblocks and raises the signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
}

#[cfg(not(unix))]
mod signals {
    // Windows: Ctrl+C reaches every process of the console, uv included.
    pub(crate) fn install() {}
    pub(crate) fn pending() -> Option<i32> {
        None
    }
    pub(crate) fn set_child(_pid: u32) {}
    pub(crate) fn forward(_pid: u32) {}
    pub(crate) fn die_if_interrupted() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_filter() {
        for k in [
            "VIRTUAL_ENV",
            "PYTHONPATH",
            "UV_PYTHON",
            "UV_CONFIG_FILE",
            "UV_SYSTEM_PYTHON",
            "UV_REQUIRE_HASHES",
            "UV_PROJECT_ENVIRONMENT",
            "UV_LINK_MODE",
            "UV_COMPILE_BYTECODE",
        ] {
            assert!(env_removed(OsStr::new(k)), "{k}");
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
            assert!(!env_removed(OsStr::new(k)), "{k}");
        }
    }

    fn scratch_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("pyaket-uv-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn explains_what_cannot_run() {
        let zeros = scratch_file("zeros", &[0u8; 64]);
        let why = why_not_executable(&zeros).unwrap();
        assert!(
            why.contains("exec format error") && why.contains("00 00 00 00"),
            "{why}"
        );

        // This test binary is a program for this machine.
        let me = std::env::current_exe().unwrap();
        assert_eq!(why_not_executable(&me), None);

        // The same with another machine, then with a missing loader.
        let mut bytes = std::fs::read(&me).unwrap();
        bytes.truncate(4096);
        let other: u16 = if cfg!(target_arch = "aarch64") {
            62
        } else {
            183
        };
        let mut foreign = bytes.clone();
        foreign[18..20].copy_from_slice(&other.to_le_bytes());
        let foreign = scratch_file("foreign", &foreign);
        let why = why_not_executable(&foreign).unwrap();
        assert!(
            why.contains("exec format error") && why.contains("binfmt"),
            "{why}"
        );

        if let Some(at) = bytes.windows(3).position(|w| w == b"/li") {
            bytes[at + 1] = b'X';
            let no_loader = scratch_file("noloader", &bytes);
            let why = why_not_executable(&no_loader).unwrap();
            assert!(why.contains("loader") && why.contains("/Xi"), "{why}");
            let _ = std::fs::remove_file(no_loader);
        }
        let _ = std::fs::remove_file(zeros);
        let _ = std::fs::remove_file(foreign);
    }
}
