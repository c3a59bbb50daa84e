//! The benchmark suite: the library's cost as ratios against the same work
//! without it, measured in real processes (a preload library can only be
//! measured preloaded). Shared by `cargo bench --bench overhead` (full run)
//! and tests/hooks_and_recording/bench_smoke.rs (a few iterations, so the benchmarks keep working).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How much work each measurement does.
#[derive(Clone, Copy)]
pub struct Settings {
    pub pairs: u64,
    pub repeats: usize,
    pub thread_counts: &'static [u32],
    pub start_runs: usize,
    pub live_counts: &'static [u64],
    /// Bytes of recordings `report` reads in the throughput measurement.
    pub report_bytes: u64,
    /// Run examples/before_after.sh (real torch_npu, when its venv exists).
    pub payoff: bool,
    /// Count a device reading's instructions under callgrind (seconds of
    /// valgrind; the benchmark only, not the suite's smoke run).
    pub count_instructions: bool,
}

impl Settings {
    /// The benchmark (`cargo bench --bench overhead`).
    pub const FULL: Settings = Settings {
        pairs: 2_000_000,
        repeats: 5,
        thread_counts: &[1, 2, 4, 8],
        start_runs: 300,
        live_counts: &[100_000, 1_000_000],
        report_bytes: 1 << 30,
        payoff: true,
        count_instructions: true,
    };
    /// A few iterations, for tests/hooks_and_recording/bench_smoke.rs.
    pub const QUICK: Settings = Settings {
        pairs: 20_000,
        repeats: 1,
        thread_counts: &[1, 2],
        start_runs: 3,
        live_counts: &[1_000],
        report_bytes: 1 << 20,
        payoff: false,
        count_instructions: false,
    };
}

/// One row of the summary.
pub struct Row {
    pub what: String,
    pub without: f64,
    pub with: f64,
    pub unit: &'static str,
    pub goal: String,
    /// Whether the figure meets its goal; `None` for figures that have none.
    pub meets: Option<bool>,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.with / self.without
    }
}

/// The client on the null CUDA runtime (`benches/fixtures/null_cudart.c`).
fn cuda_client() -> PathBuf {
    let dir = crate::fixture_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_text = dir.display().to_string();
    crate::compile_c(
        "bench/libcudart.so.12",
        &["benches/fixtures/null_cudart.c"],
        &["-O2", "-shared", "-fPIC", "-Wl,-soname,libcudart.so.12"],
    );
    crate::compile_c(
        "bench/bench_client_cuda",
        &["benches/fixtures/bench_client.c"],
        &[
            "-O2",
            "-DBENCH_CUDA",
            &format!("-L{dir_text}"),
            "-l:libcudart.so.12",
            &format!("-Wl,-rpath,{dir_text}"),
            "-ldl",
            "-pthread",
        ],
    )
}

/// The null runtime and the client, compiled once.
fn fixtures() -> (PathBuf, PathBuf) {
    let dir = crate::fixture_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_text = dir.display().to_string();
    let runtime = crate::compile_c(
        "bench/libascendcl.so",
        &["benches/fixtures/null_runtime.c"],
        &["-O2", "-shared", "-fPIC", "-Wl,-soname,libascendcl.so"],
    );
    let client = crate::compile_c(
        "bench/bench_client",
        &["benches/fixtures/bench_client.c"],
        &["-O2", &format!("-L{dir_text}"), "-lascendcl", &format!("-Wl,-rpath,{dir_text}"), "-ldl", "-pthread"],
    );
    (runtime, client)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Without,
    TracingOff,
    TracingOn,
    /// Tracing on with NPU_ALLOC_SHIM_DEVICE_READINGS=0.
    TracingOnWithoutReadings,
}

