//! The recorder: what the hooks report, kept in fixed-size, lock-free (or
//! per-shard) structures so the hot path neither allocates nor takes a
//! global lock. Snapshots are built from them off the hot path.

pub mod callsites;
pub mod cells;
pub mod failures;
pub mod lifecycle;
pub mod live;
pub mod output;
pub mod pools;
pub mod snapshot;
pub mod timeline;

use crate::format::histogram;
use crate::runtime::{self, ApiClass};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Device ids 0..MAX_DEVICES-1 have their own slot; the last slot collects the rest.
pub const MAX_DEVICES: usize = 64;
pub const OTHER_DEVICE_SLOT: usize = MAX_DEVICES - 1;
/// Distinct call sites tracked per process; the last slot collects the rest.
pub const CALLSITES: usize = 256;

/// Pool indexes.
pub const DEVICE: usize = 0;
pub const HOST: usize = 1;

/// True while recording: the only thing a hook checks when tracing is off.
pub static TRACING: AtomicBool = AtomicBool::new(false);
/// Set by the first recorded call, so idle processes write no file.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Problems the library survived, reported in `errors`.
pub static PANICS: AtomicU64 = AtomicU64::new(0);
pub static UNRESOLVED: AtomicU64 = AtomicU64::new(0);
pub static TABLE_FULL: AtomicU64 = AtomicU64::new(0);
pub static NULL_RESULTS: AtomicU64 = AtomicU64::new(0);
pub static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Hooked calls in progress on this thread (only the outermost records).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// This thread's current device, -1 until known.
    static CURRENT_DEVICE: Cell<i32> = const { Cell::new(-1) };
}

pub fn count_unresolved() {
    UNRESOLVED.fetch_add(1, Relaxed);
}

pub fn set_current_device(device: i32) {
    CURRENT_DEVICE.with(|d| d.set(device));
}

/// Proof that this is the outermost hooked call on this thread and that
/// recording is on. Dropping it re-arms the thread.
pub struct Scope {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Starts recording one hooked call; `None` when tracing is off or the call
/// is nested inside another hooked call (a runtime calling itself).
#[inline(always)]
pub fn enter() -> Option<Scope> {
    if !TRACING.load(Relaxed) {
        return None;
    }
    let outermost = DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        depth == 0
    });
    let scope = Scope { _not_send: std::marker::PhantomData };
    if !outermost {
        return None; // `scope` drops here and restores the depth
    }
    lifecycle::ensure_flusher();
    Some(scope)
}

/// Runs recording code; a panic is counted, never propagated to the host.
#[inline(always)]
fn guarded(body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        PANICS.fetch_add(1, Relaxed);
    }
}

fn pool_of(index: usize) -> Option<usize> {
    match runtime::active().hooks[index].class {
        ApiClass::DeviceAlloc | ApiClass::DeviceFree => Some(DEVICE),
        ApiClass::HostAlloc | ApiClass::HostFree => Some(HOST),
        _ => None,
    }
}

fn device_slot(device: i32) -> usize {
    usize::try_from(device).ok().filter(|&d| d < OTHER_DEVICE_SLOT).unwrap_or(OTHER_DEVICE_SLOT)
}

/// The calling thread's device, asking the runtime once per thread if needed.
fn current_device() -> i32 {
    let known = CURRENT_DEVICE.with(Cell::get);
    if known >= 0 {
        return known;
    }
    let device = crate::preload::hooks::acl::query_current_device().unwrap_or(0);
    set_current_device(device);
    device
}

impl Scope {
    /// An allocation call returned `rc`; on success `key` is the pointer or
    /// handle it produced.
    pub fn alloc(&self, index: usize, rc: i32, key: usize, size: u64, caller: usize) {
        guarded(|| {
            ACTIVE.store(true, Relaxed);
            let stripe = cells::mine();
            let site = callsites::slot(caller);
            cells::add(&stripe.api_calls[index], 1);
            cells::add(&stripe.site_calls[site], 1);
            let pool = pool_of(index).unwrap_or(DEVICE);
            let device = if pool == DEVICE { current_device() } else { -1 };
            if rc != 0 {
                cells::add(&stripe.api_failures[index], 1);
                cells::add(&stripe.site_failures[site], 1);
                failures::record(index, size, rc, device, pool);
                return;
            }
            cells::add(&stripe.api_bytes[index], size);
            cells::add(&stripe.site_bytes[site], size);
            if pool == DEVICE {
                let bucket = histogram::index(size);
                cells::add(&stripe.hist_count[bucket], 1);
                cells::add(&stripe.hist_bytes[bucket], size);
                cells::add(&stripe.device_calls[device_slot(device)], 1);
                cells::add(&stripe.device_bytes[device_slot(device)], size);
            }
            if key == 0 {
                NULL_RESULTS.fetch_add(1, Relaxed);
                return;
            }
            let meta = live::Meta { size, device_slot: device_slot(device) as u8, pool: pool as u8 };
            match live::insert(key as u64, meta) {
                live::Inserted::New => {}
                // The runtime handed out an address we still thought live:
                // its free went past us. Count the old block as gone.
                live::Inserted::Replaced(old) => pools::release(old),
                live::Inserted::Full => {
                    TABLE_FULL.fetch_add(1, Relaxed);
                    return;
                }
            }
            pools::acquire(meta);
        });
    }

    /// Before a free: forget `key`, returning what was recorded for it.
    pub fn take(&self, _index: usize, key: usize) -> Option<live::Meta> {
        if key == 0 {
            return None;
        }
        let mut taken = None;
        guarded(|| taken = live::remove(key as u64));
        taken
    }

    /// After a free returned `rc`.
    pub fn freed(&self, index: usize, rc: i32, key: usize, taken: Option<live::Meta>) {
        guarded(|| {
            ACTIVE.store(true, Relaxed);
            let stripe = cells::mine();
            cells::add(&stripe.api_calls[index], 1);
            if rc != 0 {
                cells::add(&stripe.api_failures[index], 1);
                // The free did not happen: the block is still live.
                if let Some(meta) = taken
                    && let live::Inserted::Full = live::insert(key as u64, meta)
                {
                    TABLE_FULL.fetch_add(1, Relaxed);
                    pools::release(meta);
                }
                return;
            }
            match taken {
                Some(meta) => {
                    cells::add(&stripe.api_bytes[index], meta.size);
                    pools::release(meta);
                }
                None => cells::add(&stripe.untracked_frees[pool_of(index).unwrap_or(DEVICE)], 1),
            }
        });
    }

    /// A call counted per API only.
    pub fn call(&self, index: usize, rc: i32, bytes: u64) {
        guarded(|| {
            ACTIVE.store(true, Relaxed);
            let stripe = cells::mine();
            cells::add(&stripe.api_calls[index], 1);
            if rc == 0 {
                cells::add(&stripe.api_bytes[index], bytes);
            } else {
                cells::add(&stripe.api_failures[index], 1);
            }
        });
    }
}
