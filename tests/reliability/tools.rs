//! Valgrind and sanitizers on the C programs with the library preloaded
//! (issue 7). Valgrind's memcheck sees the library's own code and memory:
//! invalid reads and writes, uses of uninitialised values, definite leaks
//! (what the library keeps for the process's lifetime is "still reachable",
//! which is allowed). AddressSanitizer, UndefinedBehaviorSanitizer and
//! ThreadSanitizer instrument the C programs; the library runs inside them,
//! its allocations go through ASan's allocator, its threads through TSan's.
//!
//! A tool that is not installed is skipped with a message (Debian packages:
//! valgrind; libasan and libubsan come with gcc, libtsan too).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::fixtures::{self as common};

/// Programs and arguments that exercise the library: threads, fork, exec,
/// vfork, posix_spawn, exit from a thread, the C API, runtime errors.
fn scenarios(workload: &Path, shapes: &Path, load: &Path, with_fork: bool) -> Vec<(PathBuf, Vec<String>)> {
    let s = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let plugin = common::plugin().display().to_string();
    let mut out = vec![
        (workload.to_path_buf(), s(&["--threads", "4", "--iters", "6", "--vmm", "--host", "--oom", "--leak", "2"])),
        (workload.to_path_buf(), s(&["--bind", "handle", "--threads", "2", "--iters", "4", "--vmm", "--host"])),
        (load.to_path_buf(), s(&["4", "20000", "0", &plugin])),
        (shapes.to_path_buf(), s(&["thread-exit"])),
        (shapes.to_path_buf(), s(&["vfork-exec"])),
        (shapes.to_path_buf(), s(&["spawn"])),
        (shapes.to_path_buf(), s(&["chain", "2"])),
        (shapes.to_path_buf(), s(&["dump-after", "2", "60", "/nonexistent-npu-alloc-shim/d.json"])),
    ];
    if with_fork {
        out.push((
            workload.to_path_buf(),
            s(&["--threads", "2", "--iters", "6", "--fork", "--vmm", "--host", "--oom"]),
        ));
        out.push((shapes.to_path_buf(), s(&["fork"])));
        out.push((shapes.to_path_buf(), s(&["faults"])));
    }
    out
}

