//! A value set once and then read without a lock: `OnceLock` without std's
//! `Once`. The constructor sets these in every process, where the cost that
//! counts is the pages touched, and `Once` brings two more of std's.

use std::sync::atomic::{AtomicPtr, Ordering::*};

pub struct SetOnce<T>(AtomicPtr<T>);

// SAFETY: the pointee is only shared (`&T`) once published, and published
// by one thread with Release, read with Acquire: as `OnceLock<T>` requires,
// T must be Send and Sync.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    pub const fn new() -> SetOnce<T> {
        SetOnce(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Keeps `value` unless a value is kept already (then `value` is dropped).
    /// A kept value lives as long as the process.
    pub fn set(&self, value: T) {
        let fresh = Box::into_raw(Box::new(value));
        if self.0.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire).is_err() {
            // SAFETY: `fresh` came from Box::into_raw above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }

    pub fn get(&self) -> Option<&T> {
        let kept = self.0.load(Acquire);
        // SAFETY: a non-null pointer was published by `set` and is never freed.
        (!kept.is_null()).then(|| unsafe { &*kept })
    }
}

impl<T> Default for SetOnce<T> {
    fn default() -> Self {
        SetOnce::new()
    }
}

#[cfg(test)]
mod tests {
    use super::SetOnce;

    #[test]
    fn the_first_value_set_is_kept() {
        static KEPT: SetOnce<Vec<u8>> = SetOnce::new();
        assert!(KEPT.get().is_none());
        let setters: Vec<_> = (0..8u8).map(|i| std::thread::spawn(move || KEPT.set(vec![i; 3]))).collect();
        setters.into_iter().for_each(|t| t.join().unwrap());
        let first = KEPT.get().expect("kept").clone();
        assert!(first.iter().all(|&b| b == first[0]) && first.len() == 3);
        KEPT.set(vec![9]);
        assert_eq!(KEPT.get(), Some(&first));
    }
}
