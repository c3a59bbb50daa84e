//! Helpers for the `report` and `diff` tests: hand-written recordings (valid
//! `npu-alloc-shim/1` objects built field by field), running the CLI, and
//! the byte formatting the terminal output uses.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// A valid recording of one process on one device that allocated nothing.
pub fn recording(pid: u32, host: &str, device: i32) -> Value {
    json!({
        "schema": "npu-alloc-shim/1",
        "runtime": "npu",
        "library_version": "0.1.0",
        "pid": pid,
        "ppid": 1,
        "hostname": host,
        "argv": ["python3", "serve.py", "--rank", pid.to_string()],
        "started_unix_ms": 1_700_000_000_000u64,
        "written_unix_ms": 1_700_000_060_000u64,
        "final": true,
        "config": {"var": "PYTORCH_NPU_ALLOC_CONF", "before": null, "after": "expandable_segments:True",
                   "rule": "unset", "applied": true},
        "totals": counters(0, 0, 0),
        "totals_peak_is_upper_bound": false,
        "host": counters(0, 0, 0),
        "by_api": {},
        "histogram": [],
        "devices": [{"device": device, "live_bytes": 0, "peak_live_bytes": 0, "alloc_calls": 0, "alloc_bytes": 0}],
        "callers": [],
        "failures": [],
        "failures_dropped": 0,
        "timeline": {"interval_ms": 50, "samples": []},
        "errors": {"panics": 0, "unresolved_calls": 0, "table_full": 0, "null_results": 0, "write_errors": 0}
    })
}

/// Counters with `calls` allocations of `bytes` in all, `live` still live.
pub fn counters(calls: u64, bytes: u64, live: u64) -> Value {
    json!({"alloc_calls": calls, "failed_calls": 0, "free_calls": calls, "untracked_frees": 0,
           "alloc_bytes": bytes, "freed_bytes": bytes - live, "live_bytes": live, "peak_live_bytes": live})
}

/// Sets device totals consistently: totals, the one device, by_api.aclrtMalloc
/// and one caller.
pub fn allocate(r: &mut Value, calls: u64, bytes: u64, live: u64, peak: u64, library: &str) {
    r["totals"] = counters(calls, bytes, live);
    r["totals"]["peak_live_bytes"] = json!(peak);
    let device = r["devices"][0]["device"].clone();
    r["devices"] = json!([{"device": device, "live_bytes": live, "peak_live_bytes": peak,
                            "alloc_calls": calls, "alloc_bytes": bytes}]);
    r["by_api"]["aclrtMalloc"] = json!({"calls": calls, "failures": 0, "bytes": bytes});
    r["callers"] = json!([{"library": library, "calls": calls, "failures": 0, "bytes": bytes}]);
}

/// The histogram bucket `[lo, hi)` holding `size` (log2 split in 4).
pub fn bucket(size: u64) -> (u64, u64) {
    if size < 4 {
        return (size, size + 1);
    }
    let k = 63 - size.leading_zeros();
    let width = 1u64 << (k - 2);
    let lo = (1u64 << k) + (size - (1u64 << k)) / width * width;
    (lo, lo + width)
}

/// `n` distinct histogram buckets from 1 MiB up, `count` allocations each.
pub fn large_histogram(n: usize, count: u64) -> Value {
    let buckets: Vec<Value> = (0..n)
        .map(|i| {
            let k = 20 + (i / 4) as u32;
            let lo = (1u64 << k) + (i % 4) as u64 * (1u64 << (k - 2));
            json!({"lo": lo, "hi": lo + (1u64 << (k - 2)), "count": count, "bytes": lo * count})
        })
        .collect();
    Value::Array(buckets)
}

