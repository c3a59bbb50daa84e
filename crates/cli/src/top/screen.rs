//! `top` on a terminal: the rows as a full-screen table (ratatui), read
//! again every interval, sorted by a key the user picks.

use super::rows::{self, COLUMNS, SortKey};
use super::watch::{Snapshot, Watch};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};
use std::time::{Duration, Instant};

pub struct View {
    pub key: SortKey,
    pub reverse: bool,
}

/// Runs until `q`, Esc or Ctrl-C; restores the terminal on the way out.
pub fn run(watch: &mut Watch, view: View, interval: Duration) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, watch, view, interval);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    watch: &mut Watch,
    mut view: View,
    interval: Duration,
) -> std::io::Result<()> {
    loop {
        let mut snapshot = watch.refresh(super::now_unix_ms());
        let refreshed = Instant::now();
        rows::sort(&mut snapshot.rows, view.key, view.reverse);
        terminal.draw(|frame| draw(frame, &snapshot, &view, watch, interval))?;
        // Keys until the next refresh; a key redraws at once.
        loop {
            let left = interval.saturating_sub(refreshed.elapsed());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            let Event::Key(key) = event::read()? else {
                // A resize: draw the same rows at the new size.
                terminal.draw(|frame| draw(frame, &snapshot, &view, watch, interval))?;
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
                KeyCode::Char('s') => view.key = view.key.next(),
                KeyCode::Char('r') => view.reverse = !view.reverse,
                KeyCode::Char(c) => match SortKey::from_key(c) {
                    Some(key) => view.key = key,
                    None => continue,
                },
                _ => continue,
            }
            rows::sort(&mut snapshot.rows, view.key, view.reverse);
            terminal.draw(|frame| draw(frame, &snapshot, &view, watch, interval))?;
        }
    }
}

fn draw(frame: &mut Frame, snapshot: &Snapshot, view: &View, watch: &Watch, interval: Duration) {
    let [title, keys, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Min(0)]).areas(frame.area());
    let title_text = super::title(snapshot, watch, view, interval);
    frame.render_widget(Paragraph::new(Line::from(title_text).style(Style::new().add_modifier(Modifier::BOLD))), title);
    let mut help = String::from("q quit  s next sort  r reverse  sort:");
    for key in SortKey::ALL {
        help.push_str(&format!(" {} {}", key.key(), key.name()));
    }
    if let Some(problem) = snapshot.problems.first() {
        help.push_str(&format!("  | skipped {}: {problem}", snapshot.problem_count));
    }
    frame.render_widget(Paragraph::new(help), keys);
    if snapshot.rows.is_empty() {
        let paths: Vec<String> = watch.paths().iter().map(|p| p.display().to_string()).collect();
        frame.render_widget(Paragraph::new(format!("no recordings yet in {}", paths.join(", "))), body);
        return;
    }
    let sorted = rows::column_of(view.key);
    let arrow = if view.reverse { "↑" } else { "↓" };
    let header = Row::new(COLUMNS.iter().enumerate().map(|(i, name)| {
        if i == sorted {
            Cell::from(format!("{name}{arrow}")).style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Cell::from(*name)
        }
    }))
    .style(Style::new().add_modifier(Modifier::BOLD));
    let cells: Vec<[String; 11]> = snapshot.rows.iter().map(rows::cells).collect();
    // Each column as wide as its widest cell (the last takes the rest).
    let mut widths = COLUMNS.map(|c| c.chars().count() as u16 + 1);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count() as u16);
        }
    }
    let constraints: Vec<Constraint> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| if i + 1 == widths.len() { Constraint::Fill(1) } else { Constraint::Length(*w) })
        .collect();
    let table = Table::new(cells.into_iter().map(Row::new), constraints).header(header).column_spacing(2);
    frame.render_widget(table, body);
}
