//! One-line messages on stderr, prefixed `npu-alloc-shim:`, filtered by
//! `NPU_ALLOC_SHIM_LOG`. Written with one `write(2)` so lines from several
//! processes do not interleave.

use crate::allocconf::decide::Level;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0 = off, 1 = warn, 2 = info, 3 = debug.
static THRESHOLD: AtomicU8 = AtomicU8::new(2);

pub fn set_threshold(threshold: Threshold) {
    THRESHOLD.store(threshold as u8, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    Off = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Threshold {
    pub fn parse(text: &[u8]) -> Option<Threshold> {
        match text.to_ascii_lowercase().as_slice() {
            b"off" | b"0" | b"none" => Some(Threshold::Off),
            b"warn" | b"warning" => Some(Threshold::Warn),
            b"info" => Some(Threshold::Info),
            b"debug" => Some(Threshold::Debug),
            _ => None,
        }
    }
}

fn rank(level: Level) -> u8 {
    match level {
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 3,
    }
}

pub fn enabled(level: Level) -> bool {
    rank(level) <= THRESHOLD.load(Ordering::Relaxed)
}

pub fn emit(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let tag = match level {
        Level::Warn => "warning: ",
        _ => "",
    };
    let line = format!("npu-alloc-shim: {tag}{message}\n");
    // SAFETY: writes an initialised buffer of the given length to fd 2; a
    // failed or short write only loses the message.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
    }
}
