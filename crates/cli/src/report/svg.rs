//! Inline SVG charts, written by hand: a line chart (memory over time, with
//! failure marks) and a bar chart (vertical for sizes, horizontal for
//! libraries and devices). No dependency, no external reference (not even an
//! `xmlns` URL: inline SVG in HTML needs none), every text escaped.

use std::fmt::Write as _;

/// Colours of the series, in order (colour-blind-safe Tableau 10).
pub const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
pub const FAILURE_COLOUR: &str = "#d62728";

/// Escapes text for HTML and SVG, in element content and in quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in HTML text.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// How axis values are labelled.
#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Seconds,
    Count,
}

impl Unit {
    fn label(self, value: f64) -> String {
        match self {
            Unit::Bytes => super::units::bytes(value.max(0.0) as u64),
            Unit::Seconds => {
                // Enough decimals for short runs, none for whole seconds.
                let text = format!("{value:.3}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                format!("{text} s")
            }
            Unit::Count => format!("{}", value.round() as u64),
        }
    }

    /// A step giving at most about `ticks` ticks up to `max`: 1, 2 or 5 times
    /// a power of ten, or of 1024 for bytes (so labels read 256 MiB, 1 GiB).
    pub fn step(self, max: f64, ticks: usize) -> f64 {
        let rough = (max / ticks.max(1) as f64).max(f64::MIN_POSITIVE);
        let (base, multipliers): (f64, &[f64]) = match self {
            Unit::Bytes => {
                let mut unit = 1.0f64;
                while unit * 1024.0 <= rough {
                    unit *= 1024.0;
                }
                (unit, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0])
            }
            _ => (10f64.powf(rough.log10().floor()), &[1.0, 2.0, 5.0, 10.0]),
        };
        let step = multipliers.iter().map(|m| m * base).find(|s| *s >= rough).unwrap_or(base * 10.0);
        if matches!(self, Unit::Count) { step.max(1.0) } else { step }
    }
}

/// Ticks from 0 to at least `max`.
pub fn ticks(unit: Unit, max: f64, count: usize) -> Vec<f64> {
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    let step = unit.step(max, count);
    let mut out = vec![0.0];
    let mut t = 0.0;
    while t < max && out.len() < 64 {
        t += step;
        out.push(t);
    }
    out
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

const LEFT: f64 = 76.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// A frame with a title, axes and grid; returns the SVG so far and the
/// mapping from data to pixels.
struct Frame {
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * (self.width - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let bottom = self.height - BOTTOM;
        bottom - (y / self.y_max).clamp(0.0, 1.0) * (bottom - TOP)
    }

    fn open(&self, out: &mut String, title: &str, role_label: &str) {
        let _ = write!(
            out,
            r##"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{label}"><rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/><text x="{tx}" y="18" class="title">{title}</text>"##,
            w = self.width,
            h = self.height,
            label = esc(role_label),
            tx = LEFT,
            title = esc(title)
        );
    }

    fn y_axis(&self, out: &mut String, unit: Unit, ticks: &[f64]) {
        for &t in ticks {
            let y = self.py(t);
            let _ = write!(
                out,
                r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#e3e3e3"/><text x="{tx}" y="{ty}" class="tick" text-anchor="end">{label}</text>"##,
                x1 = f(LEFT),
                x2 = f(self.width - RIGHT),
                y = f(y),
                tx = f(LEFT - 6.0),
                ty = f(y + 4.0),
                label = esc(&unit.label(t))
            );
        }
        let _ = write!(
            out,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#888"/><line x1="{x}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>"##,
            x = f(LEFT),
            top = f(TOP),
            bottom = f(self.height - BOTTOM),
            right = f(self.width - RIGHT)
        );
    }
}

pub struct Line {
    pub label: String,
    pub colour: &'static str,
    /// (x, y) in data units, x ascending.
    pub points: Vec<(f64, f64)>,
    /// A faint companion (the interval maxima), drawn under the line.
    pub upper: Vec<(f64, f64)>,
}

pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

pub struct LineChart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub x_unit: Unit,
    pub y_unit: Unit,
    pub x_label: String,
    /// Scale maxima; 0 picks the data's own (diff charts share one scale).
    pub x_max: f64,
    pub y_max: f64,
    pub lines: Vec<Line>,
    pub marks: Vec<Mark>,
}

impl LineChart {
    /// Bytes over the seconds since the run's first process started.
    pub fn bytes_over_time(title: String, width: f64, height: f64, x_max: f64, y_max: f64, lines: Vec<Line>) -> Self {
        LineChart {
            title,
            width,
            height,
            x_unit: Unit::Seconds,
            y_unit: Unit::Bytes,
            x_label: "time since the first process started".to_owned(),
            x_max,
            y_max,
            lines,
            marks: vec![],
        }
    }

    pub fn data_max(&self) -> (f64, f64) {
        let points = self.lines.iter().flat_map(|l| l.points.iter().chain(&l.upper));
        let (mut x, mut y) = points.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
        for m in &self.marks {
            x = x.max(m.x);
            y = y.max(m.y);
        }
        (x, y)
    }

