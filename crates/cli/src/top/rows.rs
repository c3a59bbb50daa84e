//! What `top` shows: one row per process and device, from the process's
//! latest recording, and the order of the rows. Pure: the clock, this host's
//! name and whether a pid runs are passed in.

use crate::report::units;
use common::format::{Outcome, Recording, Sample};
use std::cmp::Ordering;

/// Growth is the change of live bytes over this window.
pub const GROWTH_WINDOW_MS: u64 = 60_000;
/// A recording from another host that has not been rewritten for this long
/// is shown as stale (its process may be gone; this host cannot tell).
pub const STALE_AFTER_MS: u64 = 30_000;
/// Holders named per row.
const HOLDERS_SHOWN: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Writing (or alive on this host).
    Running,
    /// Another host's process whose recording stopped changing.
    Stale,
    /// Not running on this host, and no final write: killed or crashed.
    Gone,
    /// Wrote its final recording at exit.
    Exited,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stale => "stale",
            State::Gone => "gone",
            State::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub host: String,
    pub pid: u32,
    pub device: i32,
    pub state: State,
    pub live: u64,
    pub peak: u64,
    /// Live bytes now minus a minute ago (since the start for a younger
    /// process); None for a process on several devices (its timeline is the
    /// process's sum, not the device's).
    pub growth: Option<i128>,
    pub failures: u64,
    pub fatal: u64,
    /// Non-torch memory (device used minus torch-held) at the latest
    /// sample, for the whole process; None where unknown.
    pub non_torch: Option<u64>,
    /// The largest holders of device memory in the process, now.
    pub holders: Vec<(String, u64)>,
    pub command: String,
}

/// What the rows are ordered by; numbers largest first, names in order.
/// Also `--sort`'s values (live, peak, ..., non-torch, pid, host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    Live,
    Peak,
    Growth,
    Failures,
    NonTorch,
    Pid,
    Host,
}

impl SortKey {
    pub const ALL: [SortKey; 7] = [
        SortKey::Live,
        SortKey::Peak,
        SortKey::Growth,
        SortKey::Failures,
        SortKey::NonTorch,
        SortKey::Pid,
        SortKey::Host,
    ];

    /// The key that picks it on the screen.
    pub fn key(self) -> char {
        match self {
            SortKey::Live => 'l',
            SortKey::Peak => 'p',
            SortKey::Growth => 'g',
            SortKey::Failures => 'f',
            SortKey::NonTorch => 'n',
            SortKey::Pid => 'i',
            SortKey::Host => 'h',
        }
    }

    pub fn from_key(c: char) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.key() == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Live => "live",
            SortKey::Peak => "peak",
            SortKey::Growth => "growth",
            SortKey::Failures => "failures",
            SortKey::NonTorch => "non-torch",
            SortKey::Pid => "pid",
            SortKey::Host => "host",
        }
    }

    pub fn next(self) -> SortKey {
        let at = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(at + 1) % SortKey::ALL.len()]
    }

    fn compare(self, a: &Row, b: &Row) -> Ordering {
        let by_name = (&a.host, a.pid, a.device).cmp(&(&b.host, b.pid, b.device));
        let first = match self {
            SortKey::Live => b.live.cmp(&a.live),
            SortKey::Peak => b.peak.cmp(&a.peak),
            SortKey::Growth => b.growth.cmp(&a.growth),
            SortKey::Failures => (b.failures, b.fatal).cmp(&(a.failures, a.fatal)),
            SortKey::NonTorch => b.non_torch.cmp(&a.non_torch),
            SortKey::Pid => a.pid.cmp(&b.pid),
            SortKey::Host => Ordering::Equal,
        };
        first.then(by_name)
    }
}

/// Orders rows by `key` (reversed on request); ties by host, pid, device.
pub fn sort(rows: &mut [Row], key: SortKey, reverse: bool) {
    rows.sort_by(|a, b| {
        let order = key.compare(a, b);
        if reverse { order.reverse() } else { order }
    });
}

/// Where the rows are computed: the time and this machine.
pub struct Now<'a> {
    pub unix_ms: u64,
    pub hostname: &'a str,
    /// Whether a pid of this host runs.
    pub alive: &'a dyn Fn(u32) -> bool,
}

