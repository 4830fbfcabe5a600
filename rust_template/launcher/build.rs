//! `PYAKET_GUI=1` builds a Windows GUI-subsystem binary (no console window).
//! `PYAKET_WINDOWS_RES=<file.res>` links a compiled resource file (version information, icon) into a
//! Windows binary; the plugin writes it (hatch_pyaket/winres.py) for linkers that take `.res` files
//! (lld, link.exe).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PYAKET_GUI");
    println!("cargo::rerun-if-env-changed=PYAKET_WINDOWS_RES");
    println!("cargo::rustc-check-cfg=cfg(pyaket_gui)");
    let gui = env::var("PYAKET_GUI").unwrap_or_default();
    if matches!(
        gui.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes"
    ) {
        println!("cargo::rustc-cfg=pyaket_gui");
    }
    let windows = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    if let Some(res) = env::var_os("PYAKET_WINDOWS_RES").filter(|v| !v.is_empty()) {
        let res = Path::new(&res);
        if !res.is_file() {
            eprintln!(
                "\nerror: PYAKET_WINDOWS_RES={} is not a file\n",
                res.display()
            );
            std::process::exit(1);
        }
        if windows {
            println!("cargo::rerun-if-changed={}", res.display());
            println!("cargo::rustc-link-arg-bins={}", res.display());
        }
    }
}
