//! Process shapes (issue 7): fork without exec, vfork, posix_spawn, exec
//! chains, exit from a non-main thread, a main thread that calls
//! pthread_exit, `_exit`, SIGTERM and SIGKILL, the library loaded by dlopen
//! while threads run, and static binaries. Each recording must be whole JSON
//! with the counts of its own process; where data is lost by design (`_exit`,
//! signals, exec) at most one flush interval is lost, as README says.
//! (setuid programs: tests/reliability/security.rs.)

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::fixtures::{self as common, MIB, n};

/// Runs a shapes mode traced into `dir` (t.%p.json, written only at exit).
fn shape(dir: &Path, args: &[&str]) -> Vec<Value> {
    let output = common::ok(common::traced(&common::shapes(), &dir.join("t.%p.json"), 0).args(args));
    assert_eq!(common::library_lines(&output), Vec::<String>::new(), "{args:?}");
    common::json_lines(&output)
}

/// The recordings in `dir` by pid; checks they are whole and final.
fn recordings(dir: &Path) -> std::collections::BTreeMap<u64, Value> {
    assert!(common::temporaries(dir).is_empty(), "temporary files left: {:?}", common::listing(dir));
    common::listing(dir)
        .into_iter()
        .map(|name| {
            let rec = common::read_json(&dir.join(&name));
            (n(&rec, "/pid"), rec)
        })
        .collect()
}

fn allocs(rec: &Value) -> u64 {
    n(rec, "/totals/alloc_calls")
}

fn pid(line: &Value) -> u64 {
    n(line, "/pid")
}

#[test]
fn fork_without_exec_gives_the_child_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let lines = shape(dir.path(), &["fork"]);
    let recs = recordings(dir.path());
    assert_eq!(recs.len(), 2, "{:?}", recs.keys());
    for line in &lines {
        let rec = &recs[&pid(line)];
        assert_eq!(allocs(rec), 3, "parent 2 + 1, child 3 of its own");
        assert_eq!(n(rec, "/totals/live_bytes"), 3 * MIB);
        assert_eq!(rec["final"], Value::Bool(true));
        common::assert_no_errors(rec);
    }
}

/// A traced process that never called the runtime forks: the child has
/// nothing to zero (its counters are the parent's untouched `.bss`), so a
/// fork costs about what it costs with tracing off, and a child that then
/// allocates records its own calls only. Before, every fork child wrote all
/// 1.2 MiB of per-thread stripes: ~310 page faults (about 1 ms) per fork.
#[test]
fn fork_of_an_idle_traced_process_writes_no_counters_and_the_child_records_its_own() {
    const FORKS: &str = "20";
    let dir = tempfile::tempdir().unwrap();
    let lines = shape(dir.path(), &["fork-idle", FORKS]);
    let parent = lines.iter().find(|l| l["mode"] == "fork-idle" && l.get("child_faults").is_some()).expect("parent");
    let recs = recordings(dir.path());
    // The parent never used the runtime: no recording; the last child: 3.
    assert_eq!(recs.len(), 1, "{:?}", recs.keys());
    let (child_pid, child) = recs.iter().next().unwrap();
    assert_ne!(*child_pid, pid(parent));
    assert_eq!(allocs(child), 3, "{child}");
    assert_eq!(n(child, "/totals/live_bytes"), 3 * MIB);
    common::assert_no_errors(child);

    let untraced = common::ok(support::preloaded(common::shapes()).args(["fork-idle", FORKS]));
    let untraced = common::json_lines(&untraced);
    let untraced = untraced.iter().find(|l| l.get("child_faults").is_some()).expect("untraced parent");
    let (traced_faults, untraced_faults) = (n(parent, "/child_faults"), n(untraced, "/child_faults"));
    common::figure(format_args!(
        "page faults per fork child of an idle process: traced {traced_faults}, tracing off {untraced_faults}"
    ));
    // Its fork handlers touch a few pages (their code, the writer's lock);
    // zeroing the stripes would be ~300 more.
    assert!(
        traced_faults <= untraced_faults + 48,
        "a fork child of an idle traced process took {traced_faults} page faults, {untraced_faults} with tracing off"
    );
}

