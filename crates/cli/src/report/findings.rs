//! Plain-language findings: each rule looks at one process (as it is read)
//! or at the whole job (once everything is merged) and says what it saw and
//! what to change. The same rule firing in many processes becomes one finding
//! that counts them and keeps the worst instance's wording.
//! docs/reports.md lists every rule with its thresholds.

use super::summary::{LARGE_SIZE, OutcomeCounts, ProcessSummary};
use super::units::{basename, bytes, device, holder, percent, seconds};
use common::allocconf::parse::parse;
use common::allocconf::quote::quote;
use common::allocconf::tokenizer::Dialect;
use common::format::{Failure, Held, Outcome, Recording};
use common::runtime::RuntimeSpec;
use serde::Serialize;
use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// fragmentation-growth: this many distinct large size buckets...
pub const GROWTH_MIN_LARGE_SIZES: usize = 8;
/// ...and a second-half peak at least this much higher...
pub const GROWTH_MIN_BYTES: u64 = 256 * MIB;
/// ...and at least this many percent higher than the first half's.
pub const GROWTH_MIN_PERCENT: u64 = 20;
/// fragmentation-at-failure: free memory at least this many times the request...
pub const FREE_FACTOR: u64 = 2;
/// ...and at least this much beyond it (below, the runtime's own 2 MiB pages
/// and alignment explain the difference).
pub const FREE_MARGIN: u64 = 2 * MIB;
/// non-torch-memory: at least this much...
pub const NON_TORCH_MIN_BYTES: u64 = 64 * MIB;
/// ...and this share of all bytes allocated through the runtime.
pub const NON_TORCH_MIN_PERCENT: f64 = 5.0;
/// rank-imbalance: the highest peak at least this many percent above the median...
pub const IMBALANCE_MIN_PERCENT: u64 = 25;
/// ...and at least this much above it.
pub const IMBALANCE_MIN_BYTES: u64 = GIB;
/// Processes named as examples of one finding.
const MAX_EXAMPLES: usize = 5;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something failed.
    Error,
    /// A change is recommended.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Stable rule name (docs/reports.md).
    pub id: &'static str,
    pub severity: Severity,
    /// One line, the same for every process the rule fires in.
    pub title: String,
    /// What was seen, with numbers: the worst instance.
    pub detail: String,
    /// What to do.
    pub advice: String,
    /// Processes it fired in; 0 for a finding about the whole job.
    pub processes: u64,
    /// Some of those processes (host pid (device)).
    pub examples: Vec<String>,
    /// Ranks instances: the highest one's wording is kept.
    #[serde(skip)]
    weight: u64,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, title: impl Into<String>) -> Finding {
        Finding {
            id,
            severity,
            title: title.into(),
            detail: String::new(),
            advice: String::new(),
            processes: 0,
            examples: Vec::new(),
            weight: 0,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = advice.into();
        self
    }

    fn weight(mut self, weight: u64) -> Self {
        self.weight = weight;
        self
    }
}

/// Collects findings; bounded by the number of rules.
#[derive(Default)]
pub struct Findings {
    groups: BTreeMap<&'static str, Finding>,
    /// The runtime of the first recording: job-level advice speaks its terms.
    runtime: Option<&'static RuntimeSpec>,
}

impl Findings {
    /// Every per-process rule, on one recording and its summary.
    pub fn process(&mut self, recording: &Recording, process: &ProcessSummary) {
        let spec = super::runtime_of(recording);
        self.runtime.get_or_insert(spec);
        let state = expandable_state(spec, process);
        let mut found: Vec<Finding> = Vec::new();
        found.extend(config_findings(spec, process, &state));
        found.extend(expandable_not_used(spec, process, &state));
        found.extend(fragmentation_growth(spec, process, &state));
        found.extend(failure_findings(spec, recording, process));
        found.extend(recording_findings(process));
        for finding in found {
            self.add(finding, process.label());
        }
    }

    fn add(&mut self, finding: Finding, who: String) {
        let group = self.groups.entry(finding.id).or_insert_with(|| Finding { weight: 0, ..finding.clone() });
        group.processes += 1;
        if group.examples.len() < MAX_EXAMPLES {
            group.examples.push(who);
        }
        if finding.weight > group.weight {
            group.detail = finding.detail;
            group.advice = finding.advice;
            group.weight = finding.weight;
        }
    }

