//! Live and peak bytes, exact: one counter per pool and per device slot.
//! These are shared cache lines (an exact peak needs a single order of
//! events), touched once per allocation and once per free.

use super::live::Meta;
use super::{DEVICE, MAX_DEVICES};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(align(128))]
pub struct Level {
    pub live: AtomicU64,
    pub peak: AtomicU64,
    /// Highest `live` since the timeline last sampled it.
    pub window_max: AtomicU64,
}

impl Level {
    const fn new() -> Level {
        Level { live: AtomicU64::new(0), peak: AtomicU64::new(0), window_max: AtomicU64::new(0) }
    }

    #[inline]
    fn add(&self, size: u64) {
        let live = self.live.fetch_add(size, Relaxed).wrapping_add(size);
        if live > self.peak.load(Relaxed) {
            self.peak.fetch_max(live, Relaxed);
        }
        if live > self.window_max.load(Relaxed) {
            self.window_max.fetch_max(live, Relaxed);
        }
    }

    #[inline]
    fn sub(&self, size: u64) {
        self.live.fetch_sub(size, Relaxed);
    }

    fn reset_peak(&self) {
        self.peak.store(self.live.load(Relaxed), Relaxed);
    }

    fn reset(&self) {
        self.live.store(0, Relaxed);
        self.peak.store(0, Relaxed);
        self.window_max.store(0, Relaxed);
    }
}

/// [device pool, host pool].
pub static POOLS: [Level; 2] = [const { Level::new() }; 2];
/// Device memory per device slot.
pub static DEVICES: [Level; MAX_DEVICES] = [const { Level::new() }; MAX_DEVICES];

pub fn acquire(meta: Meta) {
    POOLS[usize::from(meta.pool)].add(meta.size);
    if usize::from(meta.pool) == DEVICE {
        DEVICES[usize::from(meta.device_slot)].add(meta.size);
    }
}

pub fn release(meta: Meta) {
    POOLS[usize::from(meta.pool)].sub(meta.size);
    if usize::from(meta.pool) == DEVICE {
        DEVICES[usize::from(meta.device_slot)].sub(meta.size);
    }
}

pub fn reset_peaks() {
    POOLS.iter().chain(&DEVICES).for_each(Level::reset_peak);
}

pub fn reset() {
    POOLS.iter().chain(&DEVICES).for_each(Level::reset);
}
