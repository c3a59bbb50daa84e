//! Counters striped across threads: each thread adds to one of `STRIPES`
//! cache-aligned blocks, so threads rarely share a cache line; a snapshot
//! sums the stripes.

use super::{CALLSITES, MAX_DEVICES};
use crate::format::histogram::BUCKETS;
use crate::preload::hooks::real::MAX_HOOKS;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

pub const STRIPES: usize = 16;

#[repr(align(128))]
pub struct Stripe {
    pub api_calls: [AtomicU64; MAX_HOOKS],
    pub api_failures: [AtomicU64; MAX_HOOKS],
    pub api_bytes: [AtomicU64; MAX_HOOKS],
    /// Frees of pointers never seen allocated: [device, host].
    pub untracked_frees: [AtomicU64; 2],
    pub hist_count: [AtomicU64; BUCKETS],
    pub hist_bytes: [AtomicU64; BUCKETS],
    pub device_calls: [AtomicU64; MAX_DEVICES],
    pub device_bytes: [AtomicU64; MAX_DEVICES],
    pub site_calls: [AtomicU64; CALLSITES],
    pub site_failures: [AtomicU64; CALLSITES],
    pub site_bytes: [AtomicU64; CALLSITES],
}

impl Stripe {
    const fn new() -> Stripe {
        Stripe {
            api_calls: [const { AtomicU64::new(0) }; MAX_HOOKS],
            api_failures: [const { AtomicU64::new(0) }; MAX_HOOKS],
            api_bytes: [const { AtomicU64::new(0) }; MAX_HOOKS],
            untracked_frees: [const { AtomicU64::new(0) }; 2],
            hist_count: [const { AtomicU64::new(0) }; BUCKETS],
            hist_bytes: [const { AtomicU64::new(0) }; BUCKETS],
            device_calls: [const { AtomicU64::new(0) }; MAX_DEVICES],
            device_bytes: [const { AtomicU64::new(0) }; MAX_DEVICES],
            site_calls: [const { AtomicU64::new(0) }; CALLSITES],
            site_failures: [const { AtomicU64::new(0) }; CALLSITES],
            site_bytes: [const { AtomicU64::new(0) }; CALLSITES],
        }
    }

    fn cells(&self) -> impl Iterator<Item = &AtomicU64> {
        self.api_calls
            .iter()
            .chain(&self.api_failures)
            .chain(&self.api_bytes)
            .chain(&self.untracked_frees)
            .chain(&self.hist_count)
            .chain(&self.hist_bytes)
            .chain(&self.device_calls)
            .chain(&self.device_bytes)
            .chain(&self.site_calls)
            .chain(&self.site_failures)
            .chain(&self.site_bytes)
    }
}

pub static STRIPE_BLOCKS: [Stripe; STRIPES] = [const { Stripe::new() }; STRIPES];
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe + 1 (0: not chosen yet).
    static MY_STRIPE: Cell<usize> = const { Cell::new(0) };
}

/// This thread's stripe, chosen round-robin on first use.
#[inline]
pub fn mine() -> &'static Stripe {
    let chosen = MY_STRIPE.with(|s| {
        let current = s.get();
        if current != 0 {
            return current - 1;
        }
        let picked = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
        s.set(picked + 1);
        picked
    });
    &STRIPE_BLOCKS[chosen]
}

/// Sum of one cell over all stripes.
pub fn sum(cell: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
    STRIPE_BLOCKS.iter().map(|s| cell(s).load(Relaxed)).fold(0, u64::wrapping_add)
}

#[inline]
pub fn add(cell: &AtomicU64, value: u64) {
    cell.fetch_add(value, Relaxed);
}

pub fn reset() {
    for stripe in &STRIPE_BLOCKS {
        stripe.cells().for_each(|c| c.store(0, Relaxed));
    }
}
