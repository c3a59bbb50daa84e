//! One-line messages on stderr, prefixed `npu-alloc-shim:`, filtered by
//! `NPU_ALLOC_SHIM_LOG`. Written with one `write(2)` so lines from several
//! processes do not interleave.
//!
//! What the library decides at load is *held* and said once, when the process
//! first uses the runtime (a hooked call or a `dlsym` of a hooked name): under
//! an image-wide `LD_PRELOAD`, `ls`, probes and cron jobs must stay silent,
//! and the line belongs in the log of the process it is about. At `debug`
//! everything is said at once, where it happens.

use common::allocconf::decide::Level;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// 0 = off, 1 = warn, 2 = info, 3 = debug.
static THRESHOLD: AtomicU8 = AtomicU8::new(2);

/// Messages from load, waiting for the process's first use of the runtime.
static HELD: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());
/// Set once the held messages were said (or taken to be said).
static SPOKEN: AtomicBool = AtomicBool::new(false);
/// More held lines than this are dropped: load says a handful at most.
const HELD_CAPACITY: usize = 8;

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

/// Says `message` now (when its level is on). One `writev`, no allocation,
/// so it may run inside `dlsym` and hooks.
pub fn emit(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let tag: &[u8] = match level {
        Level::Warn => b"warning: ",
        _ => b"",
    };
    let parts: [&[u8]; 4] = [b"npu-alloc-shim: ", tag, message.as_bytes(), b"\n"];
    let iov = parts.map(|part| libc::iovec { iov_base: part.as_ptr().cast_mut().cast(), iov_len: part.len() });
    // SAFETY: every iovec points at an initialised buffer that outlives the
    // call; a failed or short write only loses the message.
    unsafe {
        libc::writev(2, iov.as_ptr(), iov.len() as libc::c_int);
    }
}

/// Keeps a message from load until the process first uses the runtime
/// (`speak_held`); at `debug` it is said at once.
pub fn hold(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    if THRESHOLD.load(Ordering::Relaxed) >= Threshold::Debug as u8 {
        emit(level, message);
        return;
    }
    let Ok(mut held) = HELD.lock() else { return };
    if held.len() < HELD_CAPACITY {
        held.push((level, message.to_owned()));
    }
}

/// Says the held messages, once per process. Called on the runtime's first
/// use; cheap on every later call (one relaxed load).
pub fn speak_held() {
    if SPOKEN.load(Ordering::Relaxed) || SPOKEN.swap(true, Ordering::AcqRel) {
        return;
    }
    // Only the one caller that flipped SPOKEN takes the lock, so a fork child
    // (which inherits SPOKEN set) never waits on a lock its parent held.
    let held = match HELD.lock() {
        Ok(mut held) => std::mem::take(&mut *held),
        Err(_) => return,
    };
    for (level, message) in held {
        emit(level, &message);
    }
}
