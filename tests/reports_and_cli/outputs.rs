//! `report` outputs on a hand-written multi-rank job: the merged numbers
//! (`--json` and the terminal), the trace-event file, and the HTML page
//! (structure, escaping, and a real rendering in headless Chromium).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::reports::*;

const HOSTILE: &str = "<script>alert(1)</script>";
const TORCH: &str = "/opt/torch_npu/lib/libtorch_npu.so";
const HCCL: &str = "/usr/local/Ascend/lib64/libhccl.so";

/// 8 ranks on 2 hosts (devices 0-3 each); rank i allocates (i + 1) GiB in
/// (i + 1) * 10 calls, peaks at (i + 1) GiB, keeps i MiB live; ranks 3 and 6
/// fail once; rank 0's command line and configuration are hostile.
fn job(dir: &Path) -> Vec<Value> {
    let mut all = Vec::new();
    for i in 0..8u64 {
        let host = if i < 4 { "node-a" } else { "node-b" };
        let mut r = recording(1000 + i as u32, host, (i % 4) as i32);
        let (calls, bytes_, peak, live) = ((i + 1) * 10, (i + 1) * GIB, (i + 1) * GIB, i * MIB);
        allocate(&mut r, calls, bytes_, live, peak, TORCH);
        r["callers"] = json!([
            {"library": TORCH, "calls": calls - 2, "failures": 0, "bytes": bytes_ - 2 * MIB},
            {"library": HCCL, "calls": 2, "failures": 0, "bytes": 2 * MIB},
        ]);
        r["histogram"] = json!([
            {"lo": 512, "hi": 640, "count": calls - 2, "bytes": 512 * (calls - 2)},
            {"lo": 2 * MIB, "hi": 2 * MIB + MIB / 2, "count": 2, "bytes": bytes_ - 512 * (calls - 2)},
        ]);
        r["started_unix_ms"] = json!(1_700_000_000_000u64 + i * 1000);
        r["written_unix_ms"] = json!(1_700_000_030_000u64 + i * 1000);
        r["timeline"] = ramp(0, peak, 20);
        if i == 3 || i == 6 {
            r["failures"] =
                json!([failure("aclrtMalloc", 4 * GIB, 207001, (i % 4) as i32, peak, Some(GIB), Some(32 * GIB))]);
            r["totals"]["failed_calls"] = json!(1);
            r["callers"][0]["failures"] = json!(1);
        }
        if i == 0 {
            r["argv"] = json!(["python3", HOSTILE, "\u{1b}[31mred\u{1b}[0m"]);
            r["config"]["before"] = json!(HOSTILE);
            r["config"]["after"] = json!(HOSTILE);
            r["config"]["rule"] = json!("invalid");
            r["config"]["applied"] = json!(false);
        }
        write(dir, &format!("npu-alloc-shim.{}.json", 1000 + i), &r);
        all.push(r);
    }
    all
}

fn sum(all: &[Value], pointer: &str) -> u64 {
    all.iter().map(|r| n(r, pointer)).sum()
}

