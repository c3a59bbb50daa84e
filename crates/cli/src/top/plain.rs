//! `top` off a terminal (or with `--once`): the same rows as one plain
//! table (the report's table layout), no control sequences.

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
    let cells: Vec<Vec<String>> = rows.iter().map(|row| rows::cells(row).to_vec()).collect();
    crate::report::text::table(&COLUMNS, &NUMERIC, &cells)
}