#[test]
fn vfork_and_posix_spawn_children_record_their_new_program_only() {
    for mode in ["vfork-exec", "spawn"] {
        let dir = tempfile::tempdir().unwrap();
        let lines = shape(dir.path(), &[mode]);
        let recs = recordings(dir.path());
        assert_eq!(recs.len(), 2, "{mode}: {:?}", recs.keys());
        let parent = lines.iter().find(|l| l["mode"] == mode).expect("parent line");
        let child = lines.iter().find(|l| l["mode"] == "alloc").expect("child line");
        assert_eq!(allocs(&recs[&pid(parent)]), 3, "{mode}: the parent's 2 + 1");
        let child_rec = &recs[&pid(child)];
        assert_eq!(allocs(child_rec), 3, "{mode}: the new program's own");
        assert_eq!(child_rec["argv"][1], "alloc");
        assert_eq!(child_rec["ppid"], parent["pid"]);
    }
}

#[test]
fn vfork_child_that_exits_leaves_the_parent_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lines = shape(dir.path(), &["vfork-exit"]);
    let recs = recordings(dir.path());
    // The vfork child ran no library code (no atfork handlers, no exit
    // handlers after _exit): one file, the parent's.
    assert_eq!(recs.len(), 1);
    assert_eq!(allocs(&recs[&pid(&lines[0])]), 3);
}

#[test]
fn an_exec_chain_keeps_the_last_program_only() {
    for (mode, images) in [("chain", 4), ("chain-sh", 3)] {
        let dir = tempfile::tempdir().unwrap();
        let depth = (images - 1).to_string();
        let lines = shape(dir.path(), &[mode, &depth]);
        assert_eq!(lines.len(), images, "{mode}: one line per program image");
        assert!(lines.iter().all(|l| l["pid"] == lines[0]["pid"]), "{mode}: exec keeps the pid");
        let recs = recordings(dir.path());
        assert_eq!(recs.len(), 1, "{mode}: one pid, one file");
        let rec = &recs[&pid(&lines[0])];
        // Earlier images' counts are lost at exec (README); the shell in
        // chain-sh called no runtime and wrote nothing.
        assert_eq!(allocs(rec), 1, "{mode}");
        assert_eq!(rec["argv"][2], "0", "{mode}: the last image wrote it");
        assert_eq!(rec["final"], Value::Bool(true));
    }
}

/// An exec while the flush thread is writing leaves that write's temporary
/// file; the next image (same pid, same file) removes it after its final
/// write. Planted here by a shell that then execs the program, so the test
/// does not depend on catching a write in flight; another pid's file stays.
#[test]
fn an_exec_cut_write_is_cleaned_up_by_the_next_image() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        format!("touch .t.$$.json.$$.7.tmp .t.$$.json.1.7.tmp && exec '{}' chain 0", common::shapes().display());
    let mut command = common::traced(Path::new("/bin/sh"), &dir.path().join("t.%p.json"), 0);
    command.current_dir(dir.path()).args(["-c", &script]);
    let lines = common::json_lines(&common::ok(&mut command));
    let pid = pid(&lines[0]);
    let files = common::listing(dir.path());
    let expected: std::collections::BTreeSet<std::ffi::OsString> =
        [format!("t.{pid}.json"), format!(".t.{pid}.json.1.7.tmp")].into_iter().map(Into::into).collect();
    assert_eq!(files, expected);
}

#[test]
fn exit_from_a_non_main_thread_writes_the_final_recording() {
    let dir = tempfile::tempdir().unwrap();
    let lines = shape(dir.path(), &["thread-exit"]);
    let rec = &recordings(dir.path())[&pid(&lines[0])];
    assert_eq!(allocs(rec), 3);
    assert_eq!(rec["final"], Value::Bool(true));
}

