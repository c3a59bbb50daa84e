//! The allocation hooks (issue 4) against a fake Ascend runtime.
//!
//! The fixtures (tests/fake_runtime, tests/fixtures) keep their own exact
//! accounts: the fake runtime counts every call it serves and the programs
//! count every call they make. A recording written by the preloaded library
//! must equal those numbers exactly, for every binding path, with threads and
//! across fork.
//!
//! The first group checks the fixtures themselves (no library involved) and
//! what must hold with or without hooks; the second compares recordings.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::run_ok as run;

// ---- fixtures ----

struct Fixtures {
    fake: PathBuf,
    plt_probe: PathBuf,
    selftest: PathBuf,
    /// acl_workload linked with libascendcl (every bind mode).
    workload: PathBuf,
    /// acl_workload without the link: libascendcl arrives by dlopen only.
    workload_dlopen: PathBuf,
    next_probe: PathBuf,
    next_probe_main: PathBuf,
    no_runtime: PathBuf,
}

/// Compiles a fixture (stale when a source or a fixture header is newer).
fn build(out: &str, sources: &[&str], args: &[String]) -> PathBuf {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::compile_c(out, sources, &args)
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = support::fixture_dir().display().to_string();
        let include = format!("-I{}", support::repo().join("tests/fake_runtime").display());
        let strings = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let link_fake = |extra: &[&str]| {
            let mut args = strings(extra);
            args.extend([
                include.clone(),
                format!("-L{dir}"),
                "-lascendcl".into(),
                format!("-Wl,-rpath,{dir}"),
                "-ldl".into(),
                "-pthread".into(),
            ]);
            args
        };
        let fake = build(
            "libascendcl.so",
            &["tests/fake_runtime/fake_ascendcl.c"],
            &strings(&["-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread"]),
        );
        Fixtures {
            plt_probe: build(
                "libpltprobe.so",
                &["tests/fake_runtime/plt_probe.c"],
                &[include.clone(), "-shared".into(), "-fPIC".into(), "-ldl".into()],
            ),
            selftest: build("fake_selftest", &["tests/fake_runtime/fake_selftest.c"], &link_fake(&[])),
            workload: build("acl_workload", &["tests/fixtures/acl_workload.c"], &link_fake(&["-DWORKLOAD_LINKED"])),
            workload_dlopen: build(
                "acl_workload_dlopen",
                &["tests/fixtures/acl_workload.c"],
                &[include.clone(), format!("-Wl,-rpath,{dir}"), "-ldl".into(), "-pthread".into()],
            ),
            next_probe: build(
                "libnextprobe.so",
                &["tests/fixtures/rtld_next_probe.c"],
                &strings(&["-DPROBE_LIBRARY", "-shared", "-fPIC", "-ldl"]),
            ),
            next_probe_main: build("nextprobe", &["tests/fixtures/rtld_next_probe.c"], &[]),
            no_runtime: build("no_runtime", &["tests/fixtures/no_runtime.c"], &strings(&["-ldl"])),
            fake,
        }
    })
}

// ---- running ----

/// One JSON value per stdout line.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Runs acl_workload preloaded with tracing into `dir` (t.<pid>.json).
fn traced(program: &Path, args: &[&str], dir: &Path) -> Vec<Value> {
    let output = run(support::preloaded(program)
        .args(args)
        .env("NPU_ALLOC_SHIM_TRACE", dir.join("t.%p.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0"));
    json_lines(&output)
}

fn recording(dir: &Path, pid: u64) -> Value {
    let path = dir.join(format!("t.{pid}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        let found: Vec<_> =
            std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        panic!("{}: {e} (the directory holds {found:?})", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---- reading JSON ----

/// `v` at a dotted path (numbers index lists); panics naming the path when
/// it is missing.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| {
        let next = match key.parse::<usize>() {
            Ok(index) if v.is_array() => v.get(index),
            _ => v.get(key),
        };
        next.unwrap_or_else(|| panic!("missing key {path:?} in {v}"))
    })
}

fn n(v: &Value, path: &str) -> u64 {
    at(v, path).as_u64().unwrap_or_else(|| panic!("{path} is not an unsigned integer: {}", at(v, path)))
}

/// A field of an optional object, 0 when the object is absent.
fn n_or_0(v: Option<&Value>, key: &str) -> u64 {
    v.map_or(0, |v| n(v, key))
}

fn list<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path).as_array().unwrap_or_else(|| panic!("{path} is not a list"))
}

