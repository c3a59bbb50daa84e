//! One process, reduced from its recording to what the report keeps: a
//! bounded summary (strings cut, timeline at most `MAX_TIMELINE` points) plus
//! the measures the findings and the diff need.

use super::units::truncate;
use common::format::{self, Counters, Errors, Recording, Sample};
use serde::Serialize;

/// Timeline points kept per process: the library writes at most 1024, so a
/// real recording keeps all of its samples.
pub const MAX_TIMELINE: usize = 1024;
/// Devices kept per process (the library's table has 64 slots).
const MAX_DEVICES: usize = 64;
/// Sizes from this one up are "large": torch's caching allocator serves
/// smaller blocks from 2 MiB segments and carves large ones one by one.
pub const LARGE_SIZE: u64 = 1 << 20;
/// Characters kept of a command line, a path, a configuration value.
pub const TEXT_LIMIT: usize = 512;

#[derive(Clone, Debug, Serialize)]
pub struct ProcessSummary {
    /// The recording it came from.
    pub file: String,
    pub hostname: String,
    pub pid: u32,
    pub ppid: u32,
    /// argv joined with spaces, cut to TEXT_LIMIT characters.
    pub command: String,
    pub library_version: String,
    pub started_unix_ms: u64,
    pub written_unix_ms: u64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub config: format::Config,
    pub totals: Counters,
    pub peak_is_upper_bound: bool,
    pub host: Counters,
    pub devices: Vec<format::Device>,
    /// The device, when the process used exactly one (the usual rank layout):
    /// its timeline is then that device's.
    pub device: Option<i32>,
    /// Physical allocations for mapped segments (`aclrtMallocPhysical`): the
    /// sign that expandable segments were in effect.
    pub physical_allocations: u64,
    /// Distinct histogram buckets at or above LARGE_SIZE.
    pub large_sizes: usize,
    pub growth: Option<Growth>,
    /// Failed allocations (device and host), including dropped ones.
    pub failed_calls: u64,
    pub failures_dropped: u64,
    pub errors: Errors,
    pub timeline_interval_ms: u64,
    /// Sorted by time; at most MAX_TIMELINE points.
    pub timeline: Vec<Sample>,
    /// Libraries the timeline's holders name.
    pub timeline_libraries: Vec<format::TimelineLibrary>,
    /// "Non-torch memory" over the run, from the samples that read the device.
    pub non_torch: Option<NonTorch>,
    /// Out-of-memory failures by what followed them.
    pub oom_outcomes: OutcomeCounts,
    /// Phase marks, names cut to TEXT_LIMIT.
    pub marks: Vec<format::Mark>,
    pub marks_dropped: u64,
}

/// Device used memory minus torch's share, as vLLM computes it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct NonTorch {
    pub first: u64,
    pub last: u64,
    pub max: u64,
    /// When the first and the last reading were taken (ms since load).
    pub first_t_ms: u64,
    pub last_t_ms: u64,
}

impl NonTorch {
    /// How much it rose from the first reading to the last (never negative).
    pub fn growth(&self) -> u64 {
        self.last.saturating_sub(self.first)
    }

    pub fn from_samples(samples: &[Sample]) -> Option<NonTorch> {
        let read: Vec<(u64, u64)> = samples.iter().filter_map(|s| Some((s.t_ms, s.non_framework_bytes()?))).collect();
        let (first, last) = (read.first()?, read.last()?);
        Some(NonTorch {
            first: first.1,
            last: last.1,
            max: read.iter().map(|r| r.1).max().unwrap_or(0),
            first_t_ms: first.0,
            last_t_ms: last.0,
        })
    }
}

/// Failures counted by outcome; recordings older than the outcome field
/// count as unknown.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub recovered: u64,
    pub survived: u64,
    pub fatal: u64,
    pub unknown: u64,
}

