//! Phase marks (`npu_alloc_shim_mark`): a name the program gives a moment
//! (a training step, an RL sleep or wake), kept with what was held then.
//! Fixed slots like `failures`; later marks are only counted.

use super::held::Holders;
use super::unknown::MaxUntilStored;
use super::{DEVICE, HOST, pools, used};
use common::format::MARKS_KEPT;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// Bytes of a name kept (longer names are cut).
pub const NAME_BYTES: usize = 64;

pub struct Slot {
    pub ready: AtomicBool,
    name: [AtomicU64; NAME_BYTES / 8],
    name_len: AtomicU64,
    pub t_ms: AtomicU64,
    pub device_live: AtomicU64,
    pub host_live: AtomicU64,
    /// u64::MAX: no reading of the device's used memory yet.
    pub device_used: MaxUntilStored,
    pub device_held: Holders,
    pub host_held: Holders,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            ready: AtomicBool::new(false),
            name: [const { AtomicU64::new(0) }; NAME_BYTES / 8],
            name_len: AtomicU64::new(0),
            t_ms: AtomicU64::new(0),
            device_live: AtomicU64::new(0),
            host_live: AtomicU64::new(0),
            device_used: MaxUntilStored::new(),
            device_held: Holders::new(),
            host_held: Holders::new(),
        }
    }

    pub fn name(&self) -> Vec<u8> {
        let len = (self.name_len.load(Relaxed) as usize).min(NAME_BYTES);
        let bytes: Vec<u8> = self.name.iter().flat_map(|w| w.load(Relaxed).to_le_bytes()).collect();
        bytes[..len].to_vec()
    }
}

pub static SLOTS: [Slot; MARKS_KEPT] = [const { Slot::new() }; MARKS_KEPT];
pub static SEEN: AtomicU64 = AtomicU64::new(0);

/// Records a mark named `name` (at most NAME_BYTES of it are kept).
pub fn record(name: &[u8]) {
    let index = SEEN.fetch_add(1, AcqRel) as usize;
    let Some(slot) = SLOTS.get(index) else { return };
    let name = &name[..name.len().min(NAME_BYTES)];
    for (word, chunk) in slot.name.iter().zip(name.chunks(8).chain(std::iter::repeat(&[][..]))) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(bytes), Relaxed);
    }
    slot.name_len.store(name.len() as u64, Relaxed);
    slot.t_ms.store(super::lifecycle::elapsed_ms(), Relaxed);
    slot.device_live.store(pools::device_totals().0, Relaxed);
    slot.host_live.store(pools::HOST.live.load(Relaxed), Relaxed);
    slot.device_used.store(used::latest(0).unwrap_or(u64::MAX));
    slot.device_held.capture(&super::held::per_site(DEVICE));
    slot.host_held.capture(&super::held::per_site(HOST));
    slot.ready.store(true, Release);
}

/// Forgets every slot: only those ever handed out (below `SEEN`) can be
/// ready, and the others are untouched pages a fork child need not write.
pub fn reset() {
    let used = SEEN.swap(0, Relaxed).min(SLOTS.len() as u64) as usize;
    for slot in &SLOTS[..used] {
        slot.ready.store(false, Relaxed);
    }
}
