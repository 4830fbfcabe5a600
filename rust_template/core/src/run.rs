//! Starting the app with the venv's interpreter.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::dirs::{self, Layout};
use crate::{EntryKind, Payload};

/// Runs the app; on Unix this only returns on failure, because the process
/// becomes Python (argv, stdio, signals and exit code pass untouched).
pub(crate) fn run_app(
    p: &Payload,
    layout: &Layout,
    argv0: Option<OsString>,
    args: Vec<OsString>,
) -> Result<i32> {
    let python = dirs::venv_python(&layout.version_dir.join("venv"), p.gui);
    let mut cmd = Command::new(&python);
    // -s: the user's site-packages must not shadow the app's dependencies.
    cmd.arg("-s").arg("-c").arg(bootstrap(p));
    cmd.arg(exe_path(argv0));
    cmd.args(args);
    for key in ["PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"] {
        cmd.env_remove(key);
    }
    exec(cmd, &python)
}

#[cfg(unix)]
fn exec(mut cmd: Command, python: &Path) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(err).with_context(|| broken_install(python))
}

#[cfg(windows)]
fn exec(mut cmd: Command, python: &Path) -> Result<i32> {
    // Ctrl+C reaches every process of the console; Python handles it, the
    // launcher must outlive the child to forward its exit code.
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
    let status = cmd.status().with_context(|| broken_install(python))?;
    // Windows exit codes are u32 (e.g. 0xC000013A); keep the bits.
    Ok(status.code().unwrap_or(1))
}

#[cfg(not(any(unix, windows)))]
fn exec(mut cmd: Command, python: &Path) -> Result<i32> {
    let status = cmd.status().with_context(|| broken_install(python))?;
    Ok(status.code().unwrap_or(1))
}

fn broken_install(python: &Path) -> String {
    format!(
        "cannot run {} (its base Python may have been removed; reinstall with `<this program> self restore`)",
        python.display()
    )
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

    fn payload(kind: EntryKind, value: &'static str) -> Payload {
        Payload {
            app: "a",
            version: "1",
            install_name: "a",
            vendor: "",
            target: "t",
            entry: Entry { kind, value },
            python: "3.11",
            wheel: "a.whl",
            uv: None,
            uv_version: "",
            lock: None,
            wheels: &[],
            python_archive: None,
            python_interpreter: None,
            self_command: None,
            keep_versions: 0,
            gui: false,
            payload_hash: "0123456789abcdef",
            manifest_hash: "",
            files: &[],
        }
    }

    #[test]
    fn py_str_is_ascii_and_escaped() {
        assert_eq!(py_str("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(py_str("é\n😀"), r"'\xe9\x0a\U0001f600'");
    }

    /// Runs the bootstrap through a real interpreter when one is on PATH.
    #[test]
    fn bootstrap_runs_in_python() {
        let p = payload(
            EntryKind::Code,
            "import sys\nprint(repr(sys.argv), sys.path[0] != '')\nraise SystemExit(3)",
        );
        let Ok(out) = Command::new("python3")
            .args(["-s", "-c", &bootstrap(&p), "/exe", "a b", "é"])
            .output()
        else {
            return;
        };
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "['/exe', 'a b', 'é'] True"
        );

        let p = payload(EntryKind::Script, "json:dumps");
        let out = Command::new("python3")
            .args(["-c", &bootstrap(&p), "/exe"])
            .output();
        // json.dumps() without arguments raises TypeError: proves the attribute was resolved and called.
        let stderr =
            String::from_utf8_lossy(&out.map(|o| o.stderr).unwrap_or_default()).into_owned();
        assert!(stderr.contains("TypeError"), "{stderr}");
    }
}