const COUNTERS: [&str; 7] =
    ["alloc_calls", "failed_calls", "free_calls", "alloc_bytes", "freed_bytes", "live_bytes", "peak_live_bytes"];

/// The functions the library hooks (issue 4).
const HOOKED: [&str; 16] = [
    "aclrtMalloc",
    "aclrtMallocAlign32",
    "aclrtMallocCached",
    "aclrtMallocWithCfg",
    "aclrtFree",
    "aclrtReserveMemAddress",
    "aclrtReleaseMemAddress",
    "aclrtMallocPhysical",
    "aclrtFreePhysical",
    "aclrtMapMem",
    "aclrtUnmapMem",
    "aclrtMallocHost",
    "aclrtMallocHostWithCfg",
    "aclrtFreeHost",
    "aclrtSetDevice",
    "aclrtGetMemInfo",
];

const DEVICE_ALLOCS: [&str; 5] =
    ["aclrtMalloc", "aclrtMallocAlign32", "aclrtMallocCached", "aclrtMallocWithCfg", "aclrtMallocPhysical"];
const DEVICE_FREES: [&str; 2] = ["aclrtFree", "aclrtFreePhysical"];
const HOST_ALLOCS: [&str; 2] = ["aclrtMallocHost", "aclrtMallocHostWithCfg"];
const HOST_FREES: [&str; 1] = ["aclrtFreeHost"];

/// Functions the library may call itself (free/total at a failure, the
/// device of a thread that never set one): the fake counts those calls too.
const LIBRARY_INTERNAL: [&str; 2] = ["aclrtGetMemInfo", "aclrtGetDevice"];

/// `by_api.<name>.bytes` a recording should show: what the fake counted,
/// except for aclrtReleaseMemAddress and aclrtUnmapMem, whose sizes the
/// library does not know (it keeps no table of VMM ranges; their bytes stay 0,
/// as "bytes released by frees of known pointers" reads).
fn expected_api_bytes(fake: &Value, name: &str) -> u64 {
    match name {
        "aclrtReleaseMemAddress" | "aclrtUnmapMem" => 0,
        _ => at(fake, "by_api").get(name).map_or(0, |a| n(a, "bytes")),
    }
}

/// The histogram bucket of a size: log2 buckets split into 4 equal
/// sub-buckets; sizes 0-3 one bucket each. Returns [lo, hi).
fn bucket(size: u64) -> (u64, u64) {
    if size < 4 {
        return (size, size + 1);
    }
    let k = 63 - size.leading_zeros();
    let width = 1u64 << (k - 2);
    let lo = (1u64 << k) + (size - (1u64 << k)) / width * width;
    (lo, lo.saturating_add(width))
}

/// The expected histogram from the fake's distinct sizes: lo -> (hi, count, bytes).
fn expected_histogram(fake: &Value) -> BTreeMap<u64, (u64, u64, u64)> {
    assert_eq!(n(fake, "sizes_dropped"), 0, "the fake ran out of size slots");
    let mut buckets = BTreeMap::new();
    for entry in list(fake, "sizes") {
        let (size, count) = (n(entry, "size"), n(entry, "count"));
        let (lo, hi) = bucket(size);
        let slot = buckets.entry(lo).or_insert((hi, 0, 0));
        slot.1 += count;
        slot.2 += size * count;
    }
    buckets
}

// ---- the fixtures agree with themselves ----

