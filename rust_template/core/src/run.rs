//! Starting the app with the venv's interpreter.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Result};

use crate::base_python;
use crate::dirs::{self, Layout};
use crate::manage;
use crate::{EntryKind, Payload};

/// A shared lock on this version's marker, held for as long as the app runs:
/// removers (see `versions`) take it exclusively, so they wait for the app or
/// keep the version. On Unix the file stays open across exec, so the Python
/// process itself holds the lock until it exits. Python's `subprocess` closes
/// inherited fds in its children, so processes the app starts do not hold it:
/// a child outliving the app (a daemon) is not protected; a plain `os.fork()`
/// child is, and so would be an app that passed the fd on. An app that
/// closes every fd above 2 (`os.closerange`) drops the lock.
pub(crate) struct InUse {
    _file: Option<File>,
}

/// Takes this version's in-use lock. None: not installed, being removed, or
/// replaced meanwhile; the caller installs (waiting for the app lock without
/// holding any lock here) and tries again.
///
/// The warm path: open, flock, and two stats (one of them fstat) before exec,
/// where there used to be one stat.
pub(crate) fn enter(layout: &Layout) -> Option<InUse> {
    let marker = layout.marker();
    let file = match open_inherited(&marker) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        // Installed but unreadable by this user (another user's install):
        // run as before this lock existed, unprotected.
        Err(_) => return layout.is_installed().then_some(InUse { _file: None }),
    };
    match file.try_lock_shared() {
        Ok(()) => {}
        // A remover holds it exclusively.
        Err(TryLockError::WouldBlock) => return None,
        // A file system without locks: run unprotected rather than not at all.
        Err(TryLockError::Error(_)) => {}
    }
    // A remover may have parked the marker or removed the version between
    // our open and our lock: then the lock is on a file that is no longer
    // this version's marker.
    same_file(&file, &marker).then_some(InUse { _file: Some(file) })
}

/// Opens `path` read-only without close-on-exec (std always sets it), so
/// that the exec'd app inherits it. Rust's runtime makes sure fds 0-2 are
/// open at start, so this never lands on a standard stream.
#[cfg(unix)]
fn open_inherited(path: &Path) -> io::Result<File> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path; the fd is owned by the File below.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(not(unix))]
fn open_inherited(path: &Path) -> io::Result<File> {
    // The launcher waits for the child and holds the lock itself.
    File::open(path)
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    // Without stable file ids, at least the marker must still be there; a
    // version dir with files open in it cannot be renamed on Windows anyway.
    path.is_file()
}

/// Runs the app; on Unix this only returns on failure, because the process
/// becomes Python (argv, stdio, signals and exit code pass untouched).
pub(crate) fn run_app(
    p: &Payload,
    layout: &Layout,
    argv0: Option<OsString>,
    args: Vec<OsString>,
    in_use: InUse,
) -> Result<i32> {
    let venv = layout.version_dir.join("venv");
    let start = interpreter(&venv, p.gui);
    let code = bootstrap(p);
    let argv0 = app_argv0(p, &venv, argv0);
    let n_args = args.len();
    let command = |start: &base_python::Start| {
        let mut cmd = Command::new(&start.program);
        // -s: the user's site-packages must not shadow the app's dependencies.
        cmd.arg("-s").arg("-c").arg(&code).arg(&argv0).args(&args);
        for key in ["PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"] {
            cmd.env_remove(key);
        }
        // A stray value (left by a parent's venv launcher) would become the
        // app's sys.executable.
        match &start.launcher {
            Some(venv_python) => cmd.env(base_python::LAUNCHER_VAR, venv_python),
            None => cmd.env_remove(base_python::LAUNCHER_VAR),
        };
        cmd
    };
    let mut python = start.program.clone();
    let mut result = exec(command(&start));
    let retry = matches!(&result, Err(e) if !matches!(errno(e), Errno::TooBig));
    if let (true, Some(venv_python)) = (retry, start.launcher) {
        // The base exists but could not be started (an app execution alias,
        // a policy on its folder): the venv's own interpreter may know how.
        let fallback = base_python::Start {
            program: venv_python,
            launcher: None,
        };
        python = fallback.program.clone();
        result = exec(command(&fallback));
    }
    drop(in_use);
    result.map_err(|e| {
        let restore = manage::how_to_run(p, "restore");
        anyhow!("{}", exec_error(&e, &python, &restore, n_args))
    })
}

