//! `diff BEFORE AFTER` on a crafted job run twice: fixed segments that
//! fragment and fail, then expandable segments that stay flat.

use serde_json::{Value, json};
use std::path::Path;
use support::reports::*;

const TORCH: &str = "/opt/torch_npu/lib/libtorch_npu.so";

/// Four ranks. Before: a conflicting setting, 10 large sizes, growth from 1 GiB
/// to the peak and one OOM on rank 2. After: mapped segments, flat at 70%.
fn run_of(dir: &Path, after: bool) {
    for i in 0..4u64 {
        let mut r = recording(500 + i as u32, "node1", i as i32);
        let peak = if after { (i + 3) * GIB * 7 / 10 } else { (i + 3) * GIB };
        allocate(&mut r, 1000, 100 * GIB, GIB, peak, TORCH);
        if after {
            r["histogram"] = json!([{"lo": 2 * MIB, "hi": 2 * MIB + MIB / 2, "count": 1000, "bytes": 2000 * MIB}]);
            r["by_api"]["aclrtMallocPhysical"] = json!({"calls": 1000, "failures": 0, "bytes": 2000 * MIB});
            r["timeline"] = ramp(peak, peak, 30);
        } else {
            r["config"] = json!({"var": "PYTORCH_NPU_ALLOC_CONF", "before": "max_split_size_mb:128",
                                 "after": "max_split_size_mb:128", "rule": "conflict", "applied": false});
            r["histogram"] = large_histogram(10, 100);
            r["timeline"] = ramp(GIB, peak, 30);
            if i == 2 {
                r["failures"] = json!([failure("aclrtMalloc", GIB, 207001, 2, peak, Some(GIB / 2), Some(32 * GIB))]);
                r["totals"]["failed_calls"] = json!(1);
            }
        }
        write(dir, &format!("r{i}.json"), &r);
    }
}

fn runs() -> (tempfile::TempDir, tempfile::TempDir) {
    let (before, after) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_of(before.path(), false);
    run_of(after.path(), true);
    (before, after)
}

#[test]
fn the_terminal_states_the_change_in_peak_growth_and_failures() {
    let (before, after) = runs();
    let out = run(cli().arg("diff").arg(before.path()).arg(after.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // Highest peak: rank 3, 6 GiB -> 4.2 GiB.
    let (b, a) = (6 * GIB, 6 * GIB * 7 / 10);
    assert!(text.contains(&format!("peak live {} -> {} (-30%), the highest process", bytes(b), bytes(a))), "{text}");
    // Hand-written recordings carry no outcome: their failures count as not recovered.
    assert!(text.contains("failures 1 -> 0 (out of memory 1 -> 0; fatal 1 -> none)"), "{text}");
    assert!(text.contains("expandable segments in effect (mapped memory) in 0 of 4 -> 4 of 4 processes"), "{text}");
    assert!(text.contains("findings gone: config-conflict, fragmentation-growth, out-of-memory"), "{text}");
    assert!(text.contains(" -> 0 B (-100%), second-half peak over first-half"), "{text}");
    assert!(!text.contains("growth +") && !text.contains("growth -"), "growth is never signed: {text}");
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.lines().any(|l| words(l) == "distinct large sizes 10 1 -9 -90%"), "{text}");
    // Per device, both sides.
    assert!(text.lines().any(|l| words(l) == format!("node1 3 {} {} -1.8 GiB (-30%)", bytes(b), bytes(a))), "{text}");
    // Sizes on one scale: the after side's one bucket has the longest bar.
    let row = text.lines().find(|l| l.trim_start().starts_with("[2.0 MiB, 2.5 MiB)")).expect("2 MiB row");
    assert!(words(row).starts_with("[2.0 MiB, 2.5 MiB) 400 "), "{row}");
    assert!(words(row).ends_with(&format!("4000 {}", "█".repeat(24))), "{row}");
}

#[test]
fn json_and_html_carry_both_sides() {
    let (before, after) = runs();
    let html = before.path().join("d.html");
    let json_path = before.path().join("d.out");
    let out = run(cli()
        .arg("diff")
        .arg("--quiet")
        .arg(before.path())
        .arg(after.path())
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json_path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let diff: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(diff["before"]["recordings"], 4);
    assert_eq!(diff["after"]["processes_mapping"], 4);
    let change = |id: &str| diff["changes"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(change("failures")["before"], 1);
    assert_eq!(change("failures")["after"], 0);
    assert_eq!(
        change("highest_peak")["statement"],
        format!("peak live {} -> {} (-30%)", bytes(6 * GIB), bytes(6 * GIB * 7 / 10))
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // Timeline, holders, two histograms, devices, libraries: each a
    // before/after pair (no non-torch pair: these recordings read no device).
    assert_eq!(page.matches("<div class=\"pair\">").count(), 8, "6 chart pairs + findings + failures");
    assert!(!page.contains("Non-torch memory"));
    assert!(page.matches("<svg").count() >= 10);
    for banned in ["http://", "https://", "<script"] {
        assert!(!page.contains(banned), "{banned}");
    }
    let png = before.path().join("d.png");
    if screenshot(&html, &png).is_some() {
        let (_, _, colours, ink, blue) = png_stats(&png, [0x4e, 0x79, 0xa7]);
        assert!(colours >= 50 && ink > 0.05 && blue > 1000, "{colours} colours, {ink:.3} ink, {blue} blue");
    }
}