impl OutcomeCounts {
    /// The outcomes of `failures`, counted.
    pub fn of<'a>(failures: impl IntoIterator<Item = &'a format::Failure>) -> OutcomeCounts {
        let mut counts = OutcomeCounts::default();
        failures.into_iter().for_each(|f| counts.count(f.outcome));
        counts
    }

    pub fn count(&mut self, outcome: Option<format::Outcome>) {
        use format::Outcome::*;
        let cell = match outcome {
            Some(Recovered) => &mut self.recovered,
            Some(Survived) => &mut self.survived,
            Some(Fatal) => &mut self.fatal,
            Some(Unknown) | None => &mut self.unknown,
        };
        *cell = cell.saturating_add(1);
    }

    pub fn add(&mut self, other: &OutcomeCounts) {
        self.recovered = self.recovered.saturating_add(other.recovered);
        self.survived = self.survived.saturating_add(other.survived);
        self.fatal = self.fatal.saturating_add(other.fatal);
        self.unknown = self.unknown.saturating_add(other.unknown);
    }

    /// Failures the process may not have come back from.
    pub fn not_recovered(&self) -> u64 {
        self.fatal.saturating_add(self.unknown)
    }

    /// `2 fatal, 1 recovered`, naming only what occurred.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.fatal, "fatal"),
            (self.unknown, "outcome unknown"),
            (self.survived, "survived"),
            (self.recovered, "recovered"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }
}

/// Peak live bytes in the first and the second half of the timeline's span.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Growth {
    pub first_half_peak: u64,
    pub second_half_peak: u64,
}

impl Growth {
    /// How much higher the second half went (0 when it did not).
    pub fn bytes(&self) -> u64 {
        self.second_half_peak.saturating_sub(self.first_half_peak)
    }
}

impl ProcessSummary {
    pub fn from_recording(file: &str, r: &Recording) -> ProcessSummary {
        let mut timeline = r.timeline.samples.clone();
        // Hand-written files may be out of order; charts and counters need time order.
        timeline.sort_by_key(|s| s.t_ms);
        let timeline = downsample(&timeline, MAX_TIMELINE);
        let used: Vec<&format::Device> =
            r.devices.iter().filter(|d| d.alloc_calls > 0 || d.peak_live_bytes > 0).collect();
        let device = match used.as_slice() {
            [only] => Some(only.device),
            _ => None,
        };
        let mut devices = r.devices.clone();
        devices.sort_by_key(|d| d.device);
        devices.truncate(MAX_DEVICES);
        let config = format::Config {
            var: truncate(&r.config.var, TEXT_LIMIT),
            before: r.config.before.as_deref().map(|v| truncate(v, TEXT_LIMIT)),
            after: r.config.after.as_deref().map(|v| truncate(v, TEXT_LIMIT)),
            rule: truncate(&r.config.rule, TEXT_LIMIT),
            applied: r.config.applied,
        };
        let mut buckets: Vec<usize> = r
            .histogram
            .iter()
            .filter(|b| b.count > 0 && b.lo >= LARGE_SIZE)
            .map(|b| format::histogram::index(b.lo))
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        ProcessSummary {
            file: truncate(file, TEXT_LIMIT),
            hostname: truncate(&r.hostname, 255),
            pid: r.pid,
            ppid: r.ppid,
            command: command_line(&r.argv),
            library_version: truncate(&r.library_version, 64),
            started_unix_ms: r.started_unix_ms,
            written_unix_ms: r.written_unix_ms,
            is_final: r.is_final,
            config,
            totals: r.totals,
            peak_is_upper_bound: r.totals_peak_is_upper_bound,
            host: r.host,
            devices,
            device,
            physical_allocations: r
                .by_api
                .get(super::runtime_of(r).segment_alloc_api)
                .map_or(0, |a| a.calls.saturating_sub(a.failures)),
            large_sizes: buckets.len(),
            growth: growth(&timeline),
            failed_calls: r.totals.failed_calls.saturating_add(r.host.failed_calls),
            failures_dropped: r.failures_dropped,
            errors: r.errors,
            timeline_interval_ms: r.timeline.interval_ms,
            non_torch: NonTorch::from_samples(&timeline),
            timeline,
            timeline_libraries: r
                .timeline
                .libraries
                .iter()
                .take(MAX_TIMELINE)
                .map(|l| format::TimelineLibrary { library: truncate(&l.library, TEXT_LIMIT), pool: l.pool })
                .collect(),
            oom_outcomes: oom_outcomes(r),
            marks: r.marks.iter().take(format::MARKS_KEPT).map(bounded_mark).collect(),
            marks_dropped: r.marks_dropped.saturating_add(r.marks.len().saturating_sub(format::MARKS_KEPT) as u64),
        }
    }

