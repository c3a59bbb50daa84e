//! Start, periodic flush, exit and fork. One background thread samples the
//! timeline and writes the recording every flush interval; the exit handler
//! writes the final one; a fork child starts over with its own counters and
//! its own file.

use super::forklock::ForkLock;
use super::timeline::Timeline;
use super::{
    ACTIVE, TRACING, WRITE_ERRORS, callsites, cells, failures, live, marks, metrics_file, output, peak, pools,
    snapshot, used, wake,
};
use crate::preload::log;
use crate::preload::set_once::SetOnce;
use common::allocconf::decide::Level;
use common::allocconf::quote::{MESSAGE_LIMIT, quote};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The timeline, also the lock that serialises writers (flusher, exit, C API).
static STATE: ForkLock<Timeline> = ForkLock::new(Timeline::new());
static TEMPLATE: SetOnce<Vec<u8>> = SetOnce::new();
/// Whether the template names a directory, decided once at start: a link
/// planted at the path later must not turn it into one.
static TEMPLATE_IS_DIR: AtomicBool = AtomicBool::new(false);
/// Set once the final recording is written: later periodic writes (from
/// destructors that run after ours) must not replace it.
static FINAL_WRITTEN: AtomicBool = AtomicBool::new(false);
/// Set when the process starts exiting (the exit handler runs, or the flush
/// thread ends the process itself): only one of them may call `exit`, and the
/// flush thread never ends a process whose exit handlers are writing.
static EXITING: AtomicBool = AtomicBool::new(false);
static FLUSH_MS: AtomicU64 = AtomicU64::new(0);
static START_MONO_MS: AtomicU64 = AtomicU64::new(0);
static START_UNIX_MS: AtomicU64 = AtomicU64::new(0);
/// The next recorded call starts the flusher thread: set at start (processes
/// that never call the runtime get no thread) and in a fork child.
static FLUSHER_WANTED: AtomicBool = AtomicBool::new(false);
/// The first periodic write comes this soon after the first recorded call
/// (or the flush interval, when shorter): a short-lived worker (a
/// `multiprocessing.Pool` process ended with SIGTERM) leaves a recording.
pub const FIRST_WRITE_MS: u64 = 100;
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
static LANE_KEY: SetOnce<libc::pthread_key_t> = SetOnce::new();

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

/// Turns recording on, with a JSON recording (`template`), metrics
/// (`metrics_file::start` first), or both. Called once, from the constructor.
pub fn start(template: Option<Vec<u8>>, flush_ms: u64) {
    if TRACING.load(Relaxed) {
        return;
    }
    super::forklock::find_thread_sanitizer();
    mark_start();
    if let Some(template) = template {
        TEMPLATE_IS_DIR.store(output::names_directory(&template), Relaxed);
        TEMPLATE.set(template);
    }
    FLUSH_MS.store(flush_ms, Relaxed);
    // SAFETY: registering plain extern "C" functions that live as long as the
    // process (the library is linked with -z nodelete); `key` is a valid
    // out-parameter.
    unsafe {
        let mut key: libc::pthread_key_t = 0;
        if libc::pthread_key_create(&mut key, Some(lane_destructor)) == 0 {
            LANE_KEY.set(key);
        }
        libc::atexit(at_exit);
        libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child));
    }
    FLUSHER_WANTED.store(true, Relaxed);
    TRACING.store(true, Relaxed);
}

fn spawn_flusher() {
    wake::writer_started();
    let spawned = std::thread::Builder::new().name("npu-alloc-shim".into()).stack_size(256 * 1024).spawn(flusher);
    if let Err(error) = spawned {
        wake::writer_stopped();
        log::emit(
            Level::Warn,
            &format!("cannot start the flush thread ({error}); the recording is written at exit only"),
        );
    }
}

fn flusher() {
    flush_loop();
    wake::writer_stopped();
}

fn flush_loop() {
    let flush_ms = FLUSH_MS.load(Relaxed);
    let mut next_flush = elapsed_ms() + flush_ms.min(FIRST_WRITE_MS);
    let mut next_sample = 0;
    loop {
        let interval = STATE.lock().interval_ms;
        // Wake for whichever comes first: the next sample, the next flush
        // (the sampling interval grows in long runs; the flush interval
        // not), or a write asked for by a failed allocation.
        let now = elapsed_ms();
        next_sample = next_sample.max(now).min(now + interval);
        let wake = if flush_ms > 0 { next_sample.min(next_flush) } else { next_sample };
        let asked = wake::writer_sleep(wake.saturating_sub(now).max(1));
        if FINAL_WRITTEN.load(Relaxed) {
            return;
        }
        // Read under STATE, like everything else this thread allocates: a fork
        // waits for STATE (`before_fork`), so a child never inherits a buffer
        // of this thread's half-done work that no thread of its owns (valgrind
        // reported one as definitely lost in a fork child). Acted on after the
        // lock is dropped: `exit` runs the exit handler, which takes STATE.
        let alone = !asked && {
            let _state = STATE.lock();
            only_thread_left()
        };
        if alone {
            if EXITING.swap(true, Relaxed) {
                // The exit handlers already run (on a thread the count did
                // not see as live, as under valgrind): they write the final
                // recording; ending the process now would cut it short.
                return;
            }
            // The main thread ended with pthread_exit: glibc would end the
            // process with exit(0) once the last thread is gone, which this
            // thread would never be. Do it, running the exit handlers.
            // SAFETY: exit from the process's last thread.
            unsafe { libc::exit(0) };
        }
        let mut state = STATE.lock();
        let now = elapsed_ms();
        if now >= next_sample {
            state.sample(now);
            next_sample = now + state.interval_ms;
        }
        let periodic = flush_ms > 0 && now >= next_flush;
        if periodic {
            next_flush = now + flush_ms;
        }
        if (periodic || wake::pending()) && ACTIVE.load(Relaxed) && !FINAL_WRITTEN.load(Relaxed) {
            let asks = wake::covering();
            write_locked(&state, None, false);
            wake::covered(asks);
        }
    }
}

