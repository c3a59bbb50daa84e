//! Folds recordings, one at a time, into the merged view of a job: sums,
//! per-device and per-library tables, the failures, and a bounded set of
//! process summaries. Memory stays bounded whatever the number of files:
//! every table has a cap, and what falls beyond it is counted.

use super::findings::{Finding, Findings, is_torch_library};
use super::mem_usage::MemUsageDump;
use super::summary::{OutcomeCounts, ProcessSummary, TEXT_LIMIT};
use super::units::truncate;
use common::format::{ApiCounters, Bucket, Counters, PoolBytes, Recording, histogram};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Schema of `--json`.
pub const SCHEMA: &str = "npu-alloc-shim-report/1";
/// Processes kept with their summary and timeline: those with the highest peaks.
pub const MAX_PROCESSES: usize = 512;
/// Failures kept (in reading order); all are counted.
pub const MAX_FAILURES: usize = 1000;
const MAX_CALLERS: usize = 1024;
const MAX_DEVICES: usize = 4096;
const MAX_APIS: usize = 64;
const MAX_HOSTS: usize = 4096;
const MAX_SKIPPED: usize = 100;

#[derive(Clone, Debug, Default, Serialize)]
pub struct DeviceSummary {
    pub hostname: String,
    pub device: i32,
    pub processes: u64,
    pub live_bytes: u64,
    /// The sum of the processes' peaks on it: exact with one process.
    pub peak_live_bytes: u64,
    pub peak_is_upper_bound: bool,
    pub alloc_calls: u64,
    pub alloc_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CallerSummary {
    pub library: String,
    pub torch: bool,
    pub calls: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Held at the end, summed over processes.
    pub live: PoolBytes,
    /// Held at each process's peak, summed over processes.
    pub at_peak: PoolBytes,
}

/// Allocation calls below the runtime's API, summed over processes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LowerLayer {
    pub calls: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Which of them were called.
    pub apis: BTreeSet<String>,
}

/// One runtime's share of a job (a job may mix NPU and CUDA processes).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuntimeSummary {
    pub runtime: String,
    pub processes: u64,
    /// Device memory summed over its processes (peak: the sum of their peaks).
    pub totals: Counters,
    pub host: Counters,
    pub out_of_memory_failures: u64,
    /// Its processes that mapped memory (expandable segments in effect).
    pub processes_mapping: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureRecord {
    pub hostname: String,
    pub pid: u32,
    /// When it happened, for the timeline.
    pub at_unix_ms: u64,
    pub out_of_memory: bool,
    #[serde(flatten)]
    pub failure: common::format::Failure,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub problem: String,
}

/// The merged data: what `--json` writes and every view draws.
#[derive(Debug, Serialize)]
pub struct Merged {
    pub schema: &'static str,
    pub recordings: u64,
    pub skipped: Vec<Skipped>,
    pub skipped_count: u64,
    pub hosts: Vec<String>,
    pub hosts_count: u64,
    /// The earliest process start: time 0 of the charts and the trace.
    pub origin_unix_ms: u64,
    pub end_unix_ms: u64,
    /// Device memory summed over processes; `peak_live_bytes` is the sum of
    /// the process peaks (an upper bound of the job's peak).
    pub totals: Counters,
    /// The process with the highest peak: what runs out first.
    pub highest_peak: u64,
    pub highest_peak_process: Option<String>,
    pub host: Counters,
    /// Per runtime, by name (a recording's `runtime`).
    pub by_runtime: Vec<RuntimeSummary>,
    pub by_api: BTreeMap<String, ApiCounters>,
    pub histogram: Vec<Bucket>,
    pub devices: Vec<DeviceSummary>,
    pub devices_omitted: u64,
    pub callers: Vec<CallerSummary>,
    pub failures: Vec<FailureRecord>,
    /// All failed allocation calls, kept or not.
    pub failures_total: u64,
    pub out_of_memory_failures: u64,
    /// The recorded out-of-memory failures by what followed them.
    pub oom_outcomes: OutcomeCounts,
    /// The largest rise of non-torch memory in one process (first reading to last).
    pub largest_non_torch_growth: u64,
    /// The highest non-torch memory of one process.
    pub highest_non_torch: u64,
    /// Processes with device readings (a non-torch curve).
    pub processes_with_non_torch: u64,
    pub processes: Vec<ProcessSummary>,
    pub processes_omitted: u64,
    /// Processes that mapped memory (expandable segments in effect).
    pub processes_mapping: u64,
    /// The largest per-process growth (second-half peak over first-half).
    pub largest_growth: u64,
    /// The most distinct large sizes in one process.
    pub most_large_sizes: usize,
    pub findings: Vec<Finding>,
    /// Allocations below the runtime's API (HCCL's, ATB's own memory).
    pub lower_layer: LowerLayer,
    /// torch_npu's memory dumps read beside the recordings or named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mem_usage_dumps: Vec<MemUsageDump>,
    pub mem_usage_dumps_omitted: u64,
}

