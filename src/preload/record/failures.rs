//! Failed allocations with the memory state at that moment. The first
//! `CAPACITY` are kept in fixed slots (claimed by an atomic index, published
//! by a flag); later ones are only counted.
//!
//! What followed decides what a failure meant (`format::Outcome`): the
//! failing thread remembers the size class it failed in, and its next
//! success in that class marks its failures there recovered (a caching
//! allocator frees its cache and retries the same request). Whether the
//! process allocated anything at all afterwards is read from the counters
//! when the recording is written.

use super::held::Holders;
use super::unknown::MaxUntilStored;
use super::{DEVICE, pools};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

pub const CAPACITY: usize = 256;

pub struct Slot {
    pub ready: AtomicBool,
    pub api: AtomicUsize,
    pub size: AtomicU64,
    pub code: AtomicI32,
    pub device: AtomicI32,
    pub pool: AtomicUsize,
    pub live_bytes: AtomicU64,
    /// u64::MAX when aclrtGetMemInfo was not available.
    pub device_free: MaxUntilStored,
    pub device_total: MaxUntilStored,
    pub t_ms: AtomicU64,
    /// The failing thread (kernel thread id) and the size class it asked in.
    pub thread: AtomicI32,
    pub bucket: AtomicU32,
    /// That thread later succeeded in that class.
    pub recovered: AtomicBool,
    /// Successful allocations of the process before this failure.
    pub successes_before: AtomicU64,
    /// The largest holders of the failed allocation's pool at that moment.
    pub held: Holders,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            ready: AtomicBool::new(false),
            api: AtomicUsize::new(0),
            size: AtomicU64::new(0),
            code: AtomicI32::new(0),
            device: AtomicI32::new(0),
            pool: AtomicUsize::new(0),
            live_bytes: AtomicU64::new(0),
            device_free: MaxUntilStored::new(),
            device_total: MaxUntilStored::new(),
            t_ms: AtomicU64::new(0),
            thread: AtomicI32::new(0),
            bucket: AtomicU32::new(0),
            recovered: AtomicBool::new(false),
            successes_before: AtomicU64::new(0),
            held: Holders::new(),
        }
    }
}

pub static SLOTS: [Slot; CAPACITY] = [const { Slot::new() }; CAPACITY];
pub static SEEN: AtomicU64 = AtomicU64::new(0);

/// One failed allocation, as the hook saw it.
pub struct Failed {
    pub api: usize,
    pub size: u64,
    pub code: i32,
    pub device: i32,
    pub pool: usize,
    /// The device's free and total memory as the runtime answered just now
    /// (`None` for host memory or no answer).
    pub mem_info: Option<(u64, u64)>,
    pub thread: i32,
    pub bucket: u32,
    pub successes_before: u64,
}

/// Called inside a recording scope. Returns the failure's time (ms since load).
pub fn record(failed: Failed) -> u64 {
    let t_ms = super::lifecycle::elapsed_ms();
    let index = SEEN.fetch_add(1, AcqRel) as usize;
    let Some(slot) = SLOTS.get(index) else { return t_ms };
    slot.api.store(failed.api, Relaxed);
    slot.size.store(failed.size, Relaxed);
    slot.code.store(failed.code, Relaxed);
    slot.device.store(failed.device, Relaxed);
    slot.pool.store(failed.pool, Relaxed);
    let live = if failed.pool == DEVICE { pools::device_totals().0 } else { pools::HOST.live.load(Relaxed) };
    slot.live_bytes.store(live, Relaxed);
    let (free, total) = failed.mem_info.unwrap_or((u64::MAX, u64::MAX));
    slot.device_free.store(free);
    slot.device_total.store(total);
    slot.t_ms.store(t_ms, Relaxed);
    slot.thread.store(failed.thread, Relaxed);
    slot.bucket.store(failed.bucket, Relaxed);
    slot.recovered.store(false, Relaxed);
    slot.successes_before.store(failed.successes_before, Relaxed);
    // One sum of every thread's per-site counters serves both.
    let sites = super::held::per_site(failed.pool);
    slot.held.capture(&sites);
    super::peak::if_higher(failed.pool, Some(&sites));
    slot.ready.store(true, Release);
    t_ms
}

/// Thread `thread` allocated in size class `bucket` after failing there.
#[cold]
pub fn recovered(thread: i32, bucket: u32) {
    let kept = SEEN.load(Acquire).min(CAPACITY as u64) as usize;
    for slot in &SLOTS[..kept] {
        if slot.ready.load(Acquire) && slot.thread.load(Relaxed) == thread && slot.bucket.load(Relaxed) == bucket {
            slot.recovered.store(true, Relaxed);
        }
    }
}

/// Forgets every slot: only those ever handed out (below `SEEN`) can be
/// ready, and the others are untouched pages a fork child need not write.
pub fn reset() {
    let used = SEEN.swap(0, Relaxed).min(SLOTS.len() as u64) as usize;
    for slot in &SLOTS[..used] {
        slot.ready.store(false, Relaxed);
    }
}
