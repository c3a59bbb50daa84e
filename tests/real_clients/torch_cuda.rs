//! The real PyTorch CUDA caching allocator (PyPI's torch 2.10.0, a CUDA 12.8
//! build) on the fake CUDA runtime of tests/fake_cuda, with the library
//! preloaded: the multimodal workload (tests/fixtures/cuda_multimodal.py, a
//! 3 GiB device) runs out of memory with PyTorch's own message when nothing
//! is asked and completes with NPU_ALLOC_SHIM_CUDA_NORMALIZE=1, nothing else
//! changed; on both paths (native `cudaMalloc` segments, and expandable
//! segments' `cuMemCreate` reached through the runtime's driver entry
//! points) the recording equals the fake's own accounts.
//!
//! The environment is made by scripts/torch-cuda-venv.sh. Without it these
//! tests print why and pass, unless NPU_ALLOC_SHIM_REAL_TORCH_CUDA=1 (CI),
//! where they create it if needed and fail loudly when anything is broken.

use super::lines::{LIMIT, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = "2.10.0";

/// The environment's variables (env.list), or `None` after saying why not.
fn environment() -> Option<&'static Vec<(String, String)>> {
    static ENV: OnceLock<Option<Vec<(String, String)>>> = OnceLock::new();
    ENV.get_or_init(prepare).as_ref()
}

fn prepare() -> Option<Vec<(String, String)>> {
    if let Some(triple) = support::cross_target() {
        println!("SKIPPED: torch CUDA tests: tests built for {triple}");
        return None;
    }
    let required = std::env::var("NPU_ALLOC_SHIM_REAL_TORCH_CUDA").as_deref() == Ok("1");
    let cache = match std::env::var_os("NPU_ALLOC_SHIM_VENV_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/npu-alloc-shim"),
    };
    let marker = cache.join(format!("venv-cuda-{VERSION}/.npu-alloc-shim-complete"));
    if !marker.exists() && !required {
        println!(
            "SKIPPED: torch CUDA tests: no environment at {} (create it with scripts/torch-cuda-venv.sh, \
             or set NPU_ALLOC_SHIM_REAL_TORCH_CUDA=1 to create it and run)",
            marker.parent().unwrap_or(&marker).display()
        );
        return None;
    }
    let out = support::run_with_timeout(
        Command::new(support::repo().join("scripts/torch-cuda-venv.sh")).arg(VERSION),
        std::time::Duration::from_secs(3600),
    );
    assert!(out.status.success(), "torch-cuda-venv.sh: {}", text(&out.stderr));
    let venv = PathBuf::from(text(&out.stdout).trim());
    let list = std::fs::read_to_string(venv.join("env.list")).expect("env.list");
    Some(list.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// What one run left: exit status, stderr, the workload's last line, the
/// recording and the fake's accounts.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    recording: Value,
    fake: Value,
}

/// The workload with the library preloaded before the fake runtime.
fn run(env: &[(String, String)], extra: &[(&str, &str)], dir: &Path) -> Run {
    run_with(env, extra, dir, true, &[])
}

/// The workload on the fake runtime, with or without the library (without
/// it, `recording` is `null`).
fn run_with(env: &[(String, String)], extra: &[(&str, &str)], dir: &Path, library: bool, args: &[&str]) -> Run {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).expect(name);
    let mut command = support::clean_command(get("TORCH_CUDA_PYTHON"));
    for (key, value) in env {
        command.env(key, value);
    }
    let preload = if library {
        format!("{}:{}", support::library().display(), get("FAKE_CUDA_RUNTIME"))
    } else {
        get("FAKE_CUDA_RUNTIME")
    };
    command
        .env("LD_PRELOAD", preload)
        .env("NPU_ALLOC_SHIM_TRACE", dir.join("trace.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0")
        .env("FAKE_CUDA_STATS_FILE", dir.join("fake.json"))
        .envs(extra.iter().copied())
        .current_dir(dir)
        .arg(support::repo().join("tests/fixtures/cuda_multimodal.py"))
        .args(args);
    let out = support::run_with_timeout(&mut command, LIMIT);
    let read = |name: &str| -> Value {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{}", text(&out.stderr)));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    Run {
        status: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
        recording: if library { read("trace.json") } else { Value::Null },
        fake: read("fake.json"),
    }
}

