//! The chart and formatting modules of `report`, compiled here from their own
//! files (the CLI binary has no unit-test target): escaping, units, ticks and
//! the geometry of the SVG they write.

#[allow(dead_code)]
#[path = "../src/cli/report/svg.rs"]
mod svg;
#[allow(dead_code)]
#[path = "../src/cli/report/units.rs"]
mod units;

use svg::{Bar, BarChart, Line, LineChart, Mark, Unit, esc, ticks};

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
fn byte_units_and_changes() {
    assert_eq!(units::bytes(0), "0 B");
    assert_eq!(units::bytes(1023), "1023 B");
    assert_eq!(units::bytes(1024), "1.0 KiB");
    assert_eq!(units::bytes(1536), "1.5 KiB");
    assert_eq!(units::bytes(5 << 20), "5.0 MiB");
    assert_eq!(units::bytes(3 << 30), "3.0 GiB");
    assert_eq!(units::bytes(u64::MAX), "16.0 EiB");
    assert_eq!(units::signed_bytes(-(1 << 30)), "-1.0 GiB");
    assert_eq!(units::signed_bytes(2 << 20), "+2.0 MiB");
    assert_eq!(units::signed_bytes(0), "0 B");
    assert_eq!(units::change_percent(100, 66), "-34%");
    assert_eq!(units::change_percent(100, 150), "+50%");
    assert_eq!(units::change_percent(0, 5), "new");
    assert_eq!(units::change_percent(0, 0), "0%");
    assert_eq!(units::device(-1), "other");
}

#[test]
fn terminal_strings_lose_their_control_characters() {
    assert_eq!(units::terminal_safe("a\u{1b}[2Jb", 100), "a\\u{1b}[2Jb");
    assert_eq!(units::terminal_safe("x\u{202e}y\n", 100), "x\\u{202e}y\\u{a}");
    assert_eq!(units::terminal_safe("abcdef", 3), "abc…");
    assert_eq!(units::truncate("héllo", 2), "hé…");
    assert_eq!(units::basename("/usr/lib/libhccl.so"), "libhccl.so");
    assert_eq!(units::basename("/"), "/");
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