fn client_command(client: &Path, mode: Mode, trace_dir: &Path) -> Command {
    let mut command = crate::clean_command(client);
    command.env("NPU_ALLOC_SHIM_LOG", "off");
    if mode != Mode::Without {
        command.env("LD_PRELOAD", crate::library());
    }
    if matches!(mode, Mode::TracingOn | Mode::TracingOnWithoutReadings) {
        command.env("NPU_ALLOC_SHIM_TRACE", trace_dir.join("b.%p.json")).env("NPU_ALLOC_SHIM_FLUSH_MS", "0");
    }
    if mode == Mode::TracingOnWithoutReadings {
        command.env("NPU_ALLOC_SHIM_DEVICE_READINGS", "0");
    }
    command
}

/// Runs a measured process and reads its JSON line. The time limit is
/// coreutils' `timeout`, and this process waits blocked: a parent polling
/// every few milliseconds (crate::run_with_timeout) takes a core from the
/// threads being measured on a 2-core machine and skews multi-thread figures.
fn json_of(command: &mut Command) -> Value {
    let mut limited = Command::new("timeout");
    limited.arg("300").arg(command.get_program()).args(command.get_args());
    limited.env_clear().envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let output = limited.stdin(std::process::Stdio::null()).output().expect("run timeout");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median ns per alloc/free pair, per thread.
fn pair_cost(client: &Path, mode: Mode, threads: u32, same_device: bool, settings: Settings, dir: &Path) -> f64 {
    let runs = (0..settings.repeats)
        .map(|_| {
            let mut command = client_command(client, mode, dir);
            command.args([
                "pairs",
                &threads.to_string(),
                &settings.pairs.to_string(),
                &u8::from(same_device).to_string(),
            ]);
            json_of(&mut command)["ns_per_pair"].as_f64().expect("ns_per_pair")
        })
        .collect();
    median(runs)
}

pub fn per_call(settings: Settings, dir: &Path) -> Vec<Row> {
    let (_, client) = fixtures();
    let mut rows = Vec::new();
    let direct_1 = pair_cost(&client, Mode::Without, 1, false, settings, dir);
    let off_1 = pair_cost(&client, Mode::TracingOff, 1, false, settings, dir);
    rows.push(Row {
        what: "alloc/free pair, 1 thread, tracing off".into(),
        without: direct_1,
        with: off_1,
        unit: "ns",
        goal: format!("within 2 ns of direct: {:+.1} ns", off_1 - direct_1),
        meets: Some(off_1 - direct_1 <= 2.0),
    });
    let mut traced_1 = 0.0;
    let mut one_device_2 = 0.0;
    let cuda = cuda_client();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for &threads in settings.thread_counts {
        for same_device in [false, true] {
            if threads == 1 && same_device {
                continue;
            }
            let direct = pair_cost(&client, Mode::Without, threads, same_device, settings, dir);
            let traced = pair_cost(&client, Mode::TracingOn, threads, same_device, settings, dir);
            let devices = if same_device { "one device" } else { "a device each" };
            // On C cores, N > C threads each get C/N of a core at best.
            let fair_share = (f64::from(threads) / cores).max(1.0);
            let (goal, meets) = if threads == 1 {
                traced_1 = traced;
                (format!("under 50 ns: {traced:.1} ns"), traced <= 50.0)
            } else if !same_device {
                let per_thread = traced / traced_1 / fair_share;
                let share =
                    if fair_share > 1.0 { format!(" (over a fair share of {cores} cores)") } else { String::new() };
                (format!("per-thread cost at most 1.5x 1 thread{share}: {per_thread:.2}x"), per_thread <= 1.5)
            } else {
                // All on one device: its exact live/peak counter is one line
                // every thread writes, so they cannot scale; the goal is that
                // throughput does not collapse as threads are added.
                let pairs_per_us = f64::from(threads) * 1000.0 / traced;
                if threads == 2 {
                    one_device_2 = pairs_per_us;
                }
                let kept = pairs_per_us / one_device_2;
                (
                    format!("no collapse, throughput at least 0.8x 2 threads': {pairs_per_us:.1} pairs/us, {kept:.2}x"),
                    kept >= 0.8,
                )
            };
            rows.push(Row {
                what: format!("alloc/free pair, {threads} thread(s), {devices}, tracing on"),
                without: direct,
                with: traced,
                unit: "ns",
                goal,
                meets: Some(meets),
            });
        }
    }
    // The CUDA backend's pair, against the same work without the library
    // and against the NPU's traced pair (the goal: it costs what that costs).
    let cuda_direct = pair_cost(&cuda, Mode::Without, 1, false, settings, dir);
    let cuda_off = pair_cost(&cuda, Mode::TracingOff, 1, false, settings, dir);
    rows.push(Row {
        what: "cudaMalloc/cudaFree pair, 1 thread, tracing off".into(),
        without: cuda_direct,
        with: cuda_off,
        unit: "ns",
        goal: format!("within 2 ns of direct: {:+.1} ns", cuda_off - cuda_direct),
        meets: Some(cuda_off - cuda_direct <= 2.0),
    });
    let cuda_traced = pair_cost(&cuda, Mode::TracingOn, 1, false, settings, dir);
    rows.push(Row {
        what: "cudaMalloc/cudaFree pair, 1 thread, tracing on (without: the NPU pair, tracing on)".into(),
        without: traced_1,
        with: cuda_traced,
        unit: "ns",
        goal: format!("what the NPU pair costs, at most 1.1x: {:.2}x", cuda_traced / traced_1),
        meets: Some(cuda_traced <= traced_1 * 1.1),
    });
    rows.push(device_readings_cost(&client, settings, dir));
    if settings.count_instructions {
        rows.extend(device_reading_instructions(&client, settings, dir));
    }
    rows
}

/// Instructions a process executes (callgrind's "Collected"), and the
/// recording it wrote: `pairs` traced pairs on one thread.
fn counted_run(client: &Path, readings: bool, pairs: u64, dir: &Path) -> (u64, Value) {
    let mode = if readings { Mode::TracingOn } else { Mode::TracingOnWithoutReadings };
    let trace = dir.join(format!("counted-{readings}.json"));
    let inner = client_command(client, mode, dir);
    let mut command = Command::new("valgrind");
    // Fair scheduling: by default valgrind lets the looping thread starve the
    // writer, which then asks for (almost) no reading.
    command.args(["--tool=callgrind", "--fair-sched=yes", "--callgrind-out-file=/dev/null"]).arg(client);
    command.args(["pairs", "1", &pairs.to_string(), "0"]);
    command.env_clear().envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    command.env("NPU_ALLOC_SHIM_TRACE", &trace);
    let output = command.output().expect("run valgrind");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let collected = stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count from callgrind: {stderr}"));
    (collected, serde_json::from_slice(&std::fs::read(&trace).expect("recording")).expect("recording json"))
}

/// What one device reading costs, counted rather than timed (a timed
/// difference of well under 1% drowns in a shared machine's noise):
/// callgrind's instructions with readings on minus off, per reading, turned
/// into time at the native speed of the same loop, times the most readings a
/// second can ask (one per 50 ms sample).
fn device_reading_instructions(client: &Path, settings: Settings, dir: &Path) -> Option<Row> {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("device reading instructions skipped: no valgrind");
        return None;
    }
    let pairs = settings.pairs;
    let (off, _) = counted_run(client, false, pairs, dir);
    let (on, recording) = counted_run(client, true, pairs, dir);
    let readings = recording["device_readings"].as_u64().unwrap_or(0);
    if readings == 0 {
        eprintln!("device reading instructions skipped: no reading was asked under valgrind");
        return None;
    }
    let per_reading = on.saturating_sub(off) as f64 / readings as f64;
    // Instructions per ns of the same loop at native speed.
    let native_ns = pair_cost(client, Mode::TracingOnWithoutReadings, 1, false, settings, dir) * pairs as f64;
    let reading_ns = per_reading / (off as f64 / native_ns);
    let share = reading_ns * (1000.0 / 50.0) / 1e9;
    Some(Row {
        what: format!(
            "one device reading (callgrind: {per_reading:.0} instructions, {readings} readings in {pairs} traced pairs)"
        ),
        without: f64::NAN,
        with: reading_ns,
        unit: "ns",
        goal: format!("at most 1% of a hooked-call-heavy second: {:.4}% (20 readings/s)", share * 100.0),
        meets: Some(share <= 0.01),
    })
}

