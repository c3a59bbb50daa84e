//! A counter that reads `u64::MAX` ("not known") until it is stored, kept
//! as its complement so that a static array of them is zero-filled: a
//! non-zero initial value puts the whole array in `.data`, file-backed pages
//! next to the ones the loader writes while relocating, in every process.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct MaxUntilStored(AtomicU64);

impl MaxUntilStored {
    pub const fn new() -> MaxUntilStored {
        MaxUntilStored(AtomicU64::new(0))
    }

    pub fn store(&self, value: u64) {
        self.0.store(!value, Relaxed);
    }

    pub fn load(&self) -> u64 {
        !self.0.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::MaxUntilStored;

    #[test]
    fn reads_max_until_stored_and_then_what_was_stored() {
        let value = MaxUntilStored::new();
        assert_eq!(value.load(), u64::MAX);
        for stored in [0, 1, 4096, u64::MAX] {
            value.store(stored);
            assert_eq!(value.load(), stored);
        }
    }
}
