//! `npu-alloc-shim whatif`: snapshot reading that never runs code from the
//! file, the refusals, and the fidelity of the replay on the real torch_npu
//! allocator (simulated Ascend runtime, crates/cli/assets/sim_runtime/).
//!
//! Fidelity: the workload (examples/multimodal_workload.py) is recorded as a
//! memory snapshot under configuration A (torch_npu's default) on a 64 GiB
//! device. Replayed under A it must reproduce the original peak reserved and
//! segment count exactly; replayed under B (expandable segments) it is
//! compared with an actual run of the workload under B, and the error is
//! printed and written to target/<profile>/test-fixtures/whatif-fidelity-LINE.json
//! (docs/whatif.md quotes it). On a 3 GiB device the replays must predict
//! what the actual runs do: A runs out of memory, B completes.
//!
//! The torch_npu tests skip like tests/real_clients/torch_npu.rs: without the cached
//! environment they print SKIPPED and pass, unless NPU_ALLOC_SHIM_REAL_TORCH_NPU=1.

use super::lines::{LIMIT, Line, line, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GIB: u64 = 1 << 30;
const EXPANDABLE: &str = "expandable_segments:True";
/// What torch_npu's OOM message suggests: a second configuration B.
const MAX_SPLIT: &str = "max_split_size_mb:256";

fn scratch(name: &str) -> PathBuf {
    let dir = support::fixture_dir().join(format!("whatif-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn whatif(args: &[&std::ffi::OsStr]) -> Output {
    let mut command = support::clean_command(support::cli());
    command.arg("whatif").args(args);
    support::run_with_timeout(&mut command, LIMIT)
}

/// A protocol-2 pickle that, given to pickle.load, runs `touch PATH` through
/// os.system (GLOBAL posix.system, REDUCE): what a hostile "snapshot" does.
fn malicious_pickle(path: &Path) -> Vec<u8> {
    let command = format!("touch {}", path.display());
    let mut data = b"\x80\x02cposix\nsystem\nq\x00X".to_vec();
    data.extend_from_slice(&(command.len() as u32).to_le_bytes());
    data.extend_from_slice(command.as_bytes());
    data.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    data
}

#[test]
fn malicious_pickle_is_refused_and_nothing_runs() {
    let dir = scratch("malicious");
    // The general loader really would run it (when a Python is here to show it).
    let proof = dir.join("python-ran-it");
    let probe = dir.join("probe.pickle");
    std::fs::write(&probe, malicious_pickle(&proof)).expect("write");
    let python = Command::new("python3")
        .args(["-c", "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))"])
        .arg(&probe)
        .output();
    if python.is_ok_and(|o| o.status.success()) {
        assert!(proof.exists(), "the test pickle is not malicious after all");
    }
    let marker = dir.join("whatif-ran-it");
    let snapshot = dir.join("snapshot.pickle");
    std::fs::write(&snapshot, malicious_pickle(&marker)).expect("write");
    let out = whatif(&[snapshot.as_os_str(), "--config".as_ref(), EXPANDABLE.as_ref()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("refused pickle opcode GLOBAL"), "{stderr}");
    assert!(stderr.contains("not loaded"), "{stderr}");
    assert!(!marker.exists(), "code from the pickle ran");
    assert!(out.stdout.is_empty());
}

#[test]
fn other_code_opcodes_are_refused() {
    let dir = scratch("opcodes");
    // protocol 4: STACK_GLOBAL; then REDUCE/BUILD/NEWOBJ on plain values.
    let cases: &[(&[u8], &str)] = &[
        (b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.", "STACK_GLOBAL"),
        (b"\x80\x04NNR.", "REDUCE"),
        (b"\x80\x04}Nb.", "BUILD"),
        (b"\x80\x04NN\x81.", "NEWOBJ"),
        (b"\x80\x04(iposix\nsystem\n.", "INST"),
    ];
    for (i, (data, name)) in cases.iter().enumerate() {
        let path = dir.join(format!("{i}.pickle"));
        std::fs::write(&path, data).expect("write");
        let out = whatif(&[path.as_os_str()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{name}: {stderr}");
        assert!(stderr.contains(&format!("refused pickle opcode {name}")), "{name}: {stderr}");
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = scratch("bad");
    let missing = dir.join("missing.pickle");
    let out = whatif(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stderr));

    for (name, data, words) in [
        ("empty", &b""[..], "truncated"),
        ("truncated", &b"\x80\x04}\x94(\x8c\x06action"[..], "truncated"),
        ("list", &b"\x80\x04]\x94."[..], "not a dict"),
        ("no-traces", &b"\x80\x04}\x94."[..], "device_traces"),
        ("text", &b"Zebra"[..], "unsupported pickle opcode 0x5a"),
        ("protocol-0", &b"(dp0\nS'a'\n."[..], "unsupported pickle opcode"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, data).expect("write");
        let out = whatif(&[path.as_os_str()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{name}: {stderr}");
        assert!(stderr.contains(words), "{name}: {words:?} missing from {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }

    // The tool's own recordings hold no event sequence: refused, with why.
    let recording = dir.join("recording.json");
    let json = r#"{"schema":"npu-alloc-shim/1","config":{"after":"expandable_segments:True"},
                   "totals":{"peak_live_bytes":3221225472}}"#;
    std::fs::write(&recording, json).expect("write");
    let out = whatif(&[recording.as_os_str()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    for words in ["not a memory snapshot", "not possible", "3.000 GiB", "_record_memory_history"] {
        assert!(stderr.contains(words), "{words:?} missing from {stderr}");
    }

    // A valid snapshot but no torch_npu environment: 69, saying how to make one.
    let snapshot = dir.join("tiny.pickle");
    let tiny = b"\x80\x04}\x94\x8c\rdevice_traces\x94]\x94]\x94}\x94(\x8c\x06action\x94\x8c\x05alloc\x94\x8c\x04addr\x94K\x01\x8c\x04size\x94K\x02uaas.";
    std::fs::write(&snapshot, tiny).expect("write");
    let mut command = support::clean_command(support::cli());
    command.env("NPU_ALLOC_SHIM_VENV_CACHE", dir.join("no-cache")).arg("whatif").arg(&snapshot);
    let out = support::run_with_timeout(&mut command, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("scripts/torch-npu-venv.sh"), "{stderr}");

    let out = whatif(&[snapshot.as_os_str(), "--device-gb".as_ref(), "-1".as_ref()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
}

// ---- fidelity on the real torch_npu allocator ---------------------------

/// One actual run of the workload; its final JSON line.
fn workload(line: &Line, conf: Option<&str>, device_gib: u64, snapshot: Option<&Path>) -> Value {
    let mut command = support::clean_command(&line.python);
    command
        .current_dir(support::repo())
        .env("LD_LIBRARY_PATH", &line.sim)
        .env("SIM_ACL_DEVICE_BYTES", (device_gib * GIB).to_string())
        .arg("examples/multimodal_workload.py");
    if let Some(conf) = conf {
        command.env("PYTORCH_NPU_ALLOC_CONF", conf);
    }
    if let Some(path) = snapshot {
        command.arg("--memory-snapshot").arg(path);
    }
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert!(matches!(out.status.code(), Some(0 | 3)), "workload: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn replay(line: &Line, snapshot: &Path, device_gib: u64, html: Option<&Path>) -> Value {
    let mut command = support::clean_command(support::cli());
    command
        .arg("whatif")
        .arg(snapshot)
        .args(["--config", "", "--config", EXPANDABLE, "--config", MAX_SPLIT, "--json", "--line", line.name])
        .args(["--device-gb", &device_gib.to_string()])
        .arg("--python")
        .arg(&line.python)
        .arg("--sim-runtime")
        .arg(&line.sim);
    if let Some(html) = html {
        command.arg("--html").arg(html);
    }
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert_eq!(out.status.code(), Some(0), "whatif: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn error_percent(predicted: u64, actual: u64) -> f64 {
    (predicted as f64 - actual as f64) / actual as f64 * 100.0
}

fn fidelity(line: &Line) {
    let dir = scratch(&format!("fidelity-{}", line.name));
    let snapshot = dir.join("default-64g.pickle");
    let a = workload(line, None, 64, Some(&snapshot));
    let b = workload(line, Some(EXPANDABLE), 64, None);
    let c = workload(line, Some(MAX_SPLIT), 64, None);
    assert_eq!(a["outcome"], "completed");
    assert_eq!(b["outcome"], "completed");
    assert_eq!(c["outcome"], "completed");

    let html = dir.join("whatif.html");
    let report = replay(line, &snapshot, 64, Some(&html));
    let recorded = &report["recorded"][0];
    let under_a = &report["runs"][0]["devices"][0];
    let under_b = &report["runs"][1]["devices"][0];
    // Under A: the original, exactly.
    assert_eq!(under_a["outcome"], "completed");
    assert_eq!(under_a["peak_reserved"], a["max_memory_reserved"], "peak reserved under A");
    assert_eq!(under_a["peak_allocated"], a["max_memory_allocated"], "peak allocated under A");
    assert_eq!(under_a["segments_peak"], a["segments_peak"], "segment count under A");
    assert_eq!(recorded["peak_reserved"], a["max_memory_reserved"], "reconstructed from the trace");
    assert_eq!(recorded["segments_peak"], a["segments_peak"], "reconstructed from the trace");
    // Under B: predicted against actual.
    assert_eq!(under_b["outcome"], "completed");
    let predicted = under_b["peak_reserved"].as_u64().expect("peak");
    let actual = b["max_memory_reserved"].as_u64().expect("peak");
    let error = error_percent(predicted, actual);
    let allocated_error =
        error_percent(under_b["peak_allocated"].as_u64().unwrap_or(0), b["max_memory_allocated"].as_u64().unwrap_or(1));
    println!(
        "torch_npu {}: replay under {EXPANDABLE}: peak reserved {predicted} predicted, {actual} actual \
         ({error:+.3}%); peak allocated {allocated_error:+.3}%",
        line.name
    );
    assert!(error.abs() < 5.0, "prediction under B off by {error:.2}%");
    let under_c = &report["runs"][2]["devices"][0];
    let split_error =
        error_percent(under_c["peak_reserved"].as_u64().unwrap_or(0), c["max_memory_reserved"].as_u64().unwrap_or(1));
    println!("torch_npu {}: replay under {MAX_SPLIT}: peak reserved {split_error:+.3}% off the actual run", line.name);
    assert!(split_error.abs() < 5.0, "prediction under {MAX_SPLIT} off by {split_error:.2}%");
    assert!(report["verdict"].as_str().unwrap_or_default().starts_with(&format!("Deploy `{EXPANDABLE}`")), "{report}");

    // The page: both runs, inline SVG, nothing fetched from anywhere.
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<svg") && page.contains(EXPANDABLE) && page.contains("(default)"));
    assert!(!page.contains("src=") && !page.contains("href=") && !page.contains("<script"));

    // On 3 GiB the replays must predict what the actual runs do.
    let a3 = workload(line, None, 3, None);
    let b3 = workload(line, Some(EXPANDABLE), 3, None);
    let report3 = replay(line, &snapshot, 3, None);
    let runs3 = &report3["runs"];
    assert_eq!(a3["outcome"], "oom");
    assert_eq!(b3["outcome"], "completed");
    assert_eq!(runs3[0]["devices"][0]["outcome"], "oom", "{report3}");
    assert_eq!(runs3[1]["devices"][0]["outcome"], "completed", "{report3}");
    // The same failing allocation in the same state: torch_npu's message
    // (size, allocated, active, free, reserved) is the same, to its rounding.
    let message = |e: &Value| e.as_str().unwrap_or_default().split(").").next().unwrap_or_default().to_owned();
    let (replayed, actual) = (message(&runs3[0]["devices"][0]["error"]), message(&a3["error"]));
    assert!(actual.starts_with("NPU out of memory. Tried to allocate"), "{actual}");
    assert_eq!(replayed, actual, "OOM message of the replay vs the actual run");
    println!(
        "torch_npu {}: 3 GiB: default OOM at event {} of {} (actual: after {} of 48 requests); {EXPANDABLE} completes \
         (actual: completes)",
        line.name, runs3[0]["devices"][0]["oom"]["event"], recorded["events"], a3["completed_requests"]
    );
    let record = serde_json::json!({
        "line": line.name,
        "torch_npu": a["torch_npu"],
        "recorded_under": "(default)",
        "replayed_under_a": {"peak_reserved": under_a["peak_reserved"], "actual": a["max_memory_reserved"],
                             "segments_peak": under_a["segments_peak"], "actual_segments_peak": a["segments_peak"]},
        "replayed_under_b": {"config": EXPANDABLE, "peak_reserved": predicted, "actual": actual,
                             "error_percent": error, "peak_allocated_error_percent": allocated_error},
        "replayed_under_c": {"config": MAX_SPLIT, "peak_reserved": under_c["peak_reserved"],
                             "actual": c["max_memory_reserved"], "error_percent": split_error},
        "device_3gib": {"default": runs3[0]["devices"][0]["outcome"], "actual_default": a3["outcome"],
                        "expandable": runs3[1]["devices"][0]["outcome"], "actual_expandable": b3["outcome"]},
    });
    let path = support::fixture_dir().join(format!("whatif-fidelity-{}.json", line.name));
    std::fs::write(path, serde_json::to_string_pretty(&record).expect("json")).expect("write fidelity");
}

#[test]
fn fidelity_torch_npu_2_10() {
    if let Some(line) = line("2.10") {
        fidelity(line);
    }
}

#[test]
fn fidelity_torch_npu_2_5() {
    if let Some(line) = line("2.5") {
        fidelity(line);
    }
}

/// `whatif` from the release layout (`scripts/dist.sh stage`, what the
/// tarball holds), run outside the checkout with an empty cache: it builds the
/// simulated runtime from the sources it carries, and a missing environment
/// names the script the release ships.
#[test]
fn whatif_works_from_the_release_layout_without_the_checkout() {
    let Some(line) = line("2.10") else { return };
    let dir = scratch("release");
    let stage = dir.join("npu-alloc-shim");
    let built = support::cli().parent().expect("target/<profile>").to_path_buf();
    let _ = support::library();
    let out = support::run_with_timeout(
        Command::new("bash")
            .arg(support::repo().join("scripts/dist.sh"))
            .arg("stage")
            .arg(&built)
            .arg(&stage)
            .current_dir(support::repo()),
        LIMIT,
    );
    assert!(out.status.success(), "dist.sh stage: {}", text(&out.stderr));
    let snapshot = dir.join("small.pickle");
    let script = "import pickle,sys
M=1<<20
e=lambda a,ad,s:{'action':a,'addr':ad,'size':s,'stream':0,'frames':[]}
pickle.dump({'segments':[],'device_traces':[[e('alloc',1,8*M),e('alloc',2,24*M),e('free_requested',1,8*M),
 e('free_completed',1,8*M)]]},open(sys.argv[1],'wb'),protocol=4)";
    let out = support::run_with_timeout(Command::new(&line.python).args(["-c", script]).arg(&snapshot), LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cache = dir.join("empty-cache");
    let cli = stage.join("bin/npu-alloc-shim");
    let mut command = support::clean_command(&cli);
    command
        .current_dir(&dir)
        .env("NPU_ALLOC_SHIM_VENV_CACHE", &cache)
        .arg("whatif")
        .arg(&snapshot)
        .args(["--config", "", "--json", "--device-gb", "1", "--python"])
        .arg(&line.python);
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["runs"][0]["devices"][0]["outcome"], "completed", "{report}");
    assert!(cache.join("sim-runtime-2.10/libascendcl.so").is_file(), "built from the carried sources");
    let leftovers: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("sim-runtime-2.10")], "the sources were cleaned up");
    // Without an environment it says how to make one, with the shipped script.
    let mut command = support::clean_command(&cli);
    command.current_dir(&dir).env("NPU_ALLOC_SHIM_VENV_CACHE", &cache).arg("whatif").arg(&snapshot);
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    let shipped = stage.join("share/npu-alloc-shim/torch-npu-venv.sh");
    assert!(text(&out.stderr).contains(&format!("create it with {} 2.10", shipped.display())), "{}", text(&out.stderr));
}

/// A hand-made snapshot with what the workload lacks: blocks live before
/// recording began (freed in the trace, or still live in `segments`), a
/// second stream, a second device, and a value torch_npu refuses.
#[test]
fn devices_streams_early_blocks_and_refusals() {
    let Some(line) = line("2.10") else { return };
    let dir = scratch("shapes");
    let snapshot = dir.join("shapes.pickle");
    let script = "import pickle,sys
e=lambda a,ad,s,st=7:{'action':a,'addr':ad,'size':s,'stream':st,'frames':[]}
M=1<<20
d={'segments':[{'device':0,'stream':7,'blocks':[{'address':900,'requested_size':5*M,'size':6*M,'state':'active_allocated'}]}],
 'device_traces':[[e('alloc',100,10*M),e('alloc',200,30*M,9),e('free_requested',100,10*M),e('free_completed',100,10*M),
                   e('free_requested',555,20*M)],
                  [e('alloc',1,1<<30),e('alloc',2,1<<30),e('free_requested',1,1<<30)]]}
pickle.dump(d,open(sys.argv[1],'wb'),protocol=4)";
    let out = support::run_with_timeout(Command::new(&line.python).args(["-c", script]).arg(&snapshot), LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut command = support::clean_command(support::cli());
    command
        .arg("whatif")
        .arg(&snapshot)
        .args(["--config", "", "--config", "bogus:1", "--json", "--device-gb", "1.5", "--python"])
        .arg(&line.python)
        .arg("--sim-runtime")
        .arg(&line.sim);
    let out = support::run_with_timeout(&mut command, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["recorded"][0]["live_at_start"], 2, "{report}");
    let default = &report["runs"][0]["devices"];
    assert_eq!(default[0]["outcome"], "completed", "{report}");
    // 5 + 20 MiB live from the start, then 10 and 30: 65 MiB at the peak.
    assert!(default[0]["peak_allocated"].as_u64() >= Some(65 << 20), "{report}");
    assert_eq!(default[1]["outcome"], "oom", "two 1 GiB tensors on a 1.5 GiB device");
    assert_eq!(default[1]["oom"]["event"], 1);
    for device in [0, 1] {
        let refused = &report["runs"][1]["devices"][device];
        assert_eq!(refused["outcome"], "rejected", "{report}");
        assert!(refused["error"].as_str().unwrap_or_default().contains("Unrecognized CachingAllocator option: bogus"));
    }
    assert!(report["verdict"].as_str().unwrap_or_default().starts_with("No configuration completes"), "{report}");
}