/// The fake's accounts add up and equal the calls the program made.
/// `preloaded`: the library may have made calls of its own (LIBRARY_INTERNAL).
fn assert_fake_consistent(line: &Value, preloaded: bool) {
    let fake = at(line, "fake");
    let made = at(line, "made");
    let api = |name: &str, key: &str| n(fake, &format!("by_api.{name}.{key}"));
    let sum = |names: &[&str], key: &str| names.iter().map(|name| api(name, key)).sum::<u64>();

    for (name, counts) in at(fake, "by_api").as_object().expect("by_api") {
        let made_calls = made.get(name).map_or(0, |m| n(m, "calls"));
        let made_failures = made.get(name).map_or(0, |m| n(m, "failures"));
        assert_eq!(n(counts, "calls"), n(counts, "successes") + n(counts, "failures"), "{name}");
        if preloaded && LIBRARY_INTERNAL.contains(&name.as_str()) {
            assert!(n(counts, "calls") >= made_calls, "{name}");
            continue;
        }
        assert_eq!(n(counts, "calls"), made_calls, "fake {name} calls vs made");
        assert_eq!(n(counts, "failures"), made_failures, "fake {name} failures");
    }

    for (section, allocs, frees) in
        [("device", &DEVICE_ALLOCS[..], &DEVICE_FREES[..]), ("host", &HOST_ALLOCS[..], &HOST_FREES[..])]
    {
        let c = |key: &str| n(fake, &format!("{section}.{key}"));
        assert_eq!(c("alloc_calls"), sum(allocs, "successes"), "{section}");
        assert_eq!(c("failed_calls"), sum(allocs, "failures"), "{section}");
        assert_eq!(c("alloc_bytes"), sum(allocs, "bytes"), "{section}");
        assert_eq!(c("free_calls"), sum(frees, "successes"), "{section}");
        assert_eq!(c("freed_bytes"), sum(frees, "bytes"), "{section}");
        assert!(c("peak_live_bytes") >= c("live_bytes"), "{section}");
        if !at(line, "child").as_bool().unwrap_or(false) {
            // (A forked child's accounts restart at the fork, with nothing live.)
            assert_eq!(c("alloc_bytes") - c("freed_bytes"), c("live_bytes"), "{section}");
        }
    }

    let devices = list(fake, "devices");
    assert_eq!(devices.len() as u64, n(fake, "device_count"));
    for key in ["live_bytes", "alloc_calls", "alloc_bytes"] {
        let total: u64 = devices.iter().map(|d| n(d, key)).sum();
        assert_eq!(total, n(fake, &format!("device.{key}")), "devices {key}");
    }
    let histogram = expected_histogram(fake);
    let count: u64 = histogram.values().map(|b| b.1).sum();
    let bytes: u64 = histogram.values().map(|b| b.2).sum();
    assert_eq!(count, n(fake, "device.alloc_calls"));
    assert_eq!(bytes, n(fake, "device.alloc_bytes"));
    assert_eq!(list(fake, "failures").len() as u64, n(fake, "device.failed_calls") + n(fake, "host.failed_calls"));
}

// ---- a recording equals the fake's accounts ----

