//! The HTML page: reserved and gap over the trace for every run on shared
//! axes (one chart each, so the scales are the same by construction), peak
//! reserved as bars, the table and the verdict. Inline CSS and SVG only, no
//! script, no external reference; every string from the snapshot or a
//! command line goes through `esc`.

use super::outcome::{Report, gib, mib, verdict};
use crate::report::svg::{Bar, BarChart, FAILURE_COLOUR, Line, LineChart, Mark, PALETTE, Unit, esc};
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;margin:24px;color:#1d1d1d;\
background:#fafafa;max-width:1160px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;\
padding:4px 8px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}\
.verdict{border-left:4px solid #59a14f;padding:8px 12px;background:#fff}.chart{display:block;margin:16px 0}\
.title{font-size:14px;font-weight:bold}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}";

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>whatif: {t}</title><style>{STYLE}</style></head><body>\
         <h1>What if: {t}</h1><p>Replayed on torch_npu {v}'s own allocator, simulated NPU of {d} per device.</p>\
         <p class=\"verdict\"><b>Verdict.</b> {verdict}</p>",
        t = esc(&report.snapshot),
        v = esc(report.runs.first().map_or("?", |r| r.torch_npu.as_str())),
        d = gib(report.device_bytes),
        verdict = esc(&verdict(report)),
    );
    out.push_str(&table(report));
    let devices: Vec<u64> = report.plan.devices.iter().map(|d| d.device as u64).collect();
    for device in devices {
        for (title, gap) in [
            ("Reserved memory over the trace", false),
            ("Reserved minus allocated (held by the cache, not in use)", true),
        ] {
            out.push_str(&chart(report, device, title, gap));
        }
    }
    let bars = report
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rejected().is_none())
        .map(|(i, r)| Bar {
            label: super::label(&r.config),
            value: r.peak_reserved() as f64,
            tooltip: format!("{}: {}", super::label(&r.config), gib(r.peak_reserved())),
            colour: if r.completed() { PALETTE[i % PALETTE.len()] } else { FAILURE_COLOUR },
        })
        .collect();
    let bars = BarChart {
        title: "Peak reserved (red: ran out of memory)".into(),
        width: 1100.0,
        unit: Unit::Bytes,
        max: 0.0,
        bars,
    };
    out.push_str(&bars.horizontal());
    out.push_str("</body></html>\n");
    out
}

fn chart(report: &Report, device: u64, title: &str, gap: bool) -> String {
    let mut lines = Vec::new();
    let mut marks = Vec::new();
    let mut legend = String::from("<p>");
    for (i, run) in report.runs.iter().enumerate() {
        let Some(d) = run.devices.iter().find(|d| d.device == device) else { continue };
        if d.samples.is_empty() {
            continue;
        }
        let colour = PALETTE[i % PALETTE.len()];
        let points =
            d.samples.iter().map(|&(x, r, a)| (x as f64, if gap { r.saturating_sub(a) } else { r } as f64)).collect();
        lines.push(Line { label: super::label(&run.config), colour, points, upper: Vec::new() });
        if let (Some((at, size)), Some(&(_, r, a))) = (d.oom, d.samples.last()) {
            let y = if gap { r.saturating_sub(a) } else { r };
            marks.push(Mark {
                x: at as f64,
                y: y as f64,
                label: format!("{}: OOM for {}", super::label(&run.config), mib(size)),
            });
        }
        let _ =
            write!(legend, "<span style=\"color:{colour}\">&#9632;</span> {} &nbsp; ", esc(&super::label(&run.config)));
    }
    legend.push_str("</p>");
    let events = report.plan.devices.iter().find(|d| d.device as u64 == device).map_or(0, |d| d.events);
    let chart = LineChart {
        title: format!("{title}, device {device}"),
        width: 1100.0,
        height: 320.0,
        x_unit: Unit::Count,
        y_unit: Unit::Bytes,
        x_label: "event of the snapshot's trace".into(),
        x_max: events as f64,
        y_max: 0.0,
        lines,
        marks,
    };
    chart.render() + &legend
}

fn table(report: &Report) -> String {
    let mut out = String::from(
        "<table><tr><th>configuration</th><th>device</th><th>outcome</th><th>peak reserved</th><th>peak allocated</th>\
         <th>max gap</th><th>segments peak/end</th></tr>",
    );
    for d in &report.plan.devices {
        let r = &d.recorded;
        let outcome = r.oom.map_or("as recorded".into(), |(at, size)| format!("OOM at #{at} ({})", mib(size)));
        let _ = write!(
            out,
            "<tr><td>recorded trace</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td><td>{}/{}</td></tr>",
            d.device,
            esc(&outcome),
            gib(r.peak_reserved),
            gib(r.peak_allocated),
            r.segments_peak,
            r.segments_end
        );
    }
    for run in &report.runs {
        for d in &run.devices {
            let outcome = match (d.outcome.as_str(), d.oom) {
                ("oom", Some((at, size))) => format!("OOM at #{at} ({})", mib(size)),
                ("rejected", _) => format!("refused: {}", d.error.as_deref().unwrap_or("")),
                (other, _) => other.to_owned(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
                esc(&super::label(&run.config)),
                d.device,
                esc(&outcome),
                gib(d.peak_reserved),
                gib(d.peak_allocated),
                gib(d.max_gap()),
                d.segments_peak,
                d.segments_end
            );
        }
    }
    out + "</table>"
}
