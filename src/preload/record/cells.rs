//! Counters striped across threads. A thread claims a stripe of its own on
//! its first recorded call and adds to it with plain loads and stores (one
//! writer, so no locked instructions); a snapshot sums all stripes. When
//! every owned stripe is taken, threads share a few stripes with atomic
//! adds. A thread's stripe goes back to the pool when it exits (pthread key
//! destructor), with its counts, which the next owner keeps adding to.
//! Sums and resets visit only the stripes ever used: the 1.2 MiB of stripes
//! is untouched `.bss` until then, and writing it all in every fork child
//! cost ~300 page faults per fork.

use super::{CALLSITES, MAX_DEVICES};
use common::format::histogram::BUCKETS;
use common::runtime::HOOK_COUNT;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

/// Stripes a thread can own.
pub const OWNED: usize = 64;
/// Stripes shared (with atomic adds) by threads beyond `OWNED`.
pub const SHARED: usize = 8;

#[repr(align(128))]
pub struct Stripe {
    owned: AtomicBool,
    pub api_calls: [AtomicU64; HOOK_COUNT],
    pub api_failures: [AtomicU64; HOOK_COUNT],
    pub api_bytes: [AtomicU64; HOOK_COUNT],
    /// Frees of pointers never seen allocated: [device, host].
    pub untracked_frees: [AtomicU64; 2],
    pub hist_count: [AtomicU64; BUCKETS],
    pub hist_bytes: [AtomicU64; BUCKETS],
    pub device_calls: [AtomicU64; MAX_DEVICES],
    pub device_bytes: [AtomicU64; MAX_DEVICES],
    pub site_calls: [AtomicU64; CALLSITES],
    pub site_failures: [AtomicU64; CALLSITES],
    pub site_bytes: [AtomicU64; CALLSITES],
    /// Bytes held per call site and pool ([device, host]): added by the
    /// allocating thread, subtracted (wrapping) by the freeing one, so only
    /// the sum over stripes means something.
    pub site_live: [[AtomicU64; CALLSITES]; 2],
    /// Pinned host memory through device-class APIs (rtMalloc, halMemAlloc
    /// with a host type), indexed by `HostViaDevice`: moved from the device
    /// totals, which count by API class, to the host ones.
    pub host_via_device: [AtomicU64; HOST_VIA_DEVICE],
}

/// What `Stripe::host_via_device` counts.
#[derive(Clone, Copy)]
pub enum HostViaDevice {
    Allocs,
    AllocBytes,
    Failures,
    Frees,
    FreedBytes,
}
pub const HOST_VIA_DEVICE: usize = 5;

impl Stripe {
    const fn new() -> Stripe {
        Stripe {
            owned: AtomicBool::new(false),
            api_calls: [const { AtomicU64::new(0) }; HOOK_COUNT],
            api_failures: [const { AtomicU64::new(0) }; HOOK_COUNT],
            api_bytes: [const { AtomicU64::new(0) }; HOOK_COUNT],
            untracked_frees: [const { AtomicU64::new(0) }; 2],
            hist_count: [const { AtomicU64::new(0) }; BUCKETS],
            hist_bytes: [const { AtomicU64::new(0) }; BUCKETS],
            device_calls: [const { AtomicU64::new(0) }; MAX_DEVICES],
            device_bytes: [const { AtomicU64::new(0) }; MAX_DEVICES],
            site_calls: [const { AtomicU64::new(0) }; CALLSITES],
            site_failures: [const { AtomicU64::new(0) }; CALLSITES],
            site_bytes: [const { AtomicU64::new(0) }; CALLSITES],
            site_live: [const { [const { AtomicU64::new(0) }; CALLSITES] }; 2],
            host_via_device: [const { AtomicU64::new(0) }; HOST_VIA_DEVICE],
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
            .chain(self.site_live.iter().flatten())
            .chain(&self.host_via_device)
    }
}

static BLOCKS: [Stripe; OWNED + SHARED] = [const { Stripe::new() }; OWNED + SHARED];
static NEXT_SHARED: AtomicUsize = AtomicUsize::new(0);
/// One past the highest owned stripe ever claimed (claims take the lowest
/// free one, so every used owned stripe lies below it).
static OWNED_USED: AtomicUsize = AtomicUsize::new(0);

/// The stripes that can hold counts: owned ones ever claimed, shared ones
/// ever handed out. A stripe claimed after this is read has nothing in it yet
/// that the caller could have seen, like an add racing a sum.
fn used() -> impl Iterator<Item = &'static Stripe> {
    let owned = OWNED_USED.load(Acquire).min(OWNED);
    let shared = NEXT_SHARED.load(Acquire).min(SHARED);
    BLOCKS[..owned].iter().chain(&BLOCKS[OWNED..OWNED + shared])
}

