//! `report` and `diff` on recordings the preloaded library wrote for real
//! processes on the project's fake Ascend runtime (tests/fake_runtime): what
//! the report says must be what the recordings say.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::reports::*;

/// The fake runtime and the workload linked against it, built once in a
/// directory of their own (tests/hooks_and_recording/calls.rs builds its own copies).
fn workload() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let sub = "report-fake";
        let dir = support::fixture_dir().join(sub);
        std::fs::create_dir_all(&dir).expect("fixture subdirectory");
        let include = format!("-I{}", support::repo().join("tests/fake_runtime").display());
        support::compile_c(
            &format!("{sub}/libascendcl.so"),
            &["tests/fake_runtime/fake_ascendcl.c"],
            &["-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread", &include],
        );
        let lib_dir = format!("-L{}", dir.display());
        let rpath = format!("-Wl,-rpath,{}", dir.display());
        support::compile_c(
            &format!("{sub}/acl_workload"),
            &["tests/fixtures/acl_workload.c"],
            &["-DWORKLOAD_LINKED", &include, &lib_dir, "-lascendcl", &rpath, "-ldl", "-pthread"],
        )
    })
}

/// Runs the workload preloaded, recording into `dir`; returns the recording.
fn record(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = support::preloaded(workload());
    command
        .args(args)
        .env("NPU_ALLOC_SHIM_TRACE", dir.join("npu-alloc-shim.%p.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0")
        .env("FAKE_ACL_DEVICE_BYTES", (GIB).to_string());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = run(&mut command);
    assert!(out.status.success(), "workload failed: {}\n{}", out.status, stderr(&out));
    let line: Value = serde_json::from_slice(&out.stdout).expect("the workload's JSON line");
    let pid = line["pid"].as_u64().expect("pid");
    let path = dir.join(format!("npu-alloc-shim.{pid}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("recording")
}

const COUNTERS: [&str; 8] = [
    "alloc_calls",
    "failed_calls",
    "free_calls",
    "untracked_frees",
    "alloc_bytes",
    "freed_bytes",
    "live_bytes",
    "peak_live_bytes",
];

#[test]
fn a_recorded_process_is_reported_with_its_own_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let rec = record(dir.path(), &["--threads", "2", "--iters", "8", "--oom", "--vmm", "--host", "--leak", "3"], &[]);
    let m = report_json(&[dir.path()]);
    assert_eq!(m["recordings"], 1);
    for key in COUNTERS {
        assert_eq!(m["totals"][key], rec["totals"][key], "totals.{key}");
        assert_eq!(m["host"][key], rec["host"][key], "host.{key}");
    }
    assert_eq!(m["histogram"], rec["histogram"], "one process: the histogram as recorded");
    assert_eq!(m["by_api"], rec["by_api"]);
    assert_eq!(m["failures_total"], n(&rec, "/totals/failed_calls") + n(&rec, "/host/failed_calls"));
    assert_eq!(m["failures"].as_array().unwrap().len(), rec["failures"].as_array().unwrap().len());
    assert_eq!(m["processes"][0]["pid"], rec["pid"]);
    let devices: BTreeMap<i64, &Value> =
        m["devices"].as_array().unwrap().iter().map(|d| (d["device"].as_i64().unwrap(), d)).collect();
    for d in rec["devices"].as_array().unwrap() {
        let merged = devices[&d["device"].as_i64().unwrap()];
        for key in ["live_bytes", "peak_live_bytes", "alloc_calls", "alloc_bytes"] {
            assert_eq!(merged[key], d[key], "device {} {key}", d["device"]);
        }
    }
    // Two OOMs (each beyond the 1 GiB device), after which the workload goes
    // on allocating: survived, so memory pressure rather than an error, and
    // still called a size bug.
    let findings = m["findings"].as_array().unwrap();
    assert!(finding(findings, "out-of-memory").is_none(), "{findings:?}");
    let oom = finding(findings, "memory-pressure").unwrap_or_else(|| panic!("{findings:?}"));
    assert!(oom["detail"].as_str().unwrap().contains("(2 survived)"), "{oom}");
    assert!(oom["detail"].as_str().unwrap().contains("larger than the whole device"), "{oom}");

    // The terminal shows the same numbers.
    let out = run(cli().arg("report").arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = &rec["totals"];
    let want = format!("allocations {} calls, {}", t["alloc_calls"], bytes(n(t, "/alloc_bytes")));
    assert!(text.lines().any(|l| words(l) == want), "{want:?} in {text}");
    let want = format!("frees {} calls, {}", t["free_calls"], bytes(n(t, "/freed_bytes")));
    assert!(text.lines().any(|l| words(l) == want), "{want:?} in {text}");
    for b in rec["histogram"].as_array().unwrap() {
        let row = format!("[{}, {}) {} {}", bytes(n(b, "/lo")), bytes(n(b, "/hi")), b["count"], bytes(n(b, "/bytes")));
        assert!(text.lines().any(|l| words(l).starts_with(&row)), "{row:?} in {text}");
    }
    for f in rec["failures"].as_array().unwrap() {
        let row = format!("{} {} {} {}", f["api"].as_str().unwrap(), bytes(n(f, "/size")), f["code"], f["device"]);
        assert!(text.contains(&row) || text.lines().any(|l| words(l).contains(&row)), "{row:?} in {text}");
    }
    let program = std::fs::canonicalize(workload()).unwrap();
    assert!(text.contains(&program.display().to_string()), "the calling program is listed: {text}");
}

#[test]
fn eight_processes_merge_into_sums() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Value> = (0..8)
        .map(|i| {
            let iters = (4 + i).to_string();
            let threads = (1 + i % 3).to_string();
            record(dir.path(), &["--threads", &threads, "--iters", &iters, "--leak", &i.to_string()], &[])
        })
        .collect();
    let m = report_json(&[dir.path()]);
    assert_eq!(m["recordings"], 8);
    for key in ["alloc_calls", "alloc_bytes", "free_calls", "freed_bytes", "live_bytes", "peak_live_bytes"] {
        let sum: u64 = recs.iter().map(|r| n(r, &format!("/totals/{key}"))).sum();
        assert_eq!(n(&m, &format!("/totals/{key}")), sum, "totals.{key}");
    }
    // Histogram: bucket-wise sums.
    let mut want: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for r in &recs {
        for b in r["histogram"].as_array().unwrap() {
            let slot = want.entry(n(b, "/lo")).or_default();
            slot.0 += n(b, "/count");
            slot.1 += n(b, "/bytes");
        }
    }
    let got: BTreeMap<u64, (u64, u64)> =
        m["histogram"].as_array().unwrap().iter().map(|b| (n(b, "/lo"), (n(b, "/count"), n(b, "/bytes")))).collect();
    assert_eq!(got, want);
    // Device 0 is shared by all eight: its peak is the sum, flagged as a bound.
    let device0 = m["devices"].as_array().unwrap().iter().find(|d| d["device"] == 0).expect("device 0");
    assert_eq!(device0["processes"], 8);
    assert_eq!(device0["peak_is_upper_bound"], true);
    let peaks: u64 = recs
        .iter()
        .flat_map(|r| {
            r["devices"].as_array().unwrap().iter().filter(|d| d["device"] == 0).map(|d| n(d, "/peak_live_bytes"))
        })
        .sum();
    assert_eq!(n(device0, "/peak_live_bytes"), peaks);
    let highest = recs.iter().map(|r| n(r, "/totals/peak_live_bytes")).max().unwrap();
    assert_eq!(n(&m, "/highest_peak"), highest);
    let pids: Vec<u64> = m["processes"].as_array().unwrap().iter().map(|p| n(p, "/pid")).collect();
    let mut want_pids: Vec<u64> = recs.iter().map(|r| n(r, "/pid")).collect();
    want_pids.sort_unstable();
    let mut got_pids = pids.clone();
    got_pids.sort_unstable();
    assert_eq!(got_pids, want_pids);
}

#[test]
fn diff_of_a_failing_and_a_clean_run() {
    let before = tempfile::tempdir().unwrap();
    let after = tempfile::tempdir().unwrap();
    let b = record(before.path(), &["--threads", "2", "--iters", "6", "--oom"], &[]);
    let a = record(after.path(), &["--threads", "2", "--iters", "6", "--vmm"], &[]);
    let html = before.path().join("diff.html");
    let json_path = before.path().join("diff.out");
    let out = run(cli()
        .arg("diff")
        .arg(before.path())
        .arg(after.path())
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json_path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("failures 2 -> 0 (out of memory 2 -> 0; fatal 2 -> none)"), "{text}");
    assert!(text.contains("expandable segments in effect (mapped memory) in 0 of 1 -> 1 of 1 processes"), "{text}");
    let (bp, ap) = (n(&b, "/totals/peak_live_bytes"), n(&a, "/totals/peak_live_bytes"));
    assert!(text.contains(&format!("peak live {} -> {} (", bytes(bp), bytes(ap))), "{text}");
    let diff: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(diff["schema"], "npu-alloc-shim-diff/1");
    let change = diff["changes"].as_array().unwrap().iter().find(|c| c["id"] == "highest_peak").unwrap();
    assert_eq!((n(change, "/before"), n(change, "/after")), (bp, ap));
    assert_eq!(diff["before"]["recordings"], 1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<div class=\"pair\">").count() >= 5, "charts side by side");
    assert!(!page.contains("http://") && !page.contains("https://"));
}
