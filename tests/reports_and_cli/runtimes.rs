//! A job that mixes runtimes (NPU and CUDA processes) is reported per
//! runtime, and CUDA recordings get CUDA's wording.

use serde_json::json;
use support::reports::{self as r, GIB, MIB};

fn cuda(pid: u32) -> serde_json::Value {
    let mut rec = r::recording(pid, "node", 0);
    rec["runtime"] = json!("cuda");
    rec["config"] = json!({"var": "PYTORCH_CUDA_ALLOC_CONF", "before": null, "after": null,
                           "rule": "not-opted-in", "applied": false});
    rec
}

#[test]
fn a_mixed_job_is_reported_per_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut npu = r::recording(1, "node", 0);
    r::allocate(&mut npu, 10, GIB, 0, 512 * MIB, "/x/torch_npu/lib/libtorch_npu.so");
    let mut gpu = cuda(2);
    r::allocate(&mut gpu, 4, 256 * MIB, 0, 128 * MIB, "/x/torch/lib/libc10_cuda.so");
    gpu["by_api"] = json!({"cudaMalloc": {"calls": 4, "failures": 0, "bytes": 256 * MIB}});
    let paths = [r::write(dir.path(), "npu.json", &npu), r::write(dir.path(), "cuda.json", &gpu)];
    let merged = r::report_json(&[&paths[0], &paths[1]]);
    let runtimes = merged["by_runtime"].as_array().unwrap();
    let names: Vec<&str> = runtimes.iter().map(|x| x["runtime"].as_str().unwrap()).collect();
    assert_eq!(names, ["cuda", "npu"]);
    assert_eq!(runtimes[0]["totals"]["alloc_bytes"], 256 * MIB);
    assert_eq!(runtimes[1]["totals"]["peak_live_bytes"], 512 * MIB);
    assert_eq!(merged["totals"]["alloc_calls"], 14);
    let out = r::run(r::cli().arg("report").args(&paths));
    let text = r::stdout(&out);
    assert!(text.contains("Per runtime"), "{text}");
    // One runtime: no such section.
    let out = r::run(r::cli().arg("report").arg(&paths[1]));
    assert!(!r::stdout(&out).contains("Per runtime"));
}

#[test]
fn cuda_advice_names_cuda() {
    let dir = tempfile::tempdir().unwrap();
    let mut gpu = cuda(3);
    r::allocate(&mut gpu, 8, 4 * GIB, 0, GIB, "/usr/lib/libnccl.so.2");
    let path = r::write(dir.path(), "cuda.json", &gpu);
    let findings = r::findings(&[&path]);
    let non_torch = r::finding(&findings, "non-torch-memory").expect("non-torch-memory");
    let advice = non_torch["advice"].as_str().unwrap();
    assert!(advice.contains("torch.cuda.memory_reserved()") && advice.contains("NCCL_BUFFSIZE"), "{advice}");
    assert!(!advice.contains("npu") && !advice.contains("HCCL"), "{advice}");
}
