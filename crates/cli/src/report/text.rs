//! The terminal summary of a merged job. Every string that came from a
//! recording passes through `terminal_safe`.

use super::merge::Merged;
use super::summary::ProcessSummary;
use super::units::{bytes, device, holder, percent, seconds, signed_bytes, terminal_safe};
use std::fmt::Write as _;

/// Width of the longest histogram bar.
const BAR_WIDTH: usize = 40;
/// Rows of the process and failure tables.
const MAX_ROWS: usize = 32;

/// Columns aligned on their widest cell; `right` marks numeric columns.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::from(" ");
        for (i, cell) in cells.enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            let last = i + 1 == widths.len();
            out.push(' ');
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    // Without headers (a list of label: value), no header line.
    let mut out = if headers.iter().all(|h| h.is_empty()) { String::new() } else { line(&mut headers.iter().copied()) };
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A bar of `value` over `max` in eighths of a cell, at least a sliver when
/// the value is not zero.
pub fn bar(value: u64, max: u64, width: usize) -> String {
    if max == 0 || value == 0 {
        return String::new();
    }
    let eighths = ((value as f64 / max as f64) * (width * 8) as f64).round().max(1.0) as usize;
    let mut out = "█".repeat(eighths / 8);
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    out.push_str(PARTS[eighths % 8]);
    out
}

pub fn size_range(lo: u64, hi: u64) -> String {
    format!("[{}, {})", bytes(lo), bytes(hi))
}

fn safe(text: &str) -> String {
    terminal_safe(text, 120)
}

/// The whole summary.
pub fn render(m: &Merged, top: usize) -> String {
    let mut out = String::new();
    header(&mut out, m);
    totals(&mut out, m);
    sizes(&mut out, m, top);
    devices(&mut out, m);
    processes(&mut out, m);
    callers(&mut out, m, top);
    failures(&mut out, m);
    mem_usage_dumps(&mut out, m);
    marks(&mut out, m);
    findings(&mut out, m);
    out
}

/// Each process's phase marks: what was held, and what was left since the mark before.
fn marks(out: &mut String, m: &Merged) {
    let marked: Vec<&ProcessSummary> = m.processes.iter().filter(|p| !p.marks.is_empty()).collect();
    if marked.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nPhase marks (device memory held at each mark, and the change since the mark before)");
    for p in marked.iter().take(MAX_ROWS) {
        let _ = writeln!(out, "  {}", safe(&p.label()));
        let mut rows = Vec::new();
        let mut before: Option<&common::format::Mark> = None;
        for mark in p.marks.iter().take(MAX_ROWS) {
            let change = before.map_or_else(
                || "-".to_owned(),
                |b| signed_bytes(i128::from(mark.device_live_bytes) - i128::from(b.device_live_bytes)),
            );
            let holders: Vec<String> =
                mark.held.iter().filter(|h| h.pool == common::format::Pool::Device).take(3).map(holder).collect();
            rows.push(vec![
                terminal_safe(&mark.name, 40),
                seconds(mark.t_ms),
                bytes(mark.device_live_bytes),
                change,
                mark.device_used_bytes.map_or_else(|| "-".to_owned(), bytes),
                safe(&holders.join(", ")),
            ]);
            before = Some(mark);
        }
        out.push_str(&table(
            &["mark", "at", "held", "since previous", "device used", "largest holders"],
            &[false, true, true, true, true, false],
            &rows,
        ));
    }
}

fn header(out: &mut String, m: &Merged) {
    let span = m.end_unix_ms.saturating_sub(m.origin_unix_ms);
    let _ = writeln!(
        out,
        "npu-alloc-shim report: {} recording(s) from {} host(s), {} device(s); {} from the first start to the last write",
        m.recordings,
        m.hosts_count,
        m.devices.len() as u64 + m.devices_omitted,
        seconds(span)
    );
    if m.by_runtime.len() > 1 {
        runtimes(out, m);
    }
    if m.skipped_count > 0 {
        let _ = writeln!(out, "skipped {} file(s) that are not recordings:", m.skipped_count);
        for s in &m.skipped {
            let _ = writeln!(out, "  {}: {}", safe(&s.file), safe(&s.problem));
        }
    }
}