/// True when the process has no live thread but this one. After the main
/// thread's pthread_exit it stays a zombie, still counted in /proc/self/stat,
/// so the threads are looked at one by one, but only when that count is
/// small (a busy process is not read through every interval).
fn only_thread_left() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return false };
    // The command name (field 2) may hold spaces: count from its closing ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let Some(counted) = after_name.split_whitespace().nth(17).and_then(|n| n.parse::<usize>().ok()) else {
        return false;
    };
    // Under qemu-user (the aarch64 CI) the emulator has a thread of its own.
    let emulator = usize::from(crate::preload::process::under_qemu_user());
    if counted > 2 + emulator {
        return false;
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return false };
    let live = tasks
        .flatten()
        .filter(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        })
        .count();
    live == 1 + emulator
}

/// Writes a snapshot while holding STATE. `path` overrides the template.
fn write_locked(state: &Timeline, path: Option<&[u8]>, is_final: bool) -> bool {
    let template = path.or(TEMPLATE.get().map(Vec::as_slice));
    // The metrics follow the periodic and final writes, not a C API dump.
    let metrics = if path.is_none() { metrics_file::target() } else { None };
    if template.is_none() && metrics.is_none() {
        return false;
    }
    let recording = snapshot::build(state, is_final);
    if let Some(metrics) = metrics
        && let Err(error) = metrics.write(&recording, is_final)
    {
        write_failed("metrics", metrics.dir().as_os_str().as_bytes(), &error);
    }
    let Some(template) = template else { return true };
    let is_dir = if path.is_some() { output::names_directory(template) } else { TEMPLATE_IS_DIR.load(Relaxed) };
    let target = output::expand(template, is_dir, recording.pid, recording.started_unix_ms, &recording.hostname);
    let result = serde_json::to_vec_pretty(&recording).map_err(std::io::Error::other).and_then(|mut bytes| {
        bytes.push(b'\n');
        output::write_atomic(&target, &bytes, is_final)
    });
    match result {
        Ok(()) => {
            if is_final {
                // An exec cut short a write of the image before this one.
                output::remove_stale_temporaries(&target);
            }
            true
        }
        Err(error) => {
            write_failed("recording", target.as_os_str().as_bytes(), &error);
            false
        }
    }
}

/// Counted always, said once per process.
fn write_failed(what: &str, path: &[u8], error: &std::io::Error) {
    WRITE_ERRORS.fetch_add(1, Relaxed);
    if !WRITE_WARNED.swap(true, Relaxed) {
        let shown = quote(path, MESSAGE_LIMIT);
        log::emit(Level::Warn, &format!("cannot write the {what} {shown}: {error}"));
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
    EXITING.store(true, Relaxed);
    let run = || {
        if !TRACING.load(Relaxed) || !ACTIVE.load(Relaxed) {
            return;
        }
        let mut state = STATE.lock();
        state.sample(elapsed_ms());
        write_locked(&state, None, true);
        FINAL_WRITTEN.store(true, Relaxed);
    };
    if std::panic::catch_unwind(run).is_err() {
        super::PANICS.fetch_add(1, Relaxed);
    }
}

/// True until the first recorded call: `enter()` takes `FLUSHER_WANTED`
/// (`ensure_flusher`) before any hook writes a counter. Marks are kept apart
/// (`marks::reset` is bounded by what was handed out).
fn nothing_recorded_yet() -> bool {
    FLUSHER_WANTED.load(Relaxed)
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
    STATE.hold();
}

extern "C" fn after_fork_parent() {
    STATE.unhold();
}

extern "C" fn after_fork_child() {
    // Only this thread exists now. The child's device memory is its own
    // business: start from zero, with a new start time and file. Counters no
    // hook has written are zero already; writing them anyway cost every fork
    // child of a traced process dozens of page faults.
    if !nothing_recorded_yet() {
        cells::reset();
        cells::reset_owners_in_child(super::current_lane_index());
        pools::reset();
        live::reset_in_child();
        callsites::reset();
        failures::reset();
        peak::reset();
        used::reset();
    }
    marks::reset();
    wake::reset_in_child();
    ACTIVE.store(false, Relaxed);
    FINAL_WRITTEN.store(false, Relaxed);
    mark_start();
    STATE.reset();
    STATE.lock().reset();
    FLUSHER_WANTED.store(TRACING.load(Relaxed), Relaxed);
}
