//! One self-contained HTML page per report or diff: inline CSS and SVG, no
//! script, no external reference. Every string from a recording goes through
//! `esc`.

use super::diff::{Change, Kind};
use super::findings::Finding;
use super::html_evidence::{held_chart, held_max, non_torch_chart, non_torch_max};
use super::merge::Merged;
use super::svg::{Bar, BarChart, FAILURE_COLOUR, Line, LineChart, Mark, PALETTE, Unit, esc};
use super::units::{basename, bytes, device, percent, seconds, signed_bytes};
use common::format::histogram;
use std::fmt::Write as _;

/// Processes drawn on one timeline; the rest are listed as omitted.
const MAX_LINES: usize = 16;
/// Rows of the failure table.
const MAX_FAILURE_ROWS: usize = 200;
/// Bars of the library and device charts.
const MAX_BARS: usize = 16;
const FULL: f64 = 1100.0;
const HALF: f64 = 540.0;

const STYLE: &str = "
body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;margin:24px;color:#1d1d1d;background:#fafafa;max-width:1160px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}.card span{color:#666;font-size:12px}
.finding{background:#fff;border-left:5px solid #999;padding:8px 12px;margin:8px 0}
.finding.error{border-color:#d62728}.finding.warning{border-color:#f28e2b}.finding.info{border-color:#4e79a7}
.finding .sev{font-weight:bold;text-transform:uppercase;font-size:11px;margin-right:6px}.finding .id{color:#777;font-size:12px}
.finding p{margin:4px 0}.finding .advice{color:#234}
table{border-collapse:collapse;background:#fff;font-size:12px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}td.n{text-align:right;white-space:nowrap}
th{background:#f0f0f0}.cmd{max-width:420px;word-break:break-all}
svg.chart{background:#fff;border:1px solid #ddd;display:block;margin:6px 0}
svg.chart .title{font:600 14px 'DejaVu Sans',Arial,sans-serif}svg.chart .tick{font:11px 'DejaVu Sans',Arial,sans-serif;fill:#444}
svg.chart .axis{font:12px 'DejaVu Sans',Arial,sans-serif;fill:#333}
.legend{font-size:12px;margin:2px 0 10px}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
.pair{display:flex;gap:16px;align-items:flex-start}.pair>div{flex:1;min-width:0}.pair h3{font-size:14px;margin:4px 0}
.note{color:#666;font-size:12px}.worse{color:#b22}.better{color:#282}
.scroll{overflow-x:auto}
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n{body}\n<p class=\"note\">Written by npu-alloc-shim {} from recordings of the preloaded \
         library.</p>\n</body>\n</html>\n",
        esc(title),
        env!("CARGO_PKG_VERSION")
    )
}

fn card(value: &str, what: &str) -> String {
    format!("<div class=\"card\"><b>{}</b><span>{}</span></div>", esc(value), esc(what))
}

fn cards(m: &Merged) -> String {
    let mut out = String::from("<div class=\"cards\">");
    out.push_str(&card(&m.recordings.to_string(), "recordings (processes)"));
    out.push_str(&card(&m.hosts_count.to_string(), "hosts"));
    out.push_str(&card(&(m.devices.len() as u64 + m.devices_omitted).to_string(), "devices"));
    out.push_str(&card(&bytes(m.highest_peak), "highest process peak"));
    out.push_str(&card(&signed_bytes(i128::from(m.largest_growth)), "largest growth"));
    out.push_str(&card(&m.totals.alloc_calls.to_string(), "device allocations"));
    out.push_str(&card(&format!("{} ({} OOM)", m.failures_total, m.out_of_memory_failures), "failed allocations"));
    out.push_str(&card(&format!("{} of {}", m.processes_mapping, m.recordings), "with mapped segments"));
    out.push_str("</div>");
    out
}

fn findings(list: &[Finding], recordings: u64) -> String {
    if list.is_empty() {
        return "<p>Nothing stands out.</p>".to_owned();
    }
    let mut out = String::new();
    for f in list {
        let scope = if f.processes == 0 {
            "whole job".to_owned()
        } else {
            let more = if f.processes > f.examples.len() as u64 { ", …" } else { "" };
            format!("{} of {recordings} processes: {}{more}", f.processes, f.examples.join(", "))
        };
        let _ = write!(
            out,
            "<div class=\"finding {sev}\"><span class=\"sev\">{sev}</span><b>{title}</b> <span class=\"id\">[{id}] \
             ({scope})</span><p>{detail}</p><p class=\"advice\">→ {advice}</p></div>",
            sev = f.severity.name(),
            title = esc(&f.title),
            id = esc(f.id),
            scope = esc(&scope),
            detail = esc(&f.detail),
            advice = esc(&f.advice)
        );
    }
    out
}

/// Seconds since the run's origin and the highest byte value of the timeline.
fn timeline_extent(m: &Merged) -> (f64, f64) {
    let mut x = 0.0f64;
    let mut y = 0.0f64;
    for p in &m.processes {
        let start = p.started_unix_ms.saturating_sub(m.origin_unix_ms) as f64 / 1000.0;
        let end = p.written_unix_ms.saturating_sub(m.origin_unix_ms) as f64 / 1000.0;
        x = x.max(end);
        for s in &p.timeline {
            x = x.max(start + s.t_ms as f64 / 1000.0);
            y = y.max(s.max_live_bytes.max(s.live_bytes) as f64);
        }
        y = y.max(p.totals.live_bytes as f64);
    }
    for f in &m.failures {
        x = x.max(f.at_unix_ms.saturating_sub(m.origin_unix_ms) as f64 / 1000.0);
        y = y.max(f.failure.live_bytes as f64);
    }
    (x, y)
}

/// Live device memory per process over time, failures marked.
fn timeline(m: &Merged, width: f64, x_max: f64, y_max: f64) -> String {
    let mut order: Vec<usize> = (0..m.processes.len()).collect();
    order.sort_by(|&a, &b| m.processes[b].peak().cmp(&m.processes[a].peak()));
    order.truncate(MAX_LINES);
    order.sort_unstable();
    let mut lines = Vec::new();
    let mut legend = String::from(
        "<div class=\"legend\"><span class=\"note\">solid: live bytes at each sample; faint: the highest value \
         within the sample's interval</span><br>",
    );
    for (n, &i) in order.iter().enumerate() {
        let p = &m.processes[i];
        let start = p.started_unix_ms.saturating_sub(m.origin_unix_ms) as f64 / 1000.0;
        let at = |t_ms: u64| start + t_ms as f64 / 1000.0;
        // Nothing is live when the library loads; the write at exit gives the end.
        let mut points = vec![(start, 0.0)];
        let mut upper = vec![(start, 0.0)];
        for s in &p.timeline {
            points.push((at(s.t_ms), s.live_bytes as f64));
            upper.push((at(s.t_ms), s.max_live_bytes.max(s.live_bytes) as f64));
        }
        let end_ms = p.written_unix_ms.saturating_sub(p.started_unix_ms);
        if p.timeline.last().is_none_or(|s| s.t_ms < end_ms) {
            points.push((at(end_ms), p.totals.live_bytes as f64));
        }
        let colour = PALETTE[n % PALETTE.len()];
        let label = format!("{} — peak {}", p.label(), bytes(p.peak()));
        let _ = write!(legend, "<span><i style=\"background:{colour}\"></i>{}</span>", esc(&label));
        lines.push(Line { label, colour, points, upper });
    }
    if m.processes.len() > order.len() || m.processes_omitted > 0 {
        let hidden = (m.processes.len() - order.len()) as u64 + m.processes_omitted;
        let _ = write!(legend, "<span class=\"note\">{hidden} more processes with lower peaks not drawn</span>");
    }
    if m.failures_total > 0 {
        let _ = write!(
            legend,
            "<span><i style=\"background:{FAILURE_COLOUR}\"></i>failed allocation (hover for details)</span>"
        );
    }
    legend.push_str("</div>");
    let marks = m
        .failures
        .iter()
        .map(|f| {
            let x = &f.failure;
            let state = match (x.device_free, x.device_total) {
                (Some(free), Some(total)) => format!("; device free {} of {}", bytes(free), bytes(total)),
                _ => String::new(),
            };
            Mark {
                x: f.at_unix_ms.saturating_sub(m.origin_unix_ms) as f64 / 1000.0,
                y: x.live_bytes as f64,
                label: format!(
                    "{} pid {}: {} of {} failed (code {}) on device {} at {}; process live {}{state}",
                    f.hostname,
                    f.pid,
                    x.api,
                    bytes(x.size),
                    x.code,
                    device(x.device),
                    seconds(x.t_ms),
                    bytes(x.live_bytes)
                ),
            }
        })
        .collect();
    let chart = LineChart {
        marks,
        ..LineChart::bytes_over_time("Live device memory per process".to_owned(), width, 340.0, x_max, y_max, lines)
    };
    chart.render() + &legend
}

/// The bucket indices a histogram chart spans: every bucket between the
/// smallest and the largest used, empty ones included, so the shape is true.
fn bucket_range(sets: &[&Merged]) -> Option<(usize, usize)> {
    let used = sets.iter().flat_map(|m| m.histogram.iter().map(|b| histogram::index(b.lo)));
    let (lo, hi) = used.fold((usize::MAX, 0), |(lo, hi), i| (lo.min(i), hi.max(i)));
    (lo <= hi).then_some((lo, hi))
}

fn histogram_chart(m: &Merged, width: f64, range: Option<(usize, usize)>, by_bytes: bool, max: f64) -> String {
    let Some((lo, hi)) = range else {
        return "<p class=\"note\">No successful device allocation.</p>".to_owned();
    };
    let mut bars = Vec::new();
    for i in lo..=hi {
        let (b_lo, b_hi) = histogram::bounds(i);
        let bucket = m.histogram.iter().find(|b| histogram::index(b.lo) == i);
        let (count, total) = bucket.map_or((0, 0), |b| (b.count, b.bytes));
        bars.push(Bar {
            label: bytes(b_lo),
            value: if by_bytes { total as f64 } else { count as f64 },
            tooltip: format!("[{}, {}): {count} allocations, {}", bytes(b_lo), bytes(b_hi), bytes(total)),
            colour: if by_bytes { PALETTE[1] } else { PALETTE[0] },
        });
    }
    let title = if by_bytes { "Bytes allocated per size range" } else { "Allocations per size range (count)" };
    BarChart { title: title.to_owned(), width, unit: if by_bytes { Unit::Bytes } else { Unit::Count }, max, bars }
        .vertical(260.0)
}

fn histogram_max(m: &Merged, by_bytes: bool) -> f64 {
    m.histogram.iter().map(|b| if by_bytes { b.bytes } else { b.count } as f64).fold(0.0, f64::max)
}

fn devices_chart(m: &Merged, width: f64, max: f64) -> String {
    if m.devices.is_empty() {
        return "<p class=\"note\">No device memory.</p>".to_owned();
    }
    let mut devices: Vec<_> = m.devices.iter().collect();
    devices.sort_by_key(|d| std::cmp::Reverse(d.peak_live_bytes));
    let bars = devices
        .iter()
        .take(MAX_BARS)
        .map(|d| Bar {
            label: format!("{} device {}", d.hostname, device(d.device)),
            value: d.peak_live_bytes as f64,
            tooltip: format!(
                "{} device {}: peak {}{}, live at the end {}, {} processes",
                d.hostname,
                device(d.device),
                bytes(d.peak_live_bytes),
                if d.peak_is_upper_bound { " (processes' peaks added up)" } else { "" },
                bytes(d.live_bytes),
                d.processes
            ),
            colour: PALETTE[0],
        })
        .collect();
    BarChart { title: "Peak live memory per device".to_owned(), width, unit: Unit::Bytes, max, bars }.horizontal()
}

fn callers_chart(m: &Merged, width: f64, max: f64) -> String {
    if m.callers.is_empty() {
        return "<p class=\"note\">No allocation calls.</p>".to_owned();
    }
    let total: u64 = m.callers.iter().map(|c| c.bytes).fold(0, u64::saturating_add);
    let bars = m
        .callers
        .iter()
        .take(MAX_BARS)
        .map(|c| Bar {
            label: basename(&c.library).to_owned(),
            value: c.bytes as f64,
            tooltip: format!(
                "{}: {} in {} calls ({:.1}%), {} failed; {}",
                c.library,
                bytes(c.bytes),
                c.calls,
                percent(c.bytes, total),
                c.failures,
                if c.torch { "torch" } else { "outside torch's caching allocator" }
            ),
            colour: if c.torch { PALETTE[0] } else { PALETTE[1] },
        })
        .collect();
    BarChart {
        title: "Memory by calling library (bytes allocated; orange: not torch)".to_owned(),
        width,
        unit: Unit::Bytes,
        max,
        bars,
    }
    .horizontal()
}

fn callers_max(m: &Merged) -> f64 {
    m.callers.iter().map(|c| c.bytes as f64).fold(0.0, f64::max)
}

fn devices_max(m: &Merged) -> f64 {
    m.devices.iter().map(|d| d.peak_live_bytes as f64).fold(0.0, f64::max)
}

fn td(text: &str) -> String {
    format!("<td>{}</td>", esc(text))
}

fn tn(text: &str) -> String {
    format!("<td class=\"n\">{}</td>", esc(text))
}

fn processes_table(m: &Merged) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table><tr><th>host</th><th>pid</th><th>device</th><th>peak</th><th>live at end</th><th>growth</th>\
         <th>large sizes</th><th>mapped</th><th>failed</th><th>variable</th><th>before</th><th>after</th>\
         <th>rule</th><th>final</th><th>command</th></tr>",
    );
    for p in &m.processes {
        let growth = p.growth.map_or_else(
            || "-".to_owned(),
            |g| signed_bytes(i128::from(g.second_half_peak) - i128::from(g.first_half_peak)),
        );
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}{}{}{}{}{}{}{}{}<td class=\"cmd\">{}</td></tr>",
            td(&p.hostname),
            tn(&p.pid.to_string()),
            tn(&p.device.map_or_else(|| format!("{} used", p.devices.len()), device)),
            tn(&bytes(p.peak())),
            tn(&bytes(p.totals.live_bytes)),
            tn(&growth),
            tn(&p.large_sizes.to_string()),
            tn(&p.physical_allocations.to_string()),
            tn(&p.failed_calls.to_string()),
            td(&p.config.var),
            td(p.config.before.as_deref().unwrap_or("(unset)")),
            td(p.config.after.as_deref().unwrap_or("(unset)")),
            td(&p.config.rule),
            td(if p.is_final { "yes" } else { "no" }),
            esc(&p.command)
        );
    }
    out.push_str("</table></div>");
    if m.processes_omitted > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{} processes with lower peaks are counted but not listed.</p>",
            m.processes_omitted
        );
    }
    out
}

fn failures_table(m: &Merged) -> String {
    if m.failures.is_empty() {
        return "<p>No failed allocation was recorded.</p>".to_owned();
    }
    let mut out = String::from(
        "<table><tr><th>host</th><th>pid</th><th>at</th><th>api</th><th>size</th><th>code</th><th>device</th>\
         <th>device free</th><th>device total</th><th>process live</th><th>kind</th></tr>",
    );
    for f in m.failures.iter().take(MAX_FAILURE_ROWS) {
        let x = &f.failure;
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}{}{}{}{}{}</tr>",
            td(&f.hostname),
            tn(&f.pid.to_string()),
            tn(&seconds(x.t_ms)),
            td(&x.api),
            tn(&bytes(x.size)),
            tn(&x.code.to_string()),
            tn(&device(x.device)),
            tn(&x.device_free.map_or_else(|| "unknown".to_owned(), bytes)),
            tn(&x.device_total.map_or_else(|| "unknown".to_owned(), bytes)),
            tn(&bytes(x.live_bytes)),
            td(if f.out_of_memory { "out of memory" } else { "other" })
        );
    }
    out.push_str("</table>");
    if m.failures_total > m.failures.len().min(MAX_FAILURE_ROWS) as u64 {
        let _ =
            write!(out, "<p class=\"note\">{} failed calls in all; --json has the kept ones.</p>", m.failures_total);
    }
    out
}