/// A job that mixes runtimes: each one's share, before the job's sums.
fn runtimes(out: &mut String, m: &Merged) {
    let _ = writeln!(out, "\nPer runtime (the sections below add them up)");
    let headers =
        ["runtime", "processes", "allocations", "bytes", "peaks added up", "out of memory", "mapped segments"];
    let mut rows = Vec::new();
    for r in &m.by_runtime {
        rows.push(vec![
            safe(&r.runtime),
            r.processes.to_string(),
            r.totals.alloc_calls.to_string(),
            bytes(r.totals.alloc_bytes),
            bytes(r.totals.peak_live_bytes),
            r.out_of_memory_failures.to_string(),
            format!("{} of {}", r.processes_mapping, r.processes),
        ]);
    }
    let right = [false, true, true, true, true, true, true];
    out.push_str(&table(&headers, &right, &rows));
}

fn totals(out: &mut String, m: &Merged) {
    let t = &m.totals;
    let _ = writeln!(out, "\nDevice memory (all processes)");
    let highest = m
        .highest_peak_process
        .as_deref()
        .map(|p| format!("{} in {}, the highest process", bytes(m.highest_peak), safe(p)))
        .unwrap_or_else(|| bytes(0));
    let rows = vec![
        vec!["allocations".into(), format!("{} calls, {}", t.alloc_calls, bytes(t.alloc_bytes))],
        vec![
            "failed".into(),
            format!(
                "{} calls, {} out of memory (recorded): {}",
                t.failed_calls,
                m.out_of_memory_failures,
                m.oom_outcomes.describe()
            ),
        ],
        vec!["frees".into(), format!("{} calls, {}", t.free_calls, bytes(t.freed_bytes))],
        vec!["live at the end".into(), bytes(t.live_bytes)],
        vec!["peak".into(), highest],
        vec!["peaks added up".into(), format!("{} (upper bound of the job's peak)", bytes(t.peak_live_bytes))],
        vec![
            "largest growth".into(),
            format!("{} (second-half peak over first-half, one process)", bytes(m.largest_growth)),
        ],
        vec![
            "non-torch memory".into(),
            if m.processes_with_non_torch == 0 {
                "not read (no device readings in the recordings)".into()
            } else {
                format!(
                    "highest {}, largest rise {} (device used minus torch-held, as vLLM computes it; {} processes)",
                    bytes(m.highest_non_torch),
                    bytes(m.largest_non_torch_growth),
                    m.processes_with_non_torch
                )
            },
        ],
        vec![
            "below the runtime API".into(),
            if m.lower_layer.calls == 0 {
                "none".into()
            } else {
                let apis: Vec<&str> = m.lower_layer.apis.iter().map(String::as_str).collect();
                format!(
                    "{} calls, {}, {} failed ({}: collective and operator libraries' own memory, in the totals above)",
                    m.lower_layer.calls,
                    bytes(m.lower_layer.bytes),
                    m.lower_layer.failures,
                    safe(&apis.join(", "))
                )
            },
        ],
        vec![
            "mapped segments".into(),
            format!("{} of {} processes (expandable segments in effect)", m.processes_mapping, m.recordings),
        ],
    ];
    out.push_str(&table(&["", ""], &[false, false], &rows));
    let h = &m.host;
    if h.alloc_calls > 0 || h.failed_calls > 0 {
        let _ = writeln!(out, "\nPinned host memory");
        let rows = vec![vec![
            h.alloc_calls.to_string(),
            bytes(h.alloc_bytes),
            h.failed_calls.to_string(),
            bytes(h.live_bytes),
            bytes(h.peak_live_bytes),
        ]];
        out.push_str(&table(
            &["allocations", "bytes", "failed", "live at end", "peaks added up"],
            &[true, true, true, true, true],
            &rows,
        ));
    }
}