/// The interpreter to start: on Windows the venv's base interpreter where
/// that is sound (see [`base_python`]), elsewhere the venv's.
#[cfg(windows)]
fn interpreter(venv: &Path, gui: bool) -> base_python::Start {
    base_python::choose(venv, &dirs::venv_python(venv, gui), gui)
}

#[cfg(not(windows))]
fn interpreter(venv: &Path, gui: bool) -> base_python::Start {
    // No stub to skip: bin/python is a symlink to the base, which the exec
    // replaces this process with.
    base_python::Start {
        program: dirs::venv_python(venv, gui),
        launcher: None,
    }
}

#[cfg(unix)]
fn exec(mut cmd: Command) -> io::Result<i32> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec())
}

#[cfg(windows)]
fn exec(mut cmd: Command) -> io::Result<i32> {
    // Ctrl+C and Ctrl+Break reach every process of the console; Python
    // handles them, the launcher must outlive the child to forward its exit
    // code. A handler that says "handled", not SetConsoleCtrlHandler(NULL,
    // TRUE): that ignore flag is inherited, and Python would never see Ctrl+C.
    // Close/logoff/shutdown still end the launcher after the system's timeout.
    unsafe extern "system" fn ignore_ctrl(_ctrl_type: u32) -> i32 {
        1
    }
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn SetConsoleCtrlHandler(
            handler: Option<unsafe extern "system" fn(u32) -> i32>,
            add: i32,
        ) -> i32;
    }
    // SAFETY: registers a handler that touches no state; no console is fine.
    unsafe {
        SetConsoleCtrlHandler(Some(ignore_ctrl), 1);
    }
    let status = cmd.status()?;
    // Windows exit codes are u32 (e.g. 0xC000013A); keep the bits.
    Ok(status.code().unwrap_or(1))
}

#[cfg(not(any(unix, windows)))]
fn exec(mut cmd: Command) -> io::Result<i32> {
    let status = cmd.status()?;
    Ok(status.code().unwrap_or(1))
}

/// Why the interpreter could not be started, and what to do, by errno.
/// `restore`: how to run `restore` ([`manage::how_to_run`]).
fn exec_error(err: &io::Error, python: &Path, restore: &str, n_args: usize) -> String {
    let reinstall = format!("reinstall it with {restore}");
    let python = python.display();
    match errno(err) {
        Errno::TooBig => format!(
            "cannot start {python}: argument list too long ({n_args} arguments; \
             with the environment they exceed the system's limit, see `getconf ARG_MAX`, \
             or one argument is over 128 KiB): pass fewer or shorter arguments ({err})"
        ),
        Errno::NotFound => format!(
            "cannot start {python}: it is missing (the app's environment or its base Python \
             was removed); {reinstall} ({err})"
        ),
        Errno::NoExec => format!(
            "cannot execute {python} (permission denied or not an executable for this system, \
             e.g. a noexec mount or another CPU architecture); {reinstall} ({err})"
        ),
        Errno::Other => format!("cannot start {python}: {err}; {reinstall}"),
    }
}

enum Errno {
    TooBig,
    NotFound,
    NoExec,
    Other,
}

fn errno(err: &io::Error) -> Errno {
    // ERROR_FILENAME_EXCED_RANGE: CreateProcess's 32767-character command line limit.
    #[cfg(windows)]
    if err.raw_os_error() == Some(206) {
        return Errno::TooBig;
    }
    #[cfg(unix)]
    match err.raw_os_error() {
        Some(libc::E2BIG) => return Errno::TooBig,
        Some(libc::ENOENT | libc::ENOTDIR) => return Errno::NotFound,
        Some(libc::EACCES | libc::ENOEXEC | libc::EPERM) => return Errno::NoExec,
        _ => {}
    }
    match err.kind() {
        io::ErrorKind::ArgumentListTooLong => Errno::TooBig,
        io::ErrorKind::NotFound => Errno::NotFound,
        io::ErrorKind::PermissionDenied => Errno::NoExec,
        _ => Errno::Other,
    }
}