/// What the device readings add (one aclrtGetMemInfo and a per-site sum per
/// 50 ms sample, answered by an allocating thread): the same traced pairs
/// with readings on and off, in runs long enough for many samples.
///
/// The difference is far below a shared machine's drift, so the two modes
/// run in adjacent pairs (off, on, off, on, ...) and the figure is the median
/// of the pairs' ratios: drift between pairs cancels.
fn device_readings_cost(client: &Path, settings: Settings, dir: &Path) -> Row {
    let long = Settings { pairs: settings.pairs * 10, repeats: 1, ..settings };
    let (mut offs, mut ons, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..settings.repeats * 3 {
        let off = pair_cost(client, Mode::TracingOnWithoutReadings, 1, false, long, dir);
        let on = pair_cost(client, Mode::TracingOn, 1, false, long, dir);
        offs.push(off);
        ons.push(on);
        ratios.push(on / off);
    }
    let ratio = median(ratios);
    Row {
        what: format!(
            "alloc/free pair, 1 thread, tracing on: device readings off / on ({} pairs a run, {} run pairs)",
            long.pairs,
            offs.len()
        ),
        without: median(offs),
        with: median(ons),
        unit: "ns",
        goal: format!(
            "readings add at most 1%: {:+.2}% (median of the pairs' ratios; timed, within this machine's noise: the counted row decides)",
            (ratio - 1.0) * 100.0
        ),
        meets: None,
    }
}

/// Wall time of one start of `program args`, in microseconds.
fn start_once(program: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> f64 {
    let mut command = crate::clean_command(program);
    command.args(args).env("NPU_ALLOC_SHIM_LOG", "off").envs(env.iter().copied());
    let begin = Instant::now();
    let status = command.status().expect("start");
    let took = begin.elapsed().as_secs_f64() * 1e6;
    assert!(status.success(), "{program:?} {args:?}");
    took
}

/// One start-up measurement: `runs` interleaved pairs (without, then with
/// the library), the figure being the median of the pairs' ratios, so that
/// the machine's drift cancels (the same method as the issue's).
struct StartCase<'a> {
    name: String,
    program: PathBuf,
    args: &'a [&'a str],
    library: PathBuf,
    goal: f64,
}

