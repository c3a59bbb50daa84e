//! Hooks below the ACL API (issue 15): the runtime's rtMalloc/rtFree and
//! the driver's halMemAlloc/halMemFree, where HCCL, ATB and GE allocate.
//! tests/fixtures/below_acl/ builds the layers as CANN stacks them, each
//! calling the one under it through the PLT: an ACL on rtMalloc, rtMalloc
//! on halMemAlloc, and a stand-in for HCCL calling both directly (rtMalloc
//! in its 4- and its older 3-argument form, and through `dlsym`, both on the
//! global scope and on the driver's handle). The fake driver keeps its own
//! accounts: the recording must equal them, each byte counted once.

use serde_json::Value;
use std::path::PathBuf;
use support::fixtures::{MIB, n, read_json};

fn client() -> PathBuf {
    let dir = support::fixture_dir().display().to_string();
    let include = "-Itests/fixtures/below_acl".to_owned();
    let rpath = format!("-Wl,-rpath,{dir}");
    let lib = |out: &str, source: &str, soname: &str, links: &[&str]| {
        let mut args = vec![include.clone(), "-shared".into(), "-fPIC".into(), format!("-Wl,-soname,{soname}")];
        args.extend([format!("-L{dir}"), rpath.clone(), "-pthread".into()]);
        args.extend(links.iter().map(|l| l.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::compile_c(out, &[source], &args);
    };
    lib("libascend_hal.so", "tests/fixtures/below_acl/fake_hal.c", "libascend_hal.so", &[]);
    lib("libruntime.so", "tests/fixtures/below_acl/fake_rt.c", "libruntime.so", &["-lascend_hal"]);
    lib("libacl_over_rt.so", "tests/fixtures/below_acl/acl_over_rt.c", "libacl_over_rt.so", &["-lruntime"]);
    lib(
        "libhccl_stub.so",
        "tests/fixtures/below_acl/hccl_stub.c",
        "libhccl_stub.so",
        &["-lruntime", "-lascend_hal", "-ldl"],
    );
    let link = format!("-L{dir}");
    let args = [include.as_str(), &link, &rpath, "-lacl_over_rt", "-lhccl_stub", "-lascend_hal"];
    support::compile_c("below_acl_client", &["tests/fixtures/below_acl/client.c"], &args)
}

fn api(rec: &Value, name: &str, key: &str) -> u64 {
    n(rec, &format!("/by_api/{name}/{key}"))
}

#[test]
fn allocations_below_the_acl_api_are_counted_once_with_their_library() {
    let dir = support::fixture_dir().join("below-acl");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("below.json");
    let output = support::run_ok(&mut support::fixtures::traced(&client(), &trace, 60_000));
    let driver = &support::fixtures::json_lines(&output)[0];
    let rec = read_json(&trace);

    // What the driver saw: 9 allocations, one per outermost call (the ACL's
    // went through rtMalloc, rtMalloc's through halMemAlloc, all nested),
    // two of them bound through dlsym.
    assert_eq!(n(driver, "/alloc_calls"), 9, "{driver}");
    let outermost =
        api(&rec, "aclrtMalloc", "calls") + api(&rec, "rtMalloc", "calls") + api(&rec, "halMemAlloc", "calls");
    assert_eq!(outermost, n(driver, "/alloc_calls"), "{}", rec["by_api"]);
    assert_eq!(
        [api(&rec, "aclrtMalloc", "bytes"), api(&rec, "rtMalloc", "bytes"), api(&rec, "halMemAlloc", "bytes")],
        [8 * MIB, 32 * MIB + 2 * MIB + MIB / 2 + 3 * MIB, 4 * MIB + MIB + MIB]
    );
    assert_eq!((api(&rec, "halMemAlloc", "failures"), api(&rec, "rtFree", "calls")), (1, 2));
    assert_eq!(api(&rec, "halMemFree", "calls"), 2);

    // Device and pinned host memory equal the driver's accounts exactly: the
    // type (rtMalloc) or flag (halMemAlloc) argument says which.
    assert_eq!(n(&rec, "/totals/peak_live_bytes"), n(driver, "/device_peak"));
    assert_eq!(n(&rec, "/totals/peak_live_bytes"), 50 * MIB);
    assert_eq!(n(&rec, "/totals/live_bytes"), n(driver, "/device_live"));
    assert_eq!(n(&rec, "/totals/live_bytes"), 40 * MIB);
    assert_eq!(n(&rec, "/host/live_bytes"), n(driver, "/host_live"));
    assert_eq!(n(&rec, "/host/live_bytes"), MIB + MIB / 2);
    // The calls too: host memory through rtMalloc/halMemAlloc is counted
    // with the host, not the device, though the APIs are device-class.
    let counts = |pool: &str| {
        ["alloc_calls", "alloc_bytes", "failed_calls", "free_calls", "freed_bytes"]
            .map(|k| n(&rec, &format!("/{pool}/{k}")))
    };
    assert_eq!(counts("totals"), [6, 50 * MIB, 1, 4, 10 * MIB]);
    assert_eq!(counts("host"), [2, MIB + MIB / 2, 0, 0, 0]);

    // Held by the calling library: the program's 8 MiB through the ACL, the
    // stand-in for HCCL's buffers (42 MiB at the peak, while the dlsym-bound
    // 4 MiB were live; 32 MiB at the end).
    let callers = rec["callers"].as_array().unwrap();
    let caller = |suffix: &str| {
        callers.iter().find(|c| c["library"].as_str().unwrap().ends_with(suffix)).unwrap_or_else(|| panic!("{suffix}"))
    };
    let (own, hccl) = (caller("/below_acl_client"), caller("/libhccl_stub.so"));
    assert_eq!((n(own, "/live/device"), n(own, "/at_peak/device")), (8 * MIB, 8 * MIB), "{own}");
    assert_eq!((n(hccl, "/live/device"), n(hccl, "/at_peak/device")), (32 * MIB, 42 * MIB), "{hccl}");
    assert_eq!(n(hccl, "/live/host"), MIB + MIB / 2, "{hccl}");
    assert_eq!(callers.len(), 2, "nothing attributed to the runtime layers themselves: {callers:?}");

    // The driver's out-of-memory code is a failure of its own, with its size.
    let failures = rec["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!((failures[0]["api"].as_str(), n(&failures[0], "/code")), (Some("halMemAlloc"), 6));
    assert_eq!(n(&failures[0], "/size"), 1 << 40);
    // The report calls it out of memory (DRV_ERROR_OUT_OF_MEMORY).
    let report = support::run_ok(std::process::Command::new(support::cli()).arg("report").arg(&trace));
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("[out-of-memory]"), "{text}");
    // Apart from the ACL's: 4 rtMalloc and 4 halMemAlloc calls, 37.5 + 6 MiB.
    let row = text.lines().find(|l| l.trim_start().starts_with("below the runtime API")).expect("row");
    assert!(row.contains("8 calls, 43.5 MiB, 1 failed (halMemAlloc, rtMalloc: "), "{row}");
}
