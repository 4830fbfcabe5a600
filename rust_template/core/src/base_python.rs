//! Windows: starting the venv's base interpreter directly.
//!
//! A uv venv's `Scripts\python.exe` is a small launcher stub (CPython's
//! `venvlauncher.exe`) that starts `<home>\python.exe` from `pyvenv.cfg`:
//! a second process per start, ~0.5 s under some antivirus scanners, and an
//! unsigned copy that some EDR products quarantine (uv#10288, uv#7324); its
//! `pythonw.exe` can be a console program, so a GUI app flashes a console
//! (uv#19226). The launcher does what that stub does instead: it runs the
//! base interpreter with `__PYVENV_LAUNCHER__` naming the venv's interpreter.
//! CPython's getpath then takes that path as `sys.executable`, finds the
//! venv's `pyvenv.cfg` beside it (so `sys.prefix` is the venv and its
//! site-packages are used), keeps the real program as `sys._base_executable`,
//! and removes the variable from the environment, so processes the app starts
//! (with `sys.executable`) behave as usual. multiprocessing starts its
//! workers the same way (`popen_spawn_win32`).
//!
//! Only where that is sound; otherwise the venv's own interpreter runs, as
//! before. The pure decision is compiled everywhere so it is unit tested on
//! every host; only Windows uses it.
#![cfg_attr(not(windows), allow(dead_code))]

use std::path::{Path, PathBuf};

/// Read by CPython's getpath on Windows (and macOS): the path to report as
/// `sys.executable` and to look for `pyvenv.cfg` beside.
pub(crate) const LAUNCHER_VAR: &str = "__PYVENV_LAUNCHER__";

/// What `run` starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Start {
    pub program: PathBuf,
    /// The value of [`LAUNCHER_VAR`] for the child; None: remove it.
    pub launcher: Option<PathBuf>,
}

/// The keys of `pyvenv.cfg` this decision reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PyvenvCfg {
    pub home: Option<String>,
    pub implementation: Option<String>,
    pub version: Option<(u32, u32)>,
}

/// Parses `pyvenv.cfg` the way CPython's getpath and site do: `key = value`
/// lines, the key before the first `=`, keys case-insensitive, both sides
/// trimmed, other lines ignored.
pub(crate) fn parse_pyvenv_cfg(text: &str) -> PyvenvCfg {
    let mut cfg = PyvenvCfg::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "home" => cfg.home = Some(value.to_string()),
            "implementation" => cfg.implementation = Some(value.to_string()),
            // uv writes `version_info`, CPython's venv `version`.
            "version_info" | "version" => cfg.version = parse_version(value).or(cfg.version),
            _ => {}
        }
    }
    cfg
}

fn parse_version(value: &str) -> Option<(u32, u32)> {
    let mut parts = value.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// `C:\...`, `C:/...` or a UNC/verbatim path (`\\server\share`, `\\?\C:\`):
/// what `home` must be for the base to be found regardless of the cwd.
fn is_windows_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    let drive =
        b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/');
    drive || path.starts_with("\\\\")
}

/// The base interpreter for a venv whose `pyvenv.cfg` says `cfg`, or why the
/// venv's own interpreter must run instead. `venv_python`: the venv's
/// python.exe or pythonw.exe (what `__PYVENV_LAUNCHER__` will name); `gui`
/// picks pythonw.exe; `exists` is a file test (the only I/O).
pub(crate) fn base_interpreter(
    cfg: &PyvenvCfg,
    venv_python: &Path,
    gui: bool,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let home = cfg.home.as_deref().unwrap_or_default();
    if !is_windows_absolute(home) {
        return Err(format!("pyvenv.cfg has no absolute home ({home:?})"));
    }
    // PyPy and GraalPy have their own launchers and path logic.
    if let Some(implementation) = &cfg.implementation {
        if !implementation.eq_ignore_ascii_case("cpython") {
            return Err(format!("implementation {implementation} is not CPython"));
        }
    }
    // CPython's Windows venv launcher (and this variable) date from 3.7.2;
    // uv supports 3.8 and later.
    let Some((major, minor)) = cfg.version.filter(|&v| v >= (3, 8)) else {
        return Err(format!(
            "version {:?} is not CPython 3.8 or later",
            cfg.version
        ));
    };
    let home = Path::new(home);
    // A free-threaded venv runs python3.Xt.exe, and a python.org install
    // with both builds has python.exe too: which one the venv is for is not
    // written down, so leave it to the venv's launcher.
    if (major, minor) >= (3, 13) && exists(&home.join(format!("python{major}.{minor}t.exe"))) {
        return Err(format!("{} has a free-threaded build", home.display()));
    }
    let name = if gui { "pythonw" } else { "python" };
    // A `._pth` file beside the executable or the DLL (the embeddable
    // distribution's) makes the base isolated: it would ignore the venv.
    for stem in [name.to_string(), format!("python{major}{minor}")] {
        let pth = home.join(format!("{stem}._pth"));
        if exists(&pth) {
            return Err(format!(
                "{} makes the base interpreter ignore venvs",
                pth.display()
            ));
        }
    }
    let base = home.join(format!("{name}.exe"));
    if !exists(&base) {
        return Err(format!("{} is missing", base.display()));
    }
    // sys.executable will name it, and apps start it for subprocesses.
    if !exists(venv_python) {
        return Err(format!("{} is missing", venv_python.display()));
    }
    Ok(base)
}