fn sizes(out: &mut String, m: &Merged, top: usize) {
    if m.histogram.is_empty() {
        let _ = writeln!(out, "\nAllocation sizes: no successful device allocation");
        return;
    }
    let _ = writeln!(out, "\nAllocation sizes (successful device allocations per size range)");
    let max = m.histogram.iter().map(|b| b.count).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = m
        .histogram
        .iter()
        .map(|b| vec![size_range(b.lo, b.hi), b.count.to_string(), bytes(b.bytes), bar(b.count, max, BAR_WIDTH)])
        .collect();
    out.push_str(&table(&["size", "count", "bytes", ""], &[false, true, true, false], &rows));
    let total: u64 = m.histogram.iter().map(|b| b.bytes).fold(0, u64::saturating_add);
    let mut by_bytes: Vec<_> = m.histogram.iter().collect();
    by_bytes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.lo.cmp(&b.lo)));
    let _ = writeln!(out, "\nTop sizes by bytes");
    let rows: Vec<Vec<String>> = by_bytes
        .iter()
        .take(top)
        .enumerate()
        .map(|(i, b)| {
            vec![
                format!("{}.", i + 1),
                size_range(b.lo, b.hi),
                b.count.to_string(),
                bytes(b.bytes),
                format!("{:.1}%", percent(b.bytes, total)),
            ]
        })
        .collect();
    out.push_str(&table(&["", "size", "count", "bytes", "share"], &[true, false, true, true, true], &rows));
}

fn devices(out: &mut String, m: &Merged) {
    if m.devices.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nDevices");
    let rows: Vec<Vec<String>> = m
        .devices
        .iter()
        .map(|d| {
            let bound = if d.peak_is_upper_bound { " (sum)" } else { "" };
            vec![
                safe(&d.hostname),
                device(d.device),
                d.processes.to_string(),
                format!("{}{bound}", bytes(d.peak_live_bytes)),
                bytes(d.live_bytes),
                d.alloc_calls.to_string(),
                bytes(d.alloc_bytes),
            ]
        })
        .collect();
    out.push_str(&table(
        &["host", "device", "processes", "peak", "live at end", "allocations", "bytes"],
        &[false, true, true, true, true, true, true],
        &rows,
    ));
    if m.devices_omitted > 0 {
        let _ = writeln!(out, "  ({} more devices not listed)", m.devices_omitted);
    }
}

fn process_row(p: &ProcessSummary) -> Vec<String> {
    vec![
        safe(&p.hostname),
        p.pid.to_string(),
        p.device.map(device).unwrap_or_else(|| if p.devices.is_empty() { "-".into() } else { "several".into() }),
        bytes(p.peak()),
        // Growth is how much higher the second half went: never negative.
        p.growth.map(|g| bytes(g.bytes())).unwrap_or_else(|| "-".into()),
        p.non_torch.map(|n| format!("{} -> {}", bytes(n.first), bytes(n.last))).unwrap_or_else(|| "-".into()),
        p.large_sizes.to_string(),
        p.failed_calls.to_string(),
        safe(&p.config.rule),
        terminal_safe(&p.command, 60),
    ]
}

fn processes(out: &mut String, m: &Merged) {
    if m.processes.is_empty() {
        return;
    }
    let mut sorted: Vec<&ProcessSummary> = m.processes.iter().collect();
    sorted.sort_by(|a, b| b.peak().cmp(&a.peak()).then(a.hostname.cmp(&b.hostname)).then(a.pid.cmp(&b.pid)));
    let shown = sorted.len().min(MAX_ROWS);
    let _ = writeln!(out, "\nProcesses (highest peak first; {shown} of {})", m.recordings);
    let rows: Vec<Vec<String>> = sorted.iter().take(MAX_ROWS).map(|p| process_row(p)).collect();
    out.push_str(&table(
        &["host", "pid", "device", "peak", "growth", "non-torch", "large sizes", "failed", "rule", "command"],
        &[false, true, true, true, true, true, true, true, false, false],
        &rows,
    ));
}

fn callers(out: &mut String, m: &Merged, top: usize) {
    if m.callers.is_empty() {
        return;
    }
    let total: u64 = m.callers.iter().map(|c| c.bytes).fold(0, u64::saturating_add);
    let _ = writeln!(
        out,
        "\nCalling libraries (allocated: device and pinned host, added up over the run; held: device at the \
         process peak and at the end)"
    );
    let rows: Vec<Vec<String>> = m
        .callers
        .iter()
        .take(top)
        .map(|c| {
            vec![
                safe(&c.library),
                if c.torch { "torch".into() } else { "other".into() },
                c.calls.to_string(),
                c.failures.to_string(),
                bytes(c.bytes),
                format!("{:.1}%", percent(c.bytes, total)),
                bytes(c.at_peak.device),
                bytes(c.live.device),
                bytes(c.at_peak.host),
            ]
        })
        .collect();
    out.push_str(&table(
        &["library", "kind", "calls", "failed", "allocated", "share", "held at peak", "held at end", "pinned at peak"],
        &[false, false, true, true, true, true, true, true, true],
        &rows,
    ));
    if m.callers.len() > top {
        let _ = writeln!(out, "  ({} more libraries; --top N shows more)", m.callers.len() - top);
    }
}

