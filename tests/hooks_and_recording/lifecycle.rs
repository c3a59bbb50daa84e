//! The recording's lifecycle in real processes: periodic flushes, the final
//! write, exec, faults at the target path, and the C API from C and gdb.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::run_ok as ok;

const MIB: u64 = 1024 * 1024;

/// The fake runtime and the lifecycle client linked against it.
fn client() -> PathBuf {
    let dir = support::fixture_dir().display().to_string();
    support::compile_c(
        "libascendcl.so",
        &["tests/fake_runtime/fake_ascendcl.c"],
        &["-Itests/fake_runtime", "-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread"],
    );
    let include = format!("-I{}", support::repo().join("tests/fake_runtime").display());
    support::compile_c(
        "lifecycle_client",
        &["tests/fixtures/lifecycle_client.c"],
        &[&include, &format!("-L{dir}"), "-lascendcl", &format!("-Wl,-rpath,{dir}"), "-ldl", "-pthread"],
    )
}

fn traced(args: &[&str], trace: &Path, flush_ms: &str) -> Command {
    let mut command = support::preloaded(client());
    command.args(args).env("NPU_ALLOC_SHIM_TRACE", trace).env("NPU_ALLOC_SHIM_FLUSH_MS", flush_ms);
    command
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

/// Starts `slow N stdin`: N allocations, then it waits for the test (a
/// byte on its stdin, or its closing), then N more.
fn start_gated(n: &str, trace: &Path, flush_ms: &str) -> std::process::Child {
    traced(&["slow", n, "stdin"], trace, flush_ms)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Lets a gated client go on and waits for it.
fn release(mut child: std::process::Child) -> std::process::ExitStatus {
    drop(child.stdin.take());
    child.wait().unwrap()
}

#[test]
fn periodic_flushes_show_the_run_before_it_ends_and_the_final_write_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let child = start_gated("3", &trace, "100");
    // While the client waits, periodic writes show the first three
    // allocations, and the timeline samples them.
    let three = |s: &Value| n(s, "/live_bytes") == 3 * MIB;
    let early = support::fixtures::wait_for_recording(&trace, "a periodic write", |rec| {
        rec.pointer("/timeline/samples").and_then(Value::as_array).is_some_and(|s| s.iter().any(three))
    });
    assert_eq!(early["final"], Value::Bool(false));
    assert_eq!(n(&early, "/totals/alloc_calls"), 3);
    assert!(release(child).success());
    let last = read(&trace);
    assert_eq!(last["final"], Value::Bool(true));
    assert_eq!(n(&last, "/totals/alloc_calls"), 6);
    assert_eq!(n(&last, "/totals/live_bytes"), 6 * MIB);
    // The timeline kept the wait: some samples at 3 MiB, the last at 6 MiB.
    let samples = last.pointer("/timeline/samples").and_then(Value::as_array).unwrap();
    assert!(samples.iter().any(three), "{samples:?}");
    assert_eq!(n(samples.last().unwrap(), "/live_bytes"), 6 * MIB);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("t.json")], "no temporary files left");
}

#[test]
fn flush_ms_zero_writes_only_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let child = start_gated("1", &trace, "0");
    // The client cannot exit before we let it: whatever is written meanwhile
    // is a periodic write. 300 ms is 3 of the intervals used above.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!trace.exists(), "written before exit with NPU_ALLOC_SHIM_FLUSH_MS=0");
    assert!(release(child).success());
    assert_eq!(n(&read(&trace), "/totals/alloc_calls"), 2);
}

