//! `report` findings on crafted recordings: each rule fires when its
//! conditions hold, with the numbers of the recording in its wording, and stays
//! quiet just below its thresholds.

use serde_json::{Value, json};
use support::reports::*;

/// Writes recordings into a fresh directory and returns the findings.
fn findings_of(recordings: &[Value]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, r) in recordings.iter().enumerate() {
        write(dir.path(), &format!("r{i}.json"), r);
    }
    findings(&[dir.path()])
}

fn detail(f: &Value) -> String {
    format!("{} | {}", f["detail"].as_str().unwrap_or(""), f["advice"].as_str().unwrap_or(""))
}

/// A process whose fixed segments fragment: 10 distinct large sizes and a
/// ramp from 1 to 3 GiB.
fn fragmenting(pid: u32) -> Value {
    let mut r = recording(pid, "node1", 0);
    allocate(&mut r, 500, 40 * GIB, 3 * GIB, 3 * GIB, "/usr/lib/python3/site-packages/torch_npu/lib/libtorch_npu.so");
    r["histogram"] = large_histogram(10, 50);
    r["timeline"] = ramp(GIB, 3 * GIB, 40);
    // Recorded with NPU_ALLOC_SHIM_NORMALIZE=0: expandable segments off.
    r["config"] = json!({"var": "PYTORCH_NPU_ALLOC_CONF", "before": null, "after": null, "rule": "normalize-off",
                         "applied": false});
    r
}

/// First- and second-half peaks of `ramp(from, to, n)` as the CLI computes them.
fn halves(timeline: &Value) -> (u64, u64) {
    let samples = timeline["samples"].as_array().unwrap();
    let t = |s: &Value| s["t_ms"].as_u64().unwrap();
    let (first, last) = (t(&samples[0]), t(samples.last().unwrap()));
    let middle = first + (last - first) / 2;
    let peak = |keep: &dyn Fn(u64) -> bool| {
        samples.iter().filter(|s| keep(t(s))).map(|s| s["max_live_bytes"].as_u64().unwrap()).max().unwrap()
    };
    (peak(&|x| x <= middle), peak(&|x| x > middle))
}

#[test]
fn a_healthy_process_has_no_findings() {
    let mut r = recording(10, "node1", 0);
    allocate(&mut r, 100, 10 * GIB, GIB, 2 * GIB, "/opt/torch_npu/lib/libtorch_npu.so");
    r["histogram"] = large_histogram(2, 50);
    r["timeline"] = ramp(2 * GIB, 2 * GIB, 20);
    r["by_api"]["aclrtMallocPhysical"] = json!({"calls": 40, "failures": 0, "bytes": 80 * MIB});
    assert_eq!(ids(&findings_of(std::slice::from_ref(&r))), Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.json", &r);
    let out = run(cli().arg("report").arg(&path));
    assert!(stdout(&out).contains("Findings\n  nothing stands out\n"), "{}", stdout(&out));
}

#[test]
fn fragmentation_growth_fires_with_many_large_sizes_and_growth() {
    let r = fragmenting(11);
    let all = findings_of(std::slice::from_ref(&r));
    let f = finding(&all, "fragmentation-growth").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["processes"], 1);
    let (first, second) = halves(&r["timeline"]);
    let text = detail(f);
    for want in [bytes(first), bytes(second), format!("+{}", bytes(second - first)), "10 distinct large sizes".into()] {
        assert!(text.contains(&want), "{want:?} in {text}");
    }
    // The library was told to keep out: the advice says what to set.
    assert!(text.contains("set PYTORCH_NPU_ALLOC_CONF=expandable_segments:True"), "{text}");
    assert_eq!(ids(&all), vec!["fragmentation-growth"], "{all:?}");
}

#[test]
fn fragmentation_growth_stays_quiet_below_each_threshold() {
    let mut mapped = fragmenting(12);
    mapped["by_api"]["aclrtMallocPhysical"] = json!({"calls": 10, "failures": 0, "bytes": 20 * MIB});
    let mut few_sizes = fragmenting(13);
    few_sizes["histogram"] = large_histogram(7, 50);
    let mut small_ratio = fragmenting(14);
    small_ratio["timeline"] = ramp(10 * GIB, 11 * GIB, 40); // about +10%
    let mut small_growth = fragmenting(15);
    small_growth["timeline"] = ramp(100 * MIB, 300 * MIB, 40); // +100 MiB, below 256 MiB
    let mut short = fragmenting(16);
    short["timeline"] = ramp(GIB, 3 * GIB, 3); // fewer than 4 samples: no halves
    for (what, r) in [
        ("mapped", mapped),
        ("7 sizes", few_sizes),
        ("+10%", small_ratio),
        ("+100 MiB", small_growth),
        ("3 samples", short),
    ] {
        let all = findings_of(&[r]);
        assert!(finding(&all, "fragmentation-growth").is_none(), "{what}: {all:?}");
    }
}

