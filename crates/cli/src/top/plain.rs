//! `top` off a terminal (or with `--once`): the same rows as one plain
//! table, columns aligned with spaces, no control sequences.

use super::rows::{self, COLUMNS, Row};
use super::watch::Snapshot;

/// Columns whose cells are numbers, right-aligned.
const NUMERIC: [bool; 11] = [false, true, true, false, true, true, true, true, true, false, false];

pub fn render(snapshot: &Snapshot, title: &str) -> String {
    let mut out = format!("{title}\n");
    for problem in &snapshot.problems {
        out.push_str(&format!("skipped: {problem}\n"));
    }
    if snapshot.rows.is_empty() {
        out.push_str("no recordings yet\n");
        return out;
    }
    out.push_str(&table(&snapshot.rows));
    out
}

fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 11]> = rows.iter().map(rows::cells).collect();
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = COLUMNS.map(str::to_owned);
    for line in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let pad = widths[i].saturating_sub(cell.chars().count());
            if NUMERIC[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push_str("  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}