    fn add_job(&mut self, finding: Finding) {
        self.groups.insert(finding.id, finding);
    }

    /// The job-level rules, then every finding, most severe first.
    pub fn finish(
        mut self,
        callers: &[(String, u64)],
        peaks: &[u64],
        highest: Option<&ProcessSummary>,
    ) -> Vec<Finding> {
        let spec = self.runtime.unwrap_or_else(common::runtime::primary);
        if let Some(finding) = non_torch_memory(spec, callers) {
            self.add_job(finding);
        }
        if let Some(finding) = rank_imbalance(peaks, highest) {
            self.add_job(finding);
        }
        let mut all: Vec<Finding> = self.groups.into_values().collect();
        all.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.processes.cmp(&a.processes)).then(a.id.cmp(b.id)));
        all
    }
}

/// What the process's effective allocator setting says about expandable segments.
#[derive(Debug, PartialEq, Eq)]
enum Expandable {
    On,
    /// Set to something else (`False`): off by choice.
    Off(String),
    /// Not named (left alone for a conflict, a parse error, sleep mode, ...).
    Absent,
    /// The value does not parse.
    Invalid,
}

fn expandable_state(spec: &RuntimeSpec, process: &ProcessSummary) -> Expandable {
    let config = &process.config;
    let Some(value) = config.after.as_deref() else { return Expandable::Absent };
    match parse(value.as_bytes(), Dialect::Lenient, spec.keys) {
        Ok(parsed) => match parsed.value_of(spec.enable_key) {
            Some(v) if v == spec.enable_value => Expandable::On,
            Some(v) => Expandable::Off(v.to_owned()),
            None => Expandable::Absent,
        },
        Err(_) => Expandable::Invalid,
    }
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "(unset)".to_owned(), |v| quote(v.as_bytes(), 200))
}

/// The allocator configuration recorded by the library (its decision rule).
fn config_findings(spec: &RuntimeSpec, process: &ProcessSummary, state: &Expandable) -> Vec<Finding> {
    let config = &process.config;
    let var = if config.var.is_empty() { spec.conf_var } else { config.var.as_str() };
    let pair = format!("{}:{}", spec.enable_key, spec.enable_value);
    let value = shown(config.before.as_deref());
    let mut found = Vec::new();
    match config.rule.as_str() {
        "conflict" => {
            let before = config.before.as_deref().unwrap_or("");
            let conflicts: Vec<&str> =
                common::allocconf::decide::conflicts_in(spec, before.as_bytes()).iter().map(|c| c.key).collect();
            let named = if conflicts.is_empty() { "a key".to_owned() } else { conflicts.join(" and ") };
            let suggestion = match parse(before.as_bytes(), Dialect::Lenient, spec.keys) {
                Ok(parsed) => {
                    let mut kept: Vec<String> = parsed
                        .entries
                        .iter()
                        .filter(|e| !conflicts.contains(&e.key.as_str()))
                        .map(|e| format!("{}:{}", e.key, e.value))
                        .collect();
                    kept.push(pair.clone());
                    format!("set {var}={} ({named} removed)", quote(kept.join(",").as_bytes(), 200))
                }
                Err(_) => format!("remove {named} from {var} and add {pair}"),
            };
            found.push(
                Finding::new(
                    "config-conflict",
                    Severity::Warning,
                    "the allocator setting rules out expandable segments",
                )
                .detail(format!(
                    "{var}={value} sets {named}, which {framework} refuses together with {pair}, so the library \
                         left it alone and segments stay fixed",
                    framework = spec.framework
                ))
                .advice(format!(
                    "{suggestion}: {named} only works around the fragmentation that expandable segments remove"
                )),
            );
        }
        "invalid" => found.push(
            Finding::new("config-invalid", Severity::Warning, "the allocator setting does not parse")
                .detail(format!("{var}={value} does not parse or names a key {} does not know", spec.framework))
                .advice(format!(
                    "{} refuses it at the first allocation; `npu-alloc-shim check {value}` shows where it \
                     breaks. Once it parses, the library adds {pair}",
                    spec.framework
                )),
        ),
        "both-set" => found.push(
            Finding::new("config-both-set", Severity::Warning, "both allocator variables are set")
                .detail(format!(
                    "{} and {} are both set; the library left them alone",
                    spec.conf_var, spec.generic_conf_var
                ))
                .advice(format!(
                    "set only {} (newer {} refuses both, older ones ignore {})",
                    spec.conf_var, spec.framework, spec.generic_conf_var
                )),
        ),
        "memory-pool" => found.push(
            Finding::new("sleep-mode", Severity::Info, "left alone for sleep mode or a memory saver")
                .detail(format!(
                    "the command line turns on a memory pool (RL sleep mode, memory saver); {var} was left as {value}"
                ))
                .advice("that pool manages device memory itself and refuses expandable segments; nothing to change"),
        ),
        _ => {}
    }
    if let Expandable::Off(v) = state {
        found.push(
            Finding::new("expandable-off", Severity::Info, "expandable segments are turned off by the setting")
                .detail(format!("{var}={} sets {}:{v}", shown(config.after.as_deref()), spec.enable_key))
                .advice(format!("if this process fragments (see other findings), use {pair} instead")),
        );
    }
    found
}

