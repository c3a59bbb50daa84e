//! Probes for the normalization tests: three kinds of real processes (CPython
//! reading `os.environ`, `/bin/sh`, a C program calling `getenv`) that print
//! what they see of the allocator variables, and the parsing of their output.
//! Every process runs through `crate::run_with_timeout`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::sync::OnceLock;

pub const SPECIFIC: &str = "PYTORCH_NPU_ALLOC_CONF";
pub const GENERIC: &str = "PYTORCH_ALLOC_CONF";
pub const MARKER: &str = "NPU_ALLOC_SHIM_DECISION";
/// What the library says after every value it writes for the NPU: the
/// switch for a sleep mode the command line does not show.
pub const NPU_SLEEP_SWITCH: &str =
    "; sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0";
pub const PAIR: &str = "expandable_segments:True";

/// What one process saw of the three variables (`None`: unset).
#[derive(Clone, PartialEq, Eq)]
pub struct View {
    pub specific: Option<Vec<u8>>,
    pub generic: Option<Vec<u8>>,
    pub marker: Option<Vec<u8>>,
}

/// Values shown as escaped text (byte arrays are unreadable in failures).
impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Vec<u8>>| match v {
            Some(v) if v.len() > 200 => format!("({} bytes)", v.len()),
            Some(v) => format!("\"{}\"", v.escape_ascii()),
            None => "unset".to_owned(),
        };
        write!(
            f,
            "View {{ {SPECIFIC}: {}, {GENERIC}: {}, {MARKER}: {} }}",
            show(&self.specific),
            show(&self.generic),
            show(&self.marker)
        )
    }
}

impl View {
    pub fn specific_str(&self) -> Option<String> {
        self.specific.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn generic_str(&self) -> Option<String> {
        self.generic.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// A finished probe run: the views it printed (one per process of a chain)
/// and its stderr.
#[derive(Debug)]
pub struct Seen {
    pub views: Vec<View>,
    pub stderr: String,
    pub status: ExitStatus,
}

impl Seen {
    /// The only view; fails when the run printed another number.
    pub fn view(&self) -> &View {
        assert_eq!(self.views.len(), 1, "{self:?}");
        &self.views[0]
    }

    /// stderr lines written by the library.
    pub fn lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Python,
    Shell,
    C,
}

impl Probe {
    pub const ALL: [Probe; 3] = [Probe::Python, Probe::Shell, Probe::C];

    /// Whether the probe looks up the runtime, where the library speaks.
    pub fn uses_runtime(self) -> bool {
        self != Probe::Shell
    }

    /// How many of `lines` lines this probe should see (below `debug`).
    pub fn says(self, lines: usize) -> usize {
        if self.uses_runtime() { lines } else { 0 }
    }

    /// A command printing the three records; `extra` goes on its own command
    /// line (where the library looks for sleep-mode flags).
    pub fn command(self, preload: bool, extra: &[&str]) -> Command {
        let mut command = match self {
            Probe::Python => {
                let mut c = base(python(), preload);
                c.args(["-c", PYTHON_PRINT]);
                c
            }
            Probe::Shell => {
                let mut c = base("/bin/sh", preload);
                c.args(["-c", SHELL_PRINT, "sh"]);
                c
            }
            Probe::C => base(getenv_probe(), preload),
        };
        command.args(extra);
        command
    }
}

fn base(program: impl AsRef<OsStr>, preload: bool) -> Command {
    if preload { crate::preloaded(program) } else { crate::clean_command(program) }
}

/// Prints the records from `os.environb` (bytes, so non-UTF-8 survives),
/// then looks up one runtime function as a program using the runtime would
/// (the library speaks only in such processes).
pub const PYTHON_PRINT: &str = r#"
import os, sys
out = sys.stdout.buffer
for name in (b"PYTORCH_NPU_ALLOC_CONF", b"PYTORCH_ALLOC_CONF", b"NPU_ALLOC_SHIM_DECISION"):
    value = os.environb.get(name)
    out.write(b"" if value is None else b"=" + value)
    out.write(b"\0")
out.flush()
import ctypes
hasattr(ctypes.CDLL(None), "aclrtMalloc")
"#;

/// The same with the shell: `${V+=}` tells unset from empty. A shell never
/// uses the runtime, so the library says nothing in it (but at `debug`).
pub const SHELL_PRINT: &str = r#"printf '%s\0' "${PYTORCH_NPU_ALLOC_CONF+=}${PYTORCH_NPU_ALLOC_CONF}" "${PYTORCH_ALLOC_CONF+=}${PYTORCH_ALLOC_CONF}" "${NPU_ALLOC_SHIM_DECISION+=}${NPU_ALLOC_SHIM_DECISION}""#;

/// The real CPython executable (not a version-manager shim, which would be a
/// shell script and add a process to every chain).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = crate::run_with_timeout(
                crate::clean_command("python3").args(["-c", "import sys; print(sys.executable)"]),
                crate::LIMIT,
            );
            assert!(out.status.success(), "python3 is needed: {out:?}");
            PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
        })
        .clone()
}

