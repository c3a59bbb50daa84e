//! Live and peak bytes, exact: one counter per device (device memory) and one
//! for pinned host memory. A device's allocations are serialised by its
//! caching allocator anyway, so its counter line is rarely contended; there
//! is deliberately no process-wide device counter that every thread would
//! hit. Process totals are derived from the devices (see `device_totals`).

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

    /// True when this set a new peak.
    #[inline]
    fn add(&self, size: u64) -> bool {
        let live = self.live.fetch_add(size, Relaxed).wrapping_add(size);
        if live > self.window_max.load(Relaxed) {
            self.window_max.fetch_max(live, Relaxed);
        }
        live > self.peak.load(Relaxed) && self.peak.fetch_max(live, Relaxed) < live
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

/// Device memory per device slot.
pub static DEVICES: [Level; MAX_DEVICES] = [const { Level::new() }; MAX_DEVICES];
/// Pinned host memory.
pub static HOST: Level = Level::new();

fn level(meta: Meta) -> &'static Level {
    if usize::from(meta.pool) == DEVICE { &DEVICES[usize::from(meta.device_slot)] } else { &HOST }
}

/// True when the block set a new peak of its level.
pub fn acquire(meta: Meta) -> bool {
    level(meta).add(meta.size)
}

pub fn release(meta: Meta) {
    level(meta).sub(meta.size);
}

/// Device memory of the whole process: (live, peak, peak is exact).
///
/// With one device (one rank per NPU, the usual torch_npu layout) the peak
/// is that device's, exact. With several, the process peak would need one
/// counter shared by every thread; the sum of the device peaks is reported
/// instead, an upper bound, and flagged.
pub fn device_totals() -> (u64, u64, bool) {
    let (mut live, mut peak, mut used) = (0u64, 0u64, 0usize);
    for device in &DEVICES {
        live += device.live.load(Relaxed);
        let device_peak = device.peak.load(Relaxed);
        peak += device_peak;
        used += usize::from(device_peak > 0);
    }
    (live, peak, used <= 1)
}

/// Device live bytes of the process now, and the highest value since the
/// last call (exact for one device, an upper bound for several).
pub fn take_window() -> (u64, u64) {
    let mut live = 0u64;
    let mut max = 0u64;
    for device in &DEVICES {
        let now = device.live.load(Relaxed);
        live += now;
        max += device.window_max.swap(now, Relaxed).max(now);
    }
    (live, max)
}

pub fn reset_peaks() {
    DEVICES.iter().chain(std::iter::once(&HOST)).for_each(Level::reset_peak);
}

pub fn reset() {
    DEVICES.iter().chain(std::iter::once(&HOST)).for_each(Level::reset);
}
