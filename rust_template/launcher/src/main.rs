#![cfg_attr(pyaket_gui, windows_subsystem = "windows")]

fn main() {
    pyaket_core::main(&pyaket_payload::PAYLOAD)
}