/// Expandable segments requested but never used: no physical allocations for
/// mapped segments while large blocks came from plain allocations.
fn expandable_not_used(spec: &RuntimeSpec, process: &ProcessSummary, state: &Expandable) -> Option<Finding> {
    if *state != Expandable::On || process.physical_allocations > 0 || process.large_sizes < 2 {
        return None;
    }
    Some(
        Finding::new("expandable-not-used", Severity::Warning, "expandable segments were requested but not used")
            .detail(format!(
                "{}={} but the process never called {}; it allocated {} distinct large sizes \
                 (from {}) with plain allocations instead",
                process.config.var,
                shown(process.config.after.as_deref()),
                spec.segment_alloc_api,
                process.large_sizes,
                bytes(LARGE_SIZE)
            ))
            .advice(format!(
                "this {} or driver predates expandable segments, or another library holds the memory; \
                 `npu-alloc-shim check` on that host prints both versions and what they accept ({})",
                spec.framework, spec.enable_key
            ))
            .weight(process.large_sizes as u64),
    )
}

fn enable_advice(spec: &RuntimeSpec, process: &ProcessSummary, state: &Expandable) -> String {
    let pair = format!("{}:{}", spec.enable_key, spec.enable_value);
    match (process.config.rule.as_str(), state) {
        ("conflict", _) => {
            format!("remove the conflicting key from {} and use {pair} (see config-conflict)", process.config.var)
        }
        (_, Expandable::Off(_)) => format!("change {} to {pair}", process.config.var),
        (_, Expandable::On) => {
            "expandable segments were requested but not in effect (see expandable-not-used)".to_owned()
        }
        ("normalize-off" | "disabled", _) => format!(
            "the library was told to leave the setting alone (rule {}): set {}={pair}, or drop \
             NPU_ALLOC_SHIM_NORMALIZE=0 / NPU_ALLOC_SHIM_DISABLE=1",
            process.config.rule, spec.conf_var
        ),
        _ => format!("set {}={pair}", spec.conf_var),
    }
}

/// Reserved memory creeping up while many distinct large sizes come from
/// fixed segments: the caching allocator cannot reuse what it freed.
fn fragmentation_growth(spec: &RuntimeSpec, process: &ProcessSummary, state: &Expandable) -> Option<Finding> {
    let growth = process.growth?;
    let grew = growth.bytes();
    let enough_percent =
        growth.second_half_peak.saturating_mul(100) >= growth.first_half_peak.saturating_mul(100 + GROWTH_MIN_PERCENT);
    if process.physical_allocations > 0
        || process.large_sizes < GROWTH_MIN_LARGE_SIZES
        || grew < GROWTH_MIN_BYTES
        || !enough_percent
    {
        return None;
    }
    Some(
        Finding::new(
            "fragmentation-growth",
            Severity::Warning,
            "device memory keeps growing with many distinct large sizes (fragmentation)",
        )
        .detail(format!(
            "the peak of device memory went from {} in the first half of the run to {} in the second ({}), \
                 while {} distinct large sizes (from {}) were allocated in fixed segments: the caching allocator \
                 reserves new segments for new sizes instead of reusing the ones it freed",
            bytes(growth.first_half_peak),
            bytes(growth.second_half_peak),
            super::units::signed_bytes(i128::from(grew)),
            process.large_sizes,
            bytes(LARGE_SIZE)
        ))
        .advice(format!(
            "{}; expandable segments grow one mapped range instead of carving segments",
            enable_advice(spec, process, state)
        ))
        .weight(grew),
    )
}