/// torch_npu's dumps: the runtime's memory per CANN module.
fn mem_usage_tables(m: &Merged) -> String {
    let mut out = String::from(
        "<p class=\"note\">device_&lt;N&gt;_memUsageInfo files torch_npu wrote (aclrtGetMemUsageInfo), each with \
         the recorded out-of-memory failure it followed</p>",
    );
    for dump in m.mem_usage_dumps.iter().take(MAX_FAILURE_ROWS) {
        let follows = dump.describe_follows();
        let _ = write!(
            out,
            "<h3>{}</h3><p>device {} at {}; {}</p><table><tr><th>module</th><th>now</th><th>peak</th></tr>",
            esc(&dump.file),
            device(dump.device),
            esc(&dump.written_local),
            esc(&follows)
        );
        for x in &dump.modules {
            let _ = write!(out, "<tr>{}{}{}</tr>", td(&x.name), tn(&bytes(x.current_bytes)), tn(&bytes(x.peak_bytes)));
        }
        out.push_str("</table>");
    }
    out
}

fn callers_table(m: &Merged) -> String {
    let total: u64 = m.callers.iter().map(|c| c.bytes).fold(0, u64::saturating_add);
    let mut out = String::from(
        "<table><tr><th>library</th><th>kind</th><th>calls</th><th>failed</th><th>allocated over the run</th>\
         <th>share</th><th>held at peak</th><th>held at end</th><th>pinned host held at peak</th></tr>",
    );
    for c in &m.callers {
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}{}{}{}</tr>",
            td(&c.library),
            td(if c.torch { "torch" } else { "other" }),
            tn(&c.calls.to_string()),
            tn(&c.failures.to_string()),
            tn(&bytes(c.bytes)),
            tn(&format!("{:.1}%", percent(c.bytes, total))),
            tn(&bytes(c.at_peak.device)),
            tn(&bytes(c.live.device)),
            tn(&bytes(c.at_peak.host))
        );
    }
    out.push_str("</table>");
    out
}