/// A thread's way of adding to its stripe.
#[derive(Clone, Copy)]
pub struct Lane {
    pub index: usize,
    exclusive: bool,
}

impl Lane {
    #[inline(always)]
    pub fn stripe(self) -> &'static Stripe {
        &BLOCKS[self.index]
    }

    #[inline(always)]
    pub fn add(self, cell: &AtomicU64, value: u64) {
        if self.exclusive {
            // Only this thread writes the cell: a plain read-modify-write.
            cell.store(cell.load(Relaxed).wrapping_add(value), Relaxed);
        } else {
            cell.fetch_add(value, Relaxed);
        }
    }

    /// Takes `value` away from a cell (wrapping: see `Stripe::site_live`).
    #[inline(always)]
    pub fn sub(self, cell: &AtomicU64, value: u64) {
        self.add(cell, value.wrapping_neg());
    }

    /// The lane to use once this thread gives its owned stripe back.
    pub fn shared() -> Lane {
        Lane { index: OWNED + NEXT_SHARED.fetch_add(1, AcqRel) % SHARED, exclusive: false }
    }
}

/// Claims a free owned stripe, or falls back to a shared one.
pub fn claim() -> Lane {
    for (index, stripe) in BLOCKS[..OWNED].iter().enumerate() {
        if !stripe.owned.load(Relaxed) && stripe.owned.compare_exchange(false, true, Acquire, Relaxed).is_ok() {
            OWNED_USED.fetch_max(index + 1, Release);
            return Lane { index, exclusive: true };
        }
    }
    Lane::shared()
}

/// Gives an owned stripe back (its counts stay).
pub fn release(index: usize) {
    if index < OWNED {
        BLOCKS[index].owned.store(false, Release);
    }
}

/// Marks `keep` (the forking thread's stripe) as the only owned one: in a
/// fork child the other owners no longer exist.
pub fn reset_owners_in_child(keep: Option<usize>) {
    let owned = OWNED_USED.load(Relaxed).min(OWNED);
    for (index, stripe) in BLOCKS[..owned].iter().enumerate() {
        stripe.owned.store(Some(index) == keep, Relaxed);
    }
}

/// Sum of one cell over all stripes.
pub fn sum(cell: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
    used().map(|s| cell(s).load(Relaxed)).fold(0, u64::wrapping_add)
}

/// Zeroes every count (the used stripes stay marked used: their pages are
/// written now anyway, and the forking thread may hold a shared lane).
pub fn reset() {
    for stripe in used() {
        stripe.cells().for_each(|c| c.store(0, Relaxed));
    }
}

/// Sums of `site_live[pool]` over all stripes, every site at once.
pub fn site_live_sums(pool: usize) -> [u64; CALLSITES] {
    let mut sums = [0u64; CALLSITES];
    for stripe in used() {
        for (sum, cell) in sums.iter_mut().zip(&stripe.site_live[pool]) {
            *sum = sum.wrapping_add(cell.load(Relaxed));
        }
    }
    sums
}
