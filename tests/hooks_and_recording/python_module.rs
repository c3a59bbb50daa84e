//! python/npu_alloc_shim: the C API from Python (ctypes), in a preloaded
//! process on the fake runtime, and a clear refusal where the library is
//! not loaded (it never loads it: hooks installed halfway would miss what
//! was allocated before).

use std::process::Command;
use support::fixtures::{MIB, n, read_json};

/// Allocates 8 MiB through the fake runtime (loaded by ctypes, as an
/// extension would), then reads and marks through the module.
const SCRIPT: &str = r#"
import ctypes, json, sys
import npu_alloc_shim as shim
acl = ctypes.CDLL(sys.argv[1])
ptr = ctypes.c_void_p()
assert acl.aclrtSetDevice(0) == 0
assert acl.aclrtMalloc(ctypes.byref(ptr), ctypes.c_size_t(8 << 20), 0) == 0
shim.mark("after load")
shim.dump(sys.argv[2])
print(json.dumps({"version": shim.version(), "recording": shim.is_recording(),
                  "device": shim.totals(), "host": shim.totals("host")}))
"#;

fn python(preload: bool) -> Command {
    let mut command = if preload { support::preloaded("python3") } else { support::clean_command("python3") };
    command.env("PYTHONPATH", support::repo().join("python"));
    command
}

#[test]
fn the_python_module_reads_totals_and_marks_phases() {
    let fake = support::fixtures::fake_runtime();
    let dir = support::fixture_dir().join("python-module");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("now.json");
    let mut command = python(true);
    command.args(["-c", SCRIPT]).arg(&fake).arg(&dump).env("NPU_ALLOC_SHIM_TRACE", dir.join("trace.json"));
    let out = support::run_ok(&mut command);
    let line = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(seen["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(seen["recording"], true);
    assert_eq!((n(&seen, "/device/live_bytes"), n(&seen, "/device/alloc_calls")), (8 * MIB, 1));
    assert_eq!(n(&seen, "/host/live_bytes"), 0);
    // The mark and the dump are in the recording the module asked for.
    let recording = read_json(&dump);
    assert_eq!(recording["marks"][0]["name"], "after load");
    assert_eq!(n(&recording, "/marks/0/device_live_bytes"), 8 * MIB);
}

#[test]
fn without_the_library_the_module_says_so_and_loads_nothing() {
    let check = r#"
import npu_alloc_shim as shim
try:
    shim.totals()
except shim.NotLoaded as error:
    print(error)
print("loaded" if "libnpu_alloc_shim" in open("/proc/self/maps").read() else "not loaded")
"#;
    let out = support::run_ok(python(false).args(["-c", check]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("libnpu_alloc_shim.so is not loaded in this process: start it with LD_PRELOAD="),
        "{text}"
    );
    assert!(text.trim_end().ends_with("not loaded"), "{text}");
}

/// `python -m npu_alloc_shim` is the CLI (here the one on PATH).
#[test]
fn python_dash_m_runs_the_cli() {
    let bin = support::cli().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = support::run_ok(python(false).args(["-m", "npu_alloc_shim", "lib"]).env("PATH", path));
    let want = std::fs::canonicalize(support::library()).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", want.display()));
}
