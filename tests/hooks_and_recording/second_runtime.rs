//! The runtime seam holds: the library built with the tests' toy second
//! runtime (`crates/common/src/runtime/toy.rs`, feature `toy-runtime`: its
//! facts, its two-line hook list, nothing else) serves both runtimes in one
//! process. Each runtime decides on its own variable; the toy's calls, linked
//! or found by `dlsym` on its handle, are recorded beside the NPU's; the CLI
//! reports the recording without knowing the toy. The ordinary library has no
//! trace of it (tests/hooks_and_recording/exports.rs).

use std::path::{Path, PathBuf};
use std::process::Command;
use support::fixtures::{self as common, api_calls, n};

/// libtoyrt.so and the client linked with it and the fake NPU runtime.
fn client() -> PathBuf {
    common::fake_runtime();
    let dir = support::fixture_dir().display().to_string();
    support::compile_c(
        "libtoyrt.so",
        &["tests/fixtures/toy_runtime.c"],
        &["-shared", "-fPIC", "-Wl,-soname,libtoyrt.so"],
    );
    support::compile_c(
        "toy_client",
        &["tests/fixtures/toy_client.c"],
        &["-Itests/fake_runtime", &format!("-L{dir}"), "-lascendcl", "-ltoyrt", &format!("-Wl,-rpath,{dir}"), "-ldl"],
    )
}

fn run(trace: &Path, toy_conf: Option<&str>, npu_conf: Option<&str>) -> (Vec<String>, String) {
    run_with(trace, toy_conf, npu_conf, &[])
}

fn run_with(
    trace: &Path,
    toy_conf: Option<&str>,
    npu_conf: Option<&str>,
    env: &[(&str, &str)],
) -> (Vec<String>, String) {
    let mut command = support::clean_command(client());
    command.envs(env.iter().copied());
    command
        .env("LD_PRELOAD", support::library_with_toy_runtime())
        .env("LD_LIBRARY_PATH", support::fixture_dir())
        .env("NPU_ALLOC_SHIM_TRACE", trace)
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0");
    for (var, value) in [("TOY_ALLOC_CONF", toy_conf), ("PYTORCH_NPU_ALLOC_CONF", npu_conf)] {
        if let Some(value) = value {
            command.env(var, value);
        }
    }
    let output = common::ok(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    (stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn each_runtime_decides_on_its_own_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = run(&dir.path().join("t.json"), None, None);
    assert_eq!(
        lines[..2],
        ["TOY_ALLOC_CONF=expandable_segments:True", "PYTORCH_NPU_ALLOC_CONF=expandable_segments:True"]
    );
    // The toy's value conflict keeps its variable; the NPU's is still set.
    let (lines, stderr) = run(&dir.path().join("t.json"), Some("backend:async"), None);
    assert_eq!(lines[..2], ["TOY_ALLOC_CONF=backend:async", "PYTORCH_NPU_ALLOC_CONF=expandable_segments:True"]);
    assert!(stderr.contains("TOY_ALLOC_CONF=\"backend:async\" sets backend, which torch_toy refuses"), "{stderr}");
    // And the other way round; a toy value it accepts gets the pair appended.
    let (lines, _) = run(&dir.path().join("t.json"), Some("backend:native"), Some("max_split_size_mb:256"));
    assert_eq!(
        lines[..2],
        ["TOY_ALLOC_CONF=backend:native,expandable_segments:True", "PYTORCH_NPU_ALLOC_CONF=max_split_size_mb:256"]
    );
}

#[test]
fn both_runtimes_are_recorded_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let (lines, _) = run(&trace, None, None);
    assert_eq!(lines.last().map(String::as_str), Some("{\"rc\":0,\"oom\":2}"));
    let rec = common::read_json(&trace);
    // The NPU is called first: the recording is about it.
    assert_eq!(rec["runtime"], "npu");
    assert_eq!(api_calls(&rec, "aclrtMalloc"), 1);
    // Two linked toyMalloc calls, one through dlsym on the toy's handle, one refused.
    assert_eq!(api_calls(&rec, "toyMalloc"), 4, "{}", rec["by_api"]);
    assert_eq!(n(&rec, "/by_api/toyMalloc/failures"), 1);
    assert_eq!(n(&rec, "/by_api/toyMalloc/bytes"), (3 + 5 + 7) << 20);
    assert_eq!(api_calls(&rec, "toyFree"), 1);
    // Device memory of both runtimes: 1 + 5 + 7 MiB live, 3 MiB freed.
    assert_eq!(n(&rec, "/totals/live_bytes"), (1 + 5 + 7) << 20);
    assert_eq!(n(&rec, "/totals/freed_bytes"), 3 << 20);
    let failure = &rec["failures"][0];
    assert_eq!((failure["api"].as_str(), failure["code"].as_i64()), (Some("toyMalloc"), Some(2)));
    // The CLI reads it without knowing the toy runtime.
    let out = Command::new(support::cli()).arg("report").arg(&trace).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("toyMalloc"));
}

/// A panic in recording code unwinds and is caught inside the library (its
/// unwinder is linked in statically, no libgcc_s): the program goes on, the
/// failed call returns the runtime's own code, and the recording counts it.
#[test]
fn a_panic_in_the_recorder_is_caught_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let (lines, _) = run_with(&trace, None, None, &[("TOY_RECORDER_PANICS", "1")]);
    assert_eq!(lines.last().map(String::as_str), Some("{\"rc\":0,\"oom\":2}"));
    let rec = common::read_json(&trace);
    // The toy's one failed call asked for memory information: one panic.
    assert_eq!(n(&rec, "/errors/panics"), 1, "{}", rec["errors"]);
    assert_eq!(api_calls(&rec, "toyMalloc"), 4, "{}", rec["by_api"]);
    // Without the switch, none.
    let (_, _) = run(&trace, None, None);
    assert_eq!(n(&common::read_json(&trace), "/errors/panics"), 0);
}
