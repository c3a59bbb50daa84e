//! One replay's result (the replayer's JSON, read defensively) and the
//! verdict across runs.

use super::label;
use super::snapshot::Plan;
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceRun {
    pub device: u64,
    /// "completed", "oom" or "rejected".
    pub outcome: String,
    pub error: Option<String>,
    pub peak_reserved: u64,
    pub peak_allocated: u64,
    pub segments_peak: u64,
    pub segments_end: u64,
    /// Times the allocator freed its cache and retried an allocation: each
    /// is a synchronising, slow path.
    pub alloc_retries: u64,
    /// (trace event index, size) of the allocation that failed.
    pub oom: Option<(u64, u64)>,
    /// (event index, reserved, allocated).
    pub samples: Vec<(u64, u64, u64)>,
}

impl DeviceRun {
    /// The largest reserved-minus-allocated gap sampled: memory the
    /// allocator held but could not use.
    pub fn max_gap(&self) -> u64 {
        self.samples.iter().map(|&(_, r, a)| r.saturating_sub(a)).max().unwrap_or(0)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub config: String,
    /// Why it was tried, when the default set chose it.
    pub role: String,
    pub torch_npu: String,
    pub devices: Vec<DeviceRun>,
}

fn u(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

impl Run {
    pub fn from_json(config: &str, value: &Value) -> Run {
        let devices = value
            .get("devices")
            .and_then(Value::as_array)
            .map(|ds| ds.iter().map(device_run).collect())
            .unwrap_or_default();
        let torch_npu = value.get("torch_npu").and_then(Value::as_str).unwrap_or("?").to_owned();
        Run { config: config.to_owned(), role: String::new(), torch_npu, devices }
    }

    pub fn completed(&self) -> bool {
        !self.devices.is_empty() && self.devices.iter().all(|d| d.outcome == "completed")
    }

    pub fn rejected(&self) -> Option<&str> {
        self.devices.iter().find(|d| d.outcome == "rejected").map(|d| d.error.as_deref().unwrap_or("refused"))
    }

    /// The highest peak reserved over the devices: what must fit on one NPU.
    pub fn peak_reserved(&self) -> u64 {
        self.devices.iter().map(|d| d.peak_reserved).max().unwrap_or(0)
    }

    pub fn alloc_retries(&self) -> u64 {
        self.devices.iter().map(|d| d.alloc_retries).sum()
    }

    /// How far the run got: the earliest failing event, or past the end.
    fn reach(&self) -> u64 {
        self.devices.iter().map(|d| d.oom.map_or(u64::MAX, |(at, _)| at)).min().unwrap_or(0)
    }
}

fn device_run(value: &Value) -> DeviceRun {
    let samples = value
        .get("samples")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((p.first()?.as_u64()?, p.get(1)?.as_u64()?, p.get(2)?.as_u64()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let oom = (value.get("outcome").and_then(Value::as_str) == Some("oom"))
        .then(|| (u(value, "oom_event"), u(value, "oom_size")));
    DeviceRun {
        device: u(value, "device"),
        outcome: value.get("outcome").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
        error: value.get("error").and_then(Value::as_str).map(str::to_owned),
        peak_reserved: u(value, "max_reserved"),
        peak_allocated: u(value, "max_allocated"),
        segments_peak: u(value, "segments_peak"),
        segments_end: u(value, "segments_end"),
        alloc_retries: u(value, "alloc_retries"),
        oom,
        samples,
    }
}

pub struct Report<'a> {
    pub snapshot: String,
    pub plan: &'a Plan,
    pub runs: Vec<Run>,
    pub device_bytes: u64,
    /// Whether the snapshot said which configuration it ran under.
    pub own_known: bool,
}

/// An allocation's size as torch_npu's OOM message writes it.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub fn gib(bytes: u64) -> String {
    format!("{:.3} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Which configuration to deploy, and why, in plain words.
pub fn verdict(report: &Report) -> String {
    let runs = &report.runs;
    let device = gib(report.device_bytes);
    let mut completed: Vec<&Run> = runs.iter().filter(|r| r.completed()).collect();
    // Lowest peak first; among equal peaks (on a tight device every run
    // fills it) fewer cache flush-and-retry rounds, then the one listed first
    // (the snapshot's own): the sort is stable.
    completed.sort_by_key(|r| (r.peak_reserved(), r.alloc_retries()));
    if let Some(best) = completed.first() {
        let mut why = format!(
            "Deploy {}: it completes the whole trace on a {device} device with the lowest peak reserved ({})",
            quoted(&best.config),
            gib(best.peak_reserved())
        );
        let tied: Vec<&&Run> = completed[1..].iter().filter(|r| r.peak_reserved() == best.peak_reserved()).collect();
        if !tied.is_empty() {
            let names: Vec<String> =
                tied.iter().map(|r| format!("{} ({} retries)", quoted(&r.config), r.alloc_retries())).collect();
            why += &format!(
                " (tied with {}; it needed {} allocation retries, each a cache flush: fewest wins, then the first listed)",
                names.join(", "),
                best.alloc_retries(),
            );
            if best.peak_reserved() + (64 << 20) >= report.device_bytes {
                why += "; the peaks reach the device size: rerun with a larger --device-gb to compare them";
            }
        }
        if let Some(next) = completed.iter().find(|r| r.peak_reserved() > best.peak_reserved()) {
            let saved = next.peak_reserved() - best.peak_reserved();
            why += &format!(", {} less than the next best, {}", gib(saved), quoted(&next.config));
        }
        let failed: Vec<String> =
            runs.iter().filter(|r| r.devices.iter().any(|d| d.oom.is_some())).map(|r| quoted(&r.config)).collect();
        if !failed.is_empty() {
            why += &format!("; {} ran out of memory", failed.join(", "));
        }
        return why + ".";
    }
    // max_by_key keeps the last of equals: reversed, the first listed wins ties.
    let furthest = runs.iter().rev().filter(|r| r.rejected().is_none()).max_by_key(|r| r.reach());
    match furthest {
        Some(run) => format!(
            "No configuration completes on a {device} device. {} gets furthest (to event {}); a larger device \
             (--device-gb) or a smaller workload is needed.",
            quoted(&run.config),
            run.reach()
        ),
        None => "No configuration could be replayed: torch_npu refused every value.".into(),
    }
}

/// The report as one JSON object (`--json`): the recorded trace's numbers,
/// each run, and the verdict.
pub fn to_json(report: &Report) -> Value {
    use serde_json::json;
    let recorded: Vec<Value> = report
        .plan
        .devices
        .iter()
        .map(|d| {
            let r = &d.recorded;
            json!({
                "device": d.device, "events": d.events, "replayed": d.steps.len(), "live_at_start": d.initial.len(),
                "peak_reserved": r.peak_reserved, "peak_requested": r.peak_allocated,
                "segments_peak": r.segments_peak, "segments_end": r.segments_end,
                "oom": r.oom.map(|(at, size)| json!({"event": at, "size": size})),
            })
        })
        .collect();
    let runs: Vec<Value> = report
        .runs
        .iter()
        .map(|run| {
            let devices: Vec<Value> = run
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "device": d.device, "outcome": d.outcome, "error": d.error,
                        "peak_reserved": d.peak_reserved, "peak_allocated": d.peak_allocated,
                        "max_gap": d.max_gap(), "alloc_retries": d.alloc_retries, "segments_peak": d.segments_peak, "segments_end": d.segments_end,
                        "oom": d.oom.map(|(at, size)| json!({"event": at, "size": size})),
                    })
                })
                .collect();
            json!({"config": run.config, "role": run.role, "torch_npu": run.torch_npu, "completed": run.completed(), "devices": devices})
        })
        .collect();
    json!({
        "snapshot": report.snapshot, "device_bytes": report.device_bytes, "own_config_known": report.own_known,
        "recorded": recorded, "runs": runs, "verdict": verdict(report),
    })
}