#[test]
fn eight_ranks_merge_into_exact_sums_per_device_and_library() {
    let dir = tempfile::tempdir().unwrap();
    let all = job(dir.path());
    let m = report_json(&[dir.path()]);
    assert_eq!(m["schema"], "npu-alloc-shim-report/1");
    assert_eq!(m["recordings"], 8);
    assert_eq!(m["hosts_count"], 2);
    for key in
        ["alloc_calls", "alloc_bytes", "free_calls", "freed_bytes", "live_bytes", "peak_live_bytes", "failed_calls"]
    {
        assert_eq!(n(&m, &format!("/totals/{key}")), sum(&all, &format!("/totals/{key}")), "totals.{key}");
    }
    assert_eq!(m["highest_peak"], 8 * GIB);
    assert_eq!(m["highest_peak_process"], "node-b pid 1007 (device 3)");
    assert_eq!(m["failures_total"], 2);
    assert_eq!(m["out_of_memory_failures"], 2);
    assert_eq!(m["failures"].as_array().unwrap().len(), 2);
    // The failure's time is its process's start plus its t_ms.
    assert_eq!(m["failures"][0]["at_unix_ms"], 1_700_000_003_000u64 + 30_000);
    // Devices: one per (host, device), each with its rank's exact peak.
    let devices = m["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 8);
    for (i, r) in all.iter().enumerate() {
        let host = r["hostname"].as_str().unwrap();
        let d = devices.iter().find(|d| d["hostname"] == host && d["device"] == (i % 4) as i64).expect("device");
        assert_eq!(d["peak_live_bytes"], (i as u64 + 1) * GIB);
        assert_eq!(d["processes"], 1);
        assert_eq!(d["peak_is_upper_bound"], false);
    }
    // Histogram: bucket-wise sums.
    let hist: BTreeMap<u64, (u64, u64)> =
        m["histogram"].as_array().unwrap().iter().map(|b| (n(b, "/lo"), (n(b, "/count"), n(b, "/bytes")))).collect();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[&512].0, sum(&all, "/histogram/0/count"));
    assert_eq!(hist[&(2 * MIB)].1, sum(&all, "/histogram/1/bytes"));
    // Callers merged by library; torch told apart.
    let callers = m["callers"].as_array().unwrap();
    assert_eq!(callers.len(), 2);
    assert_eq!(callers[0]["library"], TORCH);
    assert_eq!(callers[0]["torch"], true);
    assert_eq!(n(&callers[0], "/bytes"), sum(&all, "/callers/0/bytes"));
    assert_eq!(callers[1]["torch"], false);
    assert_eq!(n(&callers[1], "/bytes"), 16 * MIB);
    assert_eq!(n(&callers[0], "/failures"), 2);
    // Processes: all kept, ordered by host, device, pid; timelines kept.
    let processes = m["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 8);
    assert_eq!(m["processes_omitted"], 0);
    let order: Vec<u64> = processes.iter().map(|p| n(p, "/pid")).collect();
    assert_eq!(order, vec![1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
    assert_eq!(processes[5]["timeline"].as_array().unwrap().len(), 20);
    assert_eq!(processes[5]["device"], 1);
    // The hostile configuration is reported (escaped where shown).
    assert!(ids(m["findings"].as_array().unwrap()).contains(&"config-invalid".to_owned()));
}

#[test]
fn the_terminal_summary_shows_the_numbers_and_no_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let all = job(dir.path());
    let out = run(cli().arg("report").arg(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "no progress bar off a terminal: {}", stderr(&out));
    let text = stdout(&out);
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("{start:?} in {text}"))
            .to_owned()
    };
    let words = |l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>().join(" ");
    assert!(text.starts_with("npu-alloc-shim report: 8 recording(s) from 2 host(s), 8 device(s)"), "{text}");
    let calls = sum(&all, "/totals/alloc_calls");
    assert_eq!(
        words(line("allocations ")),
        format!("allocations {calls} calls, {}", bytes(sum(&all, "/totals/alloc_bytes")))
    );
    assert!(line("peak ").contains("8.0 GiB in node-b pid 1007 (device 3), the highest process"), "{text}");
    assert!(line("peaks added up").contains(&bytes(sum(&all, "/totals/peak_live_bytes"))), "{text}");
    // Histogram rows: range, count, bytes, a bar.
    let row = words(line("[512 B, 640 B)"));
    assert!(row.starts_with(&format!("[512 B, 640 B) {} ", sum(&all, "/histogram/0/count"))), "{row}");
    assert!(row.ends_with('█') || row.contains('█'), "{row}");
    // Devices and libraries.
    assert!(
        text.lines().any(|l| words(l.to_owned())
            == format!("node-b 3 1 {} {} 80 {}", bytes(8 * GIB), bytes(7 * MIB), bytes(8 * GIB))),
        "{text}"
    );
    assert!(words(line(HCCL)).starts_with(&format!("{HCCL} other 16 0 {}", bytes(16 * MIB))), "{text}");
    // Failures with the memory state.
    let section = &text[text.find("\nFailures (").expect("a failures section")..];
    let failure = words(section.lines().find(|l| l.trim_start().starts_with("node-a 1003")).expect("row").to_owned());
    assert_eq!(
        failure,
        format!("node-a 1003 30.0 s aclrtMalloc 4.0 GiB 207001 3 1.0 GiB of 32.0 GiB {} unknown -", bytes(4 * GIB))
    );
    assert!(
        text.contains("[out-of-memory] (2 of 8 processes: node-a pid 1003 (device 3), node-b pid 1006 (device 2))"),
        "{text}"
    );
    // The ANSI escape from argv is shown escaped, never sent to the terminal.
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\u{1b}[31mred"), "{text}");
}

#[test]
fn the_trace_event_file_opens_as_counters_and_instants() {
    let dir = tempfile::tempdir().unwrap();
    let all = job(dir.path());
    // The same pid on another host must get a track group of its own.
    let mut twin = all[4].clone();
    twin["hostname"] = json!("node-c");
    twin["pid"] = json!(1004);
    write(dir.path(), "twin.json", &twin);
    let trace_path = dir.path().join("trace.out");
    let out = run(cli().arg("report").arg("--quiet").arg(dir.path()).arg("--trace-event").arg(&trace_path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let trace: Value = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).expect("valid JSON");
    assert_eq!(trace["displayTimeUnit"], "ms");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut counters: BTreeMap<(u64, String), Vec<u64>> = BTreeMap::new();
    let mut instants = Vec::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        let pid = e["pid"].as_u64().expect("pid");
        let name = e["name"].as_str().expect("name").to_owned();
        match ph {
            "M" => {
                if name == "process_name" {
                    names.insert(pid, e["args"]["name"].as_str().unwrap().to_owned());
                }
            }
            "C" => {
                let ts = e["ts"].as_u64().expect("ts");
                assert!(e["args"]["bytes"].is_u64(), "{e}");
                counters.entry((pid, name)).or_default().push(ts);
            }
            "i" => {
                assert_eq!(e["s"], "p", "{e}");
                assert!(e["ts"].is_u64(), "{e}");
                instants.push(e.clone());
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert_eq!(names.len(), 9, "one process_name per recording: {names:?}");
    let node_c: Vec<_> = names.iter().filter(|(_, n)| n.starts_with("node-c pid 1004")).collect();
    let node_b: Vec<_> = names.iter().filter(|(_, n)| n.starts_with("node-b pid 1004")).collect();
    assert_eq!((node_c.len(), node_b.len()), (1, 1), "{names:?}");
    assert_ne!(node_c[0].0, node_b[0].0, "the twin pid gets its own trace pid");
    // Per process: a live counter named after its device, in time order.
    assert!(counters.contains_key(&(1007, "device 3 memory: live".to_owned())), "{:?}", counters.keys());
    for ((pid, name), ts) in &counters {
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{pid} {name}: {ts:?}");
        assert!(ts.len() >= 20, "{pid} {name}: every sample is a point");
    }
    // Rank 7 started 7 s after rank 0: its counter starts at 7 s (in µs).
    assert_eq!(counters[&(1007, "device 3 memory: live".to_owned())][0], 7_000_000);
    assert_eq!(instants.len(), 2);
    let failed = instants.iter().find(|e| e["pid"] == 1003).expect("rank 3's failure");
    assert_eq!(failed["ts"], (3_000 + 30_000) * 1000);
    assert_eq!(failed["name"], "allocation failed: aclrtMalloc 4.0 GiB");
    assert_eq!(failed["args"]["device_free"], GIB);
}

fn html_report(dir: &Path) -> (String, PathBuf) {
    let html = dir.join("report.html");
    let out = run(cli().arg("report").arg("--quiet").arg(dir).arg("--html").arg(&html));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (std::fs::read_to_string(&html).unwrap(), html)
}

#[test]
fn the_html_page_is_self_contained_and_escapes_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    let (page, _) = html_report(dir.path());
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);
    assert!(page.trim_end().ends_with("</html>"));
    assert_eq!(page.matches("<html").count(), 1);
    // Charts: timeline, two histograms, devices, libraries.
    assert!(page.matches("<svg").count() >= 5, "{} charts", page.matches("<svg").count());
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    for banned in ["http://", "https://", "<script", "<link", "<img", "<iframe", "url(", "@import", "src="] {
        assert!(!page.contains(banned), "{banned:?} in the page");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the hostile text is shown escaped");
    // Failures are marked on the timeline, with their details on hover.
    assert_eq!(page.matches("<g class=\"failure\">").count(), 2);
    assert!(page.contains("aclrtMalloc of 4.0 GiB failed (code 207001) on device 3"), "failure tooltip");
    for text in [
        "Live device memory per process",
        "Allocations per size range",
        "Peak live memory per device",
        "Memory by calling library",
        "node-b pid 1007 (device 3)",
    ] {
        assert!(page.contains(text), "{text:?}");
    }
}

#[test]
fn the_html_page_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    let (_, html) = html_report(dir.path());
    let png = dir.path().join("report.png");
    if screenshot(&html, &png).is_none() {
        return;
    }
    // The palette's first colour (#4e79a7): bars and lines were drawn.
    let (width, height, colours, ink, blue) = png_stats(&png, [0x4e, 0x79, 0xa7]);
    assert_eq!((width, height), (1200, 2000));
    assert!(colours >= 50, "{colours} distinct colours: blank or flat page");
    assert!(ink > 0.05, "{:.1}% of the pixels are not white", ink * 100.0);
    assert!(blue > 2000, "{blue} chart-blue pixels");
}

#[test]
fn a_progress_bar_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    job(dir.path());
    // Off a terminal (a pipe): nothing on stderr (checked with every run above too).
    let out = run(cli().arg("report").arg("--quiet").arg(dir.path()));
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(0), ""));
    // On a terminal: util-linux's `script` gives the CLI a pseudo-terminal.
    let Some(script) = ["/usr/bin/script", "/bin/script"].into_iter().find(|p| Path::new(p).exists()) else {
        eprintln!("skipped the terminal half: no `script` (util-linux)");
        return;
    };
    let command = format!("{} report --quiet {}", support::cli().display(), dir.path().display());
    // (indicatif draws nothing on a terminal without TERM: a dumb one.)
    let out = run(support::clean_command(script).env("TERM", "xterm").args(["-qec", &command, "/dev/null"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let screen = stdout(&out);
    assert!(screen.contains("reading 8 recordings"), "{screen:?}");
    assert!(screen.contains("\u{1b}[2K"), "the bar is cleared at the end: {screen:?}");
}
