//! Finding the recordings named on the command line and reading them one at
//! a time, with one clear problem per file that is not a recording.

use super::progress::Progress;
use common::format::{Recording, SCHEMA};
use serde::Deserialize;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Default for `--max-file-size` in MiB. The library writes a few MiB at most
/// (1024 timeline samples, 256 failures); anything far larger is not its
/// output, and refusing it keeps memory bounded.
pub const DEFAULT_LIMIT_MIB: u64 = 64;

/// Directories are searched this deep for recordings.
const MAX_DEPTH: usize = 8;

/// What went wrong, which decides the exit status (sysexits.h numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Missing, unreadable, not a regular file, or a directory with no recordings.
    NoInput,
    /// Read fine but is not a recording this version understands.
    Data,
    /// The read itself failed half-way.
    Io,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::NoInput => 66, // EX_NOINPUT
            Kind::Data => 65,    // EX_DATAERR
            Kind::Io => 74,      // EX_IOERR
        }
    }
}

#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub problem: String,
    pub kind: Kind,
}

impl LoadError {
    fn new(path: &Path, kind: Kind, problem: impl Into<String>) -> LoadError {
        LoadError { path: path.to_path_buf(), problem: problem.into(), kind }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// One file to read.
pub struct Input {
    pub path: PathBuf,
    pub size: u64,
    /// torch_npu's `device_<N>_memUsageInfo_<time>.csv`, not a recording.
    pub mem_usage_dump: bool,
}

impl Input {
    fn new(path: PathBuf, size: u64) -> Input {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mem_usage_dump = super::mem_usage::dump_name(name).is_some();
        Input { path, size, mem_usage_dump }
    }
}

/// The files behind the arguments: a file as named (whatever its name), a
/// directory as the `*.json` files below it (hidden ones and the library's
/// `.tmp` files skipped) and torch_npu's memory dumps, in path order, each
/// file once.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Input>, LoadError> {
    let mut inputs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| LoadError::new(path, Kind::NoInput, io_problem(&e)))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(path, 0, &mut found)?;
            if found.iter().all(|f| f.mem_usage_dump) {
                return Err(LoadError::new(path, Kind::NoInput, "no recordings (*.json files) in this directory"));
            }
        } else if meta.is_file() {
            found.push(Input::new(path.clone(), meta.len()));
        } else {
            // A FIFO or a device could block or never end.
            return Err(LoadError::new(path, Kind::NoInput, "not a regular file or a directory"));
        }
        for input in found {
            let key = std::fs::canonicalize(&input.path).unwrap_or_else(|_| input.path.clone());
            if seen.insert(key) {
                inputs.push(input);
            }
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<Input>) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError::new(dir, Kind::NoInput, io_problem(&e)))?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // file_type() does not follow links: a linked directory is not
        // entered (no loops); a linked file is read.
        let Ok(file_type) = entry.file_type() else { continue };
        if file_type.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, found)?;
            }
        } else if (name.ends_with(".json") || super::mem_usage::dump_name(&name).is_some())
            && let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
        {
            found.push(Input::new(path, meta.len()));
        }
    }
    Ok(())
}

/// Only the schema key: the rest of the file is skipped without being kept.
#[derive(Deserialize)]
struct Probe {
    schema: Option<serde_json::Value>,
}

/// Reads one recording, holding at most `limit` bytes of it.
pub fn read(input: &Input, limit: u64, progress: &Progress) -> Result<Recording, LoadError> {
    let path = input.path.as_path();
    let too_large = |size: String| {
        LoadError::new(
            path,
            Kind::Data,
            format!(
                "{size} is more than the {} limit for one recording (the library writes a few MiB at most); \
                 raise --max-file-size if this really is one",
                super::units::bytes(limit)
            ),
        )
    };
    let file = File::open(path).map_err(|e| LoadError::new(path, Kind::NoInput, io_problem(&e)))?;
    let meta = file.metadata().map_err(|e| LoadError::new(path, Kind::Io, io_problem(&e)))?;
    if !meta.is_file() {
        return Err(LoadError::new(path, Kind::NoInput, "not a regular file"));
    }
    if meta.len() > limit {
        return Err(too_large(super::units::bytes(meta.len())));
    }
    // take(): the file may grow while it is read.
    let mut reader = progress.reader(file.take(limit.saturating_add(1)));
    let parsed: Result<Recording, serde_json::Error> =
        serde_json::from_reader(BufReader::with_capacity(1 << 16, &mut reader));
    if reader.count() > limit {
        return Err(too_large("the file".to_owned()));
    }
    let recording = match parsed {
        Ok(recording) => recording,
        Err(error) => return Err(explain(path, &error, reader.count())),
    };
    if recording.schema != SCHEMA {
        return Err(wrong_schema(path, &recording.schema));
    }
    Ok(recording)
}

fn wrong_schema(path: &Path, schema: &str) -> LoadError {
    if schema == super::merge::SCHEMA || schema == super::diff::SCHEMA {
        // Easily met: `report DIR --json DIR/merged.json`, then `report DIR`.
        return LoadError::new(path, Kind::Data, format!("a {schema} file written by --json, not a recording"));
    }
    let shown = super::units::terminal_safe(schema, 60);
    LoadError::new(path, Kind::Data, format!("schema {shown:?} is not one this version reads ({SCHEMA})"))
}

/// Turns a parse error into the problem a person can act on.
fn explain(path: &Path, error: &serde_json::Error, bytes_read: u64) -> LoadError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io => LoadError::new(path, Kind::Io, format!("read error: {error}")),
        Category::Eof if bytes_read == 0 || only_whitespace(path) => {
            LoadError::new(path, Kind::Data, "empty file, not a recording")
        }
        Category::Eof => LoadError::new(
            path,
            Kind::Data,
            format!("truncated: the JSON ends early (line {}, column {})", error.line(), error.column()),
        ),
        Category::Syntax => LoadError::new(path, Kind::Data, format!("not valid JSON: {error}")),
        Category::Data => {
            // Valid JSON of another shape: say which, when the schema tells.
            match first_byte(path) {
                Some(b'{') => {}
                Some(b'[') => return LoadError::new(path, Kind::Data, "a JSON array, not a recording (an object)"),
                _ => return LoadError::new(path, Kind::Data, "a JSON value that is not an object, not a recording"),
            }
            let probe = File::open(path)
                .ok()
                .and_then(|f| serde_json::from_reader::<_, Probe>(BufReader::new(f)).ok())
                .map(|p| p.schema);
            match probe {
                Some(None) => LoadError::new(path, Kind::Data, "no \"schema\" key: not an npu-alloc-shim recording"),
                Some(Some(serde_json::Value::String(schema))) if schema != SCHEMA => wrong_schema(path, &schema),
                Some(Some(serde_json::Value::String(_))) | None => {
                    LoadError::new(path, Kind::Data, format!("does not match schema {SCHEMA}: {error}"))
                }
                Some(Some(_)) => LoadError::new(path, Kind::Data, "\"schema\" is not a string"),
            }
        }
    }
}

fn first_byte(path: &Path) -> Option<u8> {
    let file = File::open(path).ok()?;
    BufReader::new(file).bytes().map_while(Result::ok).find(|b| !b.is_ascii_whitespace())
}

fn only_whitespace(path: &Path) -> bool {
    first_byte(path).is_none()
}

/// An I/O error without Rust's "(os error 2)" suffix.
pub fn io_problem(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
