//! `NPU_ALLOC_SHIM_METRICS=DIR`: the process's metrics in Prometheus text
//! format (`common::metrics`), written atomically with every periodic
//! write to `DIR/npu_alloc_shim_<host>_<pid>_<start>.prom` for
//! node_exporter's textfile collector. At a clean exit the file is removed
//! (a gone process has no current values), unless
//! `NPU_ALLOC_SHIM_METRICS_KEEP=1`, which writes the final values instead.

use super::output;
use crate::preload::set_once::SetOnce;
use common::format::Recording;
use common::metrics::{self, Ranks};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Target {
    dir: PathBuf,
    keep: bool,
    ranks: Ranks,
}

static TARGET: SetOnce<Target> = SetOnce::new();

/// Turns the metrics on (the constructor); `ranks` from the launcher's variables.
pub fn start(dir: Vec<u8>, keep: bool, ranks: Ranks) {
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&dir));
    TARGET.set(Target { dir, keep, ranks });
}

pub fn target() -> Option<&'static Target> {
    TARGET.get()
}

/// A host name as a file name part: only `[A-Za-z0-9._-]`, others `_`.
fn file_safe(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') { format!("_{cleaned}") } else { cleaned }
}

impl Target {
    /// pid alone collides across containers sharing the directory.
    fn path(&self, r: &Recording) -> PathBuf {
        let name = format!("npu_alloc_shim_{}_{}_{}.prom", file_safe(&r.hostname), r.pid, r.started_unix_ms);
        self.dir.join(name)
    }

    /// Writes (or, at a clean exit without `keep`, removes) this process's file.
    pub fn write(&self, r: &Recording, is_final: bool) -> std::io::Result<()> {
        let path = self.path(r);
        if is_final && !self.keep {
            return match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            };
        }
        output::write_atomic(&path, metrics::render(r, &self.ranks).as_bytes(), is_final)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn host_names_become_safe_file_name_parts() {
        assert_eq!(file_safe("node-1.example"), "node-1.example");
        assert_eq!(file_safe("a/b c"), "a_b_c");
        assert_eq!(file_safe(".."), "_..");
        assert_eq!(file_safe(""), "_");
    }
}