    pub fn render(&self) -> String {
        let (dx, dy) = self.data_max();
        let x_ticks = ticks(self.x_unit, if self.x_max > 0.0 { self.x_max } else { dx }, 8);
        let y_ticks = ticks(self.y_unit, if self.y_max > 0.0 { self.y_max } else { dy }, 6);
        let frame = Frame {
            width: self.width,
            height: self.height,
            x_max: *x_ticks.last().unwrap_or(&1.0),
            y_max: *y_ticks.last().unwrap_or(&1.0),
        };
        let mut out = String::new();
        frame.open(&mut out, &self.title, &self.title);
        frame.y_axis(&mut out, self.y_unit, &y_ticks);
        for &t in &x_ticks {
            let _ = write!(
                out,
                r#"<text x="{x}" y="{y}" class="tick" text-anchor="middle">{label}</text>"#,
                x = f(frame.px(t)),
                y = f(self.height - BOTTOM + 16.0),
                label = esc(&self.x_unit.label(t))
            );
        }
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" class="axis" text-anchor="middle">{label}</text>"#,
            x = f(LEFT + (self.width - LEFT - RIGHT) / 2.0),
            y = f(self.height - 6.0),
            label = esc(&self.x_label)
        );
        let path = |points: &[(f64, f64)]| {
            points.iter().map(|&(x, y)| format!("{},{}", f(frame.px(x)), f(frame.py(y)))).collect::<Vec<_>>().join(" ")
        };
        for line in &self.lines {
            if line.upper.len() > 1 {
                let _ = write!(
                    out,
                    r#"<polyline points="{p}" fill="none" stroke="{c}" stroke-opacity="0.35" stroke-width="1"/>"#,
                    p = path(&line.upper),
                    c = line.colour
                );
            }
            let _ = write!(
                out,
                r#"<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2"><title>{t}</title></polyline>"#,
                p = path(&line.points),
                c = line.colour,
                t = esc(&line.label)
            );
            if line.points.len() == 1 {
                let (x, y) = line.points[0];
                let _ = write!(
                    out,
                    r#"<circle cx="{}" cy="{}" r="3" fill="{}"/>"#,
                    f(frame.px(x)),
                    f(frame.py(y)),
                    line.colour
                );
            }
        }
        for mark in &self.marks {
            let (x, y) = (frame.px(mark.x), frame.py(mark.y));
            let _ = write!(
                out,
                r#"<g class="failure"><title>{t}</title><line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="{c}" stroke-dasharray="3,3" stroke-opacity="0.5"/><path d="M{a},{b} L{cx},{d} M{a},{d} L{cx},{b}" stroke="{c}" stroke-width="2.5"/></g>"#,
                t = esc(&mark.label),
                x = f(x),
                top = f(TOP),
                bottom = f(self.height - BOTTOM),
                c = FAILURE_COLOUR,
                a = f(x - 5.0),
                cx = f(x + 5.0),
                b = f(y - 5.0),
                d = f(y + 5.0)
            );
        }
        out.push_str("</svg>");
        out
    }
}

pub struct Bar {
    pub label: String,
    pub value: f64,
    pub tooltip: String,
    pub colour: &'static str,
}

pub struct BarChart {
    pub title: String,
    pub width: f64,
    pub unit: Unit,
    /// Scale maximum; 0 picks the data's own.
    pub max: f64,
    pub bars: Vec<Bar>,
}

impl BarChart {
    pub fn data_max(&self) -> f64 {
        self.bars.iter().map(|b| b.value).fold(0.0, f64::max)
    }