    /// `host pid 123 (device 3)`: how findings and tables name a process.
    pub fn label(&self) -> String {
        let device = match self.device {
            Some(id) => format!(" (device {})", super::units::device(id)),
            None if self.devices.len() > 1 => format!(" ({} devices)", self.devices.len()),
            None => String::new(),
        };
        format!("{} pid {}{device}", self.hostname, self.pid)
    }

    /// The highest device live bytes this process reached (exact with one
    /// device, an upper bound with several).
    pub fn peak(&self) -> u64 {
        self.totals.peak_live_bytes
    }
}

fn oom_outcomes(r: &Recording) -> OutcomeCounts {
    let spec = super::runtime_of(r);
    OutcomeCounts::of(r.failures.iter().filter(|f| spec.oom_codes.contains(&f.code)))
}

fn bounded_held(held: &[format::Held]) -> Vec<format::Held> {
    held.iter()
        .take(format::HELD_TOP * 2)
        .map(|h| format::Held { library: truncate(&h.library, TEXT_LIMIT), ..h.clone() })
        .collect()
}

fn bounded_mark(mark: &format::Mark) -> format::Mark {
    format::Mark { name: truncate(&mark.name, TEXT_LIMIT), held: bounded_held(&mark.held), ..mark.clone() }
}

/// A failure with its strings and lists bounded.
pub fn bounded_failure(failure: &format::Failure) -> format::Failure {
    format::Failure { api: truncate(&failure.api, 64), held: bounded_held(&failure.held), ..failure.clone() }
}

/// argv as one line, cut to TEXT_LIMIT characters.
fn command_line(argv: &[String]) -> String {
    let mut line = String::new();
    for arg in argv {
        if line.chars().count() > TEXT_LIMIT {
            break;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&truncate(arg, TEXT_LIMIT));
    }
    truncate(&line, TEXT_LIMIT)
}

/// At most `max` points: runs of neighbours merge into their last sample,
/// keeping the highest maximum so spikes survive (as the library does).
pub fn downsample(samples: &[Sample], max: usize) -> Vec<Sample> {
    if samples.len() <= max || max == 0 {
        return samples.to_vec();
    }
    let run = samples.len().div_ceil(max);
    samples
        .chunks(run)
        .map(|chunk| {
            let last = chunk[chunk.len() - 1].clone();
            Sample {
                max_live_bytes: chunk.iter().map(|s| s.max_live_bytes.max(s.live_bytes)).max().unwrap_or(0),
                ..last
            }
        })
        .collect()
}

/// Peaks of the two halves of the timeline's span; None with fewer than 4
/// samples or no span, where halves say nothing.
pub fn growth(samples: &[Sample]) -> Option<Growth> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 4 || last.t_ms <= first.t_ms {
        return None;
    }
    let middle = first.t_ms + (last.t_ms - first.t_ms) / 2;
    let peak = |keep: &dyn Fn(u64) -> bool| {
        samples.iter().filter(|s| keep(s.t_ms)).map(|s| s.max_live_bytes.max(s.live_bytes)).max().unwrap_or(0)
    };
    Some(Growth { first_half_peak: peak(&|t| t <= middle), second_half_peak: peak(&|t| t > middle) })
}
