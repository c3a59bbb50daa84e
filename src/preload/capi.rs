//! The C API (`include/npu_alloc_shim.h`). Every function is callable from C,
//! `ctypes` and gdb, never panics across the boundary, and needs no setup.

use super::record::{self, lifecycle, marks, pools, snapshot};
use common::format::Counters;
use std::ffi::{CStr, c_char, c_int};

/// NUL-terminated version string of this build.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version, a static NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn npu_alloc_shim_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Writes a recording now to `path` (`%p` etc. expanded), or to the
/// configured `NPU_ALLOC_SHIM_TRACE` path when `path` is NULL.
/// Returns 0 on success, -1 on failure.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn npu_alloc_shim_dump(path: *const c_char) -> c_int {
    let run = || {
        // SAFETY: the caller passes NULL or a C string.
        let path = (!path.is_null()).then(|| unsafe { CStr::from_ptr(path) }.to_bytes());
        if lifecycle::dump(path) { 0 } else { -1 }
    };
    std::panic::catch_unwind(run).unwrap_or(-1)
}

/// Reads the device (`which` = 0) or host (`which` = 1) totals into `out`.
/// Returns 0, or -1 for a bad argument.
///
/// # Safety
/// `out` is NULL or points to a writable `struct npu_alloc_shim_totals`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn npu_alloc_shim_get_totals(which: c_int, out: *mut Counters) -> c_int {
    let pool = match which {
        0 => record::DEVICE,
        1 => record::HOST,
        _ => return -1,
    };
    if out.is_null() {
        return -1;
    }
    let Ok(totals) = std::panic::catch_unwind(|| snapshot::pool_counters(pool)) else { return -1 };
    // SAFETY: checked non-NULL; the caller provides a writable struct.
    unsafe { out.write(totals) };
    0
}

/// Sets every peak (process, per device, host) to the current live bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn npu_alloc_shim_reset_peaks() {
    pools::reset_peaks();
}

/// 1 when this process records allocations, else 0.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn npu_alloc_shim_is_recording() -> c_int {
    c_int::from(record::TRACING.load(std::sync::atomic::Ordering::Relaxed))
}

/// Records a phase mark named `name` (at most 64 bytes kept): the report
/// shows what each library held at each mark and what was left from one mark
/// to the next. Returns 0, or -1 when `name` is NULL or recording is off.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn npu_alloc_shim_mark(name: *const c_char) -> c_int {
    if name.is_null() || !record::TRACING.load(std::sync::atomic::Ordering::Relaxed) {
        return -1;
    }
    let run = || {
        // SAFETY: the caller passes a C string (checked non-NULL).
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        marks::record(name);
        0
    };
    std::panic::catch_unwind(run).unwrap_or(-1)
}
