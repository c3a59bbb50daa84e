//! Link settings for the preloaded library: a fixed soname, `nodelete` and
//! `-Bsymbolic`. (What it exports is rustc's own list; see below.)

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("src/preload/exports.map");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnpu_alloc_shim.so");
    // No second version script: rustc already links a cdylib with its own
    // anonymous one (`global:` its #[no_mangle] exports, `local: *`), and GNU
    // ld refuses to combine an anonymous version tag with any other ("anonymous
    // version tag cannot be combined with other version tags"): only lld (the
    // x86_64 default since Rust 1.90) accepted it, so aarch64 and Debian's rustc
    // did not link. `src/preload/exports.map` stays the list of record, and
    // tests/exports.rs checks the built library exports exactly it.
    // Never unloaded: other libraries keep pointers to the hooks, and the exit
    // and fork handlers registered at load must stay valid.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The library's own references to its exports (the hook addresses that
    // `dlsym` hands out) must mean its own functions, even when the program
    // defines a function of the same name (a mock runtime, say).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
}