    /// Vertical bars, labels under the axis (every few when crowded).
    pub fn vertical(&self, height: f64) -> String {
        let y_ticks = ticks(self.unit, if self.max > 0.0 { self.max } else { self.data_max() }, 6);
        let frame = Frame { width: self.width, height, x_max: 1.0, y_max: *y_ticks.last().unwrap_or(&1.0) };
        let mut out = String::new();
        frame.open(&mut out, &self.title, &self.title);
        frame.y_axis(&mut out, self.unit, &y_ticks);
        let n = self.bars.len().max(1) as f64;
        let slot = (self.width - LEFT - RIGHT) / n;
        let every = ((70.0 / slot).ceil() as usize).max(1);
        for (i, bar) in self.bars.iter().enumerate() {
            let x = LEFT + slot * i as f64;
            let y = frame.py(bar.value);
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}"><title>{t}</title></rect>"#,
                x = f(x + slot * 0.1),
                y = f(y),
                w = f((slot * 0.8).max(1.0)),
                h = f((height - BOTTOM - y).max(0.0)),
                c = bar.colour,
                t = esc(&bar.tooltip)
            );
            if i % every == 0 {
                let _ = write!(
                    out,
                    r#"<text x="{x}" y="{y}" class="tick" text-anchor="middle">{l}</text>"#,
                    x = f(x + slot / 2.0),
                    y = f(height - BOTTOM + 16.0),
                    l = esc(&bar.label)
                );
            }
        }
        out.push_str("</svg>");
        out
    }

    /// Horizontal bars, one row each with its label on the left.
    pub fn horizontal(&self) -> String {
        const ROW: f64 = 22.0;
        const LABEL: f64 = 220.0;
        let height = TOP + ROW * self.bars.len().max(1) as f64 + 12.0;
        let max = if self.max > 0.0 { self.max } else { self.data_max() };
        let max = if max > 0.0 { max } else { 1.0 };
        let mut out = String::new();
        let _ = write!(
            out,
            r##"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/><text x="8" y="18" class="title">{t}</text>"##,
            w = self.width,
            h = f(height),
            t = esc(&self.title)
        );
        let room = self.width - LABEL - 110.0;
        for (i, bar) in self.bars.iter().enumerate() {
            let y = TOP + ROW * i as f64;
            let w = (bar.value / max).clamp(0.0, 1.0) * room;
            let _ = write!(
                out,
                r#"<text x="{lx}" y="{ty}" class="tick" text-anchor="end">{l}</text><rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}"><title>{t}</title></rect><text x="{vx}" y="{ty}" class="tick">{v}</text>"#,
                lx = f(LABEL - 8.0),
                ty = f(y + 14.0),
                l = esc(&super::units::truncate(&bar.label, 34)),
                x = f(LABEL),
                y = f(y + 3.0),
                w = f(w.max(1.0)),
                h = f(ROW - 6.0),
                c = bar.colour,
                t = esc(&bar.tooltip),
                vx = f(LABEL + w + 6.0),
                v = esc(&self.unit.label(bar.value))
            );
        }
        out.push_str("</svg>");
        out
    }
}

// Escaping, ticks and the geometry of the SVG written.
#[cfg(test)]
mod tests {
    use super::{Bar, BarChart, Line, LineChart, Mark, Unit, esc, ticks};

    const MIB: f64 = 1048576.0;
    const GIB: f64 = 1073741824.0;

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(esc("a\u{1b}[31mb\u{0}"), "a\\u{1b}[31mb\\u{0}");
        assert_eq!(esc("plain text, 4.0 GiB"), "plain text, 4.0 GiB");
    }

    #[test]
    fn ticks_are_round_numbers_that_cover_the_maximum() {
        let t = ticks(Unit::Bytes, 3.0 * GIB, 6);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 3.0 * GIB);
        let step = t[1] - t[0];
        assert_eq!(step, 512.0 * MIB, "{t:?}");
        assert!(t.len() <= 8);
        assert_eq!(ticks(Unit::Count, 3.0, 6), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(ticks(Unit::Seconds, 60.0, 8)[1], 10.0);
        // Degenerate maxima still give an axis.
        for max in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-9] {
            let t = ticks(Unit::Bytes, max, 6);
            assert!(t.len() >= 2 && t.len() <= 64 && t.iter().all(|v| v.is_finite()), "{max}: {t:?}");
        }
    }

    #[test]
    fn a_line_chart_maps_points_into_its_frame() {
        let chart = LineChart {
            title: "t <1>".into(),
            width: 600.0,
            height: 300.0,
            x_unit: Unit::Seconds,
            y_unit: Unit::Bytes,
            x_label: "time".into(),
            x_max: 0.0,
            y_max: 0.0,
            lines: vec![Line {
                label: "p<1>".into(),
                colour: "#4e79a7",
                points: vec![(0.0, 0.0), (5.0, GIB), (10.0, 2.0 * GIB)],
                upper: vec![],
            }],
            marks: vec![Mark { x: 5.0, y: GIB, label: "failed <here>".into() }],
        };
        assert_eq!(chart.data_max(), (10.0, 2.0 * GIB));
        let svg = chart.render();
        assert!(svg.starts_with("<svg class=\"chart\" width=\"600\" height=\"300\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("http"), "no namespace URL or other reference");
        assert!(svg.contains("t &lt;1&gt;") && svg.contains("p&lt;1&gt;") && svg.contains("failed &lt;here&gt;"));
        // The first point sits on the origin of the plot area (left 76, bottom 300 - 44).
        assert!(svg.contains("points=\"76.0,256.0 "), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<g class=\"failure\">").count(), 1);
    }

    #[test]
    fn bars_are_proportional_on_a_shared_scale() {
        let bar = |value: f64| Bar { label: "b".into(), value, tooltip: "<t>".into(), colour: "#4e79a7" };
        let chart = BarChart {
            title: "bars".into(),
            width: 500.0,
            unit: Unit::Count,
            max: 100.0,
            bars: vec![bar(25.0), bar(100.0)],
        };
        let svg = chart.vertical(200.0);
        let heights: Vec<f64> = svg
            .split("<rect ")
            .skip(2) // the background
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(heights.len(), 2);
        assert!((heights[1] / heights[0] - 4.0).abs() < 0.05, "{heights:?}");
        assert!(svg.contains("&lt;t&gt;"));
        let wide = chart.horizontal();
        assert_eq!(wide.matches("<rect ").count(), 3);
    }
}
