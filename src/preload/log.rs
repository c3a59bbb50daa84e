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
use common::runtime::RuntimeSpec;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0 = off, 1 = warn, 2 = info, 3 = debug.
static THRESHOLD: AtomicU8 = AtomicU8::new(2);

/// Messages from load, waiting for the process's first use of the runtime
/// they are about (`Some(index in RUNTIMES)`), or of any runtime (`None`).
static HELD: Mutex<Vec<(Option<usize>, Level, String)>> = Mutex::new(Vec::new());
/// Bit `i` set once runtime `i`'s held messages were said.
static SPOKEN: AtomicU8 = AtomicU8::new(0);
/// More held lines than this are dropped: load says a handful at most.
const HELD_CAPACITY: usize = 8;
/// Tries for the lock of held messages before they are given up: a fork
/// child may inherit it locked by a thread it does not have.
const LOCK_TRIES: u32 = 1000;

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
    emit_parts(level, &[message]);
}

/// Says the message made of `parts` (at most `MAX_PARTS`), as `emit` does:
/// for messages built where nothing may be allocated.
pub fn emit_parts(level: Level, parts: &[&str]) {
    const MAX_PARTS: usize = 16;
    if !enabled(level) {
        return;
    }
    let tag: &str = match level {
        Level::Warn => "warning: ",
        _ => "",
    };
    let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
    let mut iov = [empty; MAX_PARTS + 3];
    let mut count = 0;
    let lines = ["npu-alloc-shim: ", tag].into_iter().chain(parts.iter().copied().take(MAX_PARTS)).chain(["\n"]);
    for part in lines {
        iov[count] = libc::iovec { iov_base: part.as_ptr().cast_mut().cast(), iov_len: part.len() };
        count += 1;
    }
    // SAFETY: the first `count` iovecs point at initialised buffers that
    // outlive the call; a failed or short write only loses the message.
    unsafe {
        libc::writev(2, iov.as_ptr(), count as libc::c_int);
    }
}

/// Keeps a message from load until the process first uses any runtime
/// (`speak_held`); at `debug` it is said at once.
pub fn hold(level: Level, message: &str) {
    hold_as(None, level, message);
}

/// Keeps a message about one runtime until the process first uses that one:
/// a CUDA process never hears what was decided for the NPU.
pub fn hold_for(spec: &RuntimeSpec, level: Level, message: &str) {
    hold_as(runtime_index(spec), level, message);
}

fn hold_as(runtime: Option<usize>, level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    if THRESHOLD.load(Ordering::Relaxed) >= Threshold::Debug as u8 {
        emit(level, message);
        return;
    }
    let Ok(mut held) = HELD.lock() else { return };
    if held.len() < HELD_CAPACITY {
        held.push((runtime, level, message.to_owned()));
    }
}

fn runtime_index(spec: &RuntimeSpec) -> Option<usize> {
    common::runtime::position(spec).filter(|&i| i < 8)
}

/// Says the held messages about `spec` (and those about no runtime in
/// particular), once per runtime. Called on that runtime's first use; cheap
/// on every later call (one relaxed load).
pub fn speak_held(spec: &RuntimeSpec) {
    let Some(index) = runtime_index(spec) else { return };
    let bit = 1u8 << index;
    if SPOKEN.load(Ordering::Relaxed) & bit != 0 {
        return;
    }
    let before = SPOKEN.fetch_or(bit, Ordering::AcqRel);
    if before & bit != 0 {
        return;
    }
    let first = before == 0;
    // Only the caller that set the runtime's bit takes the lock, and never
    // waits for it: a fork child inherits the bits and, rarely, a lock held
    // by a thread it does not have.
    let mine: Vec<(Level, String)> = {
        let mut tries = 0;
        let mut held = loop {
            match HELD.try_lock() {
                Ok(held) => break held,
                Err(std::sync::TryLockError::Poisoned(_)) => return,
                Err(std::sync::TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::yield_now();
                }
                Err(std::sync::TryLockError::WouldBlock) => return,
            }
        };
        let (said, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *held)
            .into_iter()
            .partition(|(runtime, _, _)| *runtime == Some(index) || (first && runtime.is_none()));
        *held = kept;
        said.into_iter().map(|(_, level, message)| (level, message)).collect()
    };
    for (level, message) in mine {
        emit(level, &message);
    }
}
