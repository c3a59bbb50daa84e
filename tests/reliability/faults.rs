//! Faults (issue 7): the trace directory missing or read-only, the disk full,
//! the runtime failing or returning NULL, no runtime at all, frees of pointers
//! never seen, double frees, bad switch values, a path too long. Each gives at
//! most one clear stderr line (README: only the first write failure is
//! reported), the host program carries on with the return codes it would
//! have had without the library, and the recording counts what happened.
//!
//! Mount-based tests need root (a tmpfs, read-only or tiny: root bypasses
//! permission bits); elsewhere they print why they are skipped. Every mount is
//! undone by a drop guard.

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::fixtures::{self as common, Tmpfs, api_calls, n};

/// Runs `dump-after 3 errors=3 DUMP` traced to `trace` with 20 ms writes:
/// the client waits (dumping to a good place through the C API) until three
/// periodic writes have failed, however long the machine takes. Returns the
/// library's stderr lines and the dump.
fn run_failing_writes(trace: &Path, dump: &Path) -> (Vec<String>, Value) {
    let mut command = common::traced(&common::shapes(), trace, 20);
    command.args(["dump-after", "3", "errors=3"]).arg(dump);
    let output = common::ok(&mut command);
    let line = &common::json_lines(&output)[0];
    assert_eq!(n(line, "/dump_rc"), 0, "the C API still writes elsewhere");
    (common::library_lines(&output), common::read_json(dump))
}

/// One warning that names the path, then silence; failures are counted.
fn assert_one_write_warning(lines: &[String], dump: &Value, what: &str) {
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    assert!(lines[0].starts_with("npu-alloc-shim: warning: cannot write the recording"), "{what}: {lines:?}");
    // Several periodic writes failed; the message came once.
    let failures = n(dump, "/errors/write_errors");
    assert!(failures >= 3, "{what}: write_errors {failures}");
    assert_eq!(n(dump, "/totals/alloc_calls"), 3, "{what}: the host went on");
    common::figure(format!("{what}: {failures} failed writes, 1 message"));
}

#[test]
fn a_missing_directory_gives_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("no/such/dir/t.json");
    let (lines, dump) = run_failing_writes(&trace, &dir.path().join("dump.json"));
    assert_one_write_warning(&lines, &dump, "missing directory");
    assert_eq!(common::listing(dir.path()).len(), 1, "only the dump: {:?}", common::listing(dir.path()));
}

#[test]
fn a_read_only_directory_gives_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mount = match Tmpfs::mount(&ro, "ro,size=1m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let (lines, dump) = run_failing_writes(&mount.path().join("t.json"), &dir.path().join("dump.json"));
    assert_one_write_warning(&lines, &dump, "read-only directory");
    assert!(lines[0].contains("Read-only file system"), "{lines:?}");
    assert!(common::listing(mount.path()).is_empty());
}

/// Fills a filesystem: writes a filler file until ENOSPC.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let block = [0u8; 4096];
    while file.write_all(&block).is_ok() {}
    // The last partial block, byte by byte.
    while file.write_all(&block[..1]).is_ok() {}
}

#[test]
fn a_full_disk_gives_one_message_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mount = match Tmpfs::mount(&small, "size=64k") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    fill(&mount.path().join("filler"));
    let (lines, dump) = run_failing_writes(&mount.path().join("t.json"), &dir.path().join("dump.json"));
    assert_one_write_warning(&lines, &dump, "disk full");
    assert!(lines[0].contains("No space left on device"), "{lines:?}");
    let left: Vec<_> = common::listing(mount.path()).into_iter().collect();
    assert_eq!(left, vec![std::ffi::OsString::from("filler")], "no partial or temporary file");
}