/// `sys.argv[0]` for the app. The app's usage lines (argparse, click: the
/// basename of argv[0]) should read like its console script's (`black`),
/// not like the release file's name (`black-26.10.1-x86_64-unknown-linux-gnu`),
/// so when this program still has its release name
/// (`<entry name>-<version>-<target>[.exe]`), argv[0] is the venv's console
/// script of that name: a real file, so an app that re-executes sys.argv[0]
/// still starts itself (with the venv's interpreter, without the launcher).
/// Without such a script (module and code entries) it is the bare name.
/// A renamed or symlinked program keeps the name it was started as: the
/// user chose it ([`exe_path`]). Costs one stat, only for a release name.
fn app_argv0(p: &Payload, venv: &Path, argv0: Option<OsString>) -> OsString {
    let file_name = match argv0.as_ref().filter(|a| !a.is_empty()) {
        Some(arg) => Path::new(arg).file_name().map(|n| n.to_os_string()),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.file_name().map(|n| n.to_os_string())),
    };
    if file_name.is_some_and(|n| is_release_name(p, &n.to_string_lossy())) {
        if p.entry.kind == EntryKind::Script {
            let script = dirs::venv_script(venv, p.entry.name);
            if script.is_file() {
                return script.into_os_string();
            }
        }
        return OsString::from(p.entry.name);
    }
    exe_path(argv0)
}

/// `<entry name>-<version>-<target>[.exe]`, as hatch_pyaket/artifacts.py
/// names the executable; Windows file names ignore case and may be typed
/// without `.exe`.
fn is_release_name(p: &Payload, file_name: &str) -> bool {
    if p.entry.name.is_empty() {
        return false;
    }
    let release = format!("{}-{}-{}", p.entry.name, p.version, p.target);
    if cfg!(windows) {
        let name = file_name.to_ascii_lowercase();
        let name = name.strip_suffix(".exe").unwrap_or(&name);
        name == release.to_ascii_lowercase()
    } else {
        file_name == release
    }
}

/// `sys.argv[0]` for the app: the path this program was started as when it
/// is a path (like a console script's argv[0]), else the resolved executable
/// (it was found on PATH).
fn exe_path(argv0: Option<OsString>) -> OsString {
    if let Some(arg) = argv0 {
        let is_path = Path::new(&arg).components().count() > 1;
        if is_path {
            return arg;
        }
        return std::env::current_exe()
            .map(PathBuf::into_os_string)
            .unwrap_or(arg);
    }
    std::env::current_exe()
        .map(PathBuf::into_os_string)
        .unwrap_or_default()
}

/// Python source passed with `-c`. `sys.argv` arrives as `['-c', exe, *args]`.
/// With -c, sys.path[0] is '' (the cwd), which would let files in the user's
/// cwd shadow the app's modules.
pub(crate) fn bootstrap(p: &Payload) -> String {
    let mut code = String::from(
        "import sys\ndel sys.argv[0]\nif sys.path and sys.path[0] == '':\n    del sys.path[0]\n",
    );
    let value = p.entry.value.trim();
    match p.entry.kind {
        EntryKind::Script => {
            let (module, attrs) = value.split_once(':').unwrap_or((value, ""));
            code.push_str(&format!(
                "__import__({m})\nf = sys.modules[{m}]\nfor a in {a}.split('.'):\n    if a:\n        f = getattr(f, a)\ndel a\nsys.exit(f())\n",
                m = py_str(module.trim()),
                a = py_str(attrs.trim()),
            ));
        }
        EntryKind::Module => {
            // What `python -m` calls, minus replacing argv[0] with the module path.
            code.push_str(&format!(
                "import runpy\nrunpy._run_module_as_main({}, False)\n",
                py_str(value)
            ));
        }
        EntryKind::Code => {
            code.push_str(&format!("exec({})\n", py_str(p.entry.value)));
        }
    }
    code
}

