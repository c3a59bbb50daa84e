//! `npu-alloc-shim top`: a live view of running processes from their
//! periodic recordings (`NPU_ALLOC_SHIM_TRACE`), per host, process and
//! device: live, peak, growth, failures, non-torch memory, top holders.
//! A full-screen table on a terminal; one plain table otherwise.

mod plain;
mod rows;
mod screen;
mod watch;

use clap::Args;
use rows::SortKey;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use watch::{Snapshot, Watch};

const EXIT_NO_INPUT: i32 = 66;
const EXIT_IO: i32 = 74;
const EXIT_USAGE: i32 = 64;

/// Watch running processes from their periodic recordings: per host,
/// process and device, live and peak bytes, growth over the last minute,
/// failed allocations (fatal ones counted), non-torch memory and the
/// largest holders. Keys: q quits, s cycles the sort, r reverses it,
/// l/p/g/f/n/i/h sort by live/peak/growth/failures/non-torch/pid/host. Off
/// a terminal (or with --once) it prints one plain table and exits.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 done; 64 bad arguments; 66 a path does not exist; 74 the terminal cannot be used"
)]
pub struct TopArgs {
    /// Directories (or files) of recordings [default: $NPU_ALLOC_SHIM_TRACE's
    /// directory when set, else the current directory]
    #[arg(value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Seconds between refreshes
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    interval: f64,
    /// The order of the rows (numbers largest first)
    #[arg(long, value_enum, default_value = "live")]
    sort: SortKey,
    /// Reverse the order
    #[arg(long)]
    reverse: bool,
    /// Print one plain table and exit, even on a terminal
    #[arg(long)]
    once: bool,
}

pub fn top(args: TopArgs) -> i32 {
    if !(args.interval.is_finite() && (0.1..=3600.0).contains(&args.interval)) {
        eprintln!("npu-alloc-shim: --interval {}: expected 0.1 to 3600 seconds", args.interval);
        return EXIT_USAGE;
    }
    let paths = if args.paths.is_empty() { vec![default_dir()] } else { args.paths };
    let mut watch = match Watch::new(paths) {
        Ok(watch) => watch,
        Err(error) => {
            eprintln!("npu-alloc-shim: {error}");
            return EXIT_NO_INPUT;
        }
    };
    let view = screen::View { key: args.sort, reverse: args.reverse };
    let interval = Duration::from_secs_f64(args.interval);
    if args.once || !std::io::stdout().is_terminal() {
        let mut snapshot = watch.refresh(now_unix_ms());
        rows::sort(&mut snapshot.rows, view.key, view.reverse);
        print!("{}", plain::render(&snapshot, &title(&snapshot, &watch, &view, interval)));
        return 0;
    }
    match screen::run(&mut watch, view, interval) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("npu-alloc-shim: top: the terminal cannot be used: {error}");
            EXIT_IO
        }
    }
}

/// Where the library of this shell writes, else here.
fn default_dir() -> PathBuf {
    let Some(trace) = std::env::var_os(crate::preload_env::TRACE_VAR).filter(|t| !t.is_empty()) else {
        return PathBuf::from(".");
    };
    let trace = PathBuf::from(trace);
    if trace.is_dir() || trace.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return trace;
    }
    // A file template (`/logs/run.%p.json`): its directory.
    trace.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The line above the table: counts, totals, the order and the time.
fn title(snapshot: &Snapshot, watch: &Watch, view: &screen::View, interval: Duration) -> String {
    let processes: BTreeSet<(&str, u32)> = snapshot.rows.iter().map(|r| (r.host.as_str(), r.pid)).collect();
    let running: BTreeSet<(&str, u32)> =
        snapshot.rows.iter().filter(|r| r.state == rows::State::Running).map(|r| (r.host.as_str(), r.pid)).collect();
    let hosts: BTreeSet<&str> = snapshot.rows.iter().map(|r| r.host.as_str()).collect();
    let live: u64 = snapshot.rows.iter().filter(|r| r.state == rows::State::Running).map(|r| r.live).sum();
    let paths: Vec<String> = watch.paths().iter().map(|p| p.display().to_string()).collect();
    let seconds = now_unix_ms() / 1000;
    format!(
        "npu-alloc-shim top  {} ({} running) on {}, live {} (running)  sorted by {} {}  every {:.1} s  {:02}:{:02}:{:02} UTC  {}",
        counted(processes.len(), "process", "processes"),
        running.len(),
        counted(hosts.len(), "host", "hosts"),
        crate::report::units::bytes(live),
        view.key.name(),
        if view.reverse { "↑" } else { "↓" },
        interval.as_secs_f64(),
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        paths.join(" "),
    )
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