/// A main thread that calls pthread_exit: the process ends when its last
/// thread does. The library's background thread must not keep it alive.
#[test]
fn a_main_thread_that_calls_pthread_exit_lets_the_process_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::traced(&common::shapes(), &dir.path().join("t.%p.json"), 0);
    command.arg("main-thread-exit");
    let output = common::run_group(&mut command, Duration::from_secs(10)).unwrap_or_else(|e| {
        panic!("the process outlived its last thread (the library's flush thread keeps it alive): {e}")
    });
    assert!(output.status.success(), "{output:?}");
    let lines = common::json_lines(&output);
    let rec = &recordings(dir.path())[&pid(&lines[0])];
    assert_eq!(allocs(rec), 3);
}

#[test]
fn underscore_exit_loses_at_most_the_last_flush_interval() {
    // Without periodic writes, nothing is written (documented).
    let dir = tempfile::tempdir().unwrap();
    shape(dir.path(), &["_exit", "2", "0"]);
    assert!(common::listing(dir.path()).is_empty(), "{:?}", common::listing(dir.path()));
    // With 50 ms writes, once a periodic write has both allocations (the
    // client waits for the test), _exit loses nothing.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut child = common::traced(&common::shapes(), &trace, 50)
        .args(["_exit", "2", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    common::wait_for_recording(&trace, "a periodic write with both allocations", |rec| allocs(rec) >= 2);
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(common::library_lines(&output), Vec::<String>::new());
    // _exit may cut a periodic write short, as SIGKILL may: its temporary
    // file stays (documented); the recording itself is whole.
    let left = common::temporaries(dir.path());
    assert!(left.len() <= 1, "{left:?}");
    let rec = common::read_json(&trace);
    assert_eq!(allocs(&rec), 2);
    assert_eq!(rec["final"], Value::Bool(false));
}

/// What a `pace` run printed: (allocations done, unix ms when done).
fn read_pace(stdout: impl std::io::Read) -> Vec<(u64, u64)> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

const FLUSH_MS: u64 = 100;

/// Runs `pace 5` with 100 ms writes and sends `signal` once a periodic
/// write taken at least 500 ms after the start is on disk; returns the
/// allocations made with their times, the time the test began waiting for
/// that write, the kill time and the recording.
fn paced_until(signal: i32, handler: bool) -> (Vec<(u64, u64)>, u64, u64, Value, std::process::ExitStatus) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut command = common::traced(&common::shapes(), &trace, FLUSH_MS);
    command.args(["pace", "5"]);
    if handler {
        command.arg("term");
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    let reader = {
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || read_pace(stdout))
    };
    // Waiting for a write (not for a time) keeps this independent of how
    // busy the machine is; the deadline only catches a writer that stopped.
    let armed = unix_ms() + 500;
    common::wait_for_recording(&trace, "a periodic write", |rec| n(rec, "/written_unix_ms") >= armed);
    let killed_at = unix_ms();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "signal {signal} did not end the process");
        std::thread::sleep(Duration::from_millis(5));
    };
    let made = reader.join().expect("reader");
    // A kill during a write may leave the writer's temporary file; the
    // recording itself is always whole (written by rename).
    let rec = common::read_json(&trace);
    (made, armed, killed_at, rec, status)
}