/// Runs each scenario under `wrap` (which sets up the trace, usually with
/// 20 ms writes so the flush thread works all along); every process must
/// exit 0 and write a recording.
fn run_all(tool: &str, scenarios: &[(PathBuf, Vec<String>)], wrap: impl Fn(&Path, &[String], &Path) -> Command) {
    let start = std::time::Instant::now();
    for (program, args) in scenarios {
        let dir = tempfile::tempdir().unwrap();
        let mut command = wrap(program, args, &dir.path().join("t.%p.json"));
        let output =
            common::run_group(&mut command, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool}: {} {args:?}: {}\n{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        // A recording under its final name, and no temporary file: a write
        // cut short by the process ending leaves only `.t.<pid>.json.<pid>.<n>.tmp`.
        let files = common::listing(dir.path());
        assert!(
            files.iter().any(|name| !name.to_string_lossy().starts_with('.')),
            "{tool}: {args:?} wrote no recording: {files:?}"
        );
        assert!(common::temporaries(dir.path()).is_empty(), "{tool}: {args:?} left a cut-short write: {files:?}");
    }
    common::figure(format!("{tool}: {} scenarios clean, {:.1} s", scenarios.len(), start.elapsed().as_secs_f64()));
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn valgrind_memcheck_finds_nothing() {
    if !has("valgrind") {
        println!("skipped: valgrind is not installed (Debian: apt-get install valgrind)");
        return;
    }
    let suppressions = support::repo().join("tests/fixtures/reliability.supp");
    let list = scenarios(&common::workload(), &common::shapes(), &common::load(), true);
    run_all("valgrind", &list, |program, args, trace| {
        let mut command = common::traced(Path::new("valgrind"), trace, 20);
        command
            .args(["-q", "--error-exitcode=99", "--trace-children=yes", "--leak-check=full"])
            .args(["--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"])
            .arg(format!("--suppressions={}", suppressions.display()))
            .arg(program)
            .args(args);
        command
    });
}

/// Valgrind answers `/proc/self/exe` with the program, as qemu-user does, but
/// runs no thread of its own. Taken for qemu, the library counted one thread
/// too few and its flush thread ended the process with `exit(0)` while the
/// main thread still slept (and, on a loaded machine, raced the main thread's
/// own exit and lost the final recording).
#[test]
fn valgrind_runs_a_threaded_program_to_its_end() {
    if !has("valgrind") {
        println!("skipped: valgrind is not installed (Debian: apt-get install valgrind)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.json");
    let mut command = common::traced(Path::new("valgrind"), &dir.path().join("t.%p.json"), 20);
    command.args(["-q", "--error-exitcode=99"]).arg(common::shapes()).args(["dump-after", "2", "300"]).arg(&dump);
    let output = common::ok(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\"mode\":\"dump-after\",\"allocs\":2,\"dump_rc\":0"),
        "the program was cut short: {stdout:?}"
    );
    assert!(dump.is_file(), "no dump written");
    let recordings: Vec<_> =
        common::listing(dir.path()).into_iter().filter(|n| n.to_string_lossy().starts_with("t.")).collect();
    assert_eq!(recordings.len(), 1, "{recordings:?}");
}

/// A C fixture built with a sanitizer; `None` when the compiler cannot.
fn sanitized(out: &str, source: &str, sanitizer: &str, extra: &[&str]) -> Option<PathBuf> {
    common::fake_runtime();
    let dir = support::fixture_dir().display().to_string();
    let include = format!("-I{}", support::repo().join("tests/fake_runtime").display());
    let (link, rpath) = (format!("-L{dir}"), format!("-Wl,-rpath,{dir}"));
    let mut args =
        vec![sanitizer, "-fno-omit-frame-pointer", &include, &link, "-lascendcl", &rpath, "-ldl", "-pthread"];
    args.extend_from_slice(extra);
    let built = std::panic::catch_unwind(|| common::build(out, &[source], &args));
    built.ok()
}

/// The sanitizer runtime that must come first in LD_PRELOAD.
fn runtime_of(name: &str) -> Option<PathBuf> {
    let output = Command::new("cc").arg(format!("-print-file-name={name}")).output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    path.is_absolute().then_some(path)
}

fn preload_after(runtime: &Path) -> String {
    format!("{} {}", runtime.display(), support::library().display())
}

#[test]
fn address_and_undefined_behaviour_sanitizers_find_nothing() {
    let flags = "-fsanitize=address,undefined";
    let ubsan_strict = "-fno-sanitize-recover=undefined";
    let (Some(runtime), Some(workload), Some(shapes), Some(load)) = (
        runtime_of("libasan.so"),
        sanitized(
            "reliability_asan_workload",
            "tests/fixtures/acl_workload.c",
            flags,
            &[ubsan_strict, "-DWORKLOAD_LINKED"],
        ),
        sanitized("reliability_asan_shapes", "tests/fixtures/reliability_shapes.c", flags, &[ubsan_strict]),
        sanitized("reliability_asan_load", "tests/fixtures/reliability_load.c", flags, &[ubsan_strict, "-lm"]),
    ) else {
        println!("skipped: cc cannot build with -fsanitize=address,undefined (Debian: gcc's libasan, libubsan)");
        return;
    };
    let preload = preload_after(&runtime);
    // No fork here: gcc 12's ASan allocator is not fork-safe (glibc's malloc
    // is). A child forked while another thread is inside malloc (the
    // library's flush thread starting up or writing) inherits ASan's
    // allocator lock held and hangs, whatever the library does. Valgrind
    // runs the fork scenarios.
    let list = scenarios(&workload, &shapes, &load, false);
    run_all("asan+ubsan", &list, |program, args, trace| {
        let mut command = common::traced(program, trace, 20);
        command.args(args).env("LD_PRELOAD", &preload).env("ASAN_OPTIONS", "detect_leaks=1");
        command
    });
}

/// Issue 13: naming the calling libraries (at every write of the recording)
/// must never read what a concurrent `dlclose` frees. Two threads load a
/// plugin, allocate through it and unload it every few calls while the
/// library writes its recording every millisecond; ASan's interceptors check
/// every string and memory read the library makes through libc.
#[test]
fn libraries_unloaded_while_recordings_are_written_are_never_read_after_free() {
    let flags = "-fsanitize=address,undefined";
    let (Some(runtime), Some(load)) = (
        runtime_of("libasan.so"),
        sanitized(
            "reliability_asan_load",
            "tests/fixtures/reliability_load.c",
            flags,
            &["-fno-sanitize-recover=undefined", "-lm"],
        ),
    ) else {
        println!("skipped: cc cannot build with -fsanitize=address,undefined (Debian: gcc's libasan, libubsan)");
        return;
    };
    let preload = preload_after(&runtime);
    let plugin = common::plugin().display().to_string();
    let list = vec![(load, ["2", "20000", "0", &plugin].map(String::from).to_vec())];
    run_all("asan, unloading during writes", &list, |program, args, trace| {
        let mut command = common::traced(program, trace, 1);
        command
            .args(args)
            .env("LD_PRELOAD", &preload)
            .env("ASAN_OPTIONS", "detect_leaks=1")
            .env("RELIABILITY_DL_EVERY", "8");
        command
    });
}

#[test]
fn thread_sanitizer_finds_nothing() {
    let (Some(runtime), Some(workload), Some(load)) = (
        runtime_of("libtsan.so"),
        sanitized(
            "reliability_tsan_workload",
            "tests/fixtures/acl_workload.c",
            "-fsanitize=thread",
            &["-DWORKLOAD_LINKED"],
        ),
        sanitized("reliability_tsan_load", "tests/fixtures/reliability_load.c", "-fsanitize=thread", &["-lm"]),
    ) else {
        println!("skipped: cc cannot build with -fsanitize=thread (Debian: gcc's libtsan)");
        return;
    };
    let preload = preload_after(&runtime);
    let plugin = common::plugin().display().to_string();
    let entries = loader_entries();
    let list = vec![
        (workload, ["--threads", "4", "--iters", "6", "--vmm", "--host", "--oom"].map(String::from).to_vec()),
        (load, vec!["4".into(), "20000".into(), "0".into(), plugin]),
    ];
    let start = std::time::Instant::now();
    let mut set_aside = 0;
    for (program, args) in &list {
        let dir = tempfile::tempdir().unwrap();
        let mut command = common::traced(program, &dir.path().join("t.%p.json"), 20);
        // Every report is printed (no halt on the first), then classified here.
        command.args(args).env("LD_PRELOAD", &preload).env("TSAN_OPTIONS", "halt_on_error=0:exitcode=66");
        let output = common::run_group(&mut command, Duration::from_secs(120)).unwrap_or_else(|e| panic!("tsan: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reports = tsan_reports(&stderr);
        for report in &reports {
            assert!(
                inside_loader(report, &entries),
                "tsan: {args:?}: a report not inside the loader:\n{}",
                report.text
            );
        }
        set_aside += reports.len();
        let clean = output.status.success() || (output.status.code() == Some(66) && !reports.is_empty());
        assert!(clean, "tsan: {} {args:?}: {}\n{stderr}", program.display(), output.status);
        assert!(!common::listing(dir.path()).is_empty(), "tsan: {args:?} wrote no recording");
    }
    common::figure(format!(
        "tsan: {} scenarios clean, {set_aside} loader-internal report(s) set aside, {:.1} s",
        list.len(),
        start.elapsed().as_secs_f64()
    ));
}

/// One frame of a sanitizer stack: the function and the module it is in.
#[derive(Debug)]
struct Frame {
    function: String,
    module: String,
}

/// One ThreadSanitizer report: its kind ("data race", ...), the stacks of
/// the memory accesses it is about, and every other stack it shows.
#[derive(Debug)]
struct TsanReport {
    text: String,
    kind: String,
    accesses: Vec<Vec<Frame>>,
    others: Vec<Vec<Frame>>,
}

/// The reports in a sanitizer's stderr (between its `=====` lines).
fn tsan_reports(stderr: &str) -> Vec<TsanReport> {
    let mut reports = Vec::new();
    for block in stderr.split("==================\n") {
        let Some(kind) = block.lines().find_map(|l| l.strip_prefix("WARNING: ThreadSanitizer: ")) else { continue };
        let kind = kind.split(" (pid").next().unwrap_or(kind).to_owned();
        let mut report = TsanReport { text: block.to_owned(), kind, accesses: Vec::new(), others: Vec::new() };
        let mut current: Option<(bool, Vec<Frame>)> = None;
        for line in block.lines() {
            if let Some(frame) = line.strip_prefix("    #") {
                let function = frame.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let module = frame.rsplit_once('(').map_or("", |(_, m)| m.split('+').next().unwrap_or(m));
                if let Some((_, frames)) = current.as_mut() {
                    frames.push(Frame { function, module: module.trim_end_matches(')').to_owned() });
                }
                continue;
            }
            if let Some((is_access, frames)) = current.take() {
                if is_access { report.accesses.push(frames) } else { report.others.push(frames) }
            }
            if line.starts_with("  ") && !line.starts_with("   ") {
                let access = line.contains(" of size ")
                    && ["  Read", "  Write", "  Previous", "  Atomic"].iter().any(|p| line.starts_with(p));
                current = Some((access, Vec::new()));
            }
        }
        if let Some((is_access, frames)) = current.take() {
            if is_access { report.accesses.push(frames) } else { report.others.push(frames) }
        }
        reports.push(report);
    }
    reports
}

/// The loader functions of tests/fixtures/tsan/loader.supp (`race:NAME`).
fn loader_entries() -> Vec<String> {
    let path = support::repo().join("tests/fixtures/tsan/loader.supp");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter_map(|l| l.trim().strip_prefix("race:")).map(str::to_owned).collect()
}

/// Whether a report is provably inside the loader (loader.supp says why):
/// a data race, no frame of the library anywhere, every access made by ld.so
/// itself, through one of the listed loader functions.
fn inside_loader(report: &TsanReport, entries: &[String]) -> bool {
    let all_frames = || report.accesses.iter().chain(&report.others).flatten();
    let by_loader = |stack: &Vec<Frame>| {
        stack.iter().find(|f| !f.module.starts_with("libtsan")).is_some_and(|f| f.module.starts_with("ld-linux"))
    };
    report.kind == "data race"
        && !all_frames().any(|f| f.module.contains("npu_alloc_shim"))
        && !report.accesses.is_empty()
        && report.accesses.iter().all(by_loader)
        && report.accesses.iter().flatten().any(|f| entries.contains(&f.function))
}

#[test]
fn only_reports_inside_the_loader_are_set_aside() {
    let read = |name: &str| std::fs::read_to_string(support::repo().join("tests/fixtures/tsan").join(name)).unwrap();
    let entries = loader_entries();
    assert!(entries.contains(&"_dl_close_worker".to_owned()), "{entries:?}");
    // Two fixture threads in dlclose and dlopen: set aside.
    let loader = tsan_reports(&read("loader-only.txt"));
    assert_eq!(loader.len(), 1);
    assert_eq!((loader[0].accesses.len(), loader[0].others.len()), (2, 3), "{loader:?}");
    assert!(inside_loader(&loader[0], &entries));
    // The library reading a name the loader wrote: never set aside, and not
    // even with every function of the report listed.
    let library = tsan_reports(&read("library-read.txt"));
    assert_eq!(library.len(), 1);
    assert!(!inside_loader(&library[0], &entries));
    let everything: Vec<String> =
        library[0].accesses.iter().chain(&library[0].others).flatten().map(|f| f.function.clone()).collect();
    assert!(!inside_loader(&library[0], &everything));
    // Without a listed loader function, a loader-only race is not set aside.
    assert!(!inside_loader(&loader[0], &[]));
}
