//! Management commands (info, check, remove, restore, clean, install,
//! uninstall, help), run instead of the app when `PYAKET_SELF=<command>` is set, or (opt-in, the
//! manifest's `self_command`) when the first argument is that word.
//!
//! By default every argument reaches the app: a reserved word such as `self`
//! collides with real CLIs (`hatch self ...`), so the always-available way is
//! an environment variable, like a-scie/jump's `SCIE=...`.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::dirs::{env_nonempty, Layout};
use crate::install;
use crate::out::Out;
use crate::{lock, path_install, record, secure, shared_uv, update, versions, Payload};

// println! panics on a closed pipe (`PYAKET_SELF=check app | head -1`); a broken
// pipe is not worth an abort.
macro_rules! outln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stdout(), $($arg)*); }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stderr(), $($arg)*); }};
}

/// Its value is a management command to run instead of the app; empty is ignored.
pub(crate) const SELF_VAR: &str = "PYAKET_SELF";

const COMMANDS: &str = concat!(
    "  info     show the app, its payload and where it is installed\n",
    "  check    verify the manifest, every embedded file (decompress + sha256), the install dirs'\n",
    "           permissions and the installed files (against their RECORD), without installing\n",
    "  remove   delete this version's installation\n",
    "  restore  reinstall this version (remove + install), without running the app\n",
    "  clean    delete the other installed versions of this app\n",
    "  install  copy this executable into your bin dir under the app's command name\n",
    "           (XDG_BIN_HOME or ~/.local/bin; %LOCALAPPDATA%\\Programs\\<vendor>\\bin on Windows);\n",
    "           prints how to put that dir on PATH when it is not\n",
    "  uninstall delete that copy, every installed version of this app, and the shared uv\n",
    "           when no other app uses it\n",
    "  update   replace this executable with the newest release, when the project configures\n",
    "           updates: SHA256SUMS verified with the embedded minisign key, the file with its\n",
    "           sha256, the new version self-checked before it takes this one's place.\n",
    "           `update --check` only tells; `--allow-downgrade` takes an older release, `--force`\n",
    "           the same version too (options after the program: PYAKET_SELF=update <app> --check)\n",
    "  help     show this help\n",
    "\n",
    "environment:\n",
    "  PYAKET_SELF          a command above, run instead of the app (an empty value is ignored)\n",
    "  PYAKET_INSTALL_DIR   where apps are installed (default: LOCALAPPDATA on Windows,\n",
    "                       ~/Library/Application Support on macOS, else XDG_DATA_HOME or\n",
    "                       ~/.local/share)\n",
    "  PYAKET_LOCK_TIMEOUT  seconds to wait for another install/removal of this app, or for\n",
    "                       running apps before remove/restore (default 300)\n",
    "  PYAKET_PYTHON        the Python a first install (or restore) builds the app's environment\n",
    "                       on: a path or a version request, instead of the embedded/requested one\n",
    "  PYAKET_UV            the uv binary that installs, instead of the embedded one\n",
    "  XDG_BIN_HOME         where `install` puts the copy on Unix (default ~/.local/bin)",
);

pub(crate) fn run(p: &Payload, args: &[OsString]) -> Result<i32> {
    if p.gui {
        attach_parent_console();
    }
    let cmd = args.first().map(|a| a.to_string_lossy().into_owned());
    match cmd.as_deref() {
        Some("info") => info(p),
        Some("check") => check(p),
        Some("remove") => remove(p),
        Some("restore") => restore(p),
        Some("clean") => clean(p),
        Some("install") => path_install::install(p),
        Some("uninstall") => path_install::uninstall(p),
        Some("update") => update::run(p, &args[1..]),
        Some("help" | "--help" | "-h") => {
            outln!("{}", usage(p));
            Ok(0)
        }
        other => {
            if let Some(other) = other {
                errln!("error: unknown command {other:?}");
            }
            errln!("{}", usage(p));
            Ok(2)
        }
    }
}

/// A GUI-subsystem program starts without a console, so `PYAKET_SELF=info app` typed in a terminal would
/// print nothing: write to the terminal's console instead. Redirected output (a pipe, a file)
/// already has valid handles and is left alone.
#[cfg(windows)]
fn attach_parent_console() {
    use std::ffi::c_void;
    const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;
    const ATTACH_PARENT_PROCESS: u32 = u32::MAX;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetStdHandle(which: u32) -> *mut c_void;
        fn AttachConsole(process: u32) -> i32;
    }
    // SAFETY: plain Win32 calls without pointers from us; failure (no parent console) is fine.
    unsafe {
        let out = GetStdHandle(STD_OUTPUT_HANDLE);
        if out.is_null() || out as isize == -1 {
            AttachConsole(ATTACH_PARENT_PROCESS);
        }
    }
}