#[test]
fn a_conflicting_setting_gets_the_value_to_use_instead() {
    let mut r = fragmenting(20);
    r["config"] = json!({"var": "PYTORCH_NPU_ALLOC_CONF", "before": "max_split_size_mb:256,page_size:1g",
                         "after": "max_split_size_mb:256,page_size:1g", "rule": "conflict", "applied": false});
    let all = findings_of(&[r]);
    let f = finding(&all, "config-conflict").unwrap_or_else(|| panic!("{all:?}"));
    let text = detail(f);
    assert!(text.contains("sets max_split_size_mb"), "{text}");
    assert!(text.contains("PYTORCH_NPU_ALLOC_CONF=\"page_size:1g,expandable_segments:True\""), "{text}");
    // The fragmentation finding points at the conflict too.
    let g = finding(&all, "fragmentation-growth").expect("fragmentation-growth");
    assert!(detail(g).contains("see config-conflict"), "{}", detail(g));
}

#[test]
fn other_configuration_rules() {
    let config = |rule: &str, before: Option<&str>, after: Option<&str>| {
        let mut r = recording(30, "node1", 0);
        r["config"] = json!({"var": "PYTORCH_NPU_ALLOC_CONF", "before": before, "after": after, "rule": rule,
                             "applied": false});
        r
    };
    let cases = [
        (config("invalid", Some("bogus:1"), Some("bogus:1")), "config-invalid", "\"bogus:1\""),
        (config("both-set", Some("page_size:1g"), Some("page_size:1g")), "config-both-set", "PYTORCH_ALLOC_CONF"),
        (config("memory-pool", None, None), "sleep-mode", "memory pool"),
        (
            config("has-key", Some("expandable_segments:False"), Some("expandable_segments:False")),
            "expandable-off",
            "expandable_segments:False",
        ),
    ];
    for (r, id, text) in cases {
        let all = findings_of(&[r]);
        assert_eq!(ids(&all), vec![id.to_owned()], "{all:?}");
        assert!(detail(&all[0]).contains(text), "{id}: {text:?} in {}", detail(&all[0]));
    }
    // Kept with expandable segments on, appended, inherited: nothing to say.
    for (rule, after) in [
        ("has-key", "expandable_segments:True"),
        ("append", "page_size:1g,expandable_segments:True"),
        ("inherited-applied", "expandable_segments:True"),
    ] {
        let all = findings_of(&[config(rule, Some(after), Some(after))]);
        assert!(all.is_empty(), "{rule}: {all:?}");
    }
}

#[test]
fn expandable_segments_requested_but_never_mapped() {
    let mut r = recording(40, "node1", 0);
    allocate(&mut r, 10, GIB, 0, GIB, "/opt/torch_npu/lib/libtorch_npu.so");
    r["histogram"] = large_histogram(3, 2);
    let all = findings_of(std::slice::from_ref(&r));
    let f = finding(&all, "expandable-not-used").unwrap_or_else(|| panic!("{all:?}"));
    assert!(detail(f).contains("3 distinct large sizes"), "{}", detail(f));
    r["by_api"]["aclrtMallocPhysical"] = json!({"calls": 4, "failures": 0, "bytes": 8 * MIB});
    assert!(finding(&findings_of(&[r]), "expandable-not-used").is_none());
}

