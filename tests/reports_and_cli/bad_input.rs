//! Bad input to `report` and `diff`: one line `npu-alloc-shim: FILE: problem`
//! on stderr, the documented exit status, never a panic.

use serde_json::json;
use std::path::Path;
use std::process::Output;
use support::reports::*;

/// Runs `report ARGS` and checks the one-line error.
fn refused(args: &[&Path], code: i32, file: &Path, problem: &str) -> Output {
    let out = run(cli().arg("report").args(args));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let want = format!("npu-alloc-shim: {}: ", file.display());
    assert!(err.starts_with(&want), "{want:?} in {err}");
    assert!(err.contains(problem), "{problem:?} in {err}");
    assert!(stdout(&out).is_empty(), "no report on failure: {}", stdout(&out));
    out
}

#[test]
fn each_class_of_bad_file_gets_its_own_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = serde_json::to_string(&recording(1, "h", 0)).unwrap();
    let file = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let truncated = file("truncated.json", &good[..good.len() / 2]);
    refused(&[&truncated], 65, &truncated, "truncated: the JSON ends early");
    let empty = file("empty.json", "");
    refused(&[&empty], 65, &empty, "empty file");
    let blank = file("blank.json", "  \n\t ");
    refused(&[&blank], 65, &blank, "empty file");
    let garbage = file("garbage.json", "this is not json");
    refused(&[&garbage], 65, &garbage, "not valid JSON");
    let binary = file("binary.json", "\u{7f}ELF\u{2}\u{1}");
    refused(&[&binary], 65, &binary, "not valid JSON");
    let trailing = file("trailing.json", &format!("{good} {{}}"));
    refused(&[&trailing], 65, &trailing, "not valid JSON");
    let array = file("array.json", "[1, 2]");
    refused(&[&array], 65, &array, "a JSON array, not a recording");
    let number = file("number.json", "42");
    refused(&[&number], 65, &number, "not an object");
    let other = file("other.json", r#"{"name": "package.json", "version": "1.0"}"#);
    refused(&[&other], 65, &other, "no \"schema\" key: not an npu-alloc-shim recording");
    let mut v2 = recording(1, "h", 0);
    v2["schema"] = json!("npu-alloc-shim/2");
    let newer = write(d, "newer.json", &v2);
    refused(&[&newer], 65, &newer, "schema \"npu-alloc-shim/2\" is not one this version reads (npu-alloc-shim/1)");
    let merged = file("merged.json", r#"{"schema": "npu-alloc-shim-report/1", "recordings": 1}"#);
    refused(&[&merged], 65, &merged, "a npu-alloc-shim-report/1 file written by --json, not a recording");
    // A newer schema without the old keys: the schema is named, not a missing key.
    let bare = file("bare.json", r#"{"schema": "npu-alloc-shim/9", "events": []}"#);
    refused(&[&bare], 65, &bare, "schema \"npu-alloc-shim/9\"");
    let mut wrong_type = recording(1, "h", 0);
    wrong_type["totals"]["alloc_calls"] = json!("many");
    let wrong = write(d, "wrong.json", &wrong_type);
    refused(&[&wrong], 65, &wrong, "does not match schema npu-alloc-shim/1: invalid type");
    let mut missing_key = recording(1, "h", 0);
    missing_key.as_object_mut().unwrap().remove("totals");
    let missing = write(d, "missing.json", &missing_key);
    refused(&[&missing], 65, &missing, "missing field `totals`");
    let mut negative = recording(1, "h", 0);
    negative["pid"] = json!(-5);
    let negative = write(d, "negative.json", &negative);
    refused(&[&negative], 65, &negative, "does not match schema");
}

#[test]
fn missing_paths_empty_directories_and_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let absent = d.join("absent.json");
    refused(&[&absent], 66, &absent, "No such file or directory");
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    // Files that are not *.json, and the library's temporary files, do not count.
    std::fs::write(empty.join("notes.txt"), "x").unwrap();
    std::fs::write(empty.join(".npu-alloc-shim.1.json.1.0.tmp"), "{").unwrap();
    refused(&[&empty], 66, &empty, "no recordings (*.json files) in this directory");
    let fifo = d.join("fifo.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    refused(&[&fifo], 66, &fifo, "not a regular file or a directory");
    let dev_null = Path::new("/dev/null");
    refused(&[dev_null], 66, dev_null, "not a regular file");
}

#[test]
fn an_unreadable_file_is_no_input() {
    // Root reads everything: only meaningful for other users.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: running as root, permissions do not apply");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.json", &recording(1, "h", 0));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    refused(&[&path], 66, &path, "Permission denied");
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: 3 GiB on paper, nothing on disk.
    std::fs::File::create(&path).unwrap().set_len(3 * GIB).unwrap();
    let out = refused(&[&path], 65, &path, "3.0 GiB is more than the 64.0 MiB limit for one recording");
    assert!(stderr(&out).contains("--max-file-size"), "{}", stderr(&out));
    // The limit is an option: a real recording over 1 MiB with --max-file-size 1.
    let mut big = recording(1, "h", 0);
    big["argv"] = json!(["x".repeat(2 * MIB as usize)]);
    let big = write(dir.path(), "big.json", &big);
    let out = run(cli().args(["report", "--max-file-size", "1"]).arg(&big));
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("more than the 1.0 MiB limit"), "{}", stderr(&out));
    let out = run(cli().args(["report", "--max-file-size", "4", "--quiet"]).arg(&big));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn one_bad_file_in_a_directory_stops_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for pid in 1..=3 {
        write(d, &format!("r{pid}.json"), &recording(pid, "h", 0));
    }
    let bad = d.join("r2b.json");
    std::fs::write(&bad, "{\"schema\": \"npu-alloc-shim/1\", \"pid\": ").unwrap();
    refused(&[d], 65, &bad, "truncated");
    let json_path = d.join("out").with_extension("merged");
    let out = run(cli().arg("report").arg("--skip-invalid").arg(d).arg("--json").arg(&json_path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("npu-alloc-shim: warning: skipped {}: truncated", bad.display())), "{err}");
    let merged: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(merged["recordings"], 3);
    assert_eq!(merged["skipped_count"], 1);
    assert!(stdout(&out).contains("skipped 1 file(s) that are not recordings:"), "{}", stdout(&out));
    // Nothing readable at all: no input.
    let only_bad = tempfile::tempdir().unwrap();
    std::fs::write(only_bad.path().join("x.json"), "nope").unwrap();
    let out = run(cli().arg("report").arg("--skip-invalid").arg(only_bad.path()));
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
    assert!(stderr(&out).contains("none of the files is a recording"), "{}", stderr(&out));
}

#[test]
fn an_output_that_cannot_be_written_exits_73() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.json", &recording(1, "h", 0));
    for flag in ["--html", "--json", "--trace-event"] {
        let target = dir.path().join("no-such-dir").join("out");
        let out = run(cli().arg("report").arg(&path).arg(flag).arg(&target));
        assert_eq!(out.status.code(), Some(73), "{flag}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(
            err.trim_end(),
            format!("npu-alloc-shim: {}: cannot write: No such file or directory", target.display())
        );
    }
}