/// The disk fills while the process runs: the recording already on disk stays
/// whole (writes are atomic), and once there is room again the next periodic
/// write succeeds; one message in all.
#[test]
fn a_disk_that_fills_up_keeps_the_last_whole_recording_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mount = match Tmpfs::mount(&small, "size=64k") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let trace = mount.path().join("t.json");
    let mut child = common::traced(&common::shapes(), &trace, 50)
        .args(["pace", "5", "term"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The library's stderr, read as it comes: its one warning tells that a
    // periodic write failed (a wait for that, not for a time).
    let (warned_tx, warned) = std::sync::mpsc::channel();
    let stderr_reader = {
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                if line.starts_with("npu-alloc-shim: warning: cannot write") {
                    let _ = warned_tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    };
    support::wait_until("a first periodic write", || trace.exists());
    let filler = mount.path().join("filler");
    fill(&filler);
    // Writes fail now; the file on disk must stay whole all along, for at
    // least 300 ms and until a write has failed.
    let full_until = Instant::now() + Duration::from_millis(300);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut checks, mut failed) = (0, false);
    while Instant::now() < full_until || !failed {
        assert!(Instant::now() < deadline, "no write failed on the full disk within 60 s");
        let rec = common::read_json(&trace);
        assert_eq!(rec["final"], Value::Bool(false));
        checks += 1;
        failed |= warned.try_recv().is_ok();
        std::thread::sleep(Duration::from_millis(7));
    }
    let during = n(&common::read_json(&trace), "/written_unix_ms");
    std::fs::remove_file(&filler).unwrap();
    common::wait_for_recording(&trace, "a write after the disk had room again", |rec| {
        n(rec, "/written_unix_ms") > during
    });
    // SAFETY: kill(2) on our own child; its handler exits normally.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let stderr = stderr_reader.join().expect("stderr reader");
    assert!(status.success(), "{status:?}: {stderr}");
    let rec = common::read_json(&trace);
    assert!(n(&rec, "/errors/write_errors") >= 1);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("npu-alloc-shim:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(common::listing(mount.path()).len(), 1, "{:?}", common::listing(mount.path()));
    common::figure(format!("disk filled during a run: the recording read whole {checks} times while writes failed"));
}

/// acl_workload with threads, every kind of call, and the runtime failing
/// every third device allocation: the program sees the runtime's codes (it
/// checks every one), the recording counts each failure.
#[test]
fn runtime_errors_are_passed_through_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut command = common::traced(&common::workload(), &trace, 0);
    command.args(["--threads", "4", "--iters", "12", "--vmm", "--host", "--tolerant"]).env("FAKE_ACL_FAIL_EVERY", "3");
    let output = common::ok(&mut command);
    assert_eq!(common::library_lines(&output), Vec::<String>::new());
    let line = &common::json_lines(&output)[0];
    let rec = common::read_json(&trace);
    for key in ["alloc_calls", "failed_calls", "free_calls", "alloc_bytes", "freed_bytes", "live_bytes"] {
        assert_eq!(n(&rec, &format!("/totals/{key}")), n(line, &format!("/fake/device/{key}")), "totals.{key}");
    }
    let failed = n(&rec, "/totals/failed_calls");
    assert!(failed > 20, "{failed}");
    for (name, made) in line["made"].as_object().unwrap() {
        if ["aclrtGetDevice", "aclrtGetDeviceCount", "aclrtResetDevice"].contains(&name.as_str()) {
            continue; // not hooked
        }
        assert_eq!(api_calls(&rec, name), n(made, "/calls"), "{name}");
        let failures = rec.pointer(&format!("/by_api/{name}/failures")).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(failures, n(made, "/failures"), "{name} failures");
    }
    // Failures keep their context (the first 256).
    assert_eq!(rec["failures"].as_array().unwrap().len() as u64, failed.min(256));
    common::assert_no_errors(&rec);
    common::figure(format!("runtime errors: {failed} failed allocations injected, each passed through and counted"));
}

#[test]
fn null_pointers_from_the_runtime_are_counted_not_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut command = common::traced(&common::workload(), &trace, 0);
    command.args(["--threads", "4", "--iters", "12", "--vmm", "--tolerant"]).env("FAKE_ACL_NULL_ON_SUCCESS", "1");
    let output = common::ok(&mut command);
    assert_eq!(common::library_lines(&output), Vec::<String>::new());
    let line = &common::json_lines(&output)[0];
    let rec = common::read_json(&trace);
    let device_allocs: u64 = ["aclrtMalloc", "aclrtMallocAlign32", "aclrtMallocCached", "aclrtMallocWithCfg"]
        .iter()
        .chain(&["aclrtMallocPhysical"])
        .map(|name| n(line, &format!("/made/{name}/calls")) - n(line, &format!("/made/{name}/failures")))
        .sum();
    assert_eq!(n(&rec, "/errors/null_results"), device_allocs);
    assert_eq!(n(&rec, "/totals/alloc_calls"), device_allocs);
    assert_eq!(n(&rec, "/totals/live_bytes"), 0, "a NULL is never live");
    assert_eq!(n(&rec, "/totals/untracked_frees"), 0);
    common::figure(format!("NULL results: {device_allocs} injected, counted in errors.null_results"));
}

