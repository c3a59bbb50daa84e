//! Call sites (return addresses of allocation calls), interned lock-free in a
//! fixed table. Libraries are named only when a snapshot is taken (`objects`):
//! asking the loader takes its lock and has no place on the hot path.

use super::CALLSITES;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The last slot collects call sites that did not fit.
pub const OVERFLOW: usize = CALLSITES - 1;

pub static ADDRESSES: [AtomicUsize; CALLSITES] = [const { AtomicUsize::new(0) }; CALLSITES];

/// The slot of return address `address`, interned on first sight.
#[inline]
pub fn slot(address: usize) -> usize {
    if address == 0 {
        return OVERFLOW;
    }
    let mut index = (address.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 24) % OVERFLOW;
    for _ in 0..16 {
        let current = ADDRESSES[index].load(Ordering::Acquire);
        if current == address {
            return index;
        }
        if current == 0 {
            match ADDRESSES[index].compare_exchange(0, address, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return index,
                Err(winner) if winner == address => return index,
                Err(_) => {}
            }
        }
        index = (index + 1) % OVERFLOW;
    }
    OVERFLOW
}

/// Whether a call site was interned in `slot`.
pub fn is_used(slot: usize) -> bool {
    slot != OVERFLOW && ADDRESSES[slot].load(Ordering::Relaxed) != 0
}

/// What a call site slot is shown as in a recording.
pub const OVERFLOW_NAME: &str = "(other call sites)";

/// The library (file) of each call site slot, read from the loader's maps now.
pub fn library_names(slots: &[usize]) -> Vec<String> {
    let addresses: Vec<usize> =
        slots.iter().map(|&slot| if slot == OVERFLOW { 0 } else { ADDRESSES[slot].load(Ordering::Acquire) }).collect();
    let names = super::objects::names_of(&addresses);
    slots
        .iter()
        .zip(names)
        .map(|(&slot, name)| if slot == OVERFLOW { OVERFLOW_NAME.to_owned() } else { name })
        .collect()
}

pub fn reset() {
    ADDRESSES.iter().for_each(|a| a.store(0, Ordering::Relaxed));
}
