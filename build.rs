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
    start_path_first(&manifest);
    static_unwinder();
}

/// Places the code every process runs at load together, at the start of
/// the text (`src/preload/start_path.ld`): one page fault instead of
/// several for a process that never uses an accelerator.
fn start_path_first(manifest: &std::path::Path) {
    let script = manifest.join("src/preload/start_path.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
}

/// Links the unwinder into the library (libgcc_eh.a, hidden) instead of
/// needing `libgcc_s.so.1`: loading a second shared object is most of what
/// a Rust cdylib costs every process at start (README, Benchmarks). Rust's
/// std asks for `-lgcc_s`; a linker script of that name found first on the
/// library path makes it `-lgcc_eh`. `-L` applies to every `-l` of the link
/// wherever it stands (GNU ld and lld alike), and this argument reaches only
/// the cdylib's link, not the tests' executables. zig (the release builds)
/// brings its own static libunwind and never reads the script.
fn static_unwinder() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("static-unwinder");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/static-unwinder");
    std::fs::write(out.join("libgcc_s.so"), "/* build.rs: the unwinder, linked statically */\nINPUT(-lgcc_eh)\n")
        .expect("write the linker script");
    println!("cargo:rustc-cdylib-link-arg=-L{}", out.display());
}
