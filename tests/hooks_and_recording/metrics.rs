//! NPU_ALLOC_SHIM_METRICS: the process's metrics as a Prometheus text file
//! for node_exporter's textfile collector, read back with prometheus_client's
//! own parser (python3-prometheus-client), with the exact numbers of the
//! evidence client on the fake runtime (tests/fixtures/evidence_client.c).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::fixtures::MIB;

const RUNTIME_BYTES: u64 = 256 * MIB;

fn scratch(name: &str) -> PathBuf {
    let dir = support::fixture_dir().join(format!("metrics-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The evidence client with metrics into `dir` and no JSON recording.
fn with_metrics(mode: &str, dir: &Path) -> Command {
    let mut command = support::preloaded(super::evidence::client());
    command
        .arg(mode)
        .env("NPU_ALLOC_SHIM_METRICS", dir)
        .env("FAKE_ACL_RUNTIME_BYTES", RUNTIME_BYTES.to_string())
        .env("RANK", "3")
        .env("LOCAL_RANK", "1");
    command
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    found.sort();
    found
}

/// A Python that has prometheus_client (Debian's python3-prometheus-client
/// is for /usr/bin/python3, which a pyenv `python3` on PATH is not).
fn python_with_parser() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import prometheus_client"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("no Python with prometheus_client: apt-get install python3-prometheus-client")
}

/// What prometheus_client's parser read from `file`.
fn parsed(file: &Path) -> Value {
    let script = support::repo().join("tests/fixtures/parse_prom.py");
    let out = support::run_ok(Command::new(python_with_parser()).arg(script).arg(file));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Kills the child when the test ends, passed or not (a panicking test must
/// not leave it holding the harness's output pipe).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(metrics: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = metrics["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .map(|s| s[2].as_f64().unwrap())
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?}: {matching:?}");
    matching.first().copied()
}

#[test]
fn a_process_writes_its_metrics_for_the_textfile_collector() {
    let dir = scratch("keep");
    let out = support::run_ok(with_metrics("held", &dir).env("NPU_ALLOC_SHIM_METRICS_KEEP", "1"));
    assert!(out.status.success());
    // One file, named host_pid_start, and no JSON recording (no TRACE).
    let found = files(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("npu_alloc_shim_") && name.ends_with(".prom"), "{name}");
    let metrics = parsed(&found[0]);

    // Every family has HELP and TYPE, with Prometheus's conventions.
    let families = metrics["families"].as_object().unwrap();
    for (family, kind) in [
        ("npu_alloc_shim_device_live_bytes", "gauge"),
        ("npu_alloc_shim_device_allocations", "counter"),
        ("npu_alloc_shim_library_held_bytes", "gauge"),
        ("npu_alloc_shim_out_of_memory_failures", "gauge"),
        ("npu_alloc_shim_non_torch_bytes", "gauge"),
    ] {
        assert_eq!(families[family]["type"], kind, "{family}: {families:?}");
        assert!(!families[family]["help"].as_str().unwrap().is_empty(), "{family}");
    }
    // The identity on every series: host, pid, runtime, the launcher's ranks.
    for sample in metrics["samples"].as_array().unwrap() {
        let labels = &sample[1];
        assert_eq!((labels["rank"].as_str(), labels["local_rank"].as_str()), (Some("3"), Some("1")), "{sample}");
        assert_eq!(labels["runtime"], "npu", "{sample}");
        assert!(name.contains(&format!("_{}_", labels["pid"].as_str().unwrap())), "{name} {sample}");
    }
    // The numbers at exit: 16 MiB and 1 MiB pinned left, a peak of 112 MiB.
    let mib = |v: Option<f64>| v.map(|v| v / MIB as f64);
    assert_eq!(mib(value(&metrics, "npu_alloc_shim_device_live_bytes", &[("device", "0")])), Some(16.0));
    assert_eq!(mib(value(&metrics, "npu_alloc_shim_device_peak_bytes", &[("device", "0")])), Some(112.0));
    assert_eq!(mib(value(&metrics, "npu_alloc_shim_host_live_bytes", &[])), Some(1.0));
    let held =
        |pool| value(&metrics, "npu_alloc_shim_library_held_bytes", &[("library", "evidence_client"), ("pool", pool)]);
    assert_eq!((mib(held("device")), mib(held("host"))), (Some(16.0), Some(1.0)));
    // torch's stand-in holds nothing at the end: no series for it.
    assert_eq!(value(&metrics, "npu_alloc_shim_library_held_bytes", &[("library", "libtorch_stub.so")]), None);
    // The latest reading: the runtime's own 256 MiB plus the program's 16 MiB.
    assert_eq!(mib(value(&metrics, "npu_alloc_shim_non_torch_bytes", &[])), Some(272.0));
    for outcome in ["recovered", "survived", "fatal", "unknown"] {
        assert_eq!(value(&metrics, "npu_alloc_shim_out_of_memory_failures", &[("outcome", outcome)]), Some(0.0));
    }
}

#[test]
fn a_running_process_shows_its_failure_and_a_clean_exit_removes_the_file() {
    let dir = scratch("live");
    let mut child = Killed(with_metrics("oom-wait", &dir).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "failed");
    // Written before the failing call returned, like the recording.
    let found = files(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    let metrics = parsed(&found[0]);
    drop(child);
    assert_eq!(value(&metrics, "npu_alloc_shim_out_of_memory_failures", &[("outcome", "unknown")]), Some(1.0));
    assert_eq!(value(&metrics, "npu_alloc_shim_failed_allocations_total", &[("pool", "device")]), Some(1.0));
    // A killed process leaves its last values; a clean exit takes them away.
    assert_eq!(files(&dir).len(), 1);
    let dir = scratch("removed");
    support::run_ok(&mut with_metrics("busy", &dir));
    assert_eq!(files(&dir), Vec::<PathBuf>::new(), "the file of an ended process is removed");
}
