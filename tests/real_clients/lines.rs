//! The installed torch_npu lines both modules run on: each line's cached
//! virtual environment (scripts/torch-npu-venv.sh) and the simulated runtime
//! built for it, prepared once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// One torch_npu process: importing torch takes seconds, a slow CI machine more.
pub const LIMIT: Duration = Duration::from_secs(600);

/// One installed line: its Python and its simulated runtime.
pub struct Line {
    pub name: &'static str,
    pub python: PathBuf,
    pub sim: PathBuf,
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn venv_cache() -> PathBuf {
    match std::env::var_os("NPU_ALLOC_SHIM_VENV_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/npu-alloc-shim"),
    }
}

/// The line's environment and runtime; `None` (after saying why) when the
/// tests that need it are to be skipped.
pub fn line(name: &'static str) -> Option<&'static Line> {
    static LINES: [OnceLock<Option<Line>>; NAMES.len()] = [const { OnceLock::new() }; NAMES.len()];
    let index = NAMES.iter().position(|&n| n == name).unwrap_or_else(|| panic!("no line {name}"));
    LINES[index].get_or_init(|| prepare(name)).as_ref()
}

/// The lines scripts/torch-npu-venv.sh installs: vllm-ascend's pin, the
/// older line, and the newest (on a CPU-only torch).
pub const NAMES: [&str; 3] = ["2.10", "2.5", "2.14"];

/// Names one more line for the `line_matrix` tests: scripts/torch-npu-matrix.sh
/// runs every check on each line PyPI has, one after the other.
pub const MATRIX_LINE: &str = "NPU_ALLOC_SHIM_TORCH_NPU_LINE";

/// The line `NPU_ALLOC_SHIM_TORCH_NPU_LINE` names (any line the venv script
/// can install); `None` (after saying so) when it is unset.
pub fn matrix_line() -> Option<&'static Line> {
    static LINE: OnceLock<Option<Line>> = OnceLock::new();
    LINE.get_or_init(|| match std::env::var(MATRIX_LINE) {
        Ok(name) if !name.is_empty() => prepare(Box::leak(name.into_boxed_str())),
        _ => {
            println!("SKIPPED: line_matrix tests: {MATRIX_LINE} names no line (scripts/torch-npu-matrix.sh sets it)");
            None
        }
    })
    .as_ref()
}

fn prepare(name: &'static str) -> Option<Line> {
    if let Some(triple) = support::cross_target() {
        // The wheels and the simulated runtime are this machine's; a library
        // built for another architecture cannot be preloaded into them.
        println!("SKIPPED: torch_npu {name} tests: tests built for {triple}");
        return None;
    }
    let required = std::env::var("NPU_ALLOC_SHIM_REAL_TORCH_NPU").as_deref() == Ok("1")
        || std::env::var(MATRIX_LINE).as_deref() == Ok(name);
    let marker = venv_cache().join(format!("venv-{name}")).join(".npu-alloc-shim-complete");
    if !marker.exists() && !required {
        println!(
            "SKIPPED: torch_npu {name} tests: no virtual environment at {} \
             (create it with scripts/torch-npu-venv.sh {name}, or set \
             NPU_ALLOC_SHIM_REAL_TORCH_NPU=1 to create it and run)",
            marker.parent().unwrap_or(&marker).display()
        );
        return None;
    }
    // Idempotent: returns at once when the environment is complete.
    let out = support::run_with_timeout(
        Command::new(support::repo().join("scripts/torch-npu-venv.sh")).arg(name),
        Duration::from_secs(3600),
    );
    assert!(out.status.success(), "torch-npu-venv.sh {name}: {}", text(&out.stderr));
    let python = PathBuf::from(text(&out.stdout).trim()).join("bin/python");
    let out = support::run_with_timeout(
        Command::new(&python).args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}: {}", python.display(), text(&out.stderr));
    let site = text(&out.stdout).trim().to_owned();
    let sim = support::fixture_dir().join(format!("sim-runtime-{name}"));
    let out = support::run_with_timeout(
        Command::new(support::repo().join("crates/cli/assets/sim_runtime/build.sh")).arg(&sim).arg(&site),
        LIMIT,
    );
    assert!(out.status.success(), "sim_runtime/build.sh: {}", text(&out.stderr));
    Some(Line { name, python, sim })
}
