//! `uniffi-bindgen`: UniFFI's binding generator, pinned to this workspace's uniffi version.
//!
//! `cargo run -p tether-uniffi-bindgen --bin uniffi-bindgen -- generate --library <cdylib> --language kotlin|swift|python --out-dir <dir>`
//! (`bindings/generate.sh` runs it for all three languages).

fn main() {
    uniffi::uniffi_bindgen_main()
}
