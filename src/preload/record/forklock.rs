//! A lock a fork child can simply reset. `parking_lot`'s locks (and std's)
//! keep waiters in a global table: if a thread was waiting when another
//! forked, the child's unlock hands the lock to a thread that does not exist
//! there and the child hangs. Here the whole state is two atomic words of a
//! ticket lock (fair: a thread that forks is not starved by threads that
//! write recordings in a loop); waiters poll with a short sleep, which is
//! fine for a lock taken a few times a second (flush thread, exit, C API,
//! fork).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct ForkLock<T> {
    /// The next ticket to hand out.
    next: AtomicU32,
    /// The ticket that holds the lock.
    serving: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, which exists only while
// its thread's ticket is being served.
unsafe impl<T: Send> Sync for ForkLock<T> {}

pub struct Guard<'a, T> {
    lock: &'a ForkLock<T>,
}

impl<T> ForkLock<T> {
    pub const fn new(value: T) -> Self {
        ForkLock { next: AtomicU32::new(0), serving: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    fn acquire(&self) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let mut spins = 0u32;
        while self.serving.load(Ordering::Acquire) != ticket {
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn release(&self) {
        self.serving.fetch_add(1, Ordering::Release);
    }

    pub fn lock(&self) -> Guard<'_, T> {
        self.acquire();
        Guard { lock: self }
    }

    /// Takes the lock without a guard (before fork).
    pub fn hold(&self) {
        self.acquire();
    }

    /// Releases a lock taken by `hold` (after fork, in the parent).
    pub fn unhold(&self) {
        self.release();
    }

    /// In a fork child: no other thread exists, so nobody holds or waits
    /// for the lock, whatever the tickets said.
    pub fn reset(&self) {
        self.next.store(0, Ordering::Relaxed);
        self.serving.store(0, Ordering::Release);
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock, exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
    }
}