fn start_row(case: &StartCase, tracing: Option<&Path>, runs: usize) -> Row {
    let mut with = vec![("LD_PRELOAD", case.library.as_os_str())];
    let template = tracing.map(|dir| dir.join("start.%p.json"));
    if let Some(template) = &template {
        with.push(("NPU_ALLOC_SHIM_TRACE", template.as_os_str()));
    }
    let (mut withouts, mut withs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let a = start_once(&case.program, case.args, &[]);
        let b = start_once(&case.program, case.args, &with);
        withouts.push(a);
        withs.push(b);
        ratios.push(b / a);
    }
    if let Some(dir) = tracing {
        // A process that never calls the runtime writes no recording.
        let written = std::fs::read_dir(dir).map_or(0, |d| d.filter(|e| e.is_ok()).count());
        assert_eq!(written, 0, "{}: processes that never used the runtime wrote recordings", case.name);
    }
    let ratio = median(ratios);
    let mode = if tracing.is_some() { "tracing on" } else { "tracing off" };
    Row {
        what: format!("process start: {}, {mode} ({runs} interleaved pairs)", case.name),
        without: median(withouts),
        with: median(withs),
        unit: "us",
        goal: format!("under {:.2}x: {ratio:.3}x (median of the pairs' ratios)", case.goal),
        meets: Some(ratio <= case.goal),
    }
}