/// The rows of one recording: one per device it used (one row with zeros
/// before its first device allocation).
pub fn rows_of(recording: &Recording, now: &Now) -> Vec<Row> {
    let state = state_of(recording, now);
    let single = recording.devices.len() <= 1;
    let non_torch = recording.timeline.samples.last().and_then(Sample::non_framework_bytes);
    let holders = holders(recording);
    let command = command_of(&recording.argv);
    let fatal_on = |device: i32| {
        recording.failures.iter().filter(|f| f.device == device && f.outcome == Some(Outcome::Fatal)).count() as u64
    };
    let row = |device: i32, live: u64, peak: u64, failures: u64, growth: Option<i128>| Row {
        host: recording.hostname.clone(),
        pid: recording.pid,
        device,
        state,
        live,
        peak,
        growth,
        failures,
        fatal: fatal_on(device),
        non_torch,
        holders: holders.clone(),
        command: command.clone(),
    };
    if recording.devices.is_empty() {
        let growth = Some(i128::from(recording.totals.live_bytes) - then_live(recording));
        return vec![row(
            -1,
            recording.totals.live_bytes,
            recording.totals.peak_live_bytes,
            recording.totals.failed_calls,
            growth,
        )];
    }
    recording
        .devices
        .iter()
        .map(|d| {
            // One device: the process's counts are the device's (complete,
            // where the failure list keeps the first 256 only).
            let failures = if single {
                recording.totals.failed_calls
            } else {
                recording.failures.iter().filter(|f| f.device == d.device).count() as u64
            };
            let growth = single.then(|| i128::from(d.live_bytes) - then_live(recording));
            row(d.device, d.live_bytes, d.peak_live_bytes, failures, growth)
        })
        .collect()
}

fn state_of(recording: &Recording, now: &Now) -> State {
    if recording.is_final {
        State::Exited
    } else if recording.hostname == now.hostname {
        if (now.alive)(recording.pid) { State::Running } else { State::Gone }
    } else if now.unix_ms.saturating_sub(recording.written_unix_ms) > STALE_AFTER_MS {
        State::Stale
    } else {
        State::Running
    }
}

/// Live bytes one window before the recording was written: the latest
/// timeline sample at least that old, or 0 when the first hooked call came
/// later (nothing was held before it).
fn then_live(recording: &Recording) -> i128 {
    let now = recording.written_unix_ms.saturating_sub(recording.started_unix_ms);
    let Some(then) = now.checked_sub(GROWTH_WINDOW_MS) else { return 0 };
    recording.timeline.samples.iter().rev().find(|s| s.t_ms <= then).map_or(0, |s| i128::from(s.live_bytes))
}

fn holders(recording: &Recording) -> Vec<(String, u64)> {
    let mut holders: Vec<(String, u64)> = recording
        .callers
        .iter()
        .filter(|c| c.live.device > 0)
        .map(|c| (units::basename(&c.library).to_owned(), c.live.device))
        .collect();
    holders.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    holders.truncate(HOLDERS_SHOWN);
    holders
}

/// The command line as shown: the program's name and its arguments.
fn command_of(argv: &[String]) -> String {
    let mut words = argv.iter();
    let Some(program) = words.next() else { return "?".to_owned() };
    let mut line = units::basename(program).to_owned();
    for word in words {
        line.push(' ');
        line.push_str(word);
    }
    units::terminal_safe(&line, 120)
}

/// The cells of a row as text, in `COLUMNS` order.
pub fn cells(row: &Row) -> [String; 11] {
    let failures = match (row.failures, row.fatal) {
        (0, _) => "0".to_owned(),
        (n, 0) => n.to_string(),
        (n, fatal) => format!("{n} ({fatal} fatal)"),
    };
    let holders: Vec<String> =
        row.holders.iter().map(|(name, bytes)| format!("{name} {}", units::bytes(*bytes))).collect();
    [
        units::terminal_safe(&row.host, 24),
        row.pid.to_string(),
        if row.device < 0 { "-".to_owned() } else { units::device(row.device) },
        row.state.name().to_owned(),
        units::bytes(row.live),
        units::bytes(row.peak),
        row.growth.map_or_else(|| "-".to_owned(), units::signed_bytes),
        failures,
        row.non_torch.map_or_else(|| "-".to_owned(), units::bytes),
        if holders.is_empty() { "-".to_owned() } else { holders.join(", ") },
        row.command.clone(),
    ]
}

/// Column titles; the sortable ones carry their key.
pub const COLUMNS: [&str; 11] =
    ["HOST", "PID", "DEV", "STATE", "LIVE", "PEAK", "GROWTH/1m", "FAILS", "NON-TORCH", "TOP HOLDERS", "COMMAND"];