fn n(value: &Value, pointer: &str) -> u64 {
    value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Every API the fake accounts: the same calls and bytes in the recording;
/// the device totals the same.
fn assert_recording_matches(run: &Run) {
    for (name, counts) in run.fake["by_api"].as_object().unwrap() {
        if name == "cuMemGetInfo_v2" {
            // The library's own query, never through its hook: one per device
            // reading of the timeline and one per failed allocation.
            let failures = run.recording["failures"].as_array().map_or(0, Vec::len) as u64;
            let asked = n(&run.recording, "/device_readings") + failures;
            assert_eq!(n(counts, "/calls"), asked + n(&run.recording, "/by_api/cuMemGetInfo_v2/calls"), "{name}");
            continue;
        }
        let recorded = &run.recording["by_api"][name];
        assert_eq!(n(recorded, "/calls"), n(counts, "/calls"), "{name} calls");
        assert_eq!(n(recorded, "/failures"), n(counts, "/failures"), "{name} failures");
        assert_eq!(n(recorded, "/bytes"), n(counts, "/bytes"), "{name} bytes");
    }
    for field in ["alloc_calls", "failed_calls", "free_calls", "alloc_bytes", "live_bytes", "peak_live_bytes"] {
        let (recorded, fake) =
            (n(&run.recording, &format!("/totals/{field}")), n(&run.fake, &format!("/device/{field}")));
        assert_eq!(recorded, fake, "totals {field}");
    }
}

const OOM: &str = "torch.OutOfMemoryError: CUDA out of memory";

#[test]
fn out_of_memory_without_the_switch_completes_with_it_and_both_are_recorded_exactly() {
    let Some(env) = environment() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let (off, on) = (scratch.path().join("off"), scratch.path().join("on"));
    std::fs::create_dir_all(&off).unwrap();
    std::fs::create_dir_all(&on).unwrap();

    let default = run(env, &[], &off);
    assert_eq!(default.status, Some(1), "{}", default.stderr);
    assert!(default.stderr.contains(OOM), "{}", default.stderr);
    assert!(default.stderr.contains("reserved by PyTorch but unallocated"), "{}", default.stderr);
    assert!(!default.stderr.contains("npu-alloc-shim:"), "not opted in: silent\n{}", default.stderr);
    assert_eq!(default.recording["runtime"], "cuda");
    assert_eq!(default.recording["config"]["rule"], "not-opted-in");
    assert!(n(&default.recording, "/by_api/cudaMalloc/calls") > 0);
    assert_eq!(n(&default.recording, "/by_api/cuMemCreate/calls"), 0);
    assert!(!default.recording["failures"].as_array().unwrap().is_empty(), "the OOM is recorded");
    assert_recording_matches(&default);

    let switched = run(env, &[("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1")], &on);
    assert_eq!(switched.status, Some(0), "{}", switched.stderr);
    assert!(switched.stdout.lines().any(|l| l == "completed"), "{}", switched.stdout);
    assert!(
        switched.stderr.contains("npu-alloc-shim: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CuMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"),
        "{}",
        switched.stderr
    );
    assert_eq!(switched.recording["config"]["after"], "expandable_segments:True");
    // Expandable segments, bound through the runtime's driver entry points.
    assert!(n(&switched.recording, "/by_api/cuMemCreate/calls") > 100, "{}", switched.recording["by_api"]);
    let lookups = n(&switched.recording, "/by_api/cudaGetDriverEntryPointByVersion/calls")
        + n(&switched.recording, "/by_api/cudaGetDriverEntryPoint/calls");
    assert!(lookups > 0, "{}", switched.recording["by_api"]);
    assert_recording_matches(&switched);
}

/// Issue 17, "the reverse" of the NPU proof: with the library (whose NPU
/// decision writes PYTORCH_NPU_ALLOC_CONF in every process) and the CUDA
/// switch on, PyTorch's CUDA allocator does exactly what it does with
/// PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True set by hand and no
/// library: every call and byte of the fake runtime, and the workload's output.
#[test]
fn with_the_switch_torch_cuda_does_what_it_does_with_the_variable_alone() {
    let Some(env) = environment() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let (shim_dir, hand_dir) = (scratch.path().join("shim"), scratch.path().join("hand"));
    std::fs::create_dir_all(&shim_dir).unwrap();
    std::fs::create_dir_all(&hand_dir).unwrap();
    let shim = run(env, &[("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1")], &shim_dir);
    let hand = run_with(env, &[("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")], &hand_dir, false, &[]);
    assert_eq!((shim.status, hand.status), (Some(0), Some(0)), "{}\n{}", shim.stderr, hand.stderr);
    assert_eq!(shim.stdout, hand.stdout, "the workload's own report");
    let apis = |run: &Run| {
        let mut by_api = run.fake["by_api"].as_object().unwrap().clone();
        // The library's own device readings ask cuMemGetInfo_v2 (never through its hook).
        by_api.remove("cuMemGetInfo_v2");
        by_api
    };
    assert_eq!(apis(&shim), apis(&hand), "every runtime call and byte");
    assert_eq!((&shim.fake["device"], &shim.fake["host"]), (&hand.fake["device"], &hand.fake["host"]));
    assert!(n(&hand.fake, "/by_api/cuMemCreate/calls") > 100, "the expandable path: {}", hand.fake["by_api"]);
}

#[test]
fn an_explicit_choice_the_async_backend_and_sleep_mode_are_left_alone() {
    let Some(env) = environment() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let opted = ("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1");
    let dir = scratch.path().join("false");
    std::fs::create_dir_all(&dir).unwrap();
    let explicit = run(env, &[opted, ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:False")], &dir);
    assert_eq!(explicit.status, Some(1), "{}", explicit.stderr);
    assert!(explicit.stderr.contains(OOM), "{}", explicit.stderr);
    assert_eq!(explicit.recording["config"]["rule"], "has-key");
    assert_eq!(n(&explicit.recording, "/by_api/cuMemCreate/calls"), 0);
    let dir = scratch.path().join("async");
    std::fs::create_dir_all(&dir).unwrap();
    let asynchronous = run(env, &[opted, ("PYTORCH_CUDA_ALLOC_CONF", "backend:cudaMallocAsync")], &dir);
    assert_eq!(asynchronous.recording["config"]["rule"], "conflict");
    assert_eq!(asynchronous.recording["config"]["after"], "backend:cudaMallocAsync");
    assert!(asynchronous.stderr.contains("has no expandable segments"), "{}", asynchronous.stderr);
    assert_eq!(n(&asynchronous.recording, "/by_api/cuMemCreate/calls"), 0);
    assert_recording_matches(&asynchronous);
    // vLLM's sleep mode on the command line: its CuMemAllocator refuses
    // expandable segments, so the switch changes nothing there.
    let dir = scratch.path().join("sleep");
    std::fs::create_dir_all(&dir).unwrap();
    let sleep = run_with(env, &[opted], &dir, true, &["--enable-sleep-mode"]);
    assert_eq!(sleep.status, Some(1), "{}", sleep.stderr);
    assert!(sleep.stderr.contains(OOM), "{}", sleep.stderr);
    assert_eq!(sleep.recording["config"]["rule"], "memory-pool");
    assert!(sleep.stderr.contains("--enable-sleep-mode"), "the line says why: {}", sleep.stderr);
    assert_eq!(n(&sleep.recording, "/by_api/cuMemCreate/calls"), 0);
}

#[test]
fn the_gpu_check_script_passes_on_the_fake_runtime_with_a_capped_larger_device() {
    let Some(env) = environment() else { return };
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).expect(name);
    // As on a real GPU: a device larger than the workload's 3 GiB, capped.
    let mut command = support::clean_command(support::repo().join("scripts/gpu-check.sh"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.env("FAKE_CUDA_DEVICE_BYTES", (8u64 << 30).to_string()).args([
        "--lib",
        &support::library().display().to_string(),
        "--python",
        &get("TORCH_CUDA_PYTHON"),
    ]);
    let out = support::run_with_timeout(&mut command, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let line = stdout.lines().last().unwrap_or_default();
    assert!(line.starts_with("gpu-check: torch 2.10.0"), "{line}");
    assert!(line.contains("capped at 3.0 GiB") && line.contains("before: oom") && line.contains("after: completed"));
    assert!(line.ends_with("-> OK"), "{line}");
}
