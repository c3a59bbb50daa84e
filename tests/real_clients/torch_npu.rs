//! The real torch_npu caching allocator, on the simulated Ascend runtime of
//! crates/cli/assets/sim_runtime/, for both lines: torch-npu 2.10.0.post4 (binds the
//! runtime through `dlsym(RTLD_DEFAULT)` when LD_PRELOAD is set) and 2.5.1
//! (binds only through `dlsym` on its libascendcl handle).
//!
//! The wheels live in cached virtual environments made by
//! scripts/torch-npu-venv.sh. Without one these tests print why and pass,
//! unless NPU_ALLOC_SHIM_REAL_TORCH_NPU=1 (CI), where they create it if needed
//! and fail loudly when anything is broken.
//!
//! The workload is examples/multimodal_workload.py on a 3 GiB device: it runs
//! out of memory under torch_npu's default configuration and completes with
//! expandable segments (docs/real-torch-npu.md).

use super::lines::{LIMIT, Line, NAMES, line, matrix_line, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The simulated device: see docs/real-torch-npu.md for why 3 GiB.
const DEVICE_BYTES: u64 = 3 << 30;
/// What the simulated runtime keeps for itself beside DEVICE_BYTES (as CANN
/// keeps workspaces): the "non-torch memory" of these runs, exactly.
const RUNTIME_BYTES: u64 = 192 << 20;
/// Exit status of the workload when torch_npu ran out of device memory.
const EXIT_OOM: i32 = 3;

/// A fresh scratch directory for one test of one line.
fn scratch(line: &Line, test: &str) -> PathBuf {
    let dir = support::fixture_dir().join(format!("real-{}-{test}", line.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A process of the line's Python on the simulated device, with or without
/// the library, its runtime counters written to `dir/<tag>.stats.json`.
fn python(line: &Line, preload: bool, dir: &Path, tag: &str) -> Command {
    let mut command = if preload { support::preloaded(&line.python) } else { support::clean_command(&line.python) };
    command
        // torch_npu drops a device_*_memUsageInfo_*.csv into its working
        // directory on out-of-memory: keep it out of the repository.
        .current_dir(dir)
        .env("LD_LIBRARY_PATH", &line.sim)
        .env("SIM_ACL_DEVICE_BYTES", (DEVICE_BYTES + RUNTIME_BYTES).to_string())
        .env("SIM_ACL_RUNTIME_BYTES", RUNTIME_BYTES.to_string())
        .env("SIM_ACL_STATS", dir.join(format!("{tag}.stats.json")));
    command
}

/// What one workload run left behind.
struct Run {
    status: Option<i32>,
    stderr: String,
    /// The workload's final JSON line.
    result: Value,
    /// The simulated runtime's own counters.
    stats: Value,
}

fn run_workload(mut command: Command, dir: &Path, tag: &str, args: &[&str]) -> Run {
    command.arg(support::repo().join("examples/multimodal_workload.py")).args(args);
    let out = support::run_with_timeout(&mut command, LIMIT);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let status = out.status.code();
    assert!(status == Some(0) || status == Some(EXIT_OOM), "workload failed ({status:?}):\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let result = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    Run { status, stderr, result, stats: read_json(&dir.join(format!("{tag}.stats.json"))) }
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one recording a traced process wrote into `dir`.
fn recording(dir: &Path) -> Value {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("trace dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "one recording expected in {}: {files:?}", dir.display());
    read_json(&files[0])
}

fn api_calls(stats: &Value, api: &str) -> u64 {
    stats["by_api"][api]["calls"].as_u64().unwrap_or(0)
}

/// The recording against the runtime's own counters: every counter equal.
fn assert_recording_matches(recording: &Value, stats: &Value) {
    assert_eq!(recording["final"], true, "recording written at exit");
    for section in ["totals", "host"] {
        for key in
            ["alloc_calls", "failed_calls", "free_calls", "alloc_bytes", "freed_bytes", "live_bytes", "peak_live_bytes"]
        {
            assert_eq!(recording[section][key], stats[section][key], "{section}.{key}: recording vs runtime");
        }
    }
    assert_eq!(recording["totals"]["untracked_frees"], 0);
    // Every API the runtime saw called was recorded with the same calls,
    // failures and bytes, and the recording has no API the runtime never saw.
    let sim_apis = stats["by_api"].as_object().expect("by_api");
    // The library itself asks aclrtGetMemInfo once per failed allocation (the
    // free/total of each `failures` entry): the runtime sees those calls too.
    // So does each device reading of the timeline (`device_readings`).
    let own_queries = recording["failures"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| !f["device_total"].is_null()).count()) as u64
        + recording["device_readings"].as_u64().expect("device_readings");
    for (api, counts) in sim_apis {
        let recorded = &recording["by_api"][api];
        if api == "aclrtGetMemInfo" {
            let recorded_calls = recorded["calls"].as_u64().unwrap_or(0);
            assert_eq!(Some(recorded_calls + own_queries), counts["calls"].as_u64(), "{api}");
        } else if counts["calls"] == 0 {
            assert!(recorded.is_null() || recorded["calls"] == 0, "{api}: {recorded}");
        } else {
            assert_eq!(recorded, counts, "by_api.{api}: recording vs runtime");
        }
    }
    for api in recording["by_api"].as_object().expect("by_api").keys() {
        assert!(sim_apis.contains_key(api), "recorded {api} unknown to the runtime");
    }
    let sim_device = &stats["devices"][0]["counters"];
    let recorded_device = &recording["devices"][0];
    for key in ["live_bytes", "peak_live_bytes", "alloc_calls", "alloc_bytes"] {
        assert_eq!(recorded_device[key], sim_device[key], "devices[0].{key}");
    }
    let failed = stats["totals"]["failed_calls"].as_u64().unwrap_or(0);
    let listed = recording["failures"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(listed, failed.min(256), "failures listed");
    assert_eq!(recording["errors"]["unresolved_calls"], 0);
    assert_eq!(recording["errors"]["panics"], 0);
}

fn gib(bytes: &Value) -> String {
    format!("{:.3} GiB", bytes.as_f64().unwrap_or(0.0) / (1u64 << 30) as f64)
}

// ---- the tests, each run on both lines ---------------------------------

/// (e) Users' situation today: no library, default configuration: the real
/// allocator fragments and fails with its own message.
fn default_config_runs_out_of_memory(line: &Line) {
    let dir = scratch(line, "default-oom");
    let run = run_workload(python(line, false, &dir, "plain"), &dir, "plain", &[]);
    assert_eq!(run.status, Some(EXIT_OOM), "{}", run.stderr);
    assert_eq!(run.result["outcome"], "oom");
    for words in [
        "NPU out of memory. Tried to allocate",
        "If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation",
    ] {
        assert!(run.stderr.contains(words), "{words:?} missing from:\n{}", run.stderr);
    }
    assert!(run.stats["totals"]["failed_calls"].as_u64() > Some(0));
    assert_eq!(api_calls(&run.stats, "aclrtReserveMemAddress"), 0, "classic path");
    println!(
        "torch_npu {}: default config: OOM after {} requests, peak reserved {}",
        line.name,
        run.result["completed_requests"],
        gib(&run.result["max_memory_reserved"])
    );
}

/// (a) Library preloaded, variable unset: torch_npu takes the expandable path
/// and the same workload completes. (b) on that path: the recording equals
/// the runtime's counters.
fn expandable_path_completes(line: &Line) {
    let dir = scratch(line, "expandable");
    let trace = dir.join("trace");
    std::fs::create_dir(&trace).expect("trace dir");
    let mut command = python(line, true, &dir, "shim");
    command.env("NPU_ALLOC_SHIM_TRACE", format!("{}/", trace.display()));
    let run = run_workload(command, &dir, "shim", &[]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert_eq!(run.result["outcome"], "completed");
    assert_eq!(run.result["alloc_conf"], "expandable_segments:True");
    // Said once, by the process that uses the runtime (issue 13).
    let said: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("npu-alloc-shim:")).collect();
    assert_eq!(
        said,
        [
            "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
        ],
        "{}",
        run.stderr
    );
    assert!(api_calls(&run.stats, "aclrtReserveMemAddress") > 0, "{}", run.stats);
    assert!(api_calls(&run.stats, "aclrtMallocPhysical") > 0, "{}", run.stats);
    assert_eq!(api_calls(&run.stats, "aclrtMallocAlign32"), 0, "no classic segments");
    let recording = recording(&trace);
    assert_eq!(recording["config"]["rule"], "unset");
    assert_eq!(recording["config"]["after"], "expandable_segments:True");
    assert_recording_matches(&recording, &run.stats);
    println!(
        "torch_npu {}: with the library: completed, peak reserved {}, {} physical allocations",
        line.name,
        gib(&run.result["max_memory_reserved"]),
        api_calls(&run.stats, "aclrtMallocPhysical")
    );
}

/// (b) On the classic path, through the failures: the library records
/// (normalization off) while torch_npu runs out of memory, retries and frees.
fn recording_matches_runtime_through_oom(line: &Line) {
    let dir = scratch(line, "recording-oom");
    let trace = dir.join("trace");
    std::fs::create_dir(&trace).expect("trace dir");
    let mut command = python(line, true, &dir, "shim");
    command.env("NPU_ALLOC_SHIM_NORMALIZE", "0").env("NPU_ALLOC_SHIM_TRACE", format!("{}/", trace.display()));
    let run = run_workload(command, &dir, "shim", &[]);
    assert_eq!(run.status, Some(EXIT_OOM), "{}", run.stderr);
    assert!(run.stats["totals"]["failed_calls"].as_u64() > Some(0));
    assert!(api_calls(&run.stats, "aclrtMallocAlign32") > 0);
    assert_recording_matches(&recording(&trace), &run.stats);
}

/// Issue 6 on the real allocator: the two recordings of the same workload,
/// without the library's change (normalization off, recording on) and with
/// it, show the out-of-memory and its absence in `report` and `diff`.
fn report_and_diff_show_the_oom_and_its_absence(line: &Line) {
    let dir = scratch(line, "report");
    let traced = |tag: &str, normalize: bool| {
        let mut command = python(line, true, &dir, tag);
        command.env("NPU_ALLOC_SHIM_TRACE", dir.join(format!("{tag}.json")));
        if !normalize {
            command.env("NPU_ALLOC_SHIM_NORMALIZE", "0");
            // torch_npu's own dump on out of memory: a snapshot pickle and,
            // from 2.10 on, device_0_memUsageInfo_<time>.csv (the runtime's
            // memory per module), both beside the recordings.
            command.env("OOM_SNAPSHOT_ENABLE", "1").env("OOM_SNAPSHOT_PATH", &dir);
        }
        run_workload(command, &dir, tag, &[])
    };
    assert_eq!(traced("before", false).status, Some(EXIT_OOM));
    assert_eq!(traced("after", true).status, Some(0));
    let cli = |args: &[&std::ffi::OsStr]| {
        let output = support::run_with_timeout(support::clean_command(support::cli()).args(args), LIMIT);
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
        text(&output.stdout)
    };
    let (before, after) = (dir.join("before.json"), dir.join("after.json"));
    let html = dir.join("report.html");
    for (file, fatal) in [(&before, true), (&after, false)] {
        let recording = read_json(file);
        let outcomes: Vec<&str> =
            recording["failures"].as_array().unwrap().iter().map(|f| f["outcome"].as_str().unwrap()).collect();
        // Before: the last failures end the run; after: each one was retried.
        assert_eq!(outcomes.last() == Some(&"fatal"), fatal, "{outcomes:?}");
        assert!(outcomes.iter().all(|&o| o == "fatal" || o == "recovered"), "{outcomes:?}");
        // The non-torch curve: the device's used memory minus torch's share
        // is the runtime's own memory, exactly, at every reading.
        let samples = recording["timeline"]["samples"].as_array().unwrap();
        let read: Vec<&Value> = samples.iter().filter(|s| s.get("device_used_bytes").is_some()).collect();
        assert!(!read.is_empty(), "no device reading in {}", file.display());
        for sample in read {
            let used = sample["device_used_bytes"].as_u64().unwrap();
            assert_eq!(used - sample["framework_bytes"].as_u64().unwrap(), RUNTIME_BYTES, "{sample}");
        }
        // torch_npu's library held all of the peak.
        let callers = recording["callers"].as_array().unwrap();
        let torch: Vec<&Value> =
            callers.iter().filter(|c| c["library"].as_str().unwrap().ends_with("/libtorch_npu.so")).collect();
        assert_eq!(torch.len(), 1, "{callers:?}");
        assert_eq!(torch[0]["at_peak"]["device"], recording["totals"]["peak_live_bytes"]);
    }
    // torch_npu 2.10 and 2.14 wrote their dump (2.5.1 has no such file); `report`
    // reads it named beside the recording and ties it to the fatal failure.
    let dumps: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("device_0_memUsageInfo_") && name.ends_with(".csv"))
        .collect();
    if NAMES.contains(&line.name) {
        assert_eq!(dumps.len(), usize::from(line.name != "2.5"), "{dumps:?}");
    } else {
        // A line of the matrix: whether it writes one is what is found out.
        assert!(dumps.len() <= 1, "{dumps:?}");
        println!("torch_npu {}: memUsageInfo dump on out-of-memory: {}", line.name, !dumps.is_empty());
    }
    if let Some(name) = dumps.first() {
        let report_dir = cli(&["report".as_ref(), before.as_ref(), dir.join(name).as_ref()]);
        assert!(report_dir.contains(&format!("{}: device 0 at ", dir.join(name).display())), "{report_dir}");
        // What torch_npu wrote from the simulated runtime's answer: the
        // runtime's own memory exactly, and what torch held (up to the device).
        let runtime_row = report_dir.lines().find(|l| l.trim_start().starts_with("RUNTIME")).expect("RUNTIME row");
        assert_eq!(runtime_row.split_whitespace().collect::<Vec<_>>(), ["RUNTIME", "192.0", "MiB", "192.0", "MiB"]);
        assert!(report_dir.lines().any(|l| l.trim_start().starts_with("APP ")), "{report_dir}");
        let before_pid = read_json(&before)["pid"].as_u64().unwrap();
        assert!(
            report_dir.contains(&format!(" pid {before_pid}: ")),
            "the dump follows the before-run's failure: {report_dir}"
        );
    }
    let report_before = cli(&["report".as_ref(), before.as_ref(), "--html".as_ref(), html.as_ref()]);
    assert!(report_before.contains("[out-of-memory]"), "{report_before}");
    // The advice names the fix: the variable was left at its default.
    assert!(report_before.contains("set PYTORCH_NPU_ALLOC_CONF=expandable_segments:True"), "{report_before}");
    assert!(
        report_before.contains("highest 192.0 MiB, largest rise 0 B (device used minus torch-held"),
        "{report_before}"
    );
    assert!(std::fs::read_to_string(&html).expect("html").contains("<svg"));
    // With expandable segments torch_npu still meets a failed physical
    // allocation or two, frees cached granules and retries: it completes.
    let report_after = cli(&["report".as_ref(), after.as_ref()]);
    assert!(report_after.contains("1 of 1 processes (expandable segments in effect)"), "{report_after}");
    assert!(!report_after.contains("error "), "no error finding after: {report_after}");
    let diff_html = dir.join("diff.html");
    let diff = cli(&["diff".as_ref(), before.as_ref(), after.as_ref(), "--html".as_ref(), diff_html.as_ref()]);
    // The non-torch curve of both runs, side by side: flat at the runtime's own memory.
    let page = std::fs::read_to_string(&diff_html).expect("diff html");
    assert!(page.contains("Non-torch memory (same scales)"), "no non-torch charts in the diff page");
    let flat = "non-torch memory 192.0 MiB at the first reading, 192.0 MiB at the last, highest 192.0 MiB";
    assert_eq!(page.matches(flat).count(), 2 * 2, "{flat:?}: a line title and a legend entry per side");
    assert!(page.matches("libtorch_npu.so: highest held ").count() >= 2, "torch_npu's holders on both sides");
    assert!(diff.contains("expandable segments in effect (mapped memory) in 0 of 1 -> 1 of 1"), "{diff}");
    assert!(diff.contains("-> none)"), "out of memory, none fatal: {diff}");
    assert!(diff.contains("non-torch memory (device used minus torch-held): highest 192.0 MiB -> 192.0 MiB"), "{diff}");
}

/// (c) A configuration the library must not touch, and a sleep-mode command
/// line: with the library the allocator does exactly what it does without.
fn assert_same_with_and_without(line: &Line, test: &str, conf: Option<&str>, args: &[&str]) {
    let dir = scratch(line, test);
    let runs: Vec<Run> = [false, true]
        .into_iter()
        .map(|preload| {
            let tag = if preload { "shim" } else { "plain" };
            let mut command = python(line, preload, &dir, tag);
            if let Some(conf) = conf {
                command.env("PYTORCH_NPU_ALLOC_CONF", conf);
            }
            run_workload(command, &dir, tag, args)
        })
        .collect();
    let (plain, shim) = (&runs[0], &runs[1]);
    assert_eq!(shim.result["alloc_conf"].as_str(), conf, "the library changed the value");
    assert_eq!(shim.status, plain.status);
    assert_eq!(shim.result, plain.result, "workload outcome and peaks");
    assert_eq!(shim.stats, plain.stats, "every runtime counter");
    println!(
        "torch_npu {}: {test}: {} both ways, peak reserved {}",
        line.name,
        plain.result["outcome"],
        gib(&plain.result["max_memory_reserved"])
    );
}

fn conflicting_config_left_alone(line: &Line) {
    assert_same_with_and_without(line, "conflict", Some("max_split_size_mb:256"), &[]);
}

fn sleep_mode_left_alone(line: &Line) {
    assert_same_with_and_without(line, "sleep-mode", None, &["--enable-sleep-mode"]);
}

/// (d) Every kind of value the library refuses to touch, with what the real
/// parser of this line says of it (recorded here, and written to
/// target/.../test-fixtures/real-parser-verdicts-<line>.json). The library
/// must leave the variables exactly as given, so torch_npu says the same
/// with and without it.
fn refused_values_left_alone(line: &Line) {
    // (why the library refuses, PYTORCH_NPU_ALLOC_CONF, PYTORCH_ALLOC_CONF,
    //  verdicts of 2.10.0.post4, 2.5.1 and 2.14.0, in NAMES order)
    const CONFLICT: &str = "`max_split_size_mb` or `garbage_collection_threshold`, cannot be \
                            enabled with `expandable_segments`, please set `expandable_segments` to `False`.";
    const BOOL: &str = "Expected a single True/False argument for expandable_segments";
    const INVALID_MAX_SPLIT: &str = "CachingAllocator option max_split_size_mb is invalid.";
    const BOGUS: &str = "Unrecognized CachingAllocator option: bogus";
    const COMMA: &str = "Unrecognized CachingAllocator option: ,";
    // 2.14's parser is c10's ConfigTokenizer: other words, ValueError.
    const BOGUS_214: &str = "Unrecognized key 'bogus' in NPU allocator config, ";
    const COMMA_214: &str = "Unrecognized key ',' in NPU allocator config, ";
    const BOOL_214: &str = "Expected 'True' or 'False' at index 2 in ConfigTokenizer but got 'true'";
    const BOTH_214: &str =
        "Both PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF have been set, please set only one of them.";
    const A: &str = "accepted";
    type Case = (&'static str, &'static str, Option<&'static str>, [&'static str; 3]);
    let cases: &[Case] = &[
        ("conflict", "max_split_size_mb:256", None, [A, A, A]),
        ("conflict", "garbage_collection_threshold:0.6", None, [A, A, A]),
        ("conflict, explicit key", "max_split_size_mb:256,expandable_segments:True", None, [CONFLICT; 3]),
        ("invalid value", "max_split_size_mb:abc", None, [INVALID_MAX_SPLIT, "stoi", "stoull"]),
        ("tab in a value", "max_split_size_mb:\t256", None, [INVALID_MAX_SPLIT, A, A]),
        ("unknown key", "bogus:1", None, [BOGUS, BOGUS, BOGUS_214]),
        ("empty key (vllm-ascend's append)", ",expandable_segments:True", None, [COMMA, COMMA, COMMA_214]),
        ("lowercase value", "expandable_segments:true", None, [BOOL, BOOL, BOOL_214]),
        ("explicitly off", "expandable_segments:False", None, [A, A, A]),
        (
            "wrong separator",
            "expandable_segments:True;page_size:1g",
            None,
            [BOOL, BOOL, "Unrecognized key '1g' in NPU allocator config, "],
        ),
        ("both variables set", "page_size:1g", Some("max_split_size_mb:256"), [A, A, BOTH_214]),
    ];
    let dir = scratch(line, "refused");
    let mut verdicts = Vec::new();
    // A line of the matrix has no verdicts written down: the library must
    // only leave them as they are.
    let column = NAMES.iter().position(|&n| n == line.name);
    for (i, &(why, npu_conf, alloc_conf, per_line)) in cases.iter().enumerate() {
        let expected = column.map(|c| per_line[c]);
        let mut seen = Vec::new();
        for preload in [false, true] {
            let mut command = python(line, preload, &dir, &format!("{i}-{preload}"));
            command.arg(support::repo().join("tests/fixtures/parser_probe.py")).env("PYTORCH_NPU_ALLOC_CONF", npu_conf);
            if let Some(alloc_conf) = alloc_conf {
                command.env("PYTORCH_ALLOC_CONF", alloc_conf);
            }
            let out = support::run_with_timeout(&mut command, LIMIT);
            assert!(out.status.success(), "{npu_conf:?}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            let probe: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}: {stdout}"));
            // The value as torch_npu's getenv sees it: exactly as given.
            assert_eq!(probe["env"]["PYTORCH_NPU_ALLOC_CONF"], npu_conf, "{why} (preload {preload})");
            assert_eq!(probe["env"]["PYTORCH_ALLOC_CONF"].as_str(), alloc_conf, "{why} (preload {preload})");
            seen.push(probe["verdict"].clone());
        }
        assert_eq!(seen[0], seen[1], "{why}: {npu_conf:?}: verdict without vs with the library");
        if let Some(expected) = expected {
            assert_eq!(seen[0], expected, "{why}: torch_npu {}'s verdict on {npu_conf:?}", line.name);
        }
        println!("torch_npu {}: {why}: {npu_conf:?} -> {}", line.name, seen[0]);
        verdicts.push(serde_json::json!({
            "why": why,
            "PYTORCH_NPU_ALLOC_CONF": npu_conf,
            "PYTORCH_ALLOC_CONF": alloc_conf,
            "verdict": seen[0],
        }));
    }
    let record = support::fixture_dir().join(format!("real-parser-verdicts-{}.json", line.name));
    let pretty = serde_json::to_string_pretty(&verdicts).expect("json");
    std::fs::write(&record, pretty).expect("write verdicts");
}

/// Issue 16: a key only the newest lines know (found in the wheels by
/// scripts/torch-npu-lines.py) is a known key: the library appends to it,
/// and torch_npu 2.14 accepts the result and takes the expandable path.
#[test]
fn the_newest_lines_keys_get_expandable_segments_on_2_14() {
    let Some(line) = line("2.14") else { return };
    let dir = scratch(line, "newest-keys");
    let mut command = python(line, true, &dir, "probe");
    command
        .arg(support::repo().join("tests/fixtures/parser_probe.py"))
        .env("PYTORCH_NPU_ALLOC_CONF", "pinned_max_cached_size_mb:64,throw_on_npumalloc_oom:True");
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let probe: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the probe's line");
    assert_eq!(
        probe["env"]["PYTORCH_NPU_ALLOC_CONF"],
        "pinned_max_cached_size_mb:64,throw_on_npumalloc_oom:True,expandable_segments:True"
    );
    assert_eq!(probe["verdict"], "accepted", "{probe}");
    let stats = read_json(&dir.join("probe.stats.json"));
    assert!(api_calls(&stats, "aclrtReserveMemAddress") > 0, "the expandable path: {stats}");
}

/// Issue 16: sleep mode started from Python does not show on the command
/// line, so the library writes the key and vllm-ascend's CaMemAllocator
/// then asserts. The library's one line stands just before that assertion
/// and names the switch; with the switch, the allocator is created.
#[test]
fn sleep_mode_from_python_fails_right_after_the_line_that_names_the_switch() {
    let Some(line) = line("2.10") else { return };
    let dir = scratch(line, "camem");
    let script = support::repo().join("tests/fixtures/camem_assertion.py");
    let mut command = python(line, true, &dir, "on");
    let out = support::run_with_timeout(command.arg(&script), LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the assertion fails: {stderr}");
    let said = stderr.find(
        "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); \
                            sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0",
    );
    let asserted = stderr.find("AssertionError: Expandable segments are not compatible with memory pool");
    assert!(said.is_some() && asserted.is_some() && said < asserted, "{stderr}");
    let mut command = python(line, true, &dir, "off");
    let out = support::run_with_timeout(command.arg(&script).env("NPU_ALLOC_SHIM_NORMALIZE", "0"), LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("CaMemAllocator created"));
    assert!(!text(&out.stderr).contains("npu-alloc-shim:"), "{}", text(&out.stderr));
}

/// Issue 16: under `python -O` the CaMemAllocator's assertion is gone and
/// the process goes on to make its pool with expandable segments on: when
/// torch_npu's NPUPluggableAllocator looks the pool's "my_malloc" up, the
/// library says once more (on real torch_npu 2.10) that this process needs
/// NPU_ALLOC_SHIM_NORMALIZE=0, before the pool exists.
#[test]
fn a_pool_made_without_the_assertion_is_warned_about_before_it_exists() {
    let Some(line) = line("2.10") else { return };
    let dir = scratch(line, "camem-pool");
    let script = support::repo().join("tests/fixtures/camem_assertion.py");
    let pool = support::probes::pool_allocator();
    let mut command = python(line, true, &dir, "on");
    let out = support::run_with_timeout(command.arg("-O").arg(&script).arg(&pool), LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(text(&out.stdout).contains("CaMemAllocator created"), "the assertion is dropped");
    let written = stderr.find("npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset)");
    let warned = stderr.find(
        "npu-alloc-shim: warning: vllm-ascend's CaMemAllocator (sleep mode, vllm_ascend_C) is being set up \
         (torch looked up \"my_malloc\") while PYTORCH_NPU_ALLOC_CONF has expandable_segments:True",
    );
    let made = stderr.find("pluggable allocator made");
    assert!(written.is_some() && warned.is_some() && made.is_some(), "{stderr}");
    assert!(written < warned && warned < made, "load's line, the warning, then the pool: {stderr}");
    assert_eq!(stderr.matches("is being set up").count(), 1, "{stderr}");
    // With the switch the script's pool is made in silence.
    let mut command = python(line, true, &dir, "off");
    command.arg("-O").arg(&script).arg(&pool).env("NPU_ALLOC_SHIM_NORMALIZE", "0");
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("npu-alloc-shim:"), "{}", text(&out.stderr));
}

/// What a short probe allocated, by API, and the device's peaks. Not what
/// happens at interpreter exit: whether torch_npu's teardown runs before the
/// runtime writes its counters varies from run to run.
fn allocations(stats: &Value) -> Value {
    let by_api: serde_json::Map<String, Value> = stats["by_api"]
        .as_object()
        .expect("by_api")
        .iter()
        .filter(|(name, _)| !["Free", "Unmap", "Release"].iter().any(|word| name.contains(word)))
        .map(|(name, counts)| (name.clone(), counts.clone()))
        .collect();
    serde_json::json!({
        "by_api": by_api,
        "alloc_calls": stats["totals"]["alloc_calls"],
        "alloc_bytes": stats["totals"]["alloc_bytes"],
        "peak_live_bytes": stats["totals"]["peak_live_bytes"],
        "peak_reserved_bytes": stats["peak_reserved_bytes"],
    })
}

/// Issue 17: NPU and CUDA normalization never interfere. On the line that
/// reads PyTorch's shared variables (2.14: PYTORCH_ALLOC_CONF, and
/// PYTORCH_CUDA_ALLOC_CONF through torch's own c10), in an Ascend deployment,
/// the CUDA switch changes nothing torch_npu sees or does: the variables, the
/// parser's verdict and every counter of the runtime are those of the NPU
/// decision alone.
#[test]
fn the_cuda_switch_changes_nothing_for_torch_npu() {
    let Some(line) = line("2.14") else { return };
    let dir = scratch(line, "cuda-switch");
    const ASCEND: (&str, &str) = ("ASCEND_OPP_PATH", "/usr/local/Ascend/ascend-toolkit/latest/opp");
    let probe = |tag: &str, env: &[(&str, &str)], preload: bool| -> (Value, Value) {
        let mut command = python(line, preload, &dir, tag);
        command.arg(support::repo().join("tests/fixtures/parser_probe.py")).envs(env.iter().copied());
        let out = support::run_with_timeout(&mut command, LIMIT);
        assert!(out.status.success(), "{env:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let seen = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the probe's line");
        (seen, read_json(&dir.join(format!("{tag}.stats.json"))))
    };
    // Why it matters: the variable CUDA's decision would write, beside a
    // value the NPU decision refuses to extend, breaks torch_npu 2.14.
    let (by_hand, _) = probe(
        "by-hand",
        &[("PYTORCH_NPU_ALLOC_CONF", "max_split_size_mb:256"), ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")],
        false,
    );
    assert!(by_hand["verdict"].as_str().unwrap().contains("cannot be enabled with `expandable_segments`"), "{by_hand}");
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("PYTORCH_NPU_ALLOC_CONF", "max_split_size_mb:256")],
        &[("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:False")],
        &[("PYTORCH_NPU_ALLOC_CONF", "pinned_mem_register:True")],
        &[("PYTORCH_ALLOC_CONF", "page_size:1g")],
        &[("PYTORCH_ALLOC_CONF", "max_split_size_mb:256")],
    ];
    for (i, case) in cases.iter().enumerate() {
        let env: Vec<(&str, &str)> = [ASCEND].into_iter().chain(case.iter().copied()).collect();
        let alone = probe(&format!("{i}-npu"), &env, true);
        let switched: Vec<_> = env.iter().copied().chain([("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1")]).collect();
        let with_switch = probe(&format!("{i}-both"), &switched, true);
        assert_eq!(with_switch.0, alone.0, "variables and verdict for {case:?}");
        assert_eq!(allocations(&with_switch.1), allocations(&alone.1), "the runtime's allocations for {case:?}");
        println!("torch_npu 2.14, CUDA switch on and off: {case:?} -> {}", alone.0);
    }
}

/// Values of every shape the keys take (numbers, fractions, booleans in both
/// cases, sizes, lists, garbage, nothing).
const PROBE_VALUES: [&str; 12] =
    ["1", "256", "0", "0.5", "-1", "True", "False", "true", "abc", "1g", "[256:4,>:1]", ""];

/// The real parser's verdicts on `values` (tests/fixtures/value_probe.py:
/// one child per value, forked after the imports), without the library.
fn real_verdicts(line: &Line, dir: &Path, values: &[String]) -> Vec<String> {
    let list = dir.join("values.json");
    std::fs::write(&list, serde_json::to_string(values).expect("json")).expect("write values");
    let mut command = python(line, false, dir, "values");
    command.arg(support::repo().join("tests/fixtures/value_probe.py")).arg(&list);
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert!(out.status.success(), "value_probe.py: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let verdicts: Vec<String> =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(verdicts.len(), values.len(), "one verdict per value");
    verdicts
}

/// Issue 16, value rules from the real parser: for every key any line knows
/// and values of every shape, what the library would write on this line
/// (`check --json --python`, the decision the constructor takes) keeps the
/// line's verdict: accepted stays accepted, and a value the line refuses is
/// refused with the same words (the error stays the user's, never one the
/// library made). Every verdict is kept (`value-rules-LINE.json` in the test
/// fixtures) for the matrix table in docs/torch-npu-lines.md.
fn the_librarys_writes_keep_the_real_parsers_verdict(line: &Line) {
    let dir = scratch(line, "value-rules");
    let mut configs = Vec::new();
    for key in common::runtime::npu::KEYS.iter().map(|k| k.name) {
        configs.extend(PROBE_VALUES.iter().map(|value| format!("{key}:{value}")));
    }
    let written: Vec<Option<String>> = configs
        .iter()
        .map(|config| {
            let mut command = support::clean_command(support::cli());
            command.args(["check", "--json", "--python"]).arg(&line.python).arg(config);
            let out = support::run_with_timeout(&mut command, LIMIT);
            let answer: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("check {config:?}: {e}: {}", text(&out.stderr)));
            answer["result"]["value"].as_str().map(str::to_owned)
        })
        .collect();
    let mut probed = configs.clone();
    probed.extend(written.iter().flatten().cloned());
    let verdicts = real_verdicts(line, &dir, &probed);
    let (alone, after) = verdicts.split_at(configs.len());
    let mut after = after.iter();
    let (mut kept, mut left_alone, mut accepted_left_alone) = (0, 0, Vec::new());
    let mut table = Vec::new();
    for ((config, verdict), result) in configs.iter().zip(alone).zip(&written) {
        let result_verdict = result.as_ref().map(|_| after.next().expect("a verdict per write"));
        match result_verdict {
            Some(result_verdict) => {
                kept += 1;
                assert_eq!(
                    result_verdict, verdict,
                    "torch_npu {}: {config:?} alone: {verdict}; as the library writes it ({:?}): {result_verdict}",
                    line.name, result
                );
            }
            None => {
                left_alone += 1;
                if verdict == "accepted" {
                    accepted_left_alone.push(config.clone());
                }
            }
        }
        table.push(serde_json::json!({"value": config, "verdict": verdict, "written": result}));
    }
    let record = support::fixture_dir().join(format!("value-rules-{}.json", line.name));
    std::fs::write(&record, serde_json::to_string_pretty(&table).expect("json")).expect("write value rules");
    println!(
        "torch_npu {}: {} values probed, {kept} the library appends to (each keeps its verdict), {left_alone} \
         left alone, of which the line accepts {}: {accepted_left_alone:?}",
        line.name,
        configs.len(),
        accepted_left_alone.len()
    );
    // The values the library leaves alone although the line takes them are
    // the ones that conflict with expandable segments, or set it.
    for config in &accepted_left_alone {
        let key = config.split(':').next().unwrap_or_default();
        assert!(
            key == common::runtime::npu::SPEC.enable_key
                || common::runtime::npu::SPEC.conflicts.iter().any(|conflict| conflict.key == key),
            "torch_npu {} accepts {config:?}, the library leaves it without expandable segments",
            line.name
        );
    }
}

/// One #[test] per check and line, so each shows (and times) on its own.
macro_rules! on_every_line {
    ($($check:ident),* $(,)?) => {
        on_every_line!(@line line_2_10 "2.10"; $($check),*);
        on_every_line!(@line line_2_5 "2.5"; $($check),*);
        on_every_line!(@line line_2_14 "2.14"; $($check),*);
        on_every_line!(@matrix line_matrix; $($check),*);
    };
    (@line $module:ident $name:literal; $($check:ident),*) => {
        mod $module {
            $(#[test]
            fn $check() {
                if let Some(line) = super::line($name) {
                    super::$check(line);
                }
            })*
        }
    };
    // The line NPU_ALLOC_SHIM_TORCH_NPU_LINE names (scripts/torch-npu-matrix.sh).
    (@matrix $module:ident; $($check:ident),*) => {
        mod $module {
            $(#[test]
            fn $check() {
                if let Some(line) = super::matrix_line() {
                    super::$check(line);
                }
            })*
        }
    };
}

on_every_line!(
    default_config_runs_out_of_memory,
    expandable_path_completes,
    recording_matches_runtime_through_oom,
    conflicting_config_left_alone,
    sleep_mode_left_alone,
    refused_values_left_alone,
    report_and_diff_show_the_oom_and_its_absence,
    the_librarys_writes_keep_the_real_parsers_verdict,
);
