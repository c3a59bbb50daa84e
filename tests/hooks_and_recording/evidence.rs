//! The evidence of issue 15 in real processes on the fake runtime: bytes
//! held per calling library (at the end, at the peak, at failures and marks,
//! over the timeline), the device's own used memory beside torch's share,
//! what followed each failure, and the failure on disk before a kill.
//!
//! tests/fixtures/evidence_client.c allocates exact amounts from a stand-in
//! for torch (libtorch_stub.so) and from itself; the fake runtime keeps
//! FAKE_ACL_RUNTIME_BYTES of its own, as CANN does.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::fixtures::{MIB, read_json};

const RUNTIME_BYTES: u64 = 256 * MIB;

pub fn client() -> PathBuf {
    support::fixtures::fake_runtime();
    let dir = support::fixture_dir().display().to_string();
    let include = format!("-I{}", support::repo().join("tests/fake_runtime").display());
    let link = [format!("-L{dir}"), "-lascendcl".into(), format!("-Wl,-rpath,{dir}")];
    let mut stub = vec![include.clone(), "-shared".into(), "-fPIC".into()];
    stub.extend(link.iter().cloned());
    let stub: Vec<&str> = stub.iter().map(String::as_str).collect();
    support::compile_c("libtorch_stub.so", &["tests/fixtures/torch_stub.c"], &stub);
    let mut args = vec![include, "-ltorch_stub".into()];
    args.extend(link.iter().cloned());
    args.extend(["-ldl".into(), "-pthread".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::compile_c("evidence_client", &["tests/fixtures/evidence_client.c"], &args)
}

fn scratch(name: &str) -> PathBuf {
    let dir = support::fixture_dir().join(format!("evidence-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn traced(mode: &str, trace: &Path) -> Command {
    let mut command = support::fixtures::traced(&client(), trace, 60_000);
    command.arg(mode).env("FAKE_ACL_RUNTIME_BYTES", RUNTIME_BYTES.to_string());
    command
}

fn n(v: &Value, pointer: &str) -> u64 {
    support::fixtures::n(v, pointer)
}

fn is_stub(library: &str) -> bool {
    library.ends_with("/libtorch_stub.so")
}

fn is_client(library: &str) -> bool {
    library.ends_with("/evidence_client")
}

/// `(device, host)` bytes a list of holders gives torch and the program.
fn held(list: &Value) -> [(u64, u64); 2] {
    let mut out = [(0, 0); 2];
    for h in list.as_array().unwrap() {
        let library = h["library"].as_str().unwrap();
        let who = if is_stub(library) {
            0
        } else if is_client(library) {
            1
        } else {
            panic!("unexpected holder {h}")
        };
        let bytes = h["bytes"].as_u64().unwrap();
        match h["pool"].as_str().unwrap() {
            "device" => out[who].0 += bytes,
            "host" => out[who].1 += bytes,
            other => panic!("pool {other}"),
        }
    }
    out
}

#[test]
fn held_bytes_per_library_at_the_end_the_peak_and_each_mark() {
    let dir = scratch("held");
    let trace = dir.join("held.json");
    support::run_ok(&mut traced("held", &trace));
    let rec = read_json(&trace);
    assert_eq!(n(&rec, "/totals/peak_live_bytes"), 112 * MIB);
    let callers = rec["callers"].as_array().unwrap();
    let caller = |f: fn(&str) -> bool| callers.iter().find(|c| f(c["library"].as_str().unwrap())).unwrap();
    let (torch, own) = (caller(is_stub), caller(is_client));
    assert_eq!((n(torch, "/live/device"), n(torch, "/at_peak/device")), (0, 96 * MIB), "{torch}");
    assert_eq!((n(own, "/live/device"), n(own, "/at_peak/device")), (16 * MIB, 16 * MIB), "{own}");
    assert_eq!((n(own, "/live/host"), n(own, "/at_peak/host")), (MIB, MIB), "{own}");

    let marks = rec["marks"].as_array().unwrap();
    let names: Vec<&str> = marks.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["loaded", "peak", "released"]);
    let expect = [(80, [(64, 0), (16, 1)]), (112, [(96, 0), (16, 1)]), (16, [(0, 0), (16, 1)])];
    for (mark, (live, holders)) in marks.iter().zip(expect) {
        assert_eq!(n(mark, "/device_live_bytes"), live * MIB, "{mark}");
        assert_eq!(n(mark, "/host_live_bytes"), MIB, "{mark}");
        let got = held(&mark["held"]);
        assert_eq!(got, holders.map(|(device, host)| (device * MIB, host * MIB)), "{mark}");
    }
    assert!(marks.windows(2).all(|w| n(&w[0], "/t_ms") <= n(&w[1], "/t_ms")));
}

#[test]
fn the_device_used_memory_beside_torchs_share_gives_non_torch_memory_exactly() {
    let dir = scratch("used");
    let trace = dir.join("used.json");
    support::run_ok(&mut traced("held", &trace));
    let rec = read_json(&trace);
    let samples = rec["timeline"]["samples"].as_array().unwrap();
    let read: Vec<&Value> = samples.iter().filter(|s| s.get("device_used_bytes").is_some()).collect();
    assert!(!read.is_empty(), "no sample kept a device reading: {samples:?}");
    for sample in read {
        let (used, torch) = (n(sample, "/device_used_bytes"), n(sample, "/framework_bytes"));
        // The stand-in holds 64 MiB (and for a moment 512 B more) when a
        // reading is taken, or nothing yet when the program's first call (its
        // own 16 MiB) answered it; the program's 16 MiB and the runtime's own
        // memory are the rest: non-torch memory as vLLM computes it.
        assert!([0, 64 * MIB, 64 * MIB + 512].contains(&torch), "{sample}");
        assert_eq!(used - torch, RUNTIME_BYTES + 16 * MIB, "{sample}");
    }
    // The holders of each sample name libraries of the timeline's list.
    let libraries = rec["timeline"]["libraries"].as_array().unwrap();
    for sample in samples {
        for pair in sample.get("held").and_then(Value::as_array).into_iter().flatten() {
            assert!((pair[0].as_u64().unwrap() as usize) < libraries.len(), "{sample}");
        }
    }
}

/// NPU_ALLOC_SHIM_DEVICE_READINGS=0: the runtime is never asked for the
/// device's used memory (the test above shows the readings when it is on).
#[test]
fn device_readings_off_never_ask_the_runtime() {
    let dir = scratch("readings-off");
    let trace = dir.join("busy.json");
    support::run_ok(traced("busy", &trace).env("NPU_ALLOC_SHIM_DEVICE_READINGS", "0"));
    let rec = read_json(&trace);
    assert_eq!(n(&rec, "/device_readings"), 0, "{}", rec["device_readings"]);
    let samples = rec["timeline"]["samples"].as_array().unwrap();
    assert!(samples.iter().all(|s| s.get("device_used_bytes").is_none()), "{samples:?}");
}

/// The HTML report draws the same evidence: non-torch memory over time and
/// what each library held.
#[test]
fn the_html_report_draws_non_torch_memory_and_the_holders_over_time() {
    let dir = scratch("html");
    support::run_ok(&mut traced("held", &dir.join("held.json")));
    let html = dir.join("report.html");
    support::run_ok(Command::new(support::cli()).arg("report").arg("--quiet").arg(&dir).arg("--html").arg(&html));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Non-torch memory per process (device used − torch-held)"));
    // Every reading gives 256 MiB of the runtime's own plus the program's 16 MiB.
    let line = "non-torch memory 272.0 MiB at the first reading, 272.0 MiB at the last, highest 272.0 MiB";
    let drawn: Vec<&str> = page.lines().filter(|l| l.contains("non-torch memory ")).collect();
    assert!(page.contains(line), "{line:?} missing; drawn: {drawn:?}");
    assert!(page.contains("Held per calling library"));
    // The program holds 16 MiB and 1 MiB pinned from its first sample on; the
    // stand-in for torch at least its first 64 MiB (more when a sample fell
    // inside the peak).
    for line in ["evidence_client: highest held 16.0 MiB", "evidence_client (pinned host): highest held 1.0 MiB"] {
        assert!(page.contains(line), "{line:?} missing");
    }
    assert!(page.contains("libtorch_stub.so: highest held "), "no line for the stand-in for torch");
    // The library table shows held at the peak beside allocated over the run.
    assert!(page.contains("<th>held at peak</th>"));
}

#[test]
fn each_failure_says_what_followed_it() {
    let dir = scratch("outcomes");
    let trace = dir.join("outcomes.json");
    support::run_ok(traced("outcomes", &trace).env("FAKE_ACL_DEVICE_BYTES", (100 * MIB + RUNTIME_BYTES).to_string()));
    let rec = read_json(&trace);
    let failures = rec["failures"].as_array().unwrap();
    let got: Vec<(u64, &str)> =
        failures.iter().map(|f| (n(f, "/size") / MIB, f["outcome"].as_str().unwrap())).collect();
    assert_eq!(got, [(40, "recovered"), (90, "survived"), (200, "fatal")]);
    // What was held at each failure, by library: 80 MiB of the program's
    // own before it freed and retried, then 40 MiB, then 41 MiB.
    let own: Vec<u64> = failures.iter().map(|f| held(&f["held"])[1].0 / MIB).collect();
    assert_eq!(own, [80, 40, 41]);
}

#[test]
fn a_failure_is_on_disk_before_the_call_returns_so_a_kill_right_after_keeps_it() {
    let dir = scratch("kill");
    let trace = dir.join("kill.json");
    let mut child = traced("oom-wait", &trace).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "failed");
    // As vLLM's engine does to a worker that failed: SIGKILL 0.3 s later.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let rec = read_json(&trace);
    assert_eq!(rec["final"], false);
    let failures = rec["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{rec}");
    assert_eq!(n(&failures[0], "/size"), 1 << 40);
    assert_eq!(failures[0]["outcome"], "unknown");
}

/// tests/fixtures/crash_worker.py on the fake runtime, tracing into `dir`.
fn crash_worker(mode: &str, dir: &Path) -> Value {
    let fake = support::fixtures::fake_runtime();
    let trace = format!("{}/", dir.display());
    let mut command = support::fixtures::traced(Path::new("python3"), Path::new(&trace), 60_000);
    command.arg(support::repo().join("tests/fixtures/crash_worker.py")).arg(&fake).arg(dir).arg(mode);
    let out = support::run_ok(&mut command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn recording_of(dir: &Path, pid: &Value) -> Value {
    read_json(&dir.join(format!("npu-alloc-shim.{}.json", pid.as_u64().unwrap())))
}

#[test]
fn pool_workers_ended_with_sigterm_leave_their_recordings_and_failures() {
    let dir = scratch("pool");
    let run = crash_worker("pool", &dir);
    assert_eq!(run["failed"], run["worker"], "one worker ran both tasks");
    // The worker's recording existed before its failure (the script waits
    // for it, bounded by 30 s): the first write came soon after the first
    // call, not after the 60 s flush interval.
    assert!(run["first_write_ms"].as_u64().unwrap() < 30_000, "{run}");
    let rec = recording_of(&dir, &run["failed"]);
    assert_eq!(rec["final"], false, "SIGTERM runs no exit handler");
    let failures = rec["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{rec}");
    assert_eq!(n(&failures[0], "/size"), 1 << 40);
    assert_eq!(n(&rec, "/totals/alloc_calls"), 2, "{rec}");
    support::fixtures::figure(format!(
        "pool worker's first recording {} ms after its first task",
        run["first_write_ms"]
    ));
}

#[test]
fn os_exit_right_after_a_failure_keeps_it() {
    let dir = scratch("os-exit");
    let pids = crash_worker("exit", &dir);
    let rec = recording_of(&dir, &pids["failed"]);
    assert_eq!(rec["final"], false, "os._exit runs no exit handler");
    assert_eq!(n(&rec["failures"][0], "/size"), 1 << 40, "{rec}");
}
