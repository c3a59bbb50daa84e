//! Link settings for the preloaded library: a fixed soname, a version script
//! so that the `.so` exports only its C API and its hooks, and `nodelete`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("src/preload/exports.map");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnpu_alloc_shim.so");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    // Never unloaded: other libraries keep pointers to the hooks, and the exit
    // and fork handlers registered at load must stay valid.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The library's own references to its exports (the hook addresses that
    // `dlsym` hands out) must mean its own functions, even when the program
    // defines a function of the same name (a mock runtime, say).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
}
