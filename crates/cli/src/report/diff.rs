//! Two merged runs compared: the measures that tell whether memory got
//! better (peak, growth, failures, fixed against mapped segments), as a table,
//! as plain statements, and side by side per size, device and library.

use super::findings::Severity;
use super::merge::Merged;
use super::text::{bar, size_range, table};
use super::units::{bytes, change_percent, device, signed_bytes, terminal_safe};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub const SCHEMA: &str = "npu-alloc-shim-diff/1";

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bytes,
    Count,
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub before: u64,
    pub after: u64,
    /// Whether less is an improvement (None: neither).
    pub lower_is_better: Option<bool>,
    /// `peak live 4.1 GiB -> 2.7 GiB (-34%)`.
    pub statement: String,
}

fn show(kind: Kind, v: u64) -> String {
    match kind {
        Kind::Bytes => bytes(v),
        Kind::Count => v.to_string(),
    }
}

fn change(id: &'static str, name: &'static str, kind: Kind, before: u64, after: u64) -> Change {
    let lower_is_better = match id {
        "allocations" | "bytes_allocated" | "recordings" => None,
        "mapping_processes" => Some(false),
        _ => Some(true),
    };
    let statement =
        format!("{name} {} -> {} ({})", show(kind, before), show(kind, after), change_percent(before, after));
    Change { id, name, kind, before, after, lower_is_better, statement }
}

fn serious(m: &Merged) -> u64 {
    m.findings.iter().filter(|f| f.severity <= Severity::Warning).count() as u64
}

/// Every measure, before and after.
pub fn changes(before: &Merged, after: &Merged) -> Vec<Change> {
    use Kind::{Bytes, Count};
    vec![
        change("highest_peak", "peak live", Bytes, before.highest_peak, after.highest_peak),
        change("peaks_added_up", "peaks added up", Bytes, before.totals.peak_live_bytes, after.totals.peak_live_bytes),
        change("largest_growth", "growth", Bytes, before.largest_growth, after.largest_growth),
        change("live_at_end", "live at the end", Bytes, before.totals.live_bytes, after.totals.live_bytes),
        change("failures", "failures", Count, before.failures_total, after.failures_total),
        change(
            "out_of_memory",
            "out-of-memory failures",
            Count,
            before.out_of_memory_failures,
            after.out_of_memory_failures,
        ),
        change(
            "fatal_out_of_memory",
            "fatal out-of-memory failures",
            Count,
            before.oom_outcomes.not_recovered(),
            after.oom_outcomes.not_recovered(),
        ),
        change(
            "non_torch_growth",
            "non-torch memory rise",
            Bytes,
            before.largest_non_torch_growth,
            after.largest_non_torch_growth,
        ),
        change("non_torch_highest", "non-torch memory", Bytes, before.highest_non_torch, after.highest_non_torch),
        change("allocations", "allocations", Count, before.totals.alloc_calls, after.totals.alloc_calls),
        change("bytes_allocated", "bytes allocated", Bytes, before.totals.alloc_bytes, after.totals.alloc_bytes),
        change(
            "large_sizes",
            "distinct large sizes",
            Count,
            before.most_large_sizes as u64,
            after.most_large_sizes as u64,
        ),
        change(
            "mapping_processes",
            "processes with mapped segments",
            Count,
            before.processes_mapping,
            after.processes_mapping,
        ),
        change("recordings", "recordings", Count, before.recordings, after.recordings),
        change("serious_findings", "errors and warnings", Count, serious(before), serious(after)),
    ]
}

/// "2" or "none": out-of-memory failures the process did not come back from.
fn fatal(m: &Merged) -> String {
    match m.oom_outcomes.not_recovered() {
        0 => "none".to_owned(),
        n => n.to_string(),
    }
}

/// The few sentences that answer "did it help".
pub fn headline(before: &Merged, after: &Merged, changes: &[Change]) -> Vec<String> {
    let statement = |id: &str| changes.iter().find(|c| c.id == id).map(|c| c.statement.clone()).unwrap_or_default();
    let mut lines = vec![
        statement("highest_peak") + ", the highest process",
        format!(
            "growth {} -> {} ({}), second-half peak over first-half, the largest in one process",
            bytes(before.largest_growth),
            bytes(after.largest_growth),
            change_percent(before.largest_growth, after.largest_growth)
        ),
        format!(
            "failures {} -> {} (out of memory {} -> {}; fatal {} -> {})",
            before.failures_total,
            after.failures_total,
            before.out_of_memory_failures,
            after.out_of_memory_failures,
            fatal(before),
            fatal(after)
        ),
    ];
    if before.processes_with_non_torch > 0 || after.processes_with_non_torch > 0 {
        lines.push(format!(
            "non-torch memory (device used minus torch-held): highest {} -> {}, rise {} -> {}",
            bytes(before.highest_non_torch),
            bytes(after.highest_non_torch),
            bytes(before.largest_non_torch_growth),
            bytes(after.largest_non_torch_growth)
        ));
    }
    lines.push(format!(
        "expandable segments in effect (mapped memory) in {} of {} -> {} of {} processes",
        before.processes_mapping, before.recordings, after.processes_mapping, after.recordings
    ));
    let ids = |m: &Merged| m.findings.iter().map(|f| f.id).collect::<BTreeSet<_>>();
    let (was, now) = (ids(before), ids(after));
    let gone: Vec<&str> = was.difference(&now).copied().collect();
    let new: Vec<&str> = now.difference(&was).copied().collect();
    if !gone.is_empty() {
        lines.push(format!("findings gone: {}", gone.join(", ")));
    }
    if !new.is_empty() {
        lines.push(format!("new findings: {}", new.join(", ")));
    }
    lines
}