fn check_at_most_one_interval_lost(signal: i32) {
    let (made, armed, killed_at, rec, status) = paced_until(signal, false);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(signal));
    assert_eq!(rec["final"], Value::Bool(false), "no exit handler runs");
    let written = n(&rec, "/written_unix_ms");
    let recorded = allocs(&rec);
    // Everything done before the snapshot was taken is in it: what is lost
    // is only what came after the last periodic write...
    let before_write = made.iter().filter(|(_, at)| *at < written).count() as u64;
    assert!(recorded >= before_write, "recorded {recorded}, made {before_write} before the write");
    assert!(recorded <= made.len() as u64);
    // ...and periodic writes went on until the kill: the one on disk is at
    // least as new as the write the test waited for. (How old it is depends
    // on scheduling, so it is reported, not asserted; the interval itself is
    // checked on a virtual clock by the_flush_interval_holds_in_long_runs.)
    assert!(written >= armed, "the last write ({written}) is older than the one seen before the kill ({armed})");
    let age = killed_at.saturating_sub(written);
    let lost = made.len() as u64 - recorded;
    common::figure(format!(
        "signal {signal}: {} allocations made, {recorded} recorded, {lost} lost (last write {age} ms \
         before the kill, flush interval {FLUSH_MS} ms)",
        made.len()
    ));
}

#[test]
fn sigkill_loses_at_most_one_flush_interval() {
    check_at_most_one_interval_lost(libc::SIGKILL);
}

#[test]
fn sigterm_without_a_handler_loses_at_most_one_flush_interval() {
    check_at_most_one_interval_lost(libc::SIGTERM);
}

#[test]
fn sigterm_with_a_handler_that_exits_loses_nothing() {
    let (made, _, _, rec, status) = paced_until(libc::SIGTERM, true);
    assert!(status.success(), "{status:?}");
    // (Whether the last write is marked final: the_final_recording_is_not_replaced_by_a_periodic_write.)
    assert_eq!(allocs(&rec), made.len() as u64, "exit() runs the final write");
}

#[test]
fn loaded_by_dlopen_while_threads_run() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("late.json");
    let mut command = support::clean_command(common::shapes());
    command
        .args(["late"])
        .arg(support::library())
        .args(["4", "20000", "5"])
        .env("NPU_ALLOC_SHIM_TRACE", &trace)
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "20");
    let output = common::ok(&mut command);
    let line = &common::json_lines(&output)[0];
    // No setenv with threads running: the environment is as it was.
    assert_eq!(line["conf_before"], "(unset)");
    assert_eq!(line["conf_after"], "(unset)");
    let messages = common::library_lines(&output);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("not changing the environment"), "{messages:?}");
    // Every call through the hooks is recorded; the blocks allocated before
    // the library arrived are untracked frees; calls that went straight to
    // the runtime (bound before the dlopen) are not seen at all.
    let rec = common::read_json(&trace);
    let pairs = n(line, "/hooked_pairs");
    assert_eq!(allocs(&rec), pairs);
    assert_eq!(n(&rec, "/totals/free_calls"), pairs + 5);
    assert_eq!(n(&rec, "/totals/untracked_frees"), 5);
    assert_eq!(n(&rec, "/totals/live_bytes"), 0);
    assert_eq!(rec["config"]["applied"], Value::Bool(false));
    common::assert_no_errors(&rec);
}

#[test]
fn static_binaries_are_unaffected() {
    let scratch = tempfile::tempdir().unwrap();
    let built = std::panic::catch_unwind(|| {
        support::compile_c("reliability_static", &["tests/fixtures/reliability_static.c"], &["-static"])
    });
    let Ok(program) = built else {
        println!("skipped: cc -static failed (libc.a missing? Debian: libc6-dev)");
        return;
    };
    let run = |preload: bool| {
        let dir = scratch.path().join(if preload { "with" } else { "without" });
        std::fs::create_dir(&dir).unwrap();
        let mut command = support::clean_command(&program);
        command.arg(dir.join("own-file")).env("NPU_ALLOC_SHIM_TRACE", &dir).env("NPU_ALLOC_SHIM_FLUSH_MS", "0");
        if preload {
            command.env("LD_PRELOAD", support::library());
        }
        let output = common::ok(&mut command);
        (output, common::listing(&dir))
    };
    let (with, files_with) = run(true);
    let (without, files_without) = run(false);
    assert_eq!(with.stdout, without.stdout);
    assert_eq!(
        String::from_utf8_lossy(&with.stdout),
        "PYTORCH_NPU_ALLOC_CONF=(unset)\nNPU_ALLOC_SHIM_DECISION=(unset)\n"
    );
    assert_eq!(with.stderr, b"");
    assert_eq!(files_with, files_without, "only the program's own file");
}