#[test]
fn failures_are_told_apart_full_fragmented_and_other() {
    let total = 32 * GIB;
    let mut r = recording(50, "node1", 3);
    allocate(&mut r, 10, 28 * GIB, 28 * GIB, 28 * GIB, "/opt/torch_npu/lib/libtorch_npu.so");
    r["failures"] = json!([
        // Full: 100 MiB free for 2 GiB.
        failure("aclrtMalloc", 2 * GIB, 207001, 3, 28 * GIB, Some(100 * MIB), Some(total)),
        // In pieces: 6 GiB free for 1 GiB.
        failure("aclrtMallocAlign32", GIB, 207018, 3, 20 * GIB, Some(6 * GIB), Some(total)),
        // Not memory.
        failure("aclrtMalloc", 0, 107000, 3, 20 * GIB, None, None),
    ]);
    r["totals"]["failed_calls"] = json!(3);
    let all = findings_of(&[r]);
    assert_eq!(all[0]["id"], "out-of-memory", "errors first: {all:?}");
    let oom = detail(&all[0]);
    let others = total - 100 * MIB - 28 * GIB;
    for want in [
        "1 allocation(s) failed out of memory".to_owned(),
        format!("aclrtMalloc of {} on device 3", bytes(2 * GIB)),
        format!("{} free of {}", bytes(100 * MIB), bytes(total)),
        format!("this process held {} (88% of the device)", bytes(28 * GIB)),
        format!("the runtime itself held {}", bytes(others)),
        "code 207001".to_owned(),
    ] {
        assert!(oom.contains(&want), "{want:?} in {oom}");
    }
    let frag = detail(finding(&all, "fragmentation-at-failure").unwrap_or_else(|| panic!("{all:?}")));
    assert!(frag.contains(&format!("aclrtMallocAlign32 of {} on device 3", bytes(GIB))), "{frag}");
    assert!(frag.contains("6.0x the request"), "{frag}");
    let other = detail(finding(&all, "allocation-errors").unwrap_or_else(|| panic!("{all:?}")));
    assert!(other.contains("code(s) 107000"), "{other}");
}

#[test]
fn failure_thresholds_and_unknown_memory_state() {
    // 1.5x the request free: full, not fragmented.
    let mut r = recording(51, "node1", 0);
    r["failures"] = json!([failure("aclrtMalloc", GIB, 207001, 0, GIB, Some(GIB + GIB / 2), Some(8 * GIB))]);
    assert_eq!(ids(&findings_of(std::slice::from_ref(&r))), vec!["out-of-memory"]);
    // Free memory unknown (no aclrtGetMemInfo): said so.
    r["failures"] = json!([failure("aclrtMalloc", GIB, 207001, 0, GIB, None, None)]);
    let all = findings_of(std::slice::from_ref(&r));
    assert!(detail(&all[0]).contains("free memory unknown"), "{}", detail(&all[0]));
    // Larger than the device: a size bug.
    r["failures"] = json!([failure("aclrtMalloc", 16 * GIB, 207001, 0, 0, Some(8 * GIB), Some(8 * GIB))]);
    let all = findings_of(&[r]);
    assert!(detail(&all[0]).contains("larger than the whole device"), "{}", detail(&all[0]));
}

#[test]
fn recording_completeness_rules() {
    let mut partial = recording(60, "node1", 0);
    partial["final"] = json!(false);
    partial["written_unix_ms"] = json!(1_700_000_012_500u64);
    let all = findings_of(&[partial]);
    assert_eq!(ids(&all), vec!["partial-recording"]);
    assert!(detail(&all[0]).contains("12.5 s after start"), "{}", detail(&all[0]));

    let mut dropped = recording(61, "node1", 0);
    dropped["failures_dropped"] = json!(300);
    let all = findings_of(&[dropped]);
    assert_eq!(ids(&all), vec!["failures-dropped"]);
    assert!(detail(&all[0]).contains("300 failures"), "{}", detail(&all[0]));

    let mut problems = recording(62, "node1", 0);
    problems["errors"]["table_full"] = json!(5);
    problems["totals"]["untracked_frees"] = json!(7);
    let all = findings_of(&[problems]);
    assert_eq!(ids(&all), vec!["incomplete-counts"]);
    let text = detail(&all[0]);
    assert!(text.contains("5 allocations the pointer table had no room for"), "{text}");
    assert!(text.contains("7 frees of pointers"), "{text}");
}