fn is_oom(spec: &RuntimeSpec, failure: &Failure) -> bool {
    spec.oom_codes.contains(&failure.code)
}

/// The failures of one process: genuinely full, full in pieces, or not about memory.
fn failure_findings(spec: &RuntimeSpec, recording: &Recording, process: &ProcessSummary) -> Vec<Finding> {
    let mut found = Vec::new();
    let (oom, other): (Vec<&Failure>, Vec<&Failure>) = recording.failures.iter().partition(|f| is_oom(spec, f));
    let fragmented = |f: &&&Failure| {
        f.device_free.is_some_and(|free| {
            free >= f.size.saturating_mul(FREE_FACTOR) && free >= f.size.saturating_add(FREE_MARGIN)
        })
    };
    let (in_pieces, full): (Vec<&Failure>, Vec<&Failure>) = oom.iter().partition(fragmented);
    if let Some(worst) = in_pieces.iter().max_by_key(|f| f.size) {
        let free = worst.device_free.unwrap_or(0);
        found.push(
            Finding::new(
                "fragmentation-at-failure",
                Severity::Warning,
                "allocations failed while the device had plenty free (fragmentation)",
            )
            .detail(format!(
                "{} allocation(s) failed with far more memory free than requested; the largest: {} of {} on \
                     device {} at {} with {} free{} ({:.1}x the request), so the free memory was in pieces too small \
                     for one block",
                in_pieces.len(),
                worst.api,
                bytes(worst.size),
                device(worst.device),
                seconds(worst.t_ms),
                bytes(free),
                worst.device_total.map(|t| format!(" of {}", bytes(t))).unwrap_or_default(),
                free as f64 / worst.size.max(1) as f64
            ))
            .advice(format!(
                "expandable segments map memory in granules that need not be contiguous: {}",
                enable_advice(spec, process, &expandable_state(spec, process))
            ))
            .weight(worst.size),
        );
    }
    // What followed decides: an allocator that freed its cache and retried
    // (recovered), or a program that caught the error and went on
    // (survived), is under pressure; one that never allocated again
    // (fatal, or unknown when the recording ends first) ran out.
    let (ended, came_back): (Vec<&Failure>, Vec<&Failure>) =
        full.iter().partition(|f| !matches!(f.outcome, Some(Outcome::Recovered | Outcome::Survived)));
    if let Some(worst) = ended.iter().max_by_key(|f| f.size) {
        let held = memory_held(worst);
        let beyond = beyond_device(worst);
        let outcomes = OutcomeCounts::of(full.iter().copied());
        found.push(
            Finding::new("out-of-memory", Severity::Error, "allocations failed: the device was out of memory")
                .detail(format!(
                    "{} allocation(s) failed out of memory ({}); the largest not recovered: {} of {} on device {} \
                     at {} (code {}){held}{holders}{beyond}",
                    full.len(),
                    outcomes.describe(),
                    worst.api,
                    bytes(worst.size),
                    device(worst.device),
                    seconds(worst.t_ms),
                    worst.code,
                    holders = holders(&worst.held),
                ))
                .advice(oom_advice(spec, process))
                .weight(worst.size),
        );
    } else if let Some(worst) = came_back.iter().max_by_key(|f| f.size) {
        let outcomes = OutcomeCounts::of(came_back.iter().copied());
        found.push(
            Finding::new(
                "memory-pressure",
                Severity::Warning,
                "allocations failed out of memory, and the process went on",
            )
            .detail(format!(
                "{} allocation(s) failed out of memory ({}): the caching allocator freed cached memory and \
                 retried, or the program caught the error; none was fatal. The largest: {} of {} on device {} at \
                 {}{}{}{}",
                came_back.len(),
                outcomes.describe(),
                worst.api,
                bytes(worst.size),
                device(worst.device),
                seconds(worst.t_ms),
                memory_held(worst),
                holders(&worst.held),
                beyond_device(worst),
            ))
            .advice(
                "the device runs full: each retry costs a cache flush (and synchronizes the device). Leave more \
                 headroom (lower gpu_memory_utilization, batch or image sizes) if this recurs often",
            )
            .weight(worst.size),
        );
    }
    if let Some(first) = other.first() {
        let mut codes: Vec<i32> = other.iter().map(|f| f.code).collect();
        codes.sort_unstable();
        codes.dedup();
        let codes: Vec<String> = codes.iter().take(8).map(i32::to_string).collect();
        found.push(
            Finding::new("allocation-errors", Severity::Warning, "allocations failed for reasons other than memory")
                .detail(format!(
                    "{} allocation(s) failed with code(s) {} (not out-of-memory), e.g. {} of {} on device {}",
                    other.len(),
                    codes.join(", "),
                    first.api,
                    bytes(first.size),
                    device(first.device)
                ))
                .advice(format!(
                    "a wrong argument or a runtime problem, not memory pressure: look up the code in {}",
                    spec.wording.error_codes
                ))
                .weight(other.len() as u64),
        );
    }
    found
}