fn failures(out: &mut String, m: &Merged) {
    if m.failures_total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nFailures ({} failed allocation calls, {} kept with the memory state, {} out of memory)",
        m.failures_total,
        m.failures.len(),
        m.out_of_memory_failures
    );
    let rows: Vec<Vec<String>> = m
        .failures
        .iter()
        .take(MAX_ROWS)
        .map(|f| {
            let x = &f.failure;
            let state = match (x.device_free, x.device_total) {
                (Some(free), Some(total)) => format!("{} of {}", bytes(free), bytes(total)),
                (Some(free), None) => bytes(free),
                _ => "unknown".into(),
            };
            let holder = x.held.first().map(holder).unwrap_or_else(|| "-".into());
            vec![
                safe(&f.hostname),
                f.pid.to_string(),
                seconds(x.t_ms),
                safe(&x.api),
                bytes(x.size),
                x.code.to_string(),
                device(x.device),
                state,
                bytes(x.live_bytes),
                x.outcome.map_or("unknown", |o| o.name()).to_owned(),
                safe(&holder),
            ]
        })
        .collect();
    out.push_str(&table(
        &["host", "pid", "at", "api", "size", "code", "device", "free", "process live", "outcome", "largest holder"],
        &[false, true, true, false, true, true, true, true, true, false, false],
        &rows,
    ));
    if m.failures.len() > MAX_ROWS {
        let _ = writeln!(out, "  ({} more in --json)", m.failures.len() - MAX_ROWS);
    }
}

/// torch_npu's own dumps: the runtime's memory per CANN module, with the
/// failure each one followed.
fn mem_usage_dumps(out: &mut String, m: &Merged) {
    if m.mem_usage_dumps.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ntorch_npu memory dumps (the runtime's memory per CANN module, aclrtGetMemUsageInfo)");
    for dump in m.mem_usage_dumps.iter().take(MAX_ROWS) {
        let follows = dump.describe_follows();
        let total: u64 = dump.modules.iter().map(|x| x.current_bytes).fold(0, u64::saturating_add);
        let _ = writeln!(
            out,
            "  {}: device {} at {}, {} in {} modules; {}",
            safe(&dump.file),
            device(dump.device),
            dump.written_local,
            bytes(total),
            dump.modules.len(),
            safe(&follows)
        );
        let rows: Vec<Vec<String>> = dump
            .modules
            .iter()
            .take(MAX_ROWS)
            .map(|x| vec![terminal_safe(&x.name, 40), bytes(x.current_bytes), bytes(x.peak_bytes)])
            .collect();
        out.push_str(&table(&["module", "now", "peak"], &[false, true, true], &rows));
    }
    let more = m.mem_usage_dumps.len().saturating_sub(MAX_ROWS) as u64 + m.mem_usage_dumps_omitted;
    if more > 0 {
        let _ = writeln!(out, "  ({more} more dumps not shown)");
    }
}

fn findings(out: &mut String, m: &Merged) {
    let _ = writeln!(out, "\nFindings");
    if m.findings.is_empty() {
        let _ = writeln!(out, "  nothing stands out");
        return;
    }
    for f in &m.findings {
        let scope = if f.processes == 0 {
            "whole job".to_owned()
        } else {
            let examples: Vec<String> = f.examples.iter().map(|e| safe(e)).collect();
            let more = if f.processes > examples.len() as u64 { ", ..." } else { "" };
            format!("{} of {} processes: {}{more}", f.processes, m.recordings, examples.join(", "))
        };
        let _ = writeln!(out, "  {:<7} {} [{}] ({scope})", f.severity.name(), safe(&f.title), f.id);
        let _ = writeln!(out, "          {}", terminal_safe(&f.detail, 2000));
        let _ = writeln!(out, "          -> {}", terminal_safe(&f.advice, 2000));
    }
}