pub fn getenv_probe() -> PathBuf {
    crate::compile_c("getenv_probe", &["tests/fixtures/getenv_probe.c"], &["-ldl"])
}

pub fn environ_dump() -> PathBuf {
    crate::compile_c("environ_dump", &["tests/fixtures/environ_dump.c"], &["-ldl"])
}

pub fn dlopen_probe() -> PathBuf {
    crate::compile_c("dlopen_probe", &["tests/fixtures/dlopen_probe.c"], &["-ldl", "-pthread"])
}

/// A pluggable allocator's shared object (`my_malloc`, `tms_torch_malloc`, ...).
pub fn pool_allocator() -> PathBuf {
    crate::compile_c("libpool_allocator.so", &["tests/fixtures/pool_allocator.c"], &["-shared", "-fPIC"])
}

/// Counts the page faults a program takes at start, with and without a preload.
pub fn start_faults() -> PathBuf {
    crate::compile_c("start_faults", &["tests/fixtures/start_faults.c"], &[])
}

/// A shared object that does nothing (the floor any preload costs).
pub fn noop_preload() -> PathBuf {
    crate::compile_c("noop_preload.so", &["tests/fixtures/noop_preload.c"], &["-shared", "-fPIC"])
}

/// Looks names up in a library with `dlsym`, as ctypes does.
pub fn pool_lookup() -> PathBuf {
    crate::compile_c("pool_lookup", &["tests/fixtures/pool_lookup.c"], &["-ldl"])
}

/// Splits NUL-terminated records.
pub fn records(stdout: &[u8]) -> Vec<&[u8]> {
    let body = stdout.strip_suffix(b"\0").unwrap_or(stdout);
    if body.is_empty() && stdout.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).collect()
}

fn field(record: &[u8]) -> Option<Vec<u8>> {
    record.strip_prefix(b"=").map(<[u8]>::to_vec)
}

/// Groups records three by three into views.
pub fn views(records: &[&[u8]]) -> Vec<View> {
    assert_eq!(records.len() % 3, 0, "records: {records:?}");
    records.chunks(3).map(|c| View { specific: field(c[0]), generic: field(c[1]), marker: field(c[2]) }).collect()
}

/// Runs a probe command to its end and reads its views.
pub fn run(command: &mut Command) -> Seen {
    let out = crate::run_with_timeout(command, crate::LIMIT);
    seen(&out)
}

pub fn seen(out: &Output) -> Seen {
    assert!(out.status.success(), "probe failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    Seen {
        views: views(&records(&out.stdout)),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    }
}

/// Adds an environment variable given as bytes.
pub fn env_bytes<'c>(command: &'c mut Command, name: &str, value: &[u8]) -> &'c mut Command {
    command.env(name, OsStr::from_bytes(value))
}

/// Every stderr line comes from the library, with its prefix.
pub fn assert_all_prefixed(stderr: &str) {
    for line in stderr.lines() {
        assert!(line.starts_with("npu-alloc-shim: "), "{line:?} in {stderr:?}");
    }
}