/// `npu-alloc-shim report --html`.
pub fn report_page(m: &Merged, inputs: &str) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>npu-alloc-shim report</h1><div class=\"sub\">{} recording(s) from {}; {} from the first start to the \
         last write</div>",
        m.recordings,
        esc(inputs),
        seconds(m.end_unix_ms.saturating_sub(m.origin_unix_ms))
    );
    body.push_str(&cards(m));
    let _ = write!(body, "<h2>Findings</h2>{}", findings(&m.findings, m.recordings));
    let (x, y) = timeline_extent(m);
    let _ = write!(body, "<h2>Memory over time</h2>{}", timeline(m, FULL, x, y));
    if let Some(chart) = non_torch_chart(m, FULL, x, 0.0) {
        let _ = write!(body, "<h2>Non-torch memory</h2>{chart}");
    }
    let _ = write!(body, "<h2>Held per calling library</h2>{}", held_chart(m, FULL, x, 0.0));
    let range = bucket_range(&[m]);
    let _ = write!(
        body,
        "<h2>Allocation sizes</h2>{}{}",
        histogram_chart(m, FULL, range, false, 0.0),
        histogram_chart(m, FULL, range, true, 0.0)
    );
    let _ = write!(body, "<h2>Devices</h2>{}", devices_chart(m, FULL, 0.0));
    let _ = write!(body, "<h2>Calling libraries</h2>{}{}", callers_chart(m, FULL, 0.0), callers_table(m));
    let _ = write!(body, "<h2>Failures</h2>{}", failures_table(m));
    if !m.mem_usage_dumps.is_empty() {
        let _ = write!(body, "<h2>torch_npu memory dumps</h2>{}", mem_usage_tables(m));
    }
    let _ = write!(body, "<h2>Processes</h2>{}", processes_table(m));
    if m.skipped_count > 0 {
        let _ = write!(body, "<h2>Skipped files</h2><ul>");
        for s in &m.skipped {
            let _ = write!(body, "<li>{}: {}</li>", esc(&s.file), esc(&s.problem));
        }
        body.push_str("</ul>");
    }
    page("npu-alloc-shim report", &body)
}