fn add(a: &mut Counters, b: &Counters) {
    a.alloc_calls = a.alloc_calls.saturating_add(b.alloc_calls);
    a.failed_calls = a.failed_calls.saturating_add(b.failed_calls);
    a.free_calls = a.free_calls.saturating_add(b.free_calls);
    a.untracked_frees = a.untracked_frees.saturating_add(b.untracked_frees);
    a.alloc_bytes = a.alloc_bytes.saturating_add(b.alloc_bytes);
    a.freed_bytes = a.freed_bytes.saturating_add(b.freed_bytes);
    a.live_bytes = a.live_bytes.saturating_add(b.live_bytes);
    a.peak_live_bytes = a.peak_live_bytes.saturating_add(b.peak_live_bytes);
}

/// Accumulates recordings; `finish` gives the merged view.
pub struct Merger {
    recordings: u64,
    skipped: Vec<Skipped>,
    skipped_count: u64,
    hosts: BTreeSet<String>,
    hosts_count: u64,
    origin: Option<u64>,
    end: u64,
    totals: Counters,
    host: Counters,
    by_runtime: BTreeMap<String, RuntimeSummary>,
    by_api: BTreeMap<String, ApiCounters>,
    counts: Vec<u64>,
    bytes: Vec<u64>,
    devices: BTreeMap<(String, i32), DeviceSummary>,
    devices_omitted: u64,
    callers: BTreeMap<String, CallerSummary>,
    failures: Vec<FailureRecord>,
    failures_total: u64,
    oom: u64,
    oom_outcomes: OutcomeCounts,
    largest_non_torch_growth: u64,
    highest_non_torch: u64,
    processes_with_non_torch: u64,
    lower_layer: LowerLayer,
    processes: Vec<ProcessSummary>,
    processes_omitted: u64,
    processes_mapping: u64,
    peaks: Vec<u64>,
    largest_growth: u64,
    most_large_sizes: usize,
    findings: Findings,
}

impl Default for Merger {
    fn default() -> Self {
        Merger {
            recordings: 0,
            skipped: Vec::new(),
            skipped_count: 0,
            hosts: BTreeSet::new(),
            hosts_count: 0,
            origin: None,
            end: 0,
            totals: Counters::default(),
            host: Counters::default(),
            by_runtime: BTreeMap::new(),
            by_api: BTreeMap::new(),
            counts: vec![0; histogram::BUCKETS],
            bytes: vec![0; histogram::BUCKETS],
            devices: BTreeMap::new(),
            devices_omitted: 0,
            callers: BTreeMap::new(),
            failures: Vec::new(),
            failures_total: 0,
            oom: 0,
            oom_outcomes: OutcomeCounts::default(),
            largest_non_torch_growth: 0,
            highest_non_torch: 0,
            processes_with_non_torch: 0,
            lower_layer: LowerLayer::default(),
            processes: Vec::new(),
            processes_omitted: 0,
            processes_mapping: 0,
            peaks: Vec::new(),
            largest_growth: 0,
            most_large_sizes: 0,
            findings: Findings::default(),
        }
    }
}

