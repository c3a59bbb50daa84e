//! The environment `run` gives the program: `LD_PRELOAD` with the library
//! first, and the trace destination.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The library's trace variable (read by the preloaded hooks).
pub const TRACE_VAR: &str = "NPU_ALLOC_SHIM_TRACE";
/// File name used when `--trace` names a directory; `%p` is the process id.
const TRACE_FILE: &str = "npu-alloc-shim.%p.json";

/// `LD_PRELOAD` with `library` in front of what was there (kept verbatim after
/// a `:`), or unchanged when it already holds the library.
pub fn with_library(existing: Option<&OsStr>, library: &Path) -> Result<OsString, String> {
    let lib = library.as_os_str().as_bytes();
    // ld.so splits LD_PRELOAD at spaces and colons: such a path cannot be listed.
    if lib.iter().any(|&b| b == b' ' || b == b':') {
        return Err(format!("{}: LD_PRELOAD cannot hold a path with a space or a colon", library.display()));
    }
    let existing = existing.map(OsStr::as_bytes).unwrap_or_default();
    let mut entries = existing.split(|&b| b == b' ' || b == b':').filter(|e| !e.is_empty()).peekable();
    if entries.peek().is_none() {
        return Ok(library.as_os_str().to_owned());
    }
    if entries.any(|entry| same_file(entry, library)) {
        return Ok(OsStr::from_bytes(existing).to_owned());
    }
    let mut value = lib.to_vec();
    value.push(b':');
    value.extend_from_slice(existing);
    Ok(OsString::from_vec(value))
}

/// Whether an `LD_PRELOAD` entry names the library (by path or by the file).
fn same_file(entry: &[u8], library: &Path) -> bool {
    entry == library.as_os_str().as_bytes()
        || std::fs::canonicalize(OsStr::from_bytes(entry)).is_ok_and(|c| c == library)
}

/// Where the trace goes: `path` itself, or `path/npu-alloc-shim.%p.json` when
/// it is a directory or ends with `/`; made absolute because the traced
/// programs may change directory.
pub fn trace_target(path: &Path) -> PathBuf {
    let names_dir = path.as_os_str().as_bytes().ends_with(b"/") || path.is_dir();
    let target = if names_dir { path.join(TRACE_FILE) } else { path.to_path_buf() };
    std::path::absolute(&target).unwrap_or(target)
}