/// What to start for `venv`: reads its pyvenv.cfg and stats a few files (the
/// warm path). Falls back to the venv's own interpreter, which then reports
/// any real problem (a removed base Python) itself.
pub(crate) fn choose(venv: &Path, venv_python: &Path, gui: bool) -> Start {
    let cfg = venv.join("pyvenv.cfg");
    let decided = std::fs::read_to_string(&cfg)
        .map_err(|e| format!("cannot read {}: {e}", cfg.display()))
        .and_then(|text| {
            base_interpreter(&parse_pyvenv_cfg(&text), venv_python, gui, Path::is_file)
        });
    match decided {
        Ok(base) => Start {
            program: base,
            launcher: Some(venv_python.to_path_buf()),
        },
        Err(_) => Start {
            program: venv_python.to_path_buf(),
            launcher: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const UV_CFG: &str =
        "home = C:\\Users\\me\\AppData\\Roaming\\uv\\python\\cpython-3.12.7-windows-x86_64-none\n\
                          implementation = CPython\nuv = 0.13.9\nversion_info = 3.12.7\n\
                          include-system-site-packages = false\n";
    const HOME: &str =
        "C:\\Users\\me\\AppData\\Roaming\\uv\\python\\cpython-3.12.7-windows-x86_64-none";

    fn files(names: &[&str]) -> HashSet<PathBuf> {
        names.iter().map(|n| Path::new(HOME).join(n)).collect()
    }

    fn decide(cfg: &str, gui: bool, present: &HashSet<PathBuf>) -> Result<PathBuf, String> {
        let venv_python = Path::new("C:\\apps\\venv\\Scripts\\python.exe");
        base_interpreter(&parse_pyvenv_cfg(cfg), venv_python, gui, |p| {
            p == venv_python || present.contains(p)
        })
    }

    #[test]
    fn parses_uv_and_cpython_cfgs() {
        let cfg = parse_pyvenv_cfg(UV_CFG);
        assert_eq!(cfg.home.as_deref(), Some(HOME));
        assert_eq!(cfg.implementation.as_deref(), Some("CPython"));
        assert_eq!(cfg.version, Some((3, 12)));
        // CPython's venv: `version = 3.11.9`, keys in any case, no spaces.
        let cfg = parse_pyvenv_cfg(
            "Home=D:\\Py311\r\nversion = 3.11.9\r\nexecutable = D:\\Py311\\python.exe\r\n",
        );
        assert_eq!(cfg.home.as_deref(), Some("D:\\Py311"));
        assert_eq!(cfg.version, Some((3, 11)));
        assert_eq!(parse_version("3.13.0rc1"), Some((3, 13)));
        assert_eq!(parse_version("3"), None);
    }

    #[test]
    fn the_base_runs_where_it_honours_the_venv() {
        let present = files(&["python.exe", "pythonw.exe"]);
        assert_eq!(
            decide(UV_CFG, false, &present),
            Ok(Path::new(HOME).join("python.exe"))
        );
        assert_eq!(
            decide(UV_CFG, true, &present),
            Ok(Path::new(HOME).join("pythonw.exe"))
        );
        // No implementation line (older uv, CPython's venv): still CPython's layout.
        let cfg = UV_CFG.replace("implementation = CPython\n", "");
        assert!(decide(&cfg, false, &present).is_ok());
    }

    #[test]
    fn the_venv_interpreter_runs_where_the_base_would_not_honour_it() {
        let present = files(&["python.exe", "pythonw.exe"]);
        let why = |cfg: &str, present: &HashSet<PathBuf>| decide(cfg, false, present).unwrap_err();
        assert!(why("implementation = CPython\n", &present).contains("no absolute home"));
        assert!(why(&UV_CFG.replace(HOME, "python"), &present).contains("no absolute home"));
        assert!(why(&UV_CFG.replace("CPython", "PyPy"), &present).contains("PyPy is not CPython"));
        assert!(why(
            &UV_CFG.replace("version_info = 3.12.7", "version_info = 3.7.9"),
            &present
        )
        .contains("3.8 or later"));
        assert!(
            why(&UV_CFG.replace("version_info = 3.12.7\n", ""), &present).contains("3.8 or later")
        );
        // The embeddable distribution: isolated by its ._pth files.
        let embeddable = files(&["python.exe", "pythonw.exe", "python312._pth"]);
        assert!(why(UV_CFG, &embeddable)
            .contains("python312._pth makes the base interpreter ignore venvs"));
        let renamed = files(&["python.exe", "python._pth"]);
        assert!(why(UV_CFG, &renamed).contains("python._pth"));
        // A Python install that also has the free-threaded build.
        let cfg = UV_CFG.replace("version_info = 3.12.7", "version_info = 3.13.1");
        let both = files(&["python.exe", "pythonw.exe", "python3.13t.exe"]);
        assert!(why(&cfg, &both).contains("free-threaded"));
        assert!(decide(&cfg, false, &files(&["python.exe"])).is_ok());
        // The base was removed (`uv python uninstall`): the venv's launcher says so.
        assert!(why(UV_CFG, &files(&[])).ends_with("python.exe is missing"));
        assert!(decide(UV_CFG, true, &files(&["python.exe"]))
            .unwrap_err()
            .ends_with("pythonw.exe is missing"));
    }

    #[test]
    fn windows_absolute_paths() {
        for path in [
            "C:\\Python312",
            "z:/py",
            "\\\\server\\share\\py",
            "\\\\?\\C:\\py",
        ] {
            assert!(is_windows_absolute(path), "{path}");
        }
        for path in ["", "C:", "C:py", "\\py", "py\\python", "/usr/bin"] {
            assert!(!is_windows_absolute(path), "{path}");
        }
    }

    /// The real file tests on Windows (run under Wine with `cargo-zigbuild test
    /// --target x86_64-pc-windows-gnu`).
    #[cfg(windows)]
    #[test]
    fn choose_reads_the_venv_and_stats_the_base() {
        let dir = std::env::temp_dir().join(format!("pyaket-base-python-{}", std::process::id()));
        let home = dir.join("Python311");
        let venv = dir.join("venv");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(venv.join("Scripts")).unwrap();
        for file in [
            home.join("python.exe"),
            home.join("pythonw.exe"),
            venv.join("Scripts").join("python.exe"),
        ] {
            std::fs::write(file, b"MZ").unwrap();
        }
        let cfg = format!(
            "home = {}\nimplementation = CPython\nversion_info = 3.11.9\n",
            home.display()
        );
        std::fs::write(venv.join("pyvenv.cfg"), cfg).unwrap();
        let venv_python = venv.join("Scripts").join("python.exe");
        let start = choose(&venv, &venv_python, false);
        assert_eq!(
            start,
            Start {
                program: home.join("python.exe"),
                launcher: Some(venv_python.clone())
            }
        );
        // The venv has no pythonw.exe: sys.executable would name a missing file.
        let pythonw = venv.join("Scripts").join("pythonw.exe");
        assert_eq!(choose(&venv, &pythonw, true).program, pythonw);
        std::fs::write(home.join("python311._pth"), b"python311.zip\n.\n").unwrap();
        assert_eq!(
            choose(&venv, &venv_python, false),
            Start {
                program: venv_python,
                launcher: None
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(not(windows))]
    #[test]
    fn choose_falls_back_without_a_readable_cfg() {
        let venv = Path::new("/nonexistent/venv");
        let python = venv.join("Scripts").join("python.exe");
        let start = choose(venv, &python, false);
        assert_eq!(
            start,
            Start {
                program: python,
                launcher: None
            }
        );
    }
}
