//! Start, periodic flush, exit and fork. One background thread samples the
//! timeline and writes the recording every flush interval; the exit handler
//! writes the final one; a fork child starts over with its own counters and
//! its own file.

use super::timeline::Timeline;
use super::{ACTIVE, TRACING, WRITE_ERRORS, callsites, cells, failures, live, output, pools, snapshot};
use crate::allocconf::decide::Level;
use crate::preload::log;
use parking_lot::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The timeline, also the lock that serialises writers (flusher, exit, C API).
static STATE: Mutex<Timeline> = Mutex::new(Timeline::new());
static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
static FLUSH_MS: AtomicU64 = AtomicU64::new(0);
static START_MONO_MS: AtomicU64 = AtomicU64::new(0);
static START_UNIX_MS: AtomicU64 = AtomicU64::new(0);
/// The next recorded call starts the flusher thread: set at start (processes
/// that never call the runtime get no thread) and in a fork child.
static FLUSHER_WANTED: AtomicBool = AtomicBool::new(false);
/// Only the first write failure is reported; later ones are counted.
static WRITE_WARNED: AtomicBool = AtomicBool::new(false);

fn clock_ms(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and out-parameter.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000
}

pub fn unix_ms() -> u64 {
    clock_ms(libc::CLOCK_REALTIME)
}

pub fn elapsed_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC).saturating_sub(START_MONO_MS.load(Relaxed))
}

pub struct Times {
    pub started_unix_ms: u64,
}

pub fn times() -> Times {
    Times { started_unix_ms: START_UNIX_MS.load(Relaxed) }
}

pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when it fits (we keep one spare byte).
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    if rc != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

fn mark_start() {
    START_MONO_MS.store(clock_ms(libc::CLOCK_MONOTONIC), Relaxed);
    START_UNIX_MS.store(unix_ms(), Relaxed);
}

/// The key whose destructor gives a thread's stripe back when it exits.
static LANE_KEY: OnceLock<libc::pthread_key_t> = OnceLock::new();

extern "C" fn lane_destructor(value: *mut libc::c_void) {
    // The value is the stripe index + 1 (non-NULL, as destructors require).
    super::release_lane(value as usize - 1);
}

/// Remembers that this thread owns stripe `index`, to release it at exit.
pub fn register_lane(index: usize) {
    if let Some(&key) = LANE_KEY.get() {
        // SAFETY: a key created by pthread_key_create; the value is an integer
        // in pointer clothing, never dereferenced.
        unsafe { libc::pthread_setspecific(key, (index + 1) as *const libc::c_void) };
    }
}

/// Turns recording on. Called once, from the constructor.
pub fn start(template: Vec<u8>, flush_ms: u64) {
    mark_start();
    if TEMPLATE.set(template).is_err() {
        return;
    }
    FLUSH_MS.store(flush_ms, Relaxed);
    // SAFETY: registering plain extern "C" functions that live as long as the
    // process (the library is linked with -z nodelete); `key` is a valid
    // out-parameter.
    unsafe {
        let mut key: libc::pthread_key_t = 0;
        if libc::pthread_key_create(&mut key, Some(lane_destructor)) == 0 {
            let _ = LANE_KEY.set(key);
        }
        libc::atexit(at_exit);
        libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child));
    }
    FLUSHER_WANTED.store(true, Relaxed);
    TRACING.store(true, Relaxed);
}

fn spawn_flusher() {
    let spawned = std::thread::Builder::new().name("npu-alloc-shim".into()).stack_size(256 * 1024).spawn(flusher);
    if let Err(error) = spawned {
        log::emit(
            Level::Warn,
            &format!("cannot start the flush thread ({error}); the recording is written at exit only"),
        );
    }
}

fn flusher() {
    let flush_ms = FLUSH_MS.load(Relaxed);
    let mut next_flush = flush_ms;
    loop {
        let interval = STATE.lock().interval_ms;
        std::thread::sleep(Duration::from_millis(interval));
        let mut state = STATE.lock();
        let now = elapsed_ms();
        state.sample(now);
        if flush_ms > 0 && now >= next_flush {
            next_flush = now + flush_ms;
            if ACTIVE.load(Relaxed) {
                write_locked(&state, None, false);
            }
        }
    }
}

/// Writes a snapshot while holding STATE. `path` overrides the template.
fn write_locked(state: &Timeline, path: Option<&[u8]>, is_final: bool) -> bool {
    let Some(template) = path.or(TEMPLATE.get().map(Vec::as_slice)) else { return false };
    let recording = snapshot::build(state, is_final);
    let target = output::expand(template, recording.pid, recording.started_unix_ms, &recording.hostname);
    let result = serde_json::to_vec_pretty(&recording).map_err(std::io::Error::other).and_then(|mut bytes| {
        bytes.push(b'\n');
        output::write_atomic(&target, &bytes, is_final)
    });
    match result {
        Ok(()) => true,
        Err(error) => {
            WRITE_ERRORS.fetch_add(1, Relaxed);
            if !WRITE_WARNED.swap(true, Relaxed) {
                log::emit(Level::Warn, &format!("cannot write the recording {}: {error}", target.display()));
            }
            false
        }
    }
}

/// Writes a snapshot now (C API). Recording need not be on.
pub fn dump(path: Option<&[u8]>) -> bool {
    let mut state = STATE.lock();
    if START_MONO_MS.load(Relaxed) == 0 {
        mark_start();
    }
    state.sample(elapsed_ms());
    write_locked(&state, path, false)
}

extern "C" fn at_exit() {
    let run = || {
        if !TRACING.load(Relaxed) || !ACTIVE.load(Relaxed) {
            return;
        }
        let mut state = STATE.lock();
        state.sample(elapsed_ms());
        write_locked(&state, None, true);
    };
    if std::panic::catch_unwind(run).is_err() {
        super::PANICS.fetch_add(1, Relaxed);
    }
}

/// Called by `enter()`: starts the flusher when one is wanted.
#[inline(always)]
pub fn ensure_flusher() {
    if FLUSHER_WANTED.load(Relaxed) && FLUSHER_WANTED.swap(false, Relaxed) {
        spawn_flusher();
    }
}

// No writer may hold STATE across fork: the child would inherit it locked.
extern "C" fn before_fork() {
    std::mem::forget(STATE.lock());
}

extern "C" fn after_fork_parent() {
    // SAFETY: locked by before_fork in this thread, whose guard was forgotten.
    unsafe { STATE.force_unlock() };
}

extern "C" fn after_fork_child() {
    // Only this thread exists now. The child's device memory is its own
    // business: start from zero, with a new start time and file.
    cells::reset();
    cells::reset_owners_in_child(super::current_lane_index());
    pools::reset();
    live::reset_in_child();
    callsites::reset();
    failures::reset();
    ACTIVE.store(false, Relaxed);
    mark_start();
    // SAFETY: locked by before_fork in this (the only) thread.
    unsafe { STATE.force_unlock() };
    STATE.lock().reset();
    FLUSHER_WANTED.store(TRACING.load(Relaxed), Relaxed);
}