#[test]
fn memory_outside_torch_is_attributed_per_library() {
    let mut r = recording(70, "node1", 0);
    allocate(&mut r, 100, 9 * GIB, 0, GIB, "x");
    r["callers"] = json!([
        {"library": "/opt/torch_npu/lib/libtorch_npu.so", "calls": 80, "failures": 0, "bytes": 8 * GIB},
        {"library": "/usr/local/Ascend/lib64/libhccl.so", "calls": 20, "failures": 0, "bytes": GIB},
    ]);
    let all = findings_of(std::slice::from_ref(&r));
    let f = finding(&all, "non-torch-memory").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(f["processes"], 0, "a finding about the whole job");
    assert!(detail(f).contains(&format!("libhccl.so {} (11%)", bytes(GIB))), "{}", detail(f));
    assert!(!detail(f).contains("libtorch_npu"), "{}", detail(f));
    // 100 MiB of 8 GiB: below 5%.
    r["callers"][1]["bytes"] = json!(100 * MIB);
    assert!(finding(&findings_of(&[r]), "non-torch-memory").is_none());
}

#[test]
fn one_rank_far_above_the_others() {
    let ranks = |top: u64| -> Vec<Value> {
        (0..8)
            .map(|i| {
                let mut r = recording(100 + i, "node1", i as i32);
                let peak = if i == 5 { top } else { 20 * GIB };
                allocate(&mut r, 10, peak, 0, peak, "/opt/torch_npu/lib/libtorch_npu.so");
                r
            })
            .collect()
    };
    let all = findings_of(&ranks(30 * GIB));
    let f = finding(&all, "rank-imbalance").unwrap_or_else(|| panic!("{all:?}"));
    let text = detail(f);
    assert!(
        text.contains(
            "node1 pid 105 (device 5) peaked at 30.0 GiB, 10.0 GiB (50%) above the median of 8 processes (20.0 GiB)"
        ),
        "{text}"
    );
    // 22 GiB: +10%, below the 25% threshold.
    assert!(finding(&findings_of(&ranks(22 * GIB)), "rank-imbalance").is_none());
}

#[test]
fn the_same_rule_in_many_processes_is_one_finding_with_the_worst_instance() {
    let mut all = Vec::new();
    for (i, top) in [(0u32, 2u64), (1, 5), (2, 3)] {
        let mut r = fragmenting(200 + i);
        r["timeline"] = ramp(GIB, top * GIB, 40);
        all.push(r);
    }
    let found = findings_of(&all);
    let f = finding(&found, "fragmentation-growth").unwrap();
    assert_eq!(f["processes"], 3);
    assert_eq!(f["examples"].as_array().unwrap().len(), 3);
    let (_, second) = halves(&all[1]["timeline"]);
    assert!(detail(f).contains(&bytes(second)), "the worst (5 GiB) instance is kept: {}", detail(f));
}

/// Phase marks in the terminal: what was held at each, the change since the
/// mark before, and the largest holder; the non-torch line from readings.
#[test]
fn marks_and_non_torch_memory_are_shown_in_the_operators_terms() {
    const GIB: u64 = 1 << 30;
    let mut r = recording(7, "node", 0);
    let held =
        |bytes: u64| json!([{"library": "/opt/torch_npu/lib/libtorch_npu.so", "pool": "device", "bytes": bytes}]);
    r["marks"] = json!([
        {"name": "sleep", "t_ms": 1000, "device_live_bytes": 2 * GIB, "host_live_bytes": 0, "held": held(2 * GIB)},
        {"name": "wake", "t_ms": 2000, "device_live_bytes": 3 * GIB, "host_live_bytes": 0, "held": held(3 * GIB)},
    ]);
    r["timeline"]["samples"] = json!([
        {"t_ms": 100, "live_bytes": GIB, "max_live_bytes": GIB, "device_used_bytes": 2 * GIB, "framework_bytes": GIB},
        {"t_ms": 900, "live_bytes": GIB, "max_live_bytes": GIB, "device_used_bytes": 5 * GIB, "framework_bytes": GIB},
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "r.json", &r);
    let out = run(cli().arg("report").arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = text.lines().map(words).collect();
    assert!(lines.iter().any(|l| l == "sleep 1.0 s 2.0 GiB - - libtorch_npu.so 2.0 GiB"), "{text}");
    assert!(lines.iter().any(|l| l == "wake 2.0 s 3.0 GiB +1.0 GiB - libtorch_npu.so 3.0 GiB"), "{text}");
    // Non-torch memory went from 1 GiB to 4 GiB: the seed's symptom.
    assert!(text.contains("highest 4.0 GiB, largest rise 3.0 GiB"), "{text}");
}