/// A timeline over 60 s: `n` samples rising linearly from `from` to `to`.
pub fn ramp(from: u64, to: u64, n: u64) -> Value {
    let samples: Vec<Value> = (0..n)
        .map(|i| {
            let live = from + (to - from) * i / (n - 1);
            json!({"t_ms": 1000 + i * 59_000 / (n - 1), "live_bytes": live, "max_live_bytes": live})
        })
        .collect();
    json!({"interval_ms": 1000, "samples": samples})
}

pub fn failure(
    api: &str,
    size: u64,
    code: i32,
    device: i32,
    live: u64,
    free: Option<u64>,
    total: Option<u64>,
) -> Value {
    json!({"api": api, "size": size, "code": code, "device": device, "live_bytes": live,
           "device_free": free, "device_total": total, "t_ms": 30_000})
}

/// Writes a recording (or any JSON value) to `dir/name`.
pub fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("serialize")).expect("write recording");
    path
}

/// The CLI with a clean environment.
pub fn cli() -> Command {
    crate::clean_command(crate::cli())
}

pub fn run(command: &mut Command) -> Output {
    crate::run_with_timeout(command, crate::LIMIT)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `report ARGS --json FILE`: the merged data; the run must succeed.
pub fn report_json(args: &[&Path]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("merged.json");
    let out = run(cli().arg("report").args(args).arg("--json").arg(&json_path).arg("--quiet"));
    assert_eq!(out.status.code(), Some(0), "report failed: {}", stderr(&out));
    assert!(stdout(&out).is_empty(), "--quiet printed: {}", stdout(&out));
    let text = std::fs::read_to_string(&json_path).expect("--json file");
    serde_json::from_str(&text).expect("--json is valid JSON")
}

/// The findings of a report on `paths`, by id.
pub fn findings(paths: &[&Path]) -> Vec<Value> {
    report_json(paths)["findings"].as_array().expect("findings").clone()
}

pub fn finding<'a>(findings: &'a [Value], id: &str) -> Option<&'a Value> {
    findings.iter().find(|f| f["id"] == id)
}

pub fn ids(findings: &[Value]) -> Vec<String> {
    findings.iter().map(|f| f["id"].as_str().unwrap_or("?").to_owned()).collect()
}

/// The CLI's own byte formatting, to find numbers in its output.
pub use cli::report::units::bytes;

pub fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} is not a number in {v}"))
}

/// Headless Chromium, when installed (Debian's `chromium` package).
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Renders `html` to `png` (1200x2000) in headless Chromium with the network
/// features off; None (with the reason printed) when Chromium is absent.
pub fn screenshot(html: &Path, png: &Path) -> Option<()> {
    let Some(browser) = chromium() else {
        eprintln!("skipped the rendering check: no chromium on PATH (Debian: apt-get install chromium)");
        return None;
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let out = crate::run_with_timeout(
        crate::clean_command(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1200,2000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display())),
        std::time::Duration::from_secs(180),
    );
    assert!(png.exists(), "chromium wrote no screenshot: {}\n{}", out.status, stderr(&out));
    Some(())
}

/// What a screenshot holds: (width, height, distinct colours, share of
/// pixels that are not white or near white, pixels of `colour`).
pub fn png_stats(path: &Path, colour: [u8; 3]) -> (u32, u32, usize, f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("open png")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buffer).expect("decode png");
    let channels = info.color_type.samples();
    assert!(channels >= 3 && info.bit_depth == png::BitDepth::Eight, "{:?} {:?}", info.color_type, info.bit_depth);
    let mut colours = std::collections::HashSet::new();
    let (mut ink, mut matching, mut total) = (0usize, 0usize, 0usize);
    for pixel in buffer[..info.buffer_size()].chunks(channels) {
        let rgb = [pixel[0], pixel[1], pixel[2]];
        colours.insert(rgb);
        total += 1;
        if rgb.iter().any(|&c| c < 235) {
            ink += 1;
        }
        if rgb.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= 8) {
            matching += 1;
        }
    }
    (info.width, info.height, colours.len(), ink as f64 / total.max(1) as f64, matching)
}
