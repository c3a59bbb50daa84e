//! A large set of recordings streams through `report` in bounded memory: the
//! totals stay exact, the kept processes are capped, and the peak resident
//! memory of the CLI stays far below the size of its input.
//! The resident-memory figure is the CLI's own (`wait4`), whatever other
//! tests of the binary run meanwhile.

use serde_json::json;
use support::reports::*;

/// Recordings written; above the CLI's cap of 512 kept processes.
const FILES: u64 = 1500;

#[test]
fn hundreds_of_megabytes_of_recordings_stream_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // A full-size recording: 1024 timeline samples, 256 failures, a long
    // command line (about 150 KiB of JSON).
    let mut r = recording(0, "node1", 0);
    allocate(&mut r, 1000, 10 * GIB, GIB, 4 * GIB, "/opt/torch_npu/lib/libtorch_npu.so");
    r["histogram"] = large_histogram(40, 25);
    r["timeline"] = ramp(GIB, 4 * GIB, 1024);
    let one = failure("aclrtMalloc", GIB, 207001, 0, 3 * GIB, Some(GIB / 2), Some(32 * GIB));
    r["failures"] = json!(vec![one; 256]);
    r["totals"]["failed_calls"] = json!(256);
    r["argv"] = json!((0..400).map(|i| format!("--option-{i}=value-{i}-{}", "x".repeat(40))).collect::<Vec<_>>());
    let template = serde_json::to_string_pretty(&r).unwrap().replacen("\"pid\": 0", "\"pid\": PID", 1);
    let mut total = 0u64;
    for i in 0..FILES {
        // Peaks differ so the kept processes are the highest ones.
        let text = template
            .replacen("PID", &(10_000 + i).to_string(), 1)
            .replace(&format!("\"peak_live_bytes\": {}", 4 * GIB), &format!("\"peak_live_bytes\": {}", 4 * GIB + i));
        total += text.len() as u64;
        std::fs::write(dir.path().join(format!("npu-alloc-shim.{}.json", 10_000 + i)), text).unwrap();
    }
    assert!(total > 200 * MIB, "only {} of input", bytes(total));

    let json_path = dir.path().join("merged.out");
    let html = dir.path().join("report.html");
    let trace = dir.path().join("trace.out");
    // Under qemu-user a spawned child is a fork of this (emulated) process, so
    // its peak starts at this process's own resident size: that part is not
    // the CLI's. Natively the child is spawned without a copy and this is 0.
    let inherited = if support::cross_target().is_some() { own_resident_bytes() } else { 0 };
    let (out, peak_rss) = support::run_measuring_peak_memory(
        cli()
            .arg("report")
            .arg(dir.path())
            .arg("--json")
            .arg(&json_path)
            .arg("--html")
            .arg(&html)
            .arg("--trace-event")
            .arg(&trace),
        std::time::Duration::from_secs(300),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    eprintln!("{} of recordings, peak resident memory of the CLI {}", bytes(total), bytes(peak_rss));
    assert!(
        peak_rss < 96 * MIB + inherited,
        "peak resident memory {} for {} of input ({} inherited from the test process)",
        bytes(peak_rss),
        bytes(total),
        bytes(inherited)
    );

    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(m["recordings"], FILES);
    assert_eq!(n(&m, "/totals/alloc_calls"), 1000 * FILES);
    assert_eq!(n(&m, "/totals/alloc_bytes"), 10 * GIB * FILES);
    assert_eq!(n(&m, "/failures_total"), 256 * FILES);
    assert_eq!(m["failures"].as_array().unwrap().len(), 1000, "failures kept are capped");
    assert_eq!(m["processes"].as_array().unwrap().len(), 512, "processes kept are capped");
    assert_eq!(n(&m, "/processes_omitted"), FILES - 512);
    // The kept ones are those with the highest peaks.
    let lowest_kept = m["processes"].as_array().unwrap().iter().map(|p| n(p, "/totals/peak_live_bytes")).min().unwrap();
    assert_eq!(lowest_kept, 4 * GIB + FILES - 512);
    assert_eq!(n(&m, "/highest_peak"), 4 * GIB + FILES - 1);
    let oom = m["findings"].as_array().unwrap().iter().find(|f| f["id"] == "out-of-memory").expect("out-of-memory");
    assert_eq!(n(oom, "/processes"), FILES, "findings count every process, kept or not");
}

/// This process's resident size (`VmRSS`), in bytes.
fn own_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    kib.unwrap_or(0) * KIB
}
