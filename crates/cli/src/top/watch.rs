//! Reading the watched directories on every refresh: the recordings there
//! now, each parsed again only when its file changed (the library replaces
//! it atomically at every periodic write).

use super::rows::{self, Now, Row};
use crate::report::load::{self, Input};
use crate::report::progress::Progress;
use common::format::Recording;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One refresh.
pub struct Snapshot {
    pub rows: Vec<Row>,
    /// Files that are not recordings, or directories that cannot be read:
    /// the first few problems, and how many in all.
    pub problems: Vec<String>,
    pub problem_count: usize,
}

const PROBLEMS_KEPT: usize = 3;

struct Cached {
    modified: Option<SystemTime>,
    size: u64,
    recording: Result<Recording, String>,
}

pub struct Watch {
    paths: Vec<PathBuf>,
    cache: HashMap<PathBuf, Cached>,
    hostname: String,
}

impl Watch {
    /// Every path must exist now (a typo is an error, not an empty screen);
    /// one that disappears later is shown as a problem.
    pub fn new(paths: Vec<PathBuf>) -> Result<Watch, String> {
        for path in &paths {
            std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(Watch { paths, cache: HashMap::new(), hostname: this_hostname() })
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub fn refresh(&mut self, now_unix_ms: u64) -> Snapshot {
        let mut problems = Vec::new();
        let mut inputs = Vec::new();
        for path in &self.paths {
            match load::discover(std::slice::from_ref(path)) {
                Ok(found) => inputs.extend(found.into_iter().filter(|i| !i.mem_usage_dump)),
                // A directory with no recordings yet is an empty screen.
                Err(error) if error.kind == load::Kind::NoInput && path.is_dir() && error.path == *path => {}
                Err(error) => problems.push(error.to_string()),
            }
        }
        let mut cache = std::mem::take(&mut self.cache);
        let mut fresh = HashMap::new();
        let mut rows = Vec::new();
        let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
        let now = Now { unix_ms: now_unix_ms, hostname: &self.hostname, alive: &alive };
        for input in inputs {
            let entry = reuse_or_read(cache.remove(&input.path), &input);
            match &entry.recording {
                Ok(recording) => rows.extend(rows::rows_of(recording, &now)),
                Err(problem) => problems.push(problem.clone()),
            }
            fresh.insert(input.path, entry);
        }
        self.cache = fresh;
        let problem_count = problems.len();
        problems.truncate(PROBLEMS_KEPT);
        Snapshot { rows, problems, problem_count }
    }
}

/// The cached parse while the file's time and size are unchanged.
fn reuse_or_read(cached: Option<Cached>, input: &Input) -> Cached {
    let meta = std::fs::metadata(&input.path).ok();
    let modified = meta.as_ref().and_then(|m| m.modified().ok());
    let size = meta.as_ref().map_or(0, |m| m.len());
    if let Some(cached) = cached
        && cached.modified.is_some()
        && cached.modified == modified
        && cached.size == size
    {
        return cached;
    }
    let recording = load::read(input, load::DEFAULT_LIMIT_MIB << 20, &Progress::silent()).map_err(|e| e.to_string());
    Cached { modified, size, recording }
}

/// The name the library writes for processes of this machine (its UTS
/// namespace: a container's own name inside it).
fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}