/// Everything a recording says about one process equals what the fake runtime
/// counted and the program made in that process. `caller`: the program whose
/// code made every allocation call.
fn assert_recording_matches(rec: &Value, line: &Value, caller: Option<&Path>) {
    let fake = at(line, "fake");
    let made = at(line, "made");
    assert_eq!(at(rec, "schema"), "npu-alloc-shim/1");
    assert_eq!(at(rec, "pid"), at(line, "pid"), "recording of another process");
    assert_eq!(at(rec, "final"), true, "the recording at exit is final");

    // Counters.
    // With several devices the process peak is the sum of the device peaks
    // (the library keeps no process-wide counter every thread would share),
    // an upper bound of the true peak; each device's peak is exact (below).
    let upper_bound = at(rec, "totals_peak_is_upper_bound").as_bool().expect("a bool");
    let devices_used = list(rec, "devices").iter().filter(|d| n(d, "peak_live_bytes") > 0).count();
    assert_eq!(upper_bound, devices_used > 1);
    if upper_bound {
        let sum: u64 = list(rec, "devices").iter().map(|d| n(d, "peak_live_bytes")).sum();
        assert_eq!(n(rec, "totals.peak_live_bytes"), sum);
        assert!(sum >= n(fake, "device.peak_live_bytes"));
    }
    for (section, fake_section) in [("totals", "device"), ("host", "host")] {
        for key in COUNTERS {
            if upper_bound && section == "totals" && key == "peak_live_bytes" {
                continue;
            }
            assert_eq!(
                n(rec, &format!("{section}.{key}")),
                n(fake, &format!("{fake_section}.{key}")),
                "{section}.{key}"
            );
        }
        assert_eq!(n(rec, &format!("{section}.untracked_frees")), 0, "{section}");
    }

    // by_api: calls and failures as the caller made them (outermost), bytes
    // as the runtime counted them.
    let by_api = at(rec, "by_api").as_object().expect("by_api is an object");
    let names: BTreeSet<&str> = HOOKED.iter().copied().chain(by_api.keys().map(String::as_str)).collect();
    for name in names {
        let recorded = by_api.get(name);
        let made_entry = made.get(name);
        assert_eq!(n_or_0(recorded, "calls"), n_or_0(made_entry, "calls"), "by_api.{name}.calls");
        assert_eq!(n_or_0(recorded, "failures"), n_or_0(made_entry, "failures"), "by_api.{name}.failures");
        assert_eq!(n_or_0(recorded, "bytes"), expected_api_bytes(fake, name), "by_api.{name}.bytes");
    }

    // Devices: every device either side knows of (absent = all zero).
    let recorded: BTreeMap<u64, &Value> = list(rec, "devices").iter().map(|d| (n(d, "device"), d)).collect();
    let expected: BTreeMap<u64, &Value> = list(fake, "devices").iter().map(|d| (n(d, "device"), d)).collect();
    for id in recorded.keys().chain(expected.keys()) {
        for key in ["live_bytes", "peak_live_bytes", "alloc_calls", "alloc_bytes"] {
            assert_eq!(
                n_or_0(recorded.get(id).copied(), key),
                n_or_0(expected.get(id).copied(), key),
                "devices[{id}].{key}"
            );
        }
    }

    // Histogram: exactly the buckets of the sizes the fake served.
    let histogram: Vec<(u64, u64, u64, u64)> =
        list(rec, "histogram").iter().map(|b| (n(b, "lo"), n(b, "hi"), n(b, "count"), n(b, "bytes"))).collect();
    let want: Vec<(u64, u64, u64, u64)> =
        expected_histogram(fake).into_iter().map(|(lo, (hi, count, bytes))| (lo, hi, count, bytes)).collect();
    assert_eq!(histogram, want, "histogram (lo, hi, count, bytes)");

    // Failures, in order.
    let failures = list(rec, "failures");
    let fake_failures = list(fake, "failures");
    assert_eq!(failures.len(), fake_failures.len(), "failures: {failures:?}");
    let capacity = n(fake, "device_capacity");
    for (got, want) in failures.iter().zip(fake_failures) {
        assert_eq!(at(got, "api"), at(want, "api"), "failure api");
        for key in ["size", "device"] {
            assert_eq!(n(got, key), n(want, key), "failure {key}: {got}");
        }
        assert_eq!(at(got, "code").as_i64(), at(want, "code").as_i64(), "failure code: {got}");
        assert_eq!(n(got, "live_bytes"), n(want, "total_live_bytes"), "failure live_bytes: {got}");
        if !at(got, "device_total").is_null() {
            assert_eq!(n(got, "device_total"), capacity, "{got}");
            assert_eq!(n(got, "device_free"), capacity - n(want, "device_live_bytes"), "{got}");
        }
        assert!(at(got, "t_ms").is_u64(), "failure t_ms: {got}");
    }
    assert_eq!(n(rec, "failures_dropped"), n(fake, "failures_dropped"));

    // Callers: all allocation calls, device and host, failed ones included.
    let callers = list(rec, "callers");
    let sum = |key: &str| callers.iter().map(|c| n(c, key)).sum::<u64>();
    let total = |key: &str| n(fake, &format!("device.{key}")) + n(fake, &format!("host.{key}"));
    assert_eq!(sum("calls"), total("alloc_calls") + total("failed_calls"), "callers calls");
    assert_eq!(sum("failures"), total("failed_calls"), "callers failures");
    assert_eq!(sum("bytes"), total("alloc_bytes"), "callers bytes");
    if let Some(program) = caller {
        let canonical = program.canonicalize().expect("program path");
        let entry = callers.iter().find(|c| {
            let library = Path::new(at(c, "library").as_str().unwrap_or(""));
            library == program || library == canonical
        });
        let entry = entry.unwrap_or_else(|| panic!("no caller {}: {callers:?}", program.display()));
        assert_eq!(n(entry, "calls"), sum("calls"), "every call came from the program");
    }

    // The timeline never exceeds the peak; the library survived without trouble.
    if let Some(samples) = rec.pointer("/timeline/samples").and_then(Value::as_array) {
        let peak = n(rec, "totals.peak_live_bytes");
        for sample in samples {
            assert!(n(sample, "max_live_bytes") <= peak, "timeline {sample}");
            assert!(n(sample, "live_bytes") <= n(sample, "max_live_bytes"));
        }
    }
    for key in ["panics", "unresolved_calls", "table_full", "null_results", "write_errors"] {
        if let Some(value) = rec.get("errors").and_then(|e| e.get(key)) {
            assert_eq!(value.as_u64(), Some(0), "errors.{key}");
        }
    }
}

