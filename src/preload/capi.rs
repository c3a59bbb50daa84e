//! The C API (`include/npu_alloc_shim.h`). Every function is callable from C,
//! `ctypes` and gdb, never panics across the boundary, and needs no setup.

use std::ffi::c_char;

/// NUL-terminated version string of this build.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version, a static NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn npu_alloc_shim_version() -> *const c_char {
    VERSION.as_ptr().cast()
}