pub fn process_start(settings: Settings, dir: &Path) -> Vec<Row> {
    // The interpreter itself: `python3` on PATH may be a wrapper script
    // (pyenv's shim starts several processes), which is not what is measured.
    let python = std::env::var("PYTHON").unwrap_or_else(|_| {
        let output = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output();
        output
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "python3".into())
    });
    let native = |name: &str, program: &str, args: &'static [&'static str], goal| StartCase {
        name: name.to_owned(),
        program: PathBuf::from(program),
        args,
        library: crate::library(),
        goal,
    };
    let traced = dir.join("start-recordings");
    std::fs::create_dir_all(&traced).unwrap();
    let mut rows = Vec::new();
    for case in [native("/bin/true", "/bin/true", &[], 1.10), native("/bin/sh -c :", "/bin/sh", &["-c", ":"], 1.10)] {
        rows.push(start_row(&case, None, settings.start_runs));
        rows.push(start_row(&case, Some(&traced), settings.start_runs));
    }
    let python = native("python3 -c pass", &python, &["-c", "pass"], 1.05);
    rows.push(start_row(&python, None, (settings.start_runs / 4).max(1)));
    rows.extend(process_start_aarch64(settings, dir));
    rows.push(fork_row(settings, dir));
    rows
}

/// A traced process that never called the runtime forks children that exit
/// at once (`reliability_shapes fork-idle`): what the fork handlers cost.
/// Interleaved runs of 100 forks, without the library and traced; the
/// figure is the median of the runs' mean fork times. The goal is additive:
/// a fork's own cost grows with the parent's memory, the handlers' does not.
fn fork_row(settings: Settings, dir: &Path) -> Row {
    const FORKS: &str = "100";
    let shapes = crate::fixtures::shapes();
    // (The last child allocates: its recording lands here.)
    let traced = dir.join("fork-recordings");
    std::fs::create_dir_all(&traced).unwrap();
    let template = traced.join("fork.%p.json");
    let fork_ns = |preloaded: bool| {
        let mut command = if preloaded {
            let mut command = crate::preloaded(&shapes);
            command.env("NPU_ALLOC_SHIM_TRACE", &template);
            command
        } else {
            crate::clean_command(&shapes)
        };
        command.args(["fork-idle", FORKS]).env("NPU_ALLOC_SHIM_LOG", "off");
        let output = crate::run_ok(&mut command);
        let line = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("fork_ns").is_some())
            .expect("fork-idle prints fork_ns");
        line["fork_ns"].as_f64().expect("fork_ns") / 1e3
    };
    let runs = (settings.start_runs / 30).max(1);
    let (mut withouts, mut withs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        withouts.push(fork_ns(false));
        withs.push(fork_ns(true));
    }
    let (without, with) = (median(withouts), median(withs));
    Row {
        what: format!("fork of an idle traced process, child exits at once ({runs} interleaved runs of {FORKS})"),
        without,
        with,
        unit: "us",
        goal: format!("adds under 25 us a fork: {:+.1} us", with - without),
        meets: Some(with - without < 25.0),
    }
}