/// The column a sort key orders by.
pub fn column_of(key: SortKey) -> usize {
    match key {
        SortKey::Host => 0,
        SortKey::Pid => 1,
        SortKey::Live => 4,
        SortKey::Peak => 5,
        SortKey::Growth => 6,
        SortKey::Failures => 7,
        SortKey::NonTorch => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::format::{Caller, Counters, Device, Failure, PoolBytes, Timeline};

    const MIB: u64 = 1 << 20;

    fn recording(pid: u32, devices: &[(i32, u64)]) -> Recording {
        Recording {
            pid,
            hostname: "a".into(),
            argv: vec!["/usr/bin/python3".into(), "serve.py".into()],
            started_unix_ms: 1_000_000,
            written_unix_ms: 1_000_000 + 300_000,
            devices: devices
                .iter()
                .map(|&(device, live)| Device {
                    device,
                    live_bytes: live,
                    peak_live_bytes: 2 * live,
                    ..Default::default()
                })
                .collect(),
            totals: Counters { live_bytes: devices.iter().map(|d| d.1).sum(), failed_calls: 3, ..Default::default() },
            ..Default::default()
        }
    }

    fn now<'a>(alive: &'a dyn Fn(u32) -> bool) -> Now<'a> {
        Now { unix_ms: 1_000_000 + 301_000, hostname: "a", alive }
    }

    #[test]
    fn one_row_per_device_with_growth_over_the_last_minute() {
        let mut r = recording(7, &[(3, 500 * MIB)]);
        let sample = |t_ms, live| Sample { t_ms, live_bytes: live, ..Default::default() };
        // Written at t = 300 s: the sample at 230 s is the latest at least a minute old.
        r.timeline = Timeline {
            samples: vec![sample(100_000, 50 * MIB), sample(230_000, 200 * MIB), sample(250_000, 900 * MIB)],
            ..Default::default()
        };
        let rows = rows_of(&r, &now(&|_| true));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.device, row.live, row.peak, row.state), (3, 500 * MIB, 1000 * MIB, State::Running));
        assert_eq!(row.growth, Some(i128::from(300 * MIB)));
        assert_eq!(row.failures, 3, "one device: the process's complete count");
        assert_eq!(cells(row)[6], "+300.0 MiB");
        assert_eq!(row.command, "python3 serve.py");
    }

    #[test]
    fn several_devices_have_no_growth_and_count_their_own_failures() {
        let mut r = recording(7, &[(0, MIB), (1, 2 * MIB)]);
        let failure = |device, outcome| Failure { device, outcome: Some(outcome), ..Default::default() };
        r.failures = vec![failure(1, Outcome::Recovered), failure(1, Outcome::Fatal)];
        let rows = rows_of(&r, &now(&|_| true));
        assert_eq!(
            rows.iter().map(|r| (r.device, r.failures, r.fatal, r.growth)).collect::<Vec<_>>(),
            [(0, 0, 0, None), (1, 2, 1, None)]
        );
        assert_eq!(cells(&rows[1])[7], "2 (1 fatal)");
        assert_eq!(cells(&rows[0])[6], "-");
    }

    #[test]
    fn state_from_the_final_flag_the_pid_and_the_age() {
        let alive = |pid: u32| pid == 1;
        let mut r = recording(1, &[(0, MIB)]);
        assert_eq!(rows_of(&r, &now(&alive))[0].state, State::Running);
        r.pid = 2;
        assert_eq!(rows_of(&r, &now(&alive))[0].state, State::Gone);
        r.is_final = true;
        assert_eq!(rows_of(&r, &now(&alive))[0].state, State::Exited);
        // Another host: by the age of its last write alone.
        let mut other = recording(1, &[(0, MIB)]);
        other.hostname = "b".into();
        assert_eq!(rows_of(&other, &now(&|_| false))[0].state, State::Running);
        other.written_unix_ms -= STALE_AFTER_MS + 2_000;
        assert_eq!(rows_of(&other, &now(&|_| false))[0].state, State::Stale);
    }

    #[test]
    fn holders_are_the_largest_device_holders_by_name() {
        let mut r = recording(1, &[(0, 10 * MIB)]);
        let caller = |library: &str, device| Caller {
            library: library.into(),
            live: PoolBytes { device, host: 0 },
            ..Default::default()
        };
        r.callers = vec![
            caller("/x/libhccl.so", MIB),
            caller("/x/libtorch_npu.so", 8 * MIB),
            caller("/x/libc.so", 0),
            caller("/y/liba.so", MIB),
        ];
        assert_eq!(cells(&rows_of(&r, &now(&|_| true))[0])[9], "libtorch_npu.so 8.0 MiB, liba.so 1.0 MiB");
    }

    #[test]
    fn sorting_by_each_key_and_reversed() {
        let row = |pid, live, peak| Row {
            pid,
            live,
            peak,
            ..rows_of(&recording(pid, &[(0, 0)]), &now(&|_| true))[0].clone()
        };
        let mut rows = vec![row(1, 5, 9), row(2, 7, 1), row(3, 6, 5)];
        let pids = |rows: &[Row]| rows.iter().map(|r| r.pid).collect::<Vec<_>>();
        sort(&mut rows, SortKey::Live, false);
        assert_eq!(pids(&rows), [2, 3, 1]);
        sort(&mut rows, SortKey::Peak, false);
        assert_eq!(pids(&rows), [1, 3, 2]);
        sort(&mut rows, SortKey::Pid, true);
        assert_eq!(pids(&rows), [3, 2, 1]);
        assert_eq!(SortKey::from_key('g'), Some(SortKey::Growth));
        assert_eq!(SortKey::Host.next(), SortKey::Live);
    }
}