/// A fork while other threads wait for the library's writer lock (a periodic
/// write, `npu_alloc_shim_dump`): the child must not inherit the lock held
/// or promised to a thread that does not exist in it. Two threads write
/// recordings without pause while the main thread forks 20 children that
/// `_exit` at once; the fixture kills a child still there after 1 s.
#[test]
fn fork_while_other_threads_write_never_hangs_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::traced(&common::shapes(), &dir.path().join("t.%p.json"), 20);
    command.arg("fork-while-dumping").arg("20").arg(dir.path());
    let output = common::run_group(&mut command, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success(), "{output:?}");
    let line = &common::json_lines(&output)[0];
    assert_eq!(n(line, "/hung"), 0, "children hung in fork: {line}");
}

/// README promises that SIGKILL loses at most one flush interval (default
/// 2 s). In a long run the periodic writes must keep that pace while the
/// timeline's sampling interval grows: here two virtual hours of a 2 s flush
/// interval pass in seconds, on a virtual clock (a preload whose time passes
/// only while the library sleeps, which logs every rename, i.e. every write),
/// so the gaps do not depend on how busy the machine is.
#[test]
fn the_flush_interval_holds_in_long_runs() {
    const WRITES: usize = 3600;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("renames.log");
    let mut command = common::traced(&common::shapes(), &dir.path().join("t.json"), 2000);
    let preload = format!("{} {}", support::library().display(), common::fastclock().display());
    command
        .env("LD_PRELOAD", preload)
        .env("RELIABILITY_CLOCK_SPEED", "1000")
        .env("RELIABILITY_RENAME_LOG", &log)
        .args(["pace", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn");
    let written = || std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
    let deadline = Instant::now() + Duration::from_secs(300);
    while written() < WRITES {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("only {} writes within 300 s", written());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let times: Vec<u64> = std::fs::read_to_string(&log).unwrap().lines().map(|l| l.parse().expect("ms")).collect();
    let gaps: Vec<u64> = times[..WRITES].windows(2).map(|w| w[1] - w[0]).collect();
    // The last third of the run, in virtual ms.
    let mut late: Vec<u64> = gaps[gaps.len() * 2 / 3..].to_vec();
    late.sort_unstable();
    let (median, longest) = (late[late.len() / 2], late[late.len() - 1]);
    let span_min = (times[WRITES - 1] - times[0]) / 60_000;
    common::figure(format!(
        "long run ({span_min} virtual minutes): gaps between writes in the last third: median {median} ms, \
         longest {longest} ms (flush interval 2000 ms)"
    ));
    assert_eq!(median, 2000, "after {span_min} minutes the recording is written every {median} ms, not every 2000 ms");
    assert!(longest <= 2000 + 50, "a gap of {longest} ms");
}

/// The final write is the last one: a periodic write must not replace it
/// while the process finishes exiting. The library writes the final
/// recording from its own destructor; libraries finalized after it (here a
/// plugin preloaded after it, whose destructor takes 300 ms, as a C++
/// runtime's static destructors do) still run while the flush thread lives.
#[test]
fn the_final_recording_is_not_replaced_by_a_periodic_write() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    let mut command = common::traced(&common::shapes(), &trace, 20);
    let preload = format!("{} {}", support::library().display(), common::plugin().display());
    command.args(["alloc", "2"]).env("LD_PRELOAD", preload).env("RELIABILITY_FINI_MS", "300");
    common::ok(&mut command);
    let rec = common::read_json(&trace);
    assert_eq!(rec["final"], Value::Bool(true), "a periodic write replaced the final one");
    assert_eq!(allocs(&rec), 2);
}
