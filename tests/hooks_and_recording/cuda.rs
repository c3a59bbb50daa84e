//! The CUDA backend's hooks in a real process on the fake CUDA runtime
//! (tests/fake_cuda): every binding path a CUDA program uses (the runtime
//! API through the PLT, the driver linked, the runtime's entry points,
//! dlsym on libcuda.so.1, cuGetProcAddress and its _v2) reaches the hooks,
//! and the recording equals the fake's own accounts call for call.

use serde_json::Value;
use support::fake_cuda;
use support::fixtures::{self as common, MIB, api_calls, n};

/// Runs the client traced; returns its recording and the fake's accounts.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Value, Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut command = support::preloaded(fake_cuda::workload());
    command
        .args(args)
        .envs(env.iter().copied())
        .env("NPU_ALLOC_SHIM_TRACE", &trace)
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0");
    let output = common::ok(&mut command);
    let fake = common::json_lines(&output).pop().expect("the fake's accounts");
    (common::read_json(&trace), fake, common::library_lines(&output))
}

/// The one allocation and free the client makes through the per-thread
/// stream variants (`_ptsz`), which the fake counts under the plain names
/// and the library leaves unhooked.
const PTSZ_BYTES: u64 = 6 * MIB;
const STREAM_CALLS: [&str; 2] = ["cuMemAllocAsync", "cuMemFreeAsync"];

#[test]
fn every_binding_path_is_recorded_exactly() {
    let (rec, fake, _) = run(&[], &[]);
    assert_eq!(rec["runtime"], "cuda");
    common::assert_no_errors(&rec);
    let fake_apis = fake["by_api"].as_object().unwrap();
    for (name, counts) in fake_apis {
        let (calls, bytes) = (n(counts, "/calls"), n(counts, "/bytes"));
        let (calls, bytes) = if STREAM_CALLS.contains(&name.as_str()) {
            (calls - 1, bytes - PTSZ_BYTES)
        } else if name == "cuMemGetInfo_v2" {
            // The library's own device readings ask the same function (never
            // through its hook), as many times as the timeline asked: how many
            // depends on timing, the recording says.
            (calls - n(&rec, "/device_readings"), bytes)
        } else {
            (calls, bytes)
        };
        assert_eq!(api_calls(&rec, name), calls, "{name} calls");
        assert_eq!(rec["by_api"][name]["bytes"].as_u64().unwrap_or(0), bytes, "{name} bytes");
    }
    // Expandable segments' calls really came through the entry points.
    assert_eq!(api_calls(&rec, "cuMemCreate"), 6);
    assert_eq!(api_calls(&rec, "cudaGetDriverEntryPoint"), 14);
    assert_eq!(api_calls(&rec, "cudaGetDriverEntryPointByVersion"), 1);
    assert_eq!(api_calls(&rec, "cuGetProcAddress") + api_calls(&rec, "cuGetProcAddress_v2"), 5);
    assert_eq!(n(&rec, "/by_api/cuGetProcAddress/failures"), 1, "the missing name");
    // Totals: the fake's, less the unhooked per-thread-stream pair.
    let (device, totals) = (&fake["device"], &rec["totals"]);
    assert_eq!(n(totals, "/alloc_calls"), n(device, "/alloc_calls") - 1);
    assert_eq!(n(totals, "/free_calls"), n(device, "/free_calls") - 1);
    assert_eq!(n(totals, "/alloc_bytes"), n(device, "/alloc_bytes") - PTSZ_BYTES);
    assert_eq!(n(totals, "/live_bytes"), n(device, "/live_bytes"));
    assert_eq!(n(totals, "/peak_live_bytes"), n(device, "/peak_live_bytes"));
    for field in ["alloc_calls", "free_calls", "alloc_bytes", "live_bytes", "peak_live_bytes"] {
        assert_eq!(n(&rec["host"], &format!("/{field}")), n(&fake["host"], &format!("/{field}")), "host {field}");
    }
}

#[test]
fn a_failed_allocation_is_recorded_with_the_devices_own_free_and_total() {
    let (rec, fake, _) = run(&["fail"], &[]);
    let failures = rec["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    assert_eq!(failure["api"], "cudaMalloc");
    assert_eq!(n(&rec, "/by_api/cudaMalloc/failures"), 1);
    let capacity = n(&fake, "/device_capacity");
    assert_eq!(n(failure, "/size"), capacity + MIB);
    assert_eq!(n(failure, "/device_total"), capacity, "{failure}");
    assert_eq!(n(failure, "/device_free"), capacity - n(&fake, "/device/live_bytes"), "{failure}");
}

#[test]
fn a_cuda_process_hears_only_about_cuda() {
    let (_, _, lines) = run(&[], &[]);
    assert!(lines.is_empty(), "not opted in: nothing about CUDA, and nothing about the NPU: {lines:?}");
    let (rec, _, lines) = run(&[], &[("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1")]);
    assert_eq!(
        lines,
        [
            "npu-alloc-shim: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CuMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
        ]
    );
    assert_eq!(rec["config"]["rule"], "unset");
    assert_eq!(rec["config"]["after"], "expandable_segments:True");
}

#[test]
fn physical_memory_is_counted_where_its_properties_place_it() {
    // The thread stays on device 0; cuMemCreate names device 1, then the host.
    let (rec, fake, _) = run(&["placed"], &[("FAKE_CUDA_DEVICE_COUNT", "2")]);
    common::assert_no_errors(&rec);
    let device = |v: &Value, id: u64| -> Value {
        let list = v["devices"].as_array().expect("devices");
        list.iter().find(|d| n(d, "/device") == id).cloned().unwrap_or_else(|| panic!("no device {id} in {v}"))
    };
    let (recorded, expected) = (device(&rec, 1), device(&fake, 1));
    for field in ["alloc_calls", "alloc_bytes", "live_bytes", "peak_live_bytes"] {
        assert_eq!(n(&recorded, &format!("/{field}")), n(&expected, &format!("/{field}")), "device 1 {field}");
    }
    assert_eq!(
        [n(&recorded, "/alloc_calls"), n(&recorded, "/live_bytes"), n(&recorded, "/peak_live_bytes")],
        [2, 8 * MIB, 12 * MIB]
    );
    assert_eq!(n(&device(&rec, 0), "/live_bytes"), n(&device(&fake, 0), "/live_bytes"));
    // Host-located physical memory is pinned host memory, counted per call.
    for field in ["alloc_calls", "free_calls", "alloc_bytes", "live_bytes", "peak_live_bytes"] {
        assert_eq!(n(&rec["host"], &format!("/{field}")), n(&fake["host"], &format!("/{field}")), "host {field}");
    }
    assert_eq!(n(&rec["host"], "/live_bytes"), (2 + 2) * MIB, "cudaHostAlloc's 2 MiB and one physical 2 MiB");
    assert_eq!(api_calls(&rec, "cuMemCreate"), 6 + 4);
}