/// The same start-up under qemu-user for aarch64, where the aarch64 library
/// is named by NPU_ALLOC_SHIM_BENCH_AARCH64_LIB (scripts/bench.sh builds
/// it). The program is a C `true` built with aarch64-linux-gnu-gcc; qemu is
/// started the same way on both sides, so the ratio is the library's (in
/// emulated instructions and system calls).
fn process_start_aarch64(settings: Settings, dir: &Path) -> Vec<Row> {
    let Some(library) = std::env::var_os("NPU_ALLOC_SHIM_BENCH_AARCH64_LIB").map(PathBuf::from) else {
        return Vec::new();
    };
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    if !library.exists() || !qemu.exists() {
        eprintln!("aarch64 start-up skipped: no {library:?} or no {qemu:?}");
        return Vec::new();
    }
    let source = dir.join("true.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
    let program = dir.join("true-aarch64");
    let built = Command::new("aarch64-linux-gnu-gcc").args(["-O2", "-o"]).arg(&program).arg(&source).status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("aarch64 start-up skipped: aarch64-linux-gnu-gcc did not build a program");
        return Vec::new();
    }
    // qemu-aarch64-static runs the program named as its argument.
    let args = [program.to_str().expect("utf-8 temp path")];
    let case = StartCase {
        name: "aarch64 true under qemu-user".to_owned(),
        program: qemu.to_path_buf(),
        args: &args,
        library,
        goal: 1.10,
    };
    let traced = dir.join("start-recordings-aarch64");
    std::fs::create_dir_all(&traced).unwrap();
    vec![start_row(&case, None, settings.start_runs), start_row(&case, Some(&traced), settings.start_runs)]
}

pub fn memory(settings: Settings, dir: &Path) -> Vec<Row> {
    let (_, client) = fixtures();
    let rss = |mode: Mode, count: u64| {
        let value = json_of(client_command(&client, mode, dir).args(["live", &count.to_string()]));
        (value["rss_before"].as_f64().unwrap(), value["rss_after"].as_f64().unwrap())
    };
    let mut rows = Vec::new();
    let (base_before, _) = rss(Mode::Without, 0);
    let (traced_before, _) = rss(Mode::TracingOn, 0);
    rows.push(Row {
        what: "resident memory of the process, tracing on, nothing live".into(),
        without: base_before / 1024.0,
        with: traced_before / 1024.0,
        unit: "KiB",
        goal: format!("fixed overhead under 2 MiB: {:.0} KiB", (traced_before - base_before) / 1024.0),
        meets: Some(traced_before - base_before < 2.0 * 1048576.0),
    });
    for &count in settings.live_counts {
        let (b0, b1) = rss(Mode::Without, count);
        let (t0, t1) = rss(Mode::TracingOn, count);
        let per = ((t1 - t0) - (b1 - b0)) / count as f64;
        rows.push(Row {
            what: format!("resident memory, {count} live allocations, tracing on"),
            without: (b1 - b0) / 1024.0,
            with: (t1 - t0) / 1024.0,
            unit: "KiB",
            goal: format!("under 48 B per live allocation: {per:.1} B"),
            meets: Some(per < 48.0),
        });
    }
    rows
}

pub fn recording(settings: Settings, dir: &Path) -> Vec<Row> {
    let (_, client) = fixtures();
    let count = *settings.live_counts.last().unwrap();
    let target = dir.join("dump.json");
    let value = json_of(client_command(&client, Mode::TracingOn, dir).args([
        "dump",
        &count.to_string(),
        target.to_str().unwrap(),
    ]));
    let dump_ms = value["dump_ns"].as_f64().unwrap() / 1e6;
    let mut rows = vec![Row {
        what: format!("writing a recording with {count} live allocations"),
        without: f64::NAN,
        with: dump_ms,
        unit: "ms",
        goal: "a flush does not depend on the live count".into(),
        meets: None,
    }];
    rows.extend(failure_writes(&client, dir));
    rows.push(report_throughput(&target, settings.report_bytes, dir));
    rows
}

/// What a failed allocation costs its caller: the first one returns only once
/// its recording is on disk; later ones within the second only ask.
fn failure_writes(client: &Path, dir: &Path) -> Vec<Row> {
    let fail = |mode| json_of(client_command(client, mode, dir).args(["fail", "1000"]));
    let (without, with) = (fail(Mode::Without), fail(Mode::TracingOn));
    let field = |v: &Value, key: &str| v[key].as_f64().expect(key);
    let first = field(&with, "first_ns") / 1000.0;
    vec![
        Row {
            what: "a failed allocation, tracing on: the first (returns once its recording is on disk)".into(),
            without: field(&without, "first_ns") / 1000.0,
            with: first,
            unit: "us",
            goal: format!("the failure is on disk before the call returns: {first:.0} us"),
            meets: None,
        },
        Row {
            what: "failed allocations within the same second (written at most once a second)".into(),
            without: field(&without, "later_ns"),
            with: field(&with, "later_ns"),
            unit: "ns",
            goal: "later failures only ask for a write".into(),
            meets: None,
        },
    ]
}

