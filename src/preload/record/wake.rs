//! Writes asked for out of turn. A failed allocation asks the writer thread
//! for a recording at once and waits (bounded) until it is on disk, so that
//! a process killed right after (vLLM's engine and torchrun's agent end a
//! failed worker within a second) leaves the failure behind. Futexes
//! directly: waking and waiting allocate nothing and take no lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

/// Bumped to wake the writer thread.
static WAKE: AtomicU32 = AtomicU32::new(0);
/// Writes asked for, counted.
static ASKED: AtomicU32 = AtomicU32::new(0);
/// The count of asks the last finished write covered.
static DONE: AtomicU32 = AtomicU32::new(0);
/// Set while a writer thread runs and can answer.
static WRITER_RUNNING: AtomicBool = AtomicBool::new(false);
/// When a failure last waited for its write (ms since load + 1).
static LAST_WAIT: AtomicU64 = AtomicU64::new(0);

/// A failure waits for its write at most this often; failures in between
/// ask for a write without waiting (the writer does it on waking).
pub const WAIT_EVERY_MS: u64 = 1000;
/// The longest a failing call waits for its write.
pub const WAIT_AT_MOST_MS: u64 = 2000;

fn futex(word: &AtomicU32, op: libc::c_int, value: u32, timeout: Option<&libc::timespec>) {
    let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAIT reads it
    // and sleeps, FUTEX_WAKE wakes sleepers; neither writes user memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op | libc::FUTEX_PRIVATE_FLAG, value, timeout) };
}

fn wait_on(word: &AtomicU32, seen: u32, ms: u64) {
    let timeout = libc::timespec { tv_sec: (ms / 1000) as libc::time_t, tv_nsec: ((ms % 1000) * 1_000_000) as _ };
    futex(word, libc::FUTEX_WAIT, seen, Some(&timeout));
}

fn wake_all(word: &AtomicU32) {
    futex(word, libc::FUTEX_WAKE, i32::MAX as u32, None);
}

/// The writer thread's nap: `ms`, or less when a write is asked for.
/// Returns true when one is.
pub fn writer_sleep(ms: u64) -> bool {
    let seen = WAKE.load(Acquire);
    if !pending() {
        wait_on(&WAKE, seen, ms);
    }
    pending()
}

/// Whether a write was asked for that no write covered yet.
pub fn pending() -> bool {
    ASKED.load(Acquire) != DONE.load(Acquire)
}

/// Before a write: the asks it covers.
pub fn covering() -> u32 {
    ASKED.load(Acquire)
}

/// After a write that began with `covering()` = `asks`.
pub fn covered(asks: u32) {
    DONE.store(asks, Release);
    wake_all(&DONE);
}

/// Called when the writer thread is spawned (not from the thread itself: a
/// failure right after the first call must already find it).
pub fn writer_started() {
    WRITER_RUNNING.store(true, Release);
}

pub fn writer_stopped() {
    WRITER_RUNNING.store(false, Release);
    // Nobody will cover what is asked: release the waiters.
    DONE.store(ASKED.load(Acquire), Release);
    wake_all(&DONE);
}

/// From a failed allocation at `now_ms`: asks for a write, and waits for it
/// unless another failure waited less than WAIT_EVERY_MS ago.
pub fn write_now(now_ms: u64) {
    if !WRITER_RUNNING.load(Acquire) {
        return;
    }
    let ticket = ASKED.fetch_add(1, AcqRel).wrapping_add(1);
    WAKE.fetch_add(1, Release);
    wake_all(&WAKE);
    let last = LAST_WAIT.load(Relaxed);
    if last != 0 && now_ms + 1 < last + WAIT_EVERY_MS {
        return;
    }
    if LAST_WAIT.compare_exchange(last, now_ms + 1, Relaxed, Relaxed).is_err() {
        return; // another failing thread is waiting for the same write
    }
    let deadline = super::lifecycle::elapsed_ms() + WAIT_AT_MOST_MS;
    loop {
        let done = DONE.load(Acquire);
        // Covered once DONE has reached the ticket (counts wrap).
        if (done.wrapping_sub(ticket) as i32) >= 0 || !WRITER_RUNNING.load(Acquire) {
            return;
        }
        let now = super::lifecycle::elapsed_ms();
        if now >= deadline {
            return;
        }
        wait_on(&DONE, done, deadline - now);
    }
}

/// In a fork child: no writer thread yet, nothing asked.
pub fn reset_in_child() {
    WRITER_RUNNING.store(false, Relaxed);
    ASKED.store(0, Relaxed);
    DONE.store(0, Relaxed);
    LAST_WAIT.store(0, Relaxed);
}