#[test]
fn no_runtime_at_all_gives_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let output =
        common::ok(common::traced(&common::shapes_without_runtime(), &trace, 0).args(["no-runtime-hooks", "100"]));
    let line = &common::json_lines(&output)[0];
    assert_eq!(n(line, "/malloc_rc"), 207000, "ACL_ERROR_RT_FEATURE_NOT_SUPPORT");
    assert_eq!(n(line, "/free_rc"), 207000);
    let lines = common::library_lines(&output);
    assert!(lines.len() <= 1, "{lines:?}");
    // A process that never reached a runtime has nothing to record, or
    // records the calls it could not forward.
    if trace.exists() {
        assert_eq!(n(&common::read_json(&trace), "/errors/unresolved_calls"), 200);
    }
}

#[test]
fn double_frees_and_unknown_pointers_keep_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::ok(common::traced(&common::shapes(), &dir.path().join("t.%p.json"), 0).arg("faults"));
    assert_eq!(common::library_lines(&output), Vec::<String>::new());
    let lines = common::json_lines(&output);
    let parent = lines.iter().find(|l| l.get("codes").is_some()).expect("parent line");
    let child = lines.iter().find(|l| l.get("codes").is_none()).expect("child line");
    // The fixture checked each code against the runtime's own; here the
    // recordings: the refused frees are failures, nothing is left live.
    let rec = common::recording(dir.path(), n(parent, "/pid"));
    assert_eq!(api_calls(&rec, "aclrtFree"), 5, "one good, double, NULL, unknown, the shared block");
    assert_eq!(n(&rec, "/by_api/aclrtFree/failures"), 3);
    assert_eq!(n(&rec, "/by_api/aclrtFreeHost/failures"), 1);
    assert_eq!(n(&rec, "/totals/free_calls"), 2);
    assert_eq!(n(&rec, "/totals/live_bytes"), 0);
    assert_eq!(n(&rec, "/totals/untracked_frees"), 0);
    // The child freed a block its recording never saw allocated.
    let rec = common::recording(dir.path(), n(child, "/pid"));
    assert_eq!(n(&rec, "/totals/untracked_frees"), 1);
    assert_eq!(n(&rec, "/totals/free_calls"), 1);
    assert_eq!(n(&rec, "/totals/freed_bytes"), 0);
    assert_eq!(n(&rec, "/totals/live_bytes"), 0);
}

#[test]
fn bad_switch_values_give_one_message_each() {
    for (var, value) in [
        ("NPU_ALLOC_SHIM_FLUSH_MS", "soon"),
        ("NPU_ALLOC_SHIM_LOG", "loud"),
        ("NPU_ALLOC_SHIM_DISABLE", "maybe"),
        ("NPU_ALLOC_SHIM_NORMALIZE", "2"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.json");
        let output = common::ok(common::traced(&common::shapes(), &trace, 0).args(["alloc", "2"]).env(var, value));
        let lines = common::library_lines(&output);
        assert_eq!(lines.len(), 1, "{var}={value}: {lines:?}");
        assert!(lines[0].contains(var), "{lines:?}");
        assert_eq!(n(&common::read_json(&trace), "/totals/alloc_calls"), 2, "{var}: recording goes on");
    }
}

#[test]
fn a_path_too_long_gives_one_message() {
    let dir = tempfile::tempdir().unwrap();
    // Longer than PATH_MAX (4096), in components of legal length.
    let long = dir.path().join(vec!["x".repeat(250); 20].join("/")).join("t.json");
    let (lines, dump) = run_failing_writes(&long, &dir.path().join("dump.json"));
    assert_one_write_warning(&lines, &dump, "path too long");
    assert!(lines[0].len() < 1000, "the message quotes the path cut short: {} bytes", lines[0].len());
}

/// A temporary file left at the writer's first name (a process killed during
/// a write, whose pid comes back: containers restart with the same pids)
/// must not cost the next process its recording.
#[test]
fn a_stale_temporary_file_does_not_lose_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut child = common::traced(&common::shapes(), &trace, 0)
        .args(["wait", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut ready).unwrap();
    let pid: u32 = ready.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).expect("ready line");
    std::fs::write(dir.path().join(format!(".t.json.{pid}.0.tmp")), "{\"partial").unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        trace.exists(),
        "the only write (at exit) met the stale file and was given up: {:?}",
        common::library_lines(&output)
    );
    assert_eq!(n(&common::read_json(&trace), "/totals/alloc_calls"), 2);
}