pub fn quoted(config: &str) -> String {
    if config.is_empty() { label(config) } else { format!("`{config}`") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, outcome: &str, peak: u64, oom_at: Option<u64>) -> Run {
        let device = DeviceRun {
            outcome: outcome.into(),
            peak_reserved: peak,
            oom: oom_at.map(|at| (at, 1)),
            ..DeviceRun::default()
        };
        Run { config: config.into(), role: String::new(), torch_npu: "2.10".into(), devices: vec![device] }
    }

    fn report(runs: Vec<Run>) -> String {
        let plan = Plan::default();
        verdict(&Report { snapshot: "s".into(), plan: &plan, runs, device_bytes: 3 << 30, own_known: false })
    }

    #[test]
    fn lowest_completing_peak_wins() {
        let text = report(vec![
            run("", "oom", 3 << 30, Some(50)),
            run("expandable_segments:True", "completed", 2 << 30, None),
            run("max_split_size_mb:256", "completed", 3 << 30, None),
        ]);
        assert!(text.starts_with("Deploy `expandable_segments:True`"), "{text}");
        assert!(text.contains("1.000 GiB less than the next best, `max_split_size_mb:256`"), "{text}");
        assert!(text.contains("(default) ran out of memory"), "{text}");
    }

    #[test]
    fn none_completes() {
        let text = report(vec![
            run("", "oom", 3 << 30, Some(50)),
            run("a:1", "oom", 3 << 30, Some(70)),
            run("bogus:1", "rejected", 0, None),
        ]);
        assert!(text.contains("`a:1` gets furthest (to event 70)"), "{text}");
    }

    #[test]
    fn garbage_result_is_not_a_panic() {
        let run = Run::from_json("x", &serde_json::json!({"devices": [{"samples": [[1], "x", [1, 2, 3]]}, 7]}));
        assert_eq!(run.devices.len(), 2);
        assert_eq!(run.devices[0].samples, vec![(1, 2, 3)]);
        assert!(!run.completed());
    }
}
