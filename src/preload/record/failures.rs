//! Failed allocations with the memory state at that moment. The first
//! `CAPACITY` are kept in fixed slots (claimed by an atomic index, published
//! by a flag); later ones are only counted.

use super::{DEVICE, pools};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::*};

pub const CAPACITY: usize = 256;

pub struct Slot {
    pub ready: AtomicBool,
    pub api: AtomicUsize,
    pub size: AtomicU64,
    pub code: AtomicI32,
    pub device: AtomicI32,
    pub live_bytes: AtomicU64,
    /// u64::MAX when aclrtGetMemInfo was not available.
    pub device_free: AtomicU64,
    pub device_total: AtomicU64,
    pub t_ms: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            ready: AtomicBool::new(false),
            api: AtomicUsize::new(0),
            size: AtomicU64::new(0),
            code: AtomicI32::new(0),
            device: AtomicI32::new(0),
            live_bytes: AtomicU64::new(0),
            device_free: AtomicU64::new(u64::MAX),
            device_total: AtomicU64::new(u64::MAX),
            t_ms: AtomicU64::new(0),
        }
    }
}

pub static SLOTS: [Slot; CAPACITY] = [const { Slot::new() }; CAPACITY];
pub static SEEN: AtomicU64 = AtomicU64::new(0);

/// Called inside a recording scope, with the device's free and total memory
/// as the runtime answered just now (`None` for host memory or no answer).
pub fn record(api: usize, size: u64, code: i32, device: i32, pool: usize, mem_info: Option<(u64, u64)>) {
    let index = SEEN.fetch_add(1, AcqRel) as usize;
    let Some(slot) = SLOTS.get(index) else { return };
    slot.api.store(api, Relaxed);
    slot.size.store(size, Relaxed);
    slot.code.store(code, Relaxed);
    slot.device.store(device, Relaxed);
    let live = if pool == DEVICE { pools::device_totals().0 } else { pools::HOST.live.load(Relaxed) };
    slot.live_bytes.store(live, Relaxed);
    let (free, total) = mem_info.unwrap_or((u64::MAX, u64::MAX));
    slot.device_free.store(free, Relaxed);
    slot.device_total.store(total, Relaxed);
    slot.t_ms.store(super::lifecycle::elapsed_ms(), Relaxed);
    slot.ready.store(true, Release);
}

pub fn reset() {
    SEEN.store(0, Relaxed);
    for slot in &SLOTS {
        slot.ready.store(false, Relaxed);
    }
}
