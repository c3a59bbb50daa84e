//! A lock a fork child can simply reset. `parking_lot`'s locks (and std's)
//! keep waiters in a global table: if a thread was waiting when another
//! forked, the child's unlock hands the lock to a thread that does not exist
//! there and the child hangs. Here the whole state is two atomic words of a
//! ticket lock (fair: a thread that forks is not starved by threads that
//! write recordings in a loop); waiters poll with a short sleep, which is
//! fine for a lock taken a few times a second (flush thread, exit, C API,
//! fork).

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::time::Duration;

/// ThreadSanitizer's `__tsan_acquire`/`__tsan_release`, when the process
/// runs under it. The lock is atomics in uninstrumented code, invisible to
/// TSan: without telling it, heap data one holder allocated and the next
/// copied (the timeline's samples and names) looks like a data race.
static TSAN_ACQUIRE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static TSAN_RELEASE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Looks for ThreadSanitizer; called once from the constructor, before any
/// other thread of ours exists and where `dlsym` is safe.
pub fn find_thread_sanitizer() {
    // SAFETY: dlsym with NUL-terminated names; RTLD_DEFAULT only searches.
    let (acquire, release) = unsafe {
        (
            libc::dlsym(libc::RTLD_DEFAULT, c"__tsan_acquire".as_ptr()),
            libc::dlsym(libc::RTLD_DEFAULT, c"__tsan_release".as_ptr()),
        )
    };
    if !acquire.is_null() && !release.is_null() {
        TSAN_ACQUIRE.store(acquire, Ordering::Relaxed);
        TSAN_RELEASE.store(release, Ordering::Relaxed);
    }
}

/// Tells TSan (when present) that the lock at `address` was taken or given.
#[inline]
fn annotate(slot: &AtomicPtr<c_void>, address: *const c_void) {
    let function = slot.load(Ordering::Relaxed);
    if !function.is_null() {
        // SAFETY: libtsan's `void __tsan_acquire(void *addr)` and
        // `void __tsan_release(void *addr)`, found by name; the address is
        // only a key to TSan, never dereferenced.
        let function: extern "C" fn(*mut c_void) = unsafe { std::mem::transmute(function) };
        function(address.cast_mut());
    }
}

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
        annotate(&TSAN_ACQUIRE, (self as *const Self).cast());
    }

    fn release(&self) {
        annotate(&TSAN_RELEASE, (self as *const Self).cast());
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