impl Merger {
    pub fn skip(&mut self, file: &str, problem: &str) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPPED {
            self.skipped.push(Skipped { file: truncate(file, TEXT_LIMIT), problem: truncate(problem, TEXT_LIMIT) });
        }
    }

    /// Folds in one recording; it can be dropped afterwards.
    pub fn add(&mut self, file: &str, r: &Recording) {
        let summary = ProcessSummary::from_recording(file, r);
        self.findings.process(r, &summary);
        self.recordings += 1;
        if self.hosts.len() < MAX_HOSTS {
            if self.hosts.insert(summary.hostname.clone()) {
                self.hosts_count += 1;
            }
        } else if !self.hosts.contains(&summary.hostname) {
            self.hosts_count += 1;
        }
        self.origin = Some(self.origin.map_or(r.started_unix_ms, |o| o.min(r.started_unix_ms)));
        self.end = self.end.max(r.written_unix_ms);
        add(&mut self.totals, &r.totals);
        add(&mut self.host, &r.host);
        let spec = super::runtime_of(r);
        let runtime = self
            .by_runtime
            .entry(spec.name.to_owned())
            .or_insert_with(|| RuntimeSummary { runtime: spec.name.to_owned(), ..RuntimeSummary::default() });
        runtime.processes += 1;
        add(&mut runtime.totals, &r.totals);
        add(&mut runtime.host, &r.host);
        runtime.processes_mapping += u64::from(summary.physical_allocations > 0);
        runtime.out_of_memory_failures += r.failures.iter().filter(|f| spec.oom_codes.contains(&f.code)).count() as u64;
        for (name, api) in &r.by_api {
            if spec.lower_layer_allocs.contains(&name.as_str()) {
                let lower = &mut self.lower_layer;
                lower.calls = lower.calls.saturating_add(api.calls);
                lower.failures = lower.failures.saturating_add(api.failures);
                lower.bytes = lower.bytes.saturating_add(api.bytes);
                lower.apis.insert(name.clone());
            }
            let key = if self.by_api.len() < MAX_APIS || self.by_api.contains_key(name) {
                truncate(name, 64)
            } else {
                "(other)".to_owned()
            };
            let entry = self.by_api.entry(key).or_default();
            entry.calls = entry.calls.saturating_add(api.calls);
            entry.failures = entry.failures.saturating_add(api.failures);
            entry.bytes = entry.bytes.saturating_add(api.bytes);
        }
        for bucket in &r.histogram {
            // Indexed by `lo`: a hand-written `hi` cannot misplace it.
            let i = histogram::index(bucket.lo);
            self.counts[i] = self.counts[i].saturating_add(bucket.count);
            self.bytes[i] = self.bytes[i].saturating_add(bucket.bytes);
        }
        for d in &summary.devices {
            let key = (summary.hostname.clone(), d.device);
            if self.devices.len() >= MAX_DEVICES && !self.devices.contains_key(&key) {
                self.devices_omitted += 1;
                continue;
            }
            let entry = self.devices.entry(key).or_insert_with(|| DeviceSummary {
                hostname: summary.hostname.clone(),
                device: d.device,
                ..DeviceSummary::default()
            });
            entry.processes += 1;
            entry.peak_is_upper_bound = entry.processes > 1;
            entry.live_bytes = entry.live_bytes.saturating_add(d.live_bytes);
            entry.peak_live_bytes = entry.peak_live_bytes.saturating_add(d.peak_live_bytes);
            entry.alloc_calls = entry.alloc_calls.saturating_add(d.alloc_calls);
            entry.alloc_bytes = entry.alloc_bytes.saturating_add(d.alloc_bytes);
        }
        for c in &r.callers {
            let library = if self.callers.len() < MAX_CALLERS || self.callers.contains_key(&c.library) {
                truncate(&c.library, TEXT_LIMIT)
            } else {
                "(other libraries)".to_owned()
            };
            let torch = is_torch_library(&library);
            let entry = self.callers.entry(library.clone()).or_insert_with(|| CallerSummary {
                library,
                torch,
                ..Default::default()
            });
            entry.calls = entry.calls.saturating_add(c.calls);
            entry.failures = entry.failures.saturating_add(c.failures);
            entry.bytes = entry.bytes.saturating_add(c.bytes);
            entry.live.device = entry.live.device.saturating_add(c.live.device);
            entry.live.host = entry.live.host.saturating_add(c.live.host);
            entry.at_peak.device = entry.at_peak.device.saturating_add(c.at_peak.device);
            entry.at_peak.host = entry.at_peak.host.saturating_add(c.at_peak.host);
        }
        let spec = super::runtime_of(r);
        self.failures_total = self.failures_total.saturating_add(summary.failed_calls);
        for f in &r.failures {
            let out_of_memory = spec.oom_codes.contains(&f.code);
            self.oom += u64::from(out_of_memory);
            if self.failures.len() < MAX_FAILURES {
                self.failures.push(FailureRecord {
                    hostname: summary.hostname.clone(),
                    pid: summary.pid,
                    at_unix_ms: r.started_unix_ms.saturating_add(f.t_ms),
                    out_of_memory,
                    failure: super::summary::bounded_failure(f),
                });
            }
        }
        self.oom_outcomes.add(&summary.oom_outcomes);
        if let Some(non_torch) = summary.non_torch {
            self.processes_with_non_torch += 1;
            self.largest_non_torch_growth = self.largest_non_torch_growth.max(non_torch.growth());
            self.highest_non_torch = self.highest_non_torch.max(non_torch.max);
        }
        self.processes_mapping += u64::from(summary.physical_allocations > 0);
        self.largest_growth = self.largest_growth.max(summary.growth.map_or(0, |g| g.bytes()));
        self.most_large_sizes = self.most_large_sizes.max(summary.large_sizes);
        self.peaks.push(summary.peak());
        self.keep(summary);
    }

    /// Keeps the summary, or, when full, the MAX_PROCESSES highest peaks.
    fn keep(&mut self, summary: ProcessSummary) {
        if self.processes.len() < MAX_PROCESSES {
            self.processes.push(summary);
            return;
        }
        self.processes_omitted += 1;
        let lowest = self.processes.iter().enumerate().min_by_key(|(_, p)| p.peak()).map(|(i, p)| (i, p.peak()));
        if let Some((i, peak)) = lowest
            && summary.peak() > peak
        {
            self.processes[i] = summary;
        }
    }

    pub fn recordings(&self) -> u64 {
        self.recordings
    }

    pub fn finish(self) -> Merged {
        let mut processes = self.processes;
        processes.sort_by(|a, b| {
            (&a.hostname, a.device, a.pid, a.started_unix_ms).cmp(&(&b.hostname, b.device, b.pid, b.started_unix_ms))
        });
        let highest = processes.iter().max_by_key(|p| p.peak());
        let mut callers: Vec<CallerSummary> = self.callers.into_values().collect();
        callers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.calls.cmp(&a.calls)).then(a.library.cmp(&b.library)));
        let pairs: Vec<(String, u64)> = callers.iter().map(|c| (c.library.clone(), c.bytes)).collect();
        let findings = self.findings.finish(&pairs, &self.peaks, highest);
        let histogram = (0..histogram::BUCKETS)
            .filter(|&i| self.counts[i] > 0)
            .map(|i| {
                let (lo, hi) = histogram::bounds(i);
                Bucket { lo, hi, count: self.counts[i], bytes: self.bytes[i] }
            })
            .collect();
        Merged {
            schema: SCHEMA,
            recordings: self.recordings,
            skipped: self.skipped,
            skipped_count: self.skipped_count,
            hosts: self.hosts.into_iter().collect(),
            hosts_count: self.hosts_count,
            origin_unix_ms: self.origin.unwrap_or(0),
            end_unix_ms: self.end,
            totals: self.totals,
            highest_peak: highest.map_or(0, |p| p.peak()),
            highest_peak_process: highest.map(|p| p.label()),
            host: self.host,
            by_runtime: self.by_runtime.into_values().collect(),
            by_api: self.by_api,
            histogram,
            devices: self.devices.into_values().collect(),
            devices_omitted: self.devices_omitted,
            callers,
            failures: self.failures,
            failures_total: self.failures_total,
            out_of_memory_failures: self.oom,
            oom_outcomes: self.oom_outcomes,
            largest_non_torch_growth: self.largest_non_torch_growth,
            highest_non_torch: self.highest_non_torch,
            processes_with_non_torch: self.processes_with_non_torch,
            lower_layer: self.lower_layer,
            processes,
            processes_omitted: self.processes_omitted,
            processes_mapping: self.processes_mapping,
            largest_growth: self.largest_growth,
            most_large_sizes: self.most_large_sizes,
            findings,
            mem_usage_dumps: Vec::new(),
            mem_usage_dumps_omitted: 0,
        }
    }
}