#[cfg(not(windows))]
fn attach_parent_console() {}

fn usage(p: &Payload) -> String {
    let program = program_name(std::env::args_os().next().as_ref());
    let ways = invocations(&program, p.self_command, "<command>");
    let args = if p.self_command.is_some() {
        "every other argument"
    } else {
        "every argument"
    };
    format!(
        "{} {} (pyaket launcher)\n\nusage: {}\n\n{args} goes to the app; management commands run instead of it.\n\ncommands:\n{COMMANDS}",
        p.app,
        p.version,
        ways.join("\n   or: "),
    )
}

/// How to run management `command` with this very program, in backticks:
/// the one wording of every message that tells the user to run one (exec
/// errors, `check`'s repair hint, ...). The variable always works; the word
/// only when the build configured one.
pub(crate) fn how_to_run(p: &Payload, command: &str) -> String {
    let program = program_name(std::env::args_os().next().as_ref());
    how_to_run_as(&program, p.self_command, command)
}

pub(crate) fn how_to_run_as(program: &str, word: Option<&str>, command: &str) -> String {
    invocations(program, word, command)
        .iter()
        .map(|line| format!("`{line}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The command lines that run `command`: through [`SELF_VAR`], and with the
/// configured word.
fn invocations(program: &str, word: Option<&str>, command: &str) -> Vec<String> {
    // cmd.exe has no `VAR=value program`; `cmd /c` scopes the variable to that one run.
    let mut lines = vec![if cfg!(windows) {
        format!("cmd /c \"set {SELF_VAR}={command}&& {program}\"")
    } else if command.contains(' ') {
        // A command with options (`update --check`): one shell word.
        format!("{SELF_VAR}='{command}' {program}")
    } else {
        format!("{SELF_VAR}={command} {program}")
    }];
    if let Some(word) = word {
        lines.push(format!("{program} {word} {command}"));
    }
    lines
}

/// How the user can run this program again: argv[0] as typed (a path or a
/// name found on PATH), else the executable's path; quoted for a shell.
fn program_name(argv0: Option<&OsString>) -> String {
    let name = match argv0.filter(|a| !a.is_empty()) {
        Some(a) => a.to_string_lossy().into_owned(),
        None => std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<this program>".to_string()),
    };
    if cfg!(windows) {
        if name.contains(char::is_whitespace) {
            return format!("\"{name}\"");
        }
        return name;
    }
    if name.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
        format!("'{}'", name.replace('\'', "'\\''"))
    } else {
        name
    }
}

fn info(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    let mut o = io::stdout().lock();
    let python = match env_nonempty("PYAKET_PYTHON") {
        Some(v) => format!("{} (PYAKET_PYTHON)", v.to_string_lossy()),
        None => match p.python_archive {
            Some(name) => format!("embedded {name}"),
            None => p.python.to_string(),
        },
    };
    let uv = match (env_nonempty("PYAKET_UV"), p.uv) {
        (Some(v), _) => format!("{} (PYAKET_UV)", v.to_string_lossy()),
        (None, Some(name)) => {
            let shared = shared_uv::location(&layout.root, p.file(name)?, p.uv_version);
            format!(
                "{} (embedded; unpacked once into {})",
                p.uv_version,
                shared.display()
            )
        }
        (None, None) => "uv from PATH".to_string(),
    };
    let write = |o: &mut io::StdoutLock, k: &str, v: &str| writeln!(o, "{k:<13}{v}");
    let r = (|| -> io::Result<()> {
        write(&mut o, "app", p.app)?;
        write(&mut o, "version", p.version)?;
        write(&mut o, "target", p.target)?;
        write(&mut o, "payload hash", p.payload_hash)?;
        write(&mut o, "python", &python)?;
        write(&mut o, "uv", &uv)?;
        write(
            &mut o,
            "install dir",
            &layout.version_dir.display().to_string(),
        )?;
        write(
            &mut o,
            "installed",
            if layout.is_installed() { "yes" } else { "no" },
        )?;
        if p.gui {
            write(&mut o, "log file", &layout.log_file().display().to_string())?;
        }
        Ok(())
    })();
    r.context("writing to stdout")?;
    Ok(0)
}

fn check(p: &Payload) -> Result<i32> {
    let mut failed = 0;
    // The manifest first: a flipped byte in the entry, the python request or
    // a file's expected sha256 is not covered by the files' own hashes.
    match p.check_hashes() {
        Ok(()) => outln!("ok    manifest (manifest_hash {})", p.manifest_hash),
        Err(e) => {
            outln!("FAIL  manifest: {e:#}");
            failed += 1;
        }
    }
    for f in p.files {
        match f.verify() {
            Ok(()) => outln!("ok    {} ({} bytes)", f.name, f.size),
            Err(e) => {
                outln!("FAIL  {}: {e:#}", f.name);
                failed += 1;
            }
        }
    }
    let layout = Layout::new(p).and_then(|layout| {
        secure::check_layout(&layout)?;
        Ok(layout)
    });
    let layout = match layout {
        Ok(layout) => {
            outln!("ok    install dirs ({})", layout.root.display());
            Some(layout)
        }
        Err(e) => {
            outln!("FAIL  install dirs: {e:#}");
            failed += 1;
            // Files in dirs others can write to are not read: one could be a FIFO.
            None
        }
    };
    if let Some(layout) = &layout {
        if shared_uv::print_check(p, layout) {
            failed += 1;
        }
    }
    if let Some(layout) = layout.filter(|l| l.is_installed()) {
        let venv = layout.version_dir.join("venv");
        match record::verify_env(&venv) {
            Ok(problems) if problems.is_empty() => {
                outln!(
                    "ok    installed files match their RECORD ({})",
                    venv.display()
                )
            }
            Ok(problems) => {
                for problem in &problems {
                    outln!("FAIL  installed file {problem}");
                }
                outln!("      repair with {}", how_to_run(p, "restore"));
                failed += problems.len();
            }
            Err(e) => {
                outln!("FAIL  installed files: {e:#}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        outln!("OK: {} embedded files verified", p.files.len());
        Ok(0)
    } else {
        outln!("FAILED: {failed} problem(s) found");
        Ok(1)
    }
}

fn remove(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    secure::check_layout(&layout)?;
    let mut err = io::stderr();
    let _lock = lock::acquire(&layout, &mut err)?;
    if layout.version_dir.exists() {
        // Waits (bounded) for running apps of this version to exit.
        versions::remove_dir_locked(&layout, &layout.version_dir)
            .with_context(|| format!("cannot remove {} {}", p.app, p.version))?;
        versions::remove_versions(&layout, std::iter::empty(), "", &mut err);
        errln!("removed {}", layout.version_dir.display());
    } else {
        errln!("{} {} is not installed", p.app, p.version);
    }
    Ok(0)
}

fn restore(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    let mut out = Out::new(p, &layout)?;
    let _ = writeln!(
        out,
        "{} {}: reinstalling into {} ...",
        p.app,
        p.version,
        layout.version_dir.display()
    );
    secure::check_install(p, &layout)?;
    // Waits (bounded) for running apps of this version to exit; apps
    // started meanwhile wait for the new install.
    install::reinstall(p, &layout, &mut out)
        .with_context(|| format!("cannot reinstall {} {}", p.app, p.version))?;
    record::verify_restored(p, &layout, &mut out)?;
    errln!("installed {}", layout.version_dir.display());
    Ok(0)
}

fn clean(p: &Payload) -> Result<i32> {
    let layout = Layout::new(p)?;
    secure::check_layout(&layout)?;
    let mut err = io::stderr();
    let _lock = lock::acquire(&layout, &mut err)?;
    let others = versions::other_versions(&layout);
    for dir in &others {
        errln!("removing {}", dir.display());
    }
    // Versions in use by running apps are kept (and said so).
    let clean = how_to_run(p, "clean");
    let n = versions::remove_versions(&layout, others.into_iter(), &clean, &mut err);
    errln!("removed {n} other version(s)");
    let stale = install::remove_stale_temps(&layout);
    if stale > 0 {
        errln!("removed {stale} temp dir(s) left by interrupted installs");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_show_the_variable_and_the_word_when_configured() {
        let env_way = if cfg!(windows) {
            "`cmd /c \"set PYAKET_SELF=restore&& ./app\"`"
        } else {
            "`PYAKET_SELF=restore ./app`"
        };
        assert_eq!(how_to_run_as("./app", None, "restore"), env_way);
        assert_eq!(
            how_to_run_as("./app", Some("admin"), "restore"),
            format!("{env_way} or `./app admin restore`")
        );
        #[cfg(unix)]
        assert_eq!(
            how_to_run_as("./app", Some("admin"), "update --force"),
            "`PYAKET_SELF='update --force' ./app` or `./app admin update --force`"
        );
    }

    #[test]
    fn program_names_can_be_pasted_into_a_shell() {
        assert_eq!(program_name(Some(&OsString::from("./app"))), "./app");
        #[cfg(unix)]
        assert_eq!(
            program_name(Some(&OsString::from("/a b/it's"))),
            r"'/a b/it'\''s'"
        );
        assert!(!program_name(Some(&OsString::new())).is_empty());
    }
}
