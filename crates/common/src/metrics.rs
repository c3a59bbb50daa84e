//! One recording in the Prometheus text exposition format (version 0.0.4),
//! for node_exporter's textfile collector: the preloaded library writes it
//! per process (`NPU_ALLOC_SHIM_METRICS`), beside or instead of the JSON.
//!
//! Every series carries the process's identity (`host`, `pid`, `runtime`,
//! and `rank`/`local_rank` when the launcher set them); libraries are
//! bounded to the largest few plus `other`, so a scrape stays small.

use crate::format::{Device, Outcome, Recording};
use crate::runtime;
use std::fmt::Write as _;

/// Libraries named per family; the rest are summed as `other`.
pub const MAX_LIBRARIES: usize = 8;
const PREFIX: &str = "npu_alloc_shim";

/// The launcher's rank variables, read at load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranks {
    pub rank: Option<String>,
    pub local_rank: Option<String>,
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The last path component of a library, as the label shows it.
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

struct Writer {
    out: String,
    identity: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {PREFIX}_{name} {help}\n# TYPE {PREFIX}_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.out, "{PREFIX}_{name}{{{}", self.identity);
        for (key, value) in labels {
            let _ = write!(self.out, ",{key}=\"{}\"", escape(value));
        }
        let _ = writeln!(self.out, "}} {value}");
    }
}

/// `(label, value)` of the `MAX_LIBRARIES` largest non-zero values, then
/// `other` for the rest (when any is non-zero).
fn bounded(mut values: Vec<(&str, u64)>) -> Vec<(&str, u64)> {
    values.retain(|v| v.1 > 0);
    values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let rest: u64 = values.iter().skip(MAX_LIBRARIES).map(|v| v.1).fold(0, u64::saturating_add);
    values.truncate(MAX_LIBRARIES);
    if rest > 0 {
        values.push(("other", rest));
    }
    values
}

/// The recording's metrics; ends with a newline, as the format requires.
pub fn render(r: &Recording, ranks: &Ranks) -> String {
    let mut identity = format!("host=\"{}\",pid=\"{}\",runtime=\"{}\"", escape(&r.hostname), r.pid, escape(&r.runtime));
    for (key, value) in [("rank", &ranks.rank), ("local_rank", &ranks.local_rank)] {
        if let Some(value) = value {
            let _ = write!(identity, ",{key}=\"{}\"", escape(value));
        }
    }
    let mut w = Writer { out: String::new(), identity };

    w.family("info", "gauge", "The library's version and the allocator configuration it left (value 1).");
    let after = r.config.after.as_deref().unwrap_or("");
    let version = r.library_version.as_str();
    w.sample(
        "info",
        &[("version", version), ("variable", &r.config.var), ("config", after), ("rule", &r.config.rule)],
        1,
    );

    type PerDevice = (&'static str, &'static str, &'static str, fn(&Device) -> u64);
    const PER_DEVICE: [PerDevice; 4] = [
        ("device_live_bytes", "gauge", "Device memory held through the hooked calls now, per device.", |d| {
            d.live_bytes
        }),
        ("device_peak_bytes", "gauge", "The highest device memory held through the hooked calls, per device.", |d| {
            d.peak_live_bytes
        }),
        ("device_allocations_total", "counter", "Successful device allocations, per device.", |d| d.alloc_calls),
        ("device_allocated_bytes_total", "counter", "Bytes of successful device allocations, per device.", |d| {
            d.alloc_bytes
        }),
    ];
    for (name, kind, help, value) in PER_DEVICE {
        w.family(name, kind, help);
        for d in &r.devices {
            w.sample(name, &[("device", &d.device.to_string())], value(d));
        }
    }
    w.family("host_live_bytes", "gauge", "Pinned host memory held through the hooked calls now.");
    w.sample("host_live_bytes", &[], r.host.live_bytes);
    w.family("host_peak_bytes", "gauge", "The highest pinned host memory held through the hooked calls.");
    w.sample("host_peak_bytes", &[], r.host.peak_live_bytes);

    w.family("failed_allocations_total", "counter", "Allocation calls that failed, device and pinned host.");
    w.sample("failed_allocations_total", &[("pool", "device")], r.totals.failed_calls);
    w.sample("failed_allocations_total", &[("pool", "host")], r.host.failed_calls);
    let spec = runtime::by_name(&r.runtime).unwrap_or_else(runtime::primary);
    w.family(
        "out_of_memory_failures",
        "gauge",
        "Recorded out-of-memory failures (the first 256) by what followed them: recovered, survived, fatal, unknown.",
    );
    for outcome in [Outcome::Recovered, Outcome::Survived, Outcome::Fatal, Outcome::Unknown] {
        let count = r
            .failures
            .iter()
            .filter(|f| spec.oom_codes.contains(&f.code) && f.outcome.unwrap_or(Outcome::Unknown) == outcome)
            .count();
        w.sample("out_of_memory_failures", &[("outcome", outcome.name())], count as u64);
    }

    let held = |pool: fn(&crate::format::PoolBytes) -> u64| {
        bounded(r.callers.iter().map(|c| (basename(&c.library), pool(&c.live))).collect())
    };
    w.family("library_held_bytes", "gauge", "Memory held now per calling library (the largest 8, then other).");
    for (pool, values) in [("device", held(|p| p.device)), ("host", held(|p| p.host))] {
        for (library, bytes) in values {
            w.sample("library_held_bytes", &[("library", library), ("pool", pool)], bytes);
        }
    }
    w.family(
        "library_allocated_bytes_total",
        "counter",
        "Bytes allocated over the run per calling library (the largest 8, then other).",
    );
    for (library, bytes) in bounded(r.callers.iter().map(|c| (basename(&c.library), c.bytes)).collect()) {
        w.sample("library_allocated_bytes_total", &[("library", library)], bytes);
    }

    // The latest sample that read the device (none before the first reading).
    if let Some(sample) = r.timeline.samples.iter().rev().find(|s| s.device_used_bytes.is_some()) {
        w.family("device_used_bytes", "gauge", "The device's own used memory (total - free), at the latest reading.");
        w.sample("device_used_bytes", &[], sample.device_used_bytes.unwrap_or(0));
        if let Some(non_torch) = sample.non_framework_bytes() {
            w.family(
                "non_torch_bytes",
                "gauge",
                "Device used minus what torch's caching allocator holds (vLLM's non-torch memory).",
            );
            w.sample("non_torch_bytes", &[], non_torch);
        }
    }
    let mapped = r.by_api.get(spec.segment_alloc_api).map_or(0, |a| a.calls.saturating_sub(a.failures));
    w.family(
        "mapped_allocations_total",
        "counter",
        "Physical allocations for mapped segments (expandable segments in use).",
    );
    w.sample("mapped_allocations_total", &[], mapped);
    w.family("written_timestamp_seconds", "gauge", "When this file was written (Unix time).");
    w.sample("written_timestamp_seconds", &[], r.written_unix_ms / 1000);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_libraries_bounded() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let values: Vec<(&str, u64)> =
            (0..10).map(|i| (["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][i], i as u64)).collect();
        let kept = bounded(values);
        assert_eq!(kept.len(), MAX_LIBRARIES + 1);
        assert_eq!(kept[0], ("j", 9));
        // 0 is dropped; 9 down to 2 are kept; 1 is the rest.
        assert_eq!(kept[MAX_LIBRARIES], ("other", 1));
    }
}