#[derive(Serialize)]
pub struct DiffJson<'a> {
    pub schema: &'static str,
    pub before_inputs: Vec<String>,
    pub after_inputs: Vec<String>,
    pub changes: &'a [Change],
    pub headline: &'a [String],
    pub before: &'a Merged,
    pub after: &'a Merged,
}

/// The terminal comparison.
pub fn render_text(before: &Merged, after: &Merged, names: (&str, &str), top: usize) -> String {
    let changes = changes(before, after);
    let mut out = String::new();
    let _ = writeln!(out, "npu-alloc-shim diff");
    let _ = writeln!(out, "  before: {} recording(s) from {}", before.recordings, terminal_safe(names.0, 200));
    let _ = writeln!(out, "  after:  {} recording(s) from {}", after.recordings, terminal_safe(names.1, 200));
    let _ = writeln!(out);
    for line in headline(before, after, &changes) {
        let _ = writeln!(out, "  {}", terminal_safe(&line, 400));
    }
    let _ = writeln!(out, "\nMeasures");
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            let delta = i128::from(c.after) - i128::from(c.before);
            let delta = match c.kind {
                Kind::Bytes => signed_bytes(delta),
                Kind::Count => format!("{delta:+}"),
            };
            vec![
                c.name.to_owned(),
                show(c.kind, c.before),
                show(c.kind, c.after),
                delta,
                change_percent(c.before, c.after),
            ]
        })
        .collect();
    out.push_str(&table(&["", "before", "after", "change", ""], &[false, true, true, true, true], &rows));
    sizes(&mut out, before, after);
    devices(&mut out, before, after);
    callers(&mut out, before, after, top);
    findings(&mut out, before, after);
    out
}

fn sizes(out: &mut String, before: &Merged, after: &Merged) {
    let mut rows: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for b in &before.histogram {
        rows.entry(b.lo).or_insert((b.hi, 0, 0)).1 = b.count;
    }
    for b in &after.histogram {
        rows.entry(b.lo).or_insert((b.hi, 0, 0)).2 = b.count;
    }
    if rows.is_empty() {
        return;
    }
    // One scale for both sides, so bar lengths compare.
    let max = rows.values().map(|r| r.1.max(r.2)).max().unwrap_or(0);
    let _ = writeln!(out, "\nAllocation sizes (count per size range, same scale)");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(lo, (hi, b, a))| {
            vec![size_range(*lo, *hi), b.to_string(), bar(*b, max, 24), a.to_string(), bar(*a, max, 24)]
        })
        .collect();
    out.push_str(&table(&["size", "before", "", "after", ""], &[false, true, false, true, false], &rows));
}

fn devices(out: &mut String, before: &Merged, after: &Merged) {
    let mut rows: BTreeMap<(String, i32), (Option<u64>, Option<u64>)> = BTreeMap::new();
    for d in &before.devices {
        rows.entry((d.hostname.clone(), d.device)).or_default().0 = Some(d.peak_live_bytes);
    }
    for d in &after.devices {
        rows.entry((d.hostname.clone(), d.device)).or_default().1 = Some(d.peak_live_bytes);
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nPeak per device");
    let cell = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), bytes);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|((host, id), (b, a))| {
            let delta = match (b, a) {
                (Some(b), Some(a)) => {
                    format!("{} ({})", signed_bytes(i128::from(*a) - i128::from(*b)), change_percent(*b, *a))
                }
                _ => "-".to_owned(),
            };
            vec![terminal_safe(host, 60), device(*id), cell(*b), cell(*a), delta]
        })
        .collect();
    out.push_str(&table(&["host", "device", "before", "after", "change"], &[false, true, true, true, true], &rows));
}

fn callers(out: &mut String, before: &Merged, after: &Merged, top: usize) {
    let mut rows: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &before.callers {
        rows.entry(&c.library).or_default().0 = c.bytes;
    }
    for c in &after.callers {
        rows.entry(&c.library).or_default().1 = c.bytes;
    }
    if rows.is_empty() {
        return;
    }
    let mut rows: Vec<(&str, (u64, u64))> = rows.into_iter().collect();
    rows.sort_by(|x, y| y.1.0.max(y.1.1).cmp(&x.1.0.max(x.1.1)).then(x.0.cmp(y.0)));
    let _ = writeln!(out, "\nCalling libraries (bytes allocated)");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .take(top)
        .map(|(lib, (b, a))| vec![terminal_safe(lib, 80), bytes(*b), bytes(*a), change_percent(*b, *a)])
        .collect();
    out.push_str(&table(&["library", "before", "after", "change"], &[false, true, true, true], &rows));
}

/// A finding's severity and process count on one side, if it is there.
type Side = Option<(Severity, u64)>;

fn findings(out: &mut String, before: &Merged, after: &Merged) {
    let mut rows: BTreeMap<&str, (Side, Side)> = BTreeMap::new();
    for f in &before.findings {
        rows.entry(f.id).or_default().0 = Some((f.severity, f.processes));
    }
    for f in &after.findings {
        rows.entry(f.id).or_default().1 = Some((f.severity, f.processes));
    }
    let _ = writeln!(out, "\nFindings (processes; `npu-alloc-shim report` on either side explains them)");
    if rows.is_empty() {
        let _ = writeln!(out, "  none on either side");
        return;
    }
    let cell = |v: Side| match v {
        None => "-".to_owned(),
        Some((s, 0)) => format!("{} (job)", s.name()),
        Some((s, n)) => format!("{} ({n})", s.name()),
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|(id, (b, a))| vec![(*id).to_owned(), cell(*b), cell(*a)]).collect();
    out.push_str(&table(&["finding", "before", "after"], &[false, false, false], &rows));
}