fn pair(left: &str, right: &str) -> String {
    format!("<div class=\"pair\"><div><h3>before</h3>{left}</div><div><h3>after</h3>{right}</div></div>")
}

/// `npu-alloc-shim diff --html`: the same charts side by side, on shared scales.
pub fn diff_page(
    before: &Merged,
    after: &Merged,
    names: (&str, &str),
    changes: &[Change],
    headline: &[String],
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>npu-alloc-shim diff</h1><div class=\"sub\">before: {} recording(s) from {}<br>after: {} recording(s) \
         from {}</div><ul>",
        before.recordings,
        esc(names.0),
        after.recordings,
        esc(names.1)
    );
    for line in headline {
        let _ = write!(body, "<li><b>{}</b></li>", esc(line));
    }
    body.push_str("</ul><table><tr><th>measure</th><th>before</th><th>after</th><th>change</th></tr>");
    for c in changes {
        let show = |v: u64| if c.kind == Kind::Bytes { bytes(v) } else { v.to_string() };
        // Green where the change is an improvement, red where it is not.
        let class = match (c.after.cmp(&c.before), c.lower_is_better) {
            (std::cmp::Ordering::Equal, _) | (_, None) => "",
            (std::cmp::Ordering::Less, Some(true)) | (std::cmp::Ordering::Greater, Some(false)) => "better",
            _ => "worse",
        };
        let _ = write!(
            body,
            "<tr>{}{}{}<td class=\"n {class}\">{}</td></tr>",
            td(c.name),
            tn(&show(c.before)),
            tn(&show(c.after)),
            esc(&super::units::change_percent(c.before, c.after))
        );
    }
    body.push_str("</table>");
    let (bx, by) = timeline_extent(before);
    let (ax, ay) = timeline_extent(after);
    let (x, y) = (bx.max(ax), by.max(ay));
    let _ = write!(
        body,
        "<h2>Memory over time (same scales)</h2>{}",
        pair(&timeline(before, HALF, x, y), &timeline(after, HALF, x, y))
    );
    let y = non_torch_max(before).max(non_torch_max(after));
    if let (Some(b), Some(a)) = (non_torch_chart(before, HALF, x, y), non_torch_chart(after, HALF, x, y)) {
        let _ = write!(body, "<h2>Non-torch memory (same scales)</h2>{}", pair(&b, &a));
    }
    let y = held_max(before).max(held_max(after));
    let _ = write!(
        body,
        "<h2>Held per calling library (same scales)</h2>{}",
        pair(&held_chart(before, HALF, x, y), &held_chart(after, HALF, x, y))
    );
    let range = bucket_range(&[before, after]);
    for by_bytes in [false, true] {
        let max = histogram_max(before, by_bytes).max(histogram_max(after, by_bytes));
        let _ = write!(
            body,
            "<h2>{}</h2>{}",
            if by_bytes { "Bytes per size (same scale)" } else { "Allocation sizes (same scale)" },
            pair(
                &histogram_chart(before, HALF, range, by_bytes, max),
                &histogram_chart(after, HALF, range, by_bytes, max)
            )
        );
    }
    let max = devices_max(before).max(devices_max(after));
    let _ = write!(
        body,
        "<h2>Peak per device (same scale)</h2>{}",
        pair(&devices_chart(before, HALF, max), &devices_chart(after, HALF, max))
    );
    let max = callers_max(before).max(callers_max(after));
    let _ = write!(
        body,
        "<h2>Calling libraries (same scale)</h2>{}",
        pair(&callers_chart(before, HALF, max), &callers_chart(after, HALF, max))
    );
    let _ = write!(
        body,
        "<h2>Findings</h2>{}",
        pair(&findings(&before.findings, before.recordings), &findings(&after.findings, after.recordings))
    );
    let _ = write!(body, "<h2>Failures</h2>{}", pair(&failures_table(before), &failures_table(after)));
    page("npu-alloc-shim diff", &body)
}