/// A Python string literal, ASCII-only so the command line survives any locale.
fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entry;

    /// The golden manifest with a short name, version and target, and this entry.
    fn payload(kind: EntryKind, value: &'static str) -> Payload {
        let mut p = crate::integrity::tests::golden();
        p.manifest.app = "a";
        p.manifest.version = "1";
        p.manifest.target = "t";
        p.manifest.entry = Entry {
            kind,
            value,
            name: "a",
        };
        p
    }

    #[test]
    fn exec_errors_say_why_by_errno() {
        let python = Path::new("/apps/x/1.0-abc/venv/bin/python");
        let restore = "`PYAKET_SELF=restore ./my-app`";
        let msg = |e: io::Error| exec_error(&e, python, restore, 7);
        #[cfg(unix)]
        {
            let too_big = msg(io::Error::from_raw_os_error(libc::E2BIG));
            assert!(
                too_big.starts_with("cannot start /apps/x/1.0-abc/venv/bin/python: argument list too long (7 arguments;"),
                "{too_big}"
            );
            assert!(
                !too_big.contains("restore") && !too_big.contains("removed"),
                "{too_big}"
            );
            let gone = msg(io::Error::from_raw_os_error(libc::ENOENT));
            assert!(gone.contains("it is missing (the app's environment or its base Python was removed); reinstall it with `PYAKET_SELF=restore ./my-app`"), "{gone}");
            for code in [libc::EACCES, libc::ENOEXEC] {
                let denied = msg(io::Error::from_raw_os_error(code));
                assert!(denied.starts_with("cannot execute /apps/x/1.0-abc/venv/bin/python (permission denied or not an executable"), "{denied}");
                assert!(denied.contains(restore), "{denied}");
            }
        }
        let other = msg(io::Error::other("boom"));
        assert_eq!(
            other,
            "cannot start /apps/x/1.0-abc/venv/bin/python: boom; reinstall it with `PYAKET_SELF=restore ./my-app`"
        );
    }

    #[test]
    fn release_names_are_recognised() {
        let p = payload(EntryKind::Script, "a:main");
        let exe = if cfg!(windows) { ".exe" } else { "" };
        assert!(is_release_name(&p, &format!("a-1-t{exe}")));
        assert!(!is_release_name(&p, "a"));
        assert!(!is_release_name(&p, "a-1-t-copy"));
        assert!(!is_release_name(&p, "b-1-t"));
        // Not a release name: the program keeps the path it was started as.
        let argv0 = OsString::from("./renamed");
        let venv = Path::new("/nonexistent/venv");
        assert_eq!(app_argv0(&p, venv, Some(argv0.clone())), argv0);
        // A release name without the script in the venv: the bare name.
        let release = OsString::from(format!("./dist/a-1-t{exe}"));
        assert_eq!(app_argv0(&p, venv, Some(release)), OsString::from("a"));
    }

    #[test]
    fn py_str_is_ascii_and_escaped() {
        assert_eq!(py_str("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(py_str("é\n😀"), r"'\xe9\x0a\U0001f600'");
    }

    /// Runs the bootstrap through a real interpreter: python3 must be on PATH
    /// (a missing one fails the test rather than skipping it silently).
    #[test]
    fn bootstrap_runs_in_python() {
        let p = payload(
            EntryKind::Code,
            "import sys\nprint(repr(sys.argv), sys.path[0] != '')\nraise SystemExit(3)",
        );
        let out = Command::new("python3")
            .args(["-s", "-c", &bootstrap(&p), "/exe", "a b", "é"])
            .output()
            .expect("this test runs the bootstrap with python3, which must be on PATH");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "['/exe', 'a b', 'é'] True"
        );

        let p = payload(EntryKind::Script, "json:dumps");
        let out = Command::new("python3")
            .args(["-c", &bootstrap(&p), "/exe"])
            .output()
            .expect("python3 on PATH");
        // json.dumps() without arguments raises TypeError: proves the attribute was resolved and called.
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("TypeError"), "{stderr}");
    }
}
