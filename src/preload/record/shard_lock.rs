//! The lock of one live-table shard: held for a few instructions, never
//! across a call. It spins briefly, then sleeps on a futex: on an
//! oversubscribed machine (8 allocating threads on 2 cores) a holder can be
//! preempted, and waiters that only yield would burn their time slices until
//! it runs again. No allocation, and a system call only under contention.

use std::sync::atomic::{AtomicU32, Ordering::*};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and a thread may be asleep waiting for it.
const CONTENDED: u32 = 2;
/// Spins before sleeping: longer than any critical section, short of a slice.
const SPINS: u32 = 200;

#[derive(Default)]
pub struct ShardLock(AtomicU32);

impl ShardLock {
    pub const fn new() -> ShardLock {
        ShardLock(AtomicU32::new(UNLOCKED))
    }

    #[inline(always)]
    pub fn lock(&self) {
        if self.0.compare_exchange_weak(UNLOCKED, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        let mut state = self.0.load(Relaxed);
        while state == LOCKED && spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
            state = self.0.load(Relaxed);
        }
        if state == UNLOCKED && self.0.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok() {
            return;
        }
        // From here on the lock is taken as CONTENDED, so that its unlock
        // wakes whoever else may sleep.
        while self.0.swap(CONTENDED, Acquire) != UNLOCKED {
            futex_wait(&self.0, CONTENDED);
        }
    }

    #[inline(always)]
    pub fn unlock(&self) {
        if self.0.swap(UNLOCKED, Release) == CONTENDED {
            futex_wake_one(&self.0);
        }
    }

    /// In a fork child, where the holder may be a thread that is gone.
    pub fn reset(&self) {
        self.0.store(UNLOCKED, Relaxed);
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 that lives as long as the
    // process (statics only); it returns at once if the word changed, and
    // spurious returns are handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32; wakes at most one waiter.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::ShardLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn excludes_under_oversubscription() {
        static LOCK: ShardLock = ShardLock::new();
        static INSIDE: AtomicU64 = AtomicU64::new(0);
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20_000 {
                        LOCK.lock();
                        assert_eq!(INSIDE.fetch_add(1, Relaxed), 0, "two holders at once");
                        // A non-atomic-looking update: lost if exclusion failed.
                        COUNT.store(COUNT.load(Relaxed) + 1, Relaxed);
                        INSIDE.fetch_sub(1, Relaxed);
                        LOCK.unlock();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(COUNT.load(Relaxed), 8 * 20_000);
    }
}
