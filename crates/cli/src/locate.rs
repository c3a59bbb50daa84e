//! Finding the preload library for `run`.
//!
//! Order: `--lib`, then `$NPU_ALLOC_SHIM_LIB`, then next to this executable
//! (`target/<profile>/` holds both after a build), then `../lib/` relative to
//! it (an installed `bin/` + `lib/` layout), then the Python package beside it
//! (`../lib/python3.X/site-packages/npu_alloc_shim/`, or `dist-packages`: a
//! pip install into a venv, `--user` or a system prefix). An explicit choice
//! that does not exist is an error rather than a silent fall-back to another copy.

use std::path::{Path, PathBuf};

pub const LIBRARY_FILE: &str = "libnpu_alloc_shim.so";
pub const LIB_ENV: &str = "NPU_ALLOC_SHIM_LIB";

/// The absolute path of the library to preload.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return absolute_file(path).map_err(|e| format!("--lib {}: {e}", path.display()));
    }
    if let Some(path) = std::env::var_os(LIB_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return absolute_file(&path).map_err(|e| format!("{LIB_ENV}={}: {e}", path.display()));
    }
    let candidates = beside_executable();
    if let Some(found) = candidates.iter().find_map(|c| absolute_file(c).ok()) {
        return Ok(found);
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(format!(
        "cannot find {LIBRARY_FILE} (looked in: {}); pass --lib PATH or set {LIB_ENV}",
        if looked.is_empty() { "nowhere: this program's own path is unknown".to_owned() } else { looked.join(", ") }
    ))
}

/// `<exe dir>/libnpu_alloc_shim.so` and `<exe dir>/../lib/libnpu_alloc_shim.so`.
fn beside_executable() -> Vec<PathBuf> {
    let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) else {
        return Vec::new();
    };
    let mut candidates = vec![dir.join(LIBRARY_FILE)];
    if let Some(prefix) = dir.parent() {
        candidates.push(prefix.join("lib").join(LIBRARY_FILE));
        candidates.extend(python_packages(&prefix.join("lib")));
    }
    candidates
}

/// `<lib>/python*/{site,dist}-packages/npu_alloc_shim/libnpu_alloc_shim.so`,
/// newest Python first.
fn python_packages(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else { return Vec::new() };
    let mut pythons: Vec<PathBuf> =
        entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python")).map(|e| e.path()).collect();
    // python3.12 before python3.9: by the version's numbers, not as text.
    pythons.sort_by_key(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let version: Vec<u32> =
            name.trim_start_matches("python").split('.').filter_map(|part| part.parse().ok()).collect();
        std::cmp::Reverse(version)
    });
    let packages = ["site-packages", "dist-packages"];
    pythons
        .iter()
        .flat_map(|python| packages.iter().map(move |kind| python.join(kind).join("npu_alloc_shim").join(LIBRARY_FILE)))
        .collect()
}

/// The canonical path of an existing regular file: LD_PRELOAD is read by
/// every descendant, whatever its working directory.
fn absolute_file(path: &Path) -> Result<PathBuf, String> {
    let canonical = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    if canonical.is_file() { Ok(canonical) } else { Err("not a regular file".to_owned()) }
}
