//! `PYAKET_GUI=1` builds a Windows GUI-subsystem binary (no console window).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PYAKET_GUI");
    println!("cargo::rustc-check-cfg=cfg(pyaket_gui)");
    let gui = std::env::var("PYAKET_GUI").unwrap_or_default();
    if matches!(
        gui.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes"
    ) {
        println!("cargo::rustc-cfg=pyaket_gui");
    }
}
