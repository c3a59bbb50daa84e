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

pub fn reset() {
    ADDRESSES.iter().for_each(|a| a.store(0, Ordering::Relaxed));
}
