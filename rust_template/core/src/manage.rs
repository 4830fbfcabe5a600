//! `<app> self <command>`: management commands, when the manifest enables them.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::dirs::{env_nonempty, Layout};
use crate::install;
use crate::out::Out;
use crate::{lock, record, secure, shared_uv, versions, Payload};

// println! panics on a closed pipe (`app self check | head -1`); a broken
// pipe is not worth an abort.
macro_rules! outln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stdout(), $($arg)*); }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{ let _ = writeln!(io::stderr(), $($arg)*); }};
}

const COMMANDS: &str = concat!(
    "  info     show the app, its payload and where it is installed\n",
    "  check    verify the manifest, every embedded file (decompress + sha256), the install dirs'\n",
    "           permissions and the installed files (against their RECORD), without installing\n",
    "  remove   delete this version's installation\n",
    "  restore  reinstall this version (remove + install), without running the app\n",
    "  clean    delete the other installed versions of this app\n",
    "  help     show this help\n",
    "\n",
    "environment:\n",
    "  PYAKET_LOCK_TIMEOUT  seconds to wait for another install/removal of this app, or for\n",
    "                       running apps before remove/restore (default 300)",
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

/// A GUI-subsystem program starts without a console, so `app self info` typed in a terminal would
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
    let name = p.self_command.unwrap_or("self");
    format!(
        "{} {} (pyaket launcher)\n\nusage: {} {name} <command>\n\ncommands:\n{COMMANDS}",
        p.app, p.version, p.app
    )
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
                outln!(
                    "      repair with `{} {} restore`",
                    p.app,
                    p.self_command.unwrap_or("self")
                );
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
        versions::remove_versions(&layout, std::iter::empty(), &mut err);
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
    let n = versions::remove_versions(&layout, others.into_iter(), &mut err);
    errln!("removed {n} other version(s)");
    let stale = install::remove_stale_temps(&layout);
    if stale > 0 {
        errln!("removed {stale} temp dir(s) left by interrupted installs");
    }
    Ok(0)
}