/// Runs acl_workload preloaded and traced; checks each process's recording.
fn check_workload(program: &Path, args: &[&str], processes: usize) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = traced(program, args, dir.path());
    assert_eq!(lines.len(), processes, "{args:?}: {lines:?}");
    for line in &lines {
        assert_fake_consistent(line, true);
        let rec = recording(dir.path(), n(line, "pid"));
        assert_recording_matches(&rec, line, Some(program));
    }
    lines
}

const FULL: [&str; 7] = ["--iters", "8", "--oom", "--vmm", "--host", "--leak", "2"];

fn with_bind<'a>(bind: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--bind", bind];
    all.extend_from_slice(args);
    all
}

// ---- tests that hold now ----

#[test]
fn fake_runtime_selftest() {
    let f = fixtures();
    let env = [
        ("FAKE_ACL_DEVICE_BYTES", "67108864"),
        ("FAKE_ACL_DEVICE_COUNT", "2"),
        ("FAKE_ACL_HOST_BYTES", "1048576"),
        ("FAKE_ACL_OOM_CODE", "207018"),
    ];
    let stdout = |output: Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let out = run(support::clean_command(&f.selftest).envs(env));
    assert_eq!(stdout(out), "selftest ok: main\n");
    // Align32 reaches aclrtMalloc through the PLT: an interposer sees it.
    let out = run(support::clean_command(&f.selftest).envs(env).env("LD_PRELOAD", &f.plt_probe));
    assert_eq!(stdout(out), "selftest ok: main (plt probe)\n");
    let out = run(support::clean_command(&f.selftest).arg("fail-every").env("FAKE_ACL_FAIL_EVERY", "3"));
    assert_eq!(stdout(out), "selftest ok: fail-every\n");
    let out = run(support::clean_command(&f.selftest).arg("null").env("FAKE_ACL_NULL_ON_SUCCESS", "1"));
    assert_eq!(stdout(out), "selftest ok: null\n");
}

#[test]
fn workload_fixture_is_self_consistent() {
    let f = fixtures();
    let variants = [
        (&f.workload, "plt"),
        (&f.workload, "default"),
        (&f.workload, "handle"),
        (&f.workload_dlopen, "default"),
        (&f.workload_dlopen, "handle"),
    ];
    for (program, bind) in variants {
        let args =
            with_bind(bind, &["--threads", "4", "--iters", "6", "--fork", "--oom", "--vmm", "--host", "--leak", "3"]);
        let lines = json_lines(&run(support::clean_command(program).args(&args)));
        assert_eq!(lines.len(), 2, "{args:?}: parent and child");
        let (child, parent) = match at(&lines[0], "child").as_bool() {
            Some(true) => (&lines[0], &lines[1]),
            _ => (&lines[1], &lines[0]),
        };
        assert_eq!(n(child, "ppid"), n(parent, "pid"));
        for line in &lines {
            assert_eq!(at(line, "bind"), bind);
            assert_fake_consistent(line, false);
            let fake = at(line, "fake");
            // What the options promise: 4 devices busy, two OOMs, 3 leaks,
            // Align32 counted once (made == fake, checked above).
            let busy = list(fake, "devices").iter().filter(|d| n(d, "alloc_calls") > 0).count();
            assert_eq!(busy, 4, "{bind}: devices in use");
            assert_eq!(n(fake, "device.live_bytes"), 512 + 1000 + 4096, "leaks");
            assert_eq!(n(fake, "host.live_bytes"), 0);
            let failures = list(fake, "failures");
            let capacity = n(fake, "device_capacity");
            assert_eq!(failures.len(), 2);
            assert_eq!(at(&failures[0], "api"), "aclrtMalloc");
            assert_eq!(n(&failures[0], "size"), capacity + 1);
            assert_eq!(n(&failures[0], "device"), 1);
            assert_eq!(at(&failures[1], "api"), "aclrtMallocAlign32");
            assert_eq!(n(&failures[1], "device"), 0);
            assert!(n(fake, "by_api.aclrtMapMem.calls") > 0);
            assert!(n(fake, "by_api.aclrtMallocHostWithCfg.calls") > 0);
            assert!(list(fake, "sizes").len() >= 12, "sizes spread out");
        }
        // The child ran other iterations than the parent.
        assert_ne!(at(child, "fake.sizes"), at(parent, "fake.sizes"));
    }
}

