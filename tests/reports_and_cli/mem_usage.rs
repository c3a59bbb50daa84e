//! torch_npu's own memory dumps (`device_<N>_memUsageInfo_<time>.csv`) read
//! beside the recordings and named on the command line: each tied to the
//! out-of-memory failure it followed. The real torch_npu 2.10 writing one on
//! the simulated runtime is tests/real_clients/torch_npu.rs.

use serde_json::Value;
use std::path::Path;
use support::reports::*;

const HEADER: &str = "moduleName,curMemSize(MB),memPeakSize(MB)\n";

/// Two processes on device 0 of one host, both out of memory 30 s after
/// 2023-11-14 22:13:20 UTC (the recordings' start).
fn job(dir: &Path) {
    for pid in [7, 8] {
        let mut r = recording(pid, "node1", 0);
        r["failures"] = serde_json::json!([failure("aclrtMalloc", 2 * GIB, 207001, 0, GIB, Some(0), Some(4 * GIB))]);
        r["failures"][0]["outcome"] = "fatal".into();
        write(dir, &format!("r{pid}.json"), &r);
    }
    // One second after the failures: pid 8's snapshot names its process.
    std::fs::write(
        dir.join("device_0_memUsageInfo_20231114221351.csv"),
        format!("{HEADER}APP,2048.5000,3072.0000\nRUNTIME,192.0000,200.0000\n"),
    )
    .unwrap();
    std::fs::write(dir.join("oom_snapshot_8_20231114221351.pickle"), b"not read").unwrap();
    // On a device without a failure.
    std::fs::write(dir.join("device_1_memUsageInfo_20231114221351.csv"), format!("{HEADER}APP,1.0000,1.0000\n"))
        .unwrap();
}

fn report(args: &[&Path], extra: &[&str]) -> std::process::Output {
    // The names hold torch_npu's local time: read them in the zone they were written in.
    run(cli().arg("report").args(args).args(extra).env("TZ", "UTC"))
}

#[test]
fn a_dump_beside_the_recordings_is_shown_with_the_failure_it_followed() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    let json_path = dir.path().join("merged.out");
    let out = report(&[dir.path()], &["--json", json_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert!(text.contains("torch_npu memory dumps (the runtime's memory per CANN module"), "{text}");
    let dump0 = text.lines().find(|l| l.contains("device_0_memUsageInfo_20231114221351.csv")).expect("dump line");
    assert!(
        dump0.ends_with("device 0 at 2023-11-14 22:13:51, 2.2 GiB in 2 modules; after node1 pid 8: aclrtMalloc of 2.0 GiB failed at 30.0 s"),
        "{dump0}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("APP") || l.trim_start().starts_with("RUNTIME"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["APP", "2.0", "GiB", "3.0", "GiB"]);
    assert_eq!(rows[1], ["RUNTIME", "192.0", "MiB", "200.0", "MiB"]);
    let dump1 = text.lines().find(|l| l.contains("device_1_memUsageInfo")).expect("device 1 dump");
    assert!(dump1.ends_with("no recorded out-of-memory failure before it"), "{dump1}");

    // The same in --json, to the byte: MB with 4 decimals, as torch_npu writes them.
    let merged: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let dumps = merged["mem_usage_dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 2);
    let first = &dumps[0];
    assert_eq!((n(first, "/device"), n(first, "/pid"), n(first, "/follows/pid")), (0, 8, 8));
    assert_eq!(n(first, "/written_unix_ms"), 1_700_000_031_000);
    assert_eq!(n(first, "/modules/0/current_bytes"), 2048 * MIB + MIB / 2);
    assert_eq!(n(first, "/modules/1/peak_bytes"), 200 * MIB);
    assert!(dumps[1]["follows"].is_null());
}

#[test]
fn without_the_snapshot_the_latest_failure_on_the_device_is_taken_and_a_named_dump_is_read() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    std::fs::remove_file(dir.path().join("oom_snapshot_8_20231114221351.pickle")).unwrap();
    let dump = dir.path().join("device_0_memUsageInfo_20231114221351.csv");
    // Named on the command line with one recording: it follows that one.
    let out = report(&[&dir.path().join("r7.json"), &dump], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("; after node1 pid 7: aclrtMalloc of 2.0 GiB failed at 30.0 s"), "{}", stdout(&out));
    // A dump written 11 minutes later belongs to no failure.
    let late = dir.path().join("device_0_memUsageInfo_20231114222451.csv");
    std::fs::copy(&dump, &late).unwrap();
    let out = report(&[&dir.path().join("r7.json"), &late], &[]);
    assert!(stdout(&out).contains("no recorded out-of-memory failure before it"), "{}", stdout(&out));
}

#[test]
fn a_broken_dump_is_skipped_with_a_warning_and_the_report_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    std::fs::write(dir.path().join("device_2_memUsageInfo_20231114221351.csv"), "garbage\x1b[31m\n").unwrap();
    std::fs::write(dir.path().join("device_3_memUsageInfo_20231114221351.csv"), format!("{HEADER}APP,1.0\n")).unwrap();
    let html = dir.path().join("r.html");
    let out = report(&[dir.path()], &["--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(warnings.contains("device_2_memUsageInfo_20231114221351.csv: not a torch_npu memory dump"), "{warnings}");
    assert!(
        warnings.contains("device_3_memUsageInfo_20231114221351.csv: line 2: expected name,current MB,peak MB"),
        "{warnings}"
    );
    assert!(!warnings.contains('\x1b'), "terminal escapes are not passed through: {warnings:?}");
    // The good dumps are still shown, on the page too.
    assert!(stdout(&out).contains("device_0_memUsageInfo_20231114221351.csv: device 0"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>torch_npu memory dumps</h2>"));
    assert!(
        page.contains("<td>RUNTIME</td><td class=\"n\">192.0 MiB</td><td class=\"n\">200.0 MiB</td>"),
        "RUNTIME row"
    );
}
