//! The evidence charts of the HTML pages: non-torch memory over time (device
//! used − torch-held, as vLLM computes it) and the bytes each calling library
//! held over time.

use super::merge::Merged;
use super::summary::ProcessSummary;
use super::svg::{Line, LineChart, PALETTE, esc};
use super::units::{basename, bytes};
use common::format::Pool;
use std::fmt::Write as _;

/// Processes drawn on the non-torch chart; libraries on the held chart.
const MAX_LINES: usize = 16;
const LIBRARY_LINES: usize = 8;
const HEIGHT: f64 = 300.0;

/// Seconds since the run's origin of a process's sample.
fn at(m: &Merged, p: &ProcessSummary, t_ms: u64) -> f64 {
    (p.started_unix_ms.saturating_sub(m.origin_unix_ms) + t_ms) as f64 / 1000.0
}

/// (seconds, bytes) of each sample that read the device.
fn non_torch_points(m: &Merged, p: &ProcessSummary) -> Vec<(f64, f64)> {
    p.timeline.iter().filter_map(|s| Some((at(m, p, s.t_ms), s.non_framework_bytes()? as f64))).collect()
}

/// The highest non-torch value of any process, for a shared scale.
pub fn non_torch_max(m: &Merged) -> f64 {
    m.processes.iter().filter_map(|p| p.non_torch).map(|n| n.max as f64).fold(0.0, f64::max)
}

/// Non-torch memory per process over time; None when no process read the device.
pub fn non_torch_chart(m: &Merged, width: f64, x_max: f64, y_max: f64) -> Option<String> {
    let mut read: Vec<&ProcessSummary> = m.processes.iter().filter(|p| p.non_torch.is_some()).collect();
    if read.is_empty() {
        return None;
    }
    read.sort_by_key(|p| std::cmp::Reverse(p.non_torch.map_or(0, |n| n.max)));
    let hidden = read.len().saturating_sub(MAX_LINES);
    read.truncate(MAX_LINES);
    let mut legend = String::from(
        "<div class=\"legend\"><span class=\"note\">device used (total − free, read on an application thread) \
         minus what torch's caching allocator holds, at the same instant</span><br>",
    );
    let mut lines = Vec::new();
    for (n, p) in read.iter().enumerate() {
        let Some(range) = p.non_torch else { continue };
        let colour = PALETTE[n % PALETTE.len()];
        let label = format!(
            "{}: non-torch memory {} at the first reading, {} at the last, highest {}",
            p.label(),
            bytes(range.first),
            bytes(range.last),
            bytes(range.max)
        );
        let _ = write!(legend, "<span><i style=\"background:{colour}\"></i>{}</span>", esc(&label));
        lines.push(Line { label, colour, points: non_torch_points(m, p), upper: vec![] });
    }
    if hidden > 0 {
        let _ =
            write!(legend, "<span class=\"note\">{hidden} more processes with less non-torch memory not drawn</span>");
    }
    legend.push_str("</div>");
    let title = "Non-torch memory per process (device used − torch-held)".to_owned();
    let chart = LineChart::bytes_over_time(title, width, HEIGHT, x_max, y_max, lines);
    Some(chart.render() + &legend)
}

/// The process whose holders are drawn: the one with the highest peak that
/// kept any.
fn held_process(m: &Merged) -> Option<&ProcessSummary> {
    m.processes.iter().filter(|p| p.timeline.iter().any(|s| !s.held.is_empty())).max_by_key(|p| p.peak())
}

/// One timeline library's line: its points (0 where a sample does not name
/// it: it was not among the largest holders) and its highest value.
struct HeldLine {
    library: usize,
    points: Vec<(f64, f64)>,
    highest: u64,
}

fn held_lines(m: &Merged, p: &ProcessSummary) -> Vec<HeldLine> {
    let mut lines: Vec<HeldLine> =
        (0..p.timeline_libraries.len()).map(|library| HeldLine { library, points: Vec::new(), highest: 0 }).collect();
    for s in &p.timeline {
        let x = at(m, p, s.t_ms);
        for line in lines.iter_mut() {
            let held = s.held.iter().find(|h| h.0 as usize == line.library).map_or(0, |h| h.1);
            line.points.push((x, held as f64));
            line.highest = line.highest.max(held);
        }
    }
    lines.retain(|l| l.highest > 0);
    lines.sort_by_key(|l| std::cmp::Reverse(l.highest));
    lines
}

/// The highest bytes one library held in the drawn process, for a shared scale.
pub fn held_max(m: &Merged) -> f64 {
    held_process(m).map_or(0.0, |p| held_lines(m, p).first().map_or(0.0, |l| l.highest as f64))
}

/// Bytes held per calling library over the timeline of the process with the
/// highest peak.
pub fn held_chart(m: &Merged, width: f64, x_max: f64, y_max: f64) -> String {
    let Some(p) = held_process(m) else {
        return "<p class=\"note\">No recording kept holders over time.</p>".to_owned();
    };
    let mut all = held_lines(m, p);
    let hidden = all.len().saturating_sub(LIBRARY_LINES);
    all.truncate(LIBRARY_LINES);
    let mut legend = format!(
        "<div class=\"legend\"><span class=\"note\">{}: the largest holders at each sample (a library absent \
         from a sample's largest is drawn at 0)</span><br>",
        esc(&p.label())
    );
    let mut lines = Vec::new();
    for (n, HeldLine { library, points, highest }) in all.into_iter().enumerate() {
        let library = &p.timeline_libraries[library];
        let pool = if library.pool == Pool::Host { " (pinned host)" } else { "" };
        let colour = PALETTE[n % PALETTE.len()];
        let label = format!("{}{pool}: highest held {}", basename(&library.library), bytes(highest));
        let _ = write!(legend, "<span><i style=\"background:{colour}\"></i>{}</span>", esc(&label));
        lines.push(Line { label, colour, points, upper: vec![] });
    }
    if hidden > 0 {
        let _ = write!(legend, "<span class=\"note\">{hidden} more libraries not drawn</span>");
    }
    legend.push_str("</div>");
    let title = format!("Held per calling library — {}", p.label());
    let chart = LineChart::bytes_over_time(title, width, HEIGHT, x_max, y_max, lines);
    chart.render() + &legend
}
