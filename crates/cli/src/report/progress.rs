//! A progress bar over the bytes of all inputs, on stderr and only when
//! stderr is a terminal: logs and pipes get no control sequences.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};

pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `total` bytes in `files` files, or nothing off a terminal.
    pub fn new(total: u64, files: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = "{spinner} reading {pos_files} [{bar:30}] {bytes}/{total_bytes} {wide_msg}";
        let template = template.replace("{pos_files}", &format!("{files} recordings"));
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress(Some(bar))
    }

    /// No bar at all (`top` reads the same files every few seconds).
    pub fn silent() -> Progress {
        Progress(None)
    }

    /// A new file starts `offset` bytes into the inputs (a file skipped
    /// half-read must not leave the bar behind).
    pub fn file(&self, name: &str, offset: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(offset);
            bar.set_message(super::units::terminal_safe(name, 80));
        }
    }

    /// Prints a line above the bar without tearing it.
    pub fn println(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Wraps a reader so the bar moves with the bytes read.
    pub fn reader<R: Read>(&self, inner: R) -> CountingReader<R> {
        CountingReader { inner, count: 0, bar: self.0.clone() }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Counts the bytes read (for the size limit) and advances the bar.
pub struct CountingReader<R> {
    inner: R,
    count: u64,
    bar: Option<ProgressBar>,
}

impl<R> CountingReader<R> {
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