#[test]
fn an_exec_starts_a_clean_recording_for_the_new_program() {
    let dir = tempfile::tempdir().unwrap();
    let output = ok(&mut traced(&["exec", "2"], &dir.path().join("t.%p.json"), "0"));
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let rec = read(&files[0]);
    // Same pid, new image: its own argv and counters, nothing carried over.
    assert_eq!(rec["argv"][1], "alloc", "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(n(&rec, "/totals/alloc_calls"), 3);
    assert_eq!(n(&rec, "/totals/live_bytes"), 3 * MIB);
}

#[test]
fn a_symlink_planted_at_the_target_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let trace = dir.path().join("t.json");
    std::os::unix::fs::symlink(&victim, &trace).unwrap();
    ok(&mut traced(&["alloc", "2"], &trace, "0"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(&trace).unwrap().file_type().is_symlink());
    assert_eq!(n(&read(&trace), "/totals/alloc_calls"), 2);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&trace).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_missing_directory_costs_one_message_and_nothing_else() {
    let output = ok(&mut traced(&["alloc", "2"], Path::new("/nonexistent-npu-alloc-shim/t.json"), "0"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<_> = stderr.lines().filter(|l| l.contains("cannot write the recording")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].starts_with("npu-alloc-shim: warning:"), "{stderr}");
}

#[test]
fn oom_code_207018_is_recorded_with_the_memory_state() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    // One device of 3 MiB: three allocations of 1 MiB fit, the fourth of
    // `slow 2 0` does not.
    let mut command = support::preloaded(client());
    command
        .args(["slow", "2", "0"])
        .env("NPU_ALLOC_SHIM_TRACE", &trace)
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0")
        .env("FAKE_ACL_DEVICE_BYTES", (3 * MIB).to_string())
        .env("FAKE_ACL_OOM_CODE", "207018");
    let output = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(!output.status.success(), "the client exits 1 on the failed allocation");
    let rec = read(&trace);
    assert_eq!(n(&rec, "/totals/alloc_calls"), 3);
    assert_eq!(n(&rec, "/totals/failed_calls"), 1);
    let failure = &rec["failures"][0];
    assert_eq!(failure["api"], "aclrtMalloc");
    assert_eq!(n(failure, "/code"), 207018);
    assert_eq!(n(failure, "/size"), MIB);
    assert_eq!(n(failure, "/live_bytes"), 3 * MIB);
    assert_eq!(n(failure, "/device_free"), 0);
    assert_eq!(n(failure, "/device_total"), 3 * MIB);
}

#[test]
fn the_c_api_works_from_c() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.json");
    let output = ok(&mut traced(&["capi", dump.to_str().unwrap()], &dir.path().join("t.json"), "0"));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!((n(&report, "/recording"), n(&report, "/dump")), (1, 0));
    assert_eq!(report["bad_which"], -1);
    assert_eq!(report["null_out"], -1);
    assert_eq!(n(&report, "/before/alloc_calls"), 4);
    assert_eq!(n(&report, "/before/free_calls"), 1);
    assert_eq!(n(&report, "/before/live_bytes"), 6 * MIB);
    assert_eq!(n(&report, "/before/peak_live_bytes"), 10 * MIB);
    assert_eq!(n(&report, "/after_reset/peak_live_bytes"), 6 * MIB);
    let dumped = read(&dump);
    assert_eq!(n(&dumped, "/totals/peak_live_bytes"), 6 * MIB);
    assert_eq!(dumped["final"], Value::Bool(false));
}

#[test]
fn the_c_api_works_from_gdb() {
    if Command::new("gdb").arg("--version").output().is_err() {
        eprintln!("skipped: gdb is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("from-gdb.json");
    let mut command = support::clean_command("gdb");
    command
        .args(["-nx", "-batch", "-ex", "set startup-with-shell off"])
        .args(["-ex", &format!("set environment LD_PRELOAD {}", support::library().display())])
        .args(["-ex", &format!("set environment NPU_ALLOC_SHIM_TRACE {}", dir.path().join("t.json").display())])
        .args(["-ex", "set breakpoint pending on", "-ex", "break _exit", "-ex", "run"])
        .args(["-ex", "set language c"])
        // A control: can this gdb call any function in the inferior here?
        .args(["-ex", "print ((int (*)(void)) getpid)() > 0"])
        .args(["-ex", &format!("print ((int (*)(const char *)) npu_alloc_shim_dump)(\"{}\")", dump.display())])
        .args(["-ex", "kill", "--args"])
        .arg(client())
        .args(["alloc", "2"]);
    let output = support::run_with_timeout(&mut command, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.contains("$1 = 1") {
        // gdb 13 cannot call into an inferior on CPUs with AMX state
        // ("Couldn't write extended state status"), with or without the library.
        println!("SKIPPED: this gdb cannot call getpid() in the inferior either: {stdout}\n{stderr}");
        return;
    }
    assert!(stdout.contains("$2 = 0"), "gdb said: {stdout}\n{stderr}");
    assert_eq!(n(&read(&dump), "/totals/alloc_calls"), 2);
}