#[test]
fn diff_reports_a_bad_side_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", &recording(1, "h", 0));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[]").unwrap();
    for (before, after) in [(&good, &bad), (&bad, &good)] {
        let out = run(cli().arg("diff").arg(before).arg(after));
        assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1);
        assert!(stderr(&out).starts_with(&format!("npu-alloc-shim: {}: a JSON array", bad.display())));
    }
    let out = run(cli().arg("diff").arg(&good));
    assert_eq!(out.status.code(), Some(64), "a missing AFTER is a usage error");
    let out = run(cli().arg("report"));
    assert_eq!(out.status.code(), Some(64), "no TRACE is a usage error");
}

#[test]
fn hostile_values_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = recording(1, "h", -1);
    let max = u64::MAX;
    r["totals"] = json!({"alloc_calls": max, "failed_calls": max, "free_calls": max, "untracked_frees": max,
                         "alloc_bytes": max, "freed_bytes": 0, "live_bytes": max, "peak_live_bytes": max});
    r["host"] = r["totals"].clone();
    r["histogram"] =
        json!([{"lo": max, "hi": 3, "count": max, "bytes": max}, {"lo": 0, "hi": 0, "count": max, "bytes": max}]);
    r["devices"] = json!([{"device": -1, "live_bytes": max, "peak_live_bytes": max, "alloc_calls": max, "alloc_bytes": max},
                          {"device": i32::MAX, "live_bytes": 0, "peak_live_bytes": max, "alloc_calls": 1, "alloc_bytes": max}]);
    r["callers"] = json!([{"library": "", "calls": max, "failures": max, "bytes": max},
                          {"library": "/", "calls": max, "failures": max, "bytes": max}]);
    r["failures"] = json!([
        failure("", max, i32::MIN, -1, max, Some(max), Some(0)),
        failure("aclrtMalloc", 0, 207001, 0, 0, Some(0), Some(0))
    ]);
    r["failures"][0]["t_ms"] = json!(max);
    r["failures_dropped"] = json!(max);
    r["started_unix_ms"] = json!(max);
    r["written_unix_ms"] = json!(0);
    // Out of order, repeated and extreme samples.
    r["timeline"] = json!({"interval_ms": 0, "samples": [
        {"t_ms": max, "live_bytes": max, "max_live_bytes": 0},
        {"t_ms": 0, "live_bytes": 0, "max_live_bytes": max},
        {"t_ms": 0, "live_bytes": 5, "max_live_bytes": 5},
        {"t_ms": 7, "live_bytes": max, "max_live_bytes": max}]});
    r["by_api"] = json!({"aclrtMallocPhysical": {"calls": 0, "failures": max, "bytes": max}});
    r["errors"] =
        json!({"panics": max, "unresolved_calls": max, "table_full": max, "null_results": max, "write_errors": max});
    let path = write(dir.path(), "hostile.json", &r);
    let mut other = recording(2, "h", 0);
    other["started_unix_ms"] = json!(0);
    let other = write(dir.path(), "other.json", &other);
    let html = dir.path().join("r.html");
    let trace = dir.path().join("t.json");
    let json_out = dir.path().join("m.json");
    let out = run(cli()
        .arg("report")
        .arg(&path)
        .arg(&other)
        .arg("--html")
        .arg(&html)
        .arg("--trace-event")
        .arg(&trace)
        .arg("--json")
        .arg(&json_out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    for file in [&trace, &json_out] {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(file).unwrap()).expect("valid JSON");
    }
    let out = run(cli().arg("diff").arg(&path).arg(&other).arg("--html").arg(&html));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn help_documents_the_exit_statuses() {
    for command in ["report", "diff"] {
        let out = run(cli().args([command, "--help"]));
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        for text in
            ["65  a file is not a recording", "66  an input is missing", "73  an output file", "74  a read failed"]
        {
            assert!(help.contains(text), "{command}: {text:?} in {help}");
        }
    }
}