/// A request beyond the whole device is a size bug, not memory pressure.
fn beyond_device(failure: &Failure) -> String {
    match failure.device_total {
        Some(total) if failure.size > total => {
            format!("; the request is larger than the whole device ({}): a size computation gone wrong", bytes(total))
        }
        _ => String::new(),
    }
}

/// "with 10 MiB free of 3 GiB; this process held ..." for a failure.
fn memory_held(failure: &Failure) -> String {
    match (failure.device_free, failure.device_total) {
        (Some(free), Some(total)) => {
            let others = total.saturating_sub(free).saturating_sub(failure.live_bytes);
            format!(
                " with {} free of {}; this process held {} ({:.0}% of the device), other processes and the \
                 runtime itself held {}",
                bytes(free),
                bytes(total),
                bytes(failure.live_bytes),
                percent(failure.live_bytes, total),
                bytes(others)
            )
        }
        _ => format!("; this process held {} (free memory unknown)", bytes(failure.live_bytes)),
    }
}

/// "; held by libtorch_npu.so 2.9 GiB, libhccl.so 200 MiB" (the largest holders).
fn holders(held: &[Held]) -> String {
    if held.is_empty() {
        return String::new();
    }
    let named: Vec<String> = held.iter().take(3).map(holder).collect();
    format!("; held by {}", named.join(", "))
}

/// What to change after an out-of-memory failure: the fix that applies first.
fn oom_advice(spec: &RuntimeSpec, process: &ProcessSummary) -> String {
    let state = expandable_state(spec, process);
    let reduce = "lower what one rank holds (batch, sequence or image sizes, KV-cache share such as \
                  gpu_memory_utilization), or find who holds the rest (calling libraries, other processes on the device)";
    if state == Expandable::On || process.physical_allocations > 0 {
        return format!("expandable segments were in effect, so this is not fragmentation of fixed segments: {reduce}");
    }
    let sizes = if process.large_sizes >= 2 {
        format!("{} distinct large sizes were carved into fixed segments, which fragment; ", process.large_sizes)
    } else {
        String::new()
    };
    format!(
        "{sizes}{}, so that the allocator grows one mapped range instead; if it still runs out, {reduce}",
        enable_advice(spec, process, &state)
    )
}