/// `npu-alloc-shim report` over copies of one recording (each its own pid)
/// adding up to `total` bytes.
fn report_throughput(recording: &Path, total: u64, dir: &Path) -> Row {
    let mut value: Value = serde_json::from_slice(&std::fs::read(recording).unwrap()).unwrap();
    let set = dir.join("recordings");
    std::fs::create_dir_all(&set).unwrap();
    let (mut written, mut pid) = (0u64, 1u64);
    while written < total {
        value["pid"] = pid.into();
        let bytes = serde_json::to_vec_pretty(&value).unwrap();
        std::fs::write(set.join(format!("r.{pid}.json")), &bytes).unwrap();
        written += bytes.len() as u64;
        pid += 1;
    }
    let begin = Instant::now();
    let mut command = crate::clean_command(crate::cli());
    command.arg("report").arg(&set).args(["--json", dir.join("merged.json").to_str().unwrap()]);
    let output = crate::run_with_timeout(&mut command, Duration::from_secs(600));
    assert!(output.status.success(), "report: {}", String::from_utf8_lossy(&output.stderr));
    let seconds = begin.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&set);
    Row {
        what: format!("report over {:.0} MiB of recordings ({} files)", written as f64 / 1048576.0, pid - 1),
        without: f64::NAN,
        with: written as f64 / 1048576.0 / seconds,
        unit: "MiB/s",
        goal: format!("{seconds:.1} s"),
        meets: None,
    }
}

/// The payoff on the real torch_npu allocator: peak reserved memory of the
/// multimodal workload on an unconstrained simulated NPU, without and with
/// the library (examples/before_after.sh). Skipped without the venv.
pub fn payoff() -> Option<Row> {
    let venv = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/npu-alloc-shim/venv-2.10"))?;
    if !venv.exists() {
        eprintln!("payoff skipped: no torch_npu venv (scripts/torch-npu-venv.sh 2.10)");
        return None;
    }
    let output = Command::new(crate::repo().join("examples/before_after.sh")).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let peaks: Vec<f64> = text
        .lines()
        .skip_while(|l| !l.starts_with("on an unconstrained"))
        .filter_map(|l| l.split("peak reserved ").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let [without, with] = peaks[..] else {
        eprintln!(
            "payoff skipped: examples/before_after.sh ({}) printed no two peaks:\n{text}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    };
    Some(Row {
        what: "payoff: peak reserved of the multimodal workload, real torch_npu 2.10, 64 GiB simulated NPU".into(),
        without,
        with,
        unit: "GiB",
        goal: format!("without / with: {:.3}", without / with),
        meets: Some(with < without),
    })
}

pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| measurement | without | with | ratio | goal | meets |\n|---|---:|---:|---:|---|---|\n");
    for row in rows {
        let without = if row.without.is_nan() { "-".to_owned() } else { format!("{:.1} {}", row.without, row.unit) };
        let ratio = if row.without.is_nan() { "-".to_owned() } else { format!("{:.3}", row.ratio()) };
        let meets = match row.meets {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        out.push_str(&format!(
            "| {} | {without} | {:.1} {} | {ratio} | {} | {meets} |\n",
            row.what, row.with, row.unit, row.goal
        ));
    }
    out
}

pub fn run_all(settings: Settings) -> Vec<Row> {
    let dir = std::env::temp_dir().join(format!("npu-alloc-shim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = per_call(settings, &dir);
    rows.extend(process_start(settings, &dir));
    rows.extend(memory(settings, &dir));
    rows.extend(recording(settings, &dir));
    if settings.payoff {
        rows.extend(payoff());
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}
