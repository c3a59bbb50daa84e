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
        start_runs: 200,
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
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.with / self.without
    }
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
    });
    let mut traced_1 = 0.0;
    for &threads in settings.thread_counts {
        for same_device in [false, true] {
            if threads == 1 && same_device {
                continue;
            }
            let direct = pair_cost(&client, Mode::Without, threads, same_device, settings, dir);
            let traced = pair_cost(&client, Mode::TracingOn, threads, same_device, settings, dir);
            let devices = if same_device { "one device" } else { "a device each" };
            let goal = match threads {
                1 => {
                    traced_1 = traced;
                    format!("under 50 ns: {traced:.1} ns")
                }
                2 => format!("per-thread cost at most 1.5x 1 thread: {:.2}x", traced / traced_1),
                _ => format!("{:.2}x the 1-thread cost", traced / traced_1),
            };
            rows.push(Row {
                what: format!("alloc/free pair, {threads} thread(s), {devices}, tracing on"),
                without: direct,
                with: traced,
                unit: "ns",
                goal,
            });
        }
    }
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
        goal: format!("readings add at most 1%: {:+.2}% (median of the pairs' ratios)", (ratio - 1.0) * 100.0),
    }
}

/// Median wall time of `runs` starts of `program args`.
fn start_time(program: &str, args: &[&str], preload: bool, runs: usize) -> f64 {
    let samples = (0..runs)
        .map(|_| {
            let mut command = crate::clean_command(program);
            command.args(args).env("NPU_ALLOC_SHIM_LOG", "off");
            if preload {
                command.env("LD_PRELOAD", crate::library());
            }
            let begin = Instant::now();
            let status = command.status().expect("start");
            assert!(status.success());
            begin.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(samples)
}

pub fn process_start(settings: Settings) -> Vec<Row> {
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
    let cases: [(&str, &[&str], &str, f64); 3] = [
        ("/bin/true", &[], "/bin/true", 1.10),
        ("/bin/sh", &["-c", ":"], "/bin/sh -c :", 1.10),
        (python.as_str(), &["-c", "pass"], "python3 -c pass", 1.05),
    ];
    cases
        .iter()
        .map(|(program, args, name, goal)| {
            // Interleave to spread machine noise over both sides.
            let mut without = Vec::new();
            let mut with = Vec::new();
            for _ in 0..3 {
                without.push(start_time(program, args, false, settings.start_runs));
                with.push(start_time(program, args, true, settings.start_runs));
            }
            let (without, with) = (median(without), median(with));
            Row {
                what: format!("process start: {name}"),
                without,
                with,
                unit: "us",
                goal: format!("under {goal:.2}x: {:.3}x", with / without),
            }
        })
        .collect()
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
        },
        Row {
            what: "failed allocations within the same second (written at most once a second)".into(),
            without: field(&without, "later_ns"),
            with: field(&with, "later_ns"),
            unit: "ns",
            goal: "later failures only ask for a write".into(),
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
    })
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| measurement | without | with | ratio | goal |\n|---|---:|---:|---:|---|\n");
    for row in rows {
        let without = if row.without.is_nan() { "-".to_owned() } else { format!("{:.1} {}", row.without, row.unit) };
        let ratio = if row.without.is_nan() { "-".to_owned() } else { format!("{:.3}", row.ratio()) };
        out.push_str(&format!(
            "| {} | {without} | {:.1} {} | {ratio} | {} |\n",
            row.what, row.with, row.unit, row.goal
        ));
    }
    out
}

pub fn run_all(settings: Settings) -> Vec<Row> {
    let dir = std::env::temp_dir().join(format!("npu-alloc-shim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = per_call(settings, &dir);
    rows.extend(process_start(settings));
    rows.extend(memory(settings, &dir));
    rows.extend(recording(settings, &dir));
    if settings.payoff {
        rows.extend(payoff());
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}