#[test]
fn workload_plt_needs_the_linked_build() {
    let output = support::run_with_timeout(
        support::clean_command(&fixtures().workload_dlopen).args(["--bind", "plt"]),
        support::LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn workload_runs_preloaded_without_trace_and_writes_nothing() {
    let f = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    for bind in ["plt", "default", "handle"] {
        let args = with_bind(bind, &["--threads", "2", "--fork", "--oom", "--vmm", "--host"]);
        let output = run(support::preloaded(&f.workload).args(&args).current_dir(dir.path()).env("TMPDIR", dir.path()));
        let lines = json_lines(&output);
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_fake_consistent(line, true);
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read_dir").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "files written without tracing: {left:?}");
}

#[test]
fn program_without_runtime_runs_preloaded() {
    let f = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(support::preloaded(&f.no_runtime)
        .env("NPU_ALLOC_SHIM_TRACE", dir.path().join("t.%p.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0"));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    // A recording, if any, shows no allocation.
    for entry in std::fs::read_dir(dir.path()).expect("read_dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read recording");
        let rec: Value = serde_json::from_str(&text).expect("recording is JSON");
        assert_eq!(n(&rec, "totals.alloc_calls"), 0);
        assert_eq!(n(&rec, "totals.live_bytes"), 0);
    }
    // /bin/true too.
    run(&mut support::preloaded("/bin/true"));
}

#[test]
fn rtld_next_stays_correct_with_library_first() {
    let f = fixtures();
    let mut preload = support::library().into_os_string();
    preload.push(" ");
    preload.push(&f.next_probe);
    let output = run(support::clean_command(&f.next_probe_main).env("LD_PRELOAD", &preload));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo\nthree\n");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nextprobe: forwarded 3"),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The Python interpreter itself (not a pyenv shim script), or None.
fn python() -> Option<PathBuf> {
    let output = support::run_with_timeout(
        support::clean_command("python3").args(["-c", "import sys; print(sys.executable)"]),
        support::LIMIT,
    );
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

fn ctypes_client(command: Command, dump: &Path, extra: &[&str]) -> Value {
    let mut command = command;
    command.arg(support::repo().join("tests/fixtures/ctypes_client.py")).arg(&fixtures().fake).arg(dump).args(extra);
    let lines = json_lines(&run(&mut command));
    assert_eq!(lines.len(), 1);
    lines.into_iter().next().expect("one line")
}

#[test]
fn ctypes_client_fixture_is_self_consistent() {
    let Some(python) = python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let report = ctypes_client(support::clean_command(&python), &dir.path().join("dump.json"), &["--no-shim"]);
    let line = serde_json::json!({
        "pid": report["pid"], "child": false, "made": report["made"], "fake": report["fake_final"],
    });
    assert_fake_consistent(&line, false);
    assert_eq!(n(&report, "fake_final.device.live_bytes"), 65541);
    assert_eq!(n(&report, "fake_final.devices.1.live_bytes"), 65541);
}

// ---- recordings equal the runtime's accounts ----

#[test]
fn recording_matches_runtime_plt() {
    check_workload(&fixtures().workload, &with_bind("plt", &FULL), 1);
}

#[test]
fn recording_matches_runtime_rtld_default() {
    check_workload(&fixtures().workload, &with_bind("default", &FULL), 1);
}

#[test]
fn recording_matches_runtime_dlsym_handle() {
    check_workload(&fixtures().workload, &with_bind("handle", &FULL), 1);
}

#[test]
fn recording_matches_runtime_loaded_by_dlopen_only() {
    // libascendcl is not linked: RTLD_NEXT cannot find it; the handle mode
    // loads it RTLD_LOCAL, as a Python extension does.
    for bind in ["default", "handle"] {
        check_workload(&fixtures().workload_dlopen, &with_bind(bind, &FULL), 1);
    }
}

#[test]
fn recording_matches_runtime_with_threads() {
    for bind in ["plt", "default", "handle"] {
        let args = with_bind(bind, &["--threads", "8", "--iters", "24", "--vmm", "--host", "--oom", "--leak", "1"]);
        check_workload(&fixtures().workload, &args, 1);
    }
}

/// Blocks freed by another thread, on another device (the live table keeps
/// each device's pointers apart and a free looks in its own device's first):
/// every count still equals the runtime's, nothing is an untracked free.
#[test]
fn recording_matches_runtime_when_another_thread_frees() {
    for bind in ["plt", "handle"] {
        let args = with_bind(bind, &["--threads", "4", "--iters", "8", "--handoff", "--host", "--vmm", "--leak", "1"]);
        check_workload(&fixtures().workload, &args, 1);
    }
}

#[test]
fn recording_per_process_across_fork() {
    for bind in ["plt", "handle"] {
        let args =
            with_bind(bind, &["--threads", "2", "--iters", "6", "--fork", "--vmm", "--host", "--oom", "--leak", "2"]);
        let lines = check_workload(&fixtures().workload, &args, 2);
        assert_ne!(n(&lines[0], "pid"), n(&lines[1], "pid"));
    }
}

#[test]
fn ctypes_client_matches_recording_and_c_api() {
    let Some(python) = python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("dump.json");
    let mut command = support::preloaded(&python);
    command.env("NPU_ALLOC_SHIM_TRACE", dir.path().join("t.%p.json")).env("NPU_ALLOC_SHIM_FLUSH_MS", "0");
    let report = ctypes_client(command, &dump, &[]);
    assert!(!at(&report, "version").as_str().unwrap_or("").is_empty());

    // The C API at the dump equals the fake at that moment, and so does the dump.
    assert_eq!(n(&report, "dump_rc"), 0);
    let fake_at_dump = at(&report, "fake_at_dump");
    for (api, fake_section) in [("totals_at_dump", "device"), ("host_at_dump", "host")] {
        for key in COUNTERS {
            assert_eq!(
                n(&report, &format!("{api}.{key}")),
                n(fake_at_dump, &format!("{fake_section}.{key}")),
                "{api}.{key}"
            );
        }
        assert_eq!(n(&report, &format!("{api}.untracked_frees")), 0);
    }
    let dumped: Value = serde_json::from_str(&std::fs::read_to_string(&dump).expect("dump written")).expect("JSON");
    assert_eq!(at(&dumped, "pid"), at(&report, "pid"));
    for key in COUNTERS {
        assert_eq!(
            n(&dumped, &format!("totals.{key}")),
            n(&report, &format!("totals_at_dump.{key}")),
            "dump totals.{key}"
        );
        assert_eq!(n(&dumped, &format!("host.{key}")), n(&report, &format!("host_at_dump.{key}")), "dump host.{key}");
    }

    // Peaks restart at what is live, then follow the burst.
    for (reset, burst, bytes) in [
        ("after_reset", "after_burst", "burst_device_bytes"),
        ("host_after_reset", "host_after_burst", "burst_host_bytes"),
    ] {
        let live = n(&report, &format!("{reset}.live_bytes"));
        assert_eq!(n(&report, &format!("{reset}.peak_live_bytes")), live, "{reset}");
        assert_eq!(n(&report, &format!("{burst}.peak_live_bytes")), live + n(&report, bytes), "{burst}");
    }

    // The recording at exit equals the fake at exit (the burst is above every
    // earlier peak, so the reset does not show).
    let line = serde_json::json!({
        "pid": report["pid"], "child": false, "made": report["made"], "fake": report["fake_final"],
    });
    assert_fake_consistent(&line, true);
    let rec = recording(dir.path(), n(&report, "pid"));
    assert_recording_matches(&rec, &line, None);
}

#[test]
fn histogram_buckets_follow_the_documented_rule() {
    assert_eq!(bucket(0), (0, 1));
    assert_eq!(bucket(3), (3, 4));
    assert_eq!(bucket(4), (4, 5));
    assert_eq!(bucket(7), (7, 8));
    assert_eq!(bucket(8), (8, 10));
    assert_eq!(bucket(512), (512, 640));
    assert_eq!(bucket(1000), (896, 1024));
    assert_eq!(bucket(3 << 20), (3 << 20, (3 << 20) + (1 << 19)));
    for size in [5u64, 100, 4103, 12320, 1 << 30, (1 << 30) + 7] {
        let (lo, hi) = bucket(size);
        assert!(lo <= size && size < hi, "{size} in [{lo}, {hi})");
    }
}