/// How complete the recording itself is.
fn recording_findings(process: &ProcessSummary) -> Vec<Finding> {
    let mut found = Vec::new();
    if !process.is_final {
        found.push(
            Finding::new("partial-recording", Severity::Warning, "the recording was not written at exit")
                .detail(format!(
                    "the last write covers {} after start; the process was killed or is still running",
                    seconds(process.written_unix_ms.saturating_sub(process.started_unix_ms))
                ))
                .advice(
                    "what happened after the last periodic write (NPU_ALLOC_SHIM_FLUSH_MS, default 2 s) is missing",
                ),
        );
    }
    if process.failures_dropped > 0 {
        found.push(
            Finding::new("failures-dropped", Severity::Info, "more failures than the recording keeps")
                .detail(format!("{} failures beyond the first 256 were counted but not kept", process.failures_dropped))
                .advice("counts stay exact; only the memory state of the later failures is missing")
                .weight(process.failures_dropped),
        );
    }
    let e = process.errors;
    let untracked = process.totals.untracked_frees.saturating_add(process.host.untracked_frees);
    let problems = [
        (e.panics, "internal panics caught"),
        (e.unresolved_calls, "calls whose runtime function was not found"),
        (e.table_full, "allocations the pointer table had no room for"),
        (e.null_results, "successful allocations that returned NULL"),
        (e.write_errors, "failed writes of the recording"),
        (untracked, "frees of pointers allocated before recording started"),
    ];
    let seen: Vec<String> = problems.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    if !seen.is_empty() {
        let weight = problems.iter().map(|(n, _)| *n).fold(0u64, u64::saturating_add);
        found.push(
            Finding::new("incomplete-counts", Severity::Warning, "some numbers of the recording are incomplete")
                .detail(seen.join(", "))
                .advice(
                    "live and freed bytes may be off; preload the library from the start (LD_PRELOAD, not a late \
                     dlopen) and check the library's messages on stderr",
                )
                .weight(weight),
        );
    }
    found
}

pub use common::runtime::is_framework_library as is_torch_library;

/// Memory allocated by libraries other than torch's caching allocator.
fn non_torch_memory(spec: &RuntimeSpec, callers: &[(String, u64)]) -> Option<Finding> {
    let total = callers.iter().map(|(_, b)| *b).fold(0u64, u64::saturating_add);
    let mut others: Vec<&(String, u64)> = callers.iter().filter(|(lib, b)| *b > 0 && !is_torch_library(lib)).collect();
    let sum = others.iter().map(|(_, b)| *b).fold(0u64, u64::saturating_add);
    if sum < NON_TORCH_MIN_BYTES || percent(sum, total) < NON_TORCH_MIN_PERCENT {
        return None;
    }
    others.sort_by_key(|c| std::cmp::Reverse(c.1));
    let named: Vec<String> = others
        .iter()
        .take(5)
        .map(|(lib, b)| format!("{} {} ({:.0}%)", basename(lib), bytes(*b), percent(*b, total)))
        .collect();
    Some(
        Finding::new("non-torch-memory", Severity::Info, "memory allocated outside torch's caching allocator")
            .detail(format!(
                "{} ({:.0}%) of the bytes allocated through the runtime (device and pinned host, added up over the \
                 run) came from other libraries: {}",
                bytes(sum),
                percent(sum, total),
                named.join(", ")
            ))
            .advice(format!(
                "{} does not count it, the caching allocator cannot reuse it and expandable segments do not change \
                 it; leave room for it (lower gpu_memory_utilization) or shrink the library's buffers ({})",
                spec.wording.memory_reserved, spec.wording.collective_buffers
            ))
            .weight(sum),
    )
}

/// One rank peaking well above the others runs out first. `peaks`: every
/// process's peak; `highest`: the process with the highest one.
fn rank_imbalance(peaks: &[u64], highest: Option<&ProcessSummary>) -> Option<Finding> {
    let process = highest?;
    let mut peaks: Vec<u64> = peaks.iter().copied().filter(|&p| p > 0).collect();
    if peaks.len() < 2 {
        return None;
    }
    peaks.sort_unstable();
    let middle = peaks.len() / 2;
    let median = if peaks.len().is_multiple_of(2) { peaks[middle - 1] / 2 + peaks[middle] / 2 } else { peaks[middle] };
    let top = process.peak();
    let over = top.saturating_sub(median);
    if over < IMBALANCE_MIN_BYTES || top.saturating_mul(100) < median.saturating_mul(100 + IMBALANCE_MIN_PERCENT) {
        return None;
    }
    let mut finding = Finding::new("rank-imbalance", Severity::Info, "one process peaks well above the others")
        .detail(format!(
            "{} peaked at {}, {} ({:.0}%) above the median of {} processes ({})",
            process.label(),
            bytes(top),
            bytes(over),
            percent(over, median),
            peaks.len(),
            bytes(median)
        ))
        .advice(
            "it runs out of memory first: look at what differs on that rank (pipeline stage, data shard, extra \
             buffers)",
        )
        .weight(over);
    finding.examples.push(process.label());
    finding.processes = 1;
    Some(finding)
}
