//! The recorder: what the hooks report, kept in fixed-size, lock-free (or
//! per-shard) structures so the hot path neither allocates nor takes a
//! global lock. Snapshots are built from them off the hot path.

pub mod callsites;
pub mod cells;
pub mod failures;
pub mod forklock;
pub mod held;
pub mod lifecycle;
pub mod live;
pub mod marks;
pub mod metrics_file;
pub mod objects;
pub mod origin;
pub mod output;
pub mod peak;
pub mod pools;
pub mod shard_lock;
pub mod snapshot;
pub mod timeline;
pub mod unknown;
pub mod used;
pub mod wake;

use cells::HostViaDevice;
use common::format::histogram;
use common::runtime::{self, ApiClass, Placement};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Device ids 0..MAX_DEVICES-1 have their own slot; the last slot collects the rest.
pub const MAX_DEVICES: usize = 64;
pub const OTHER_DEVICE_SLOT: usize = MAX_DEVICES - 1;
/// Distinct call sites tracked per process; the last slot collects the rest.
/// A live pointer keeps its site in one byte (`live::Meta`).
pub const CALLSITES: usize = 256;
const _: () = assert!(CALLSITES <= 256);

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

/// What a thread needs on every recorded call, in one thread-local (each
/// access to a thread-local of a shared library is a call to
/// `__tls_get_addr`, so the hot path touches it once per hook).
struct ThreadState {
    /// Hooked calls in progress on this thread (only the outermost records).
    depth: Cell<u32>,
    /// This thread's current device, -1 until known.
    device: Cell<i32>,
    /// This thread's stripe; `None` until its first recorded call.
    lane: Cell<Option<cells::Lane>>,
    /// The size class of this thread's last failed allocation, until an
    /// allocation in that class succeeds (`failures`); NO_FAILURE otherwise.
    failed_bucket: Cell<u32>,
    /// Kernel thread id, asked at the first failure; 0 until then.
    tid: Cell<i32>,
}

const NO_FAILURE: u32 = u32::MAX;

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            depth: Cell::new(0),
            device: Cell::new(-1),
            lane: Cell::new(None),
            failed_bucket: Cell::new(NO_FAILURE),
            tid: Cell::new(0),
        }
    };
}

/// Called at thread exit (pthread key destructor) with the owned stripe.
pub fn release_lane(index: usize) {
    cells::release(index);
    // Anything this thread still records (late destructors) goes to a shared stripe.
    let _ = THREAD.try_with(|t| t.lane.set(Some(cells::Lane::shared())));
}

/// The forking thread's owned stripe, for the fork child.
pub fn current_lane_index() -> Option<usize> {
    THREAD.try_with(|t| t.lane.get().map(|l| l.index)).ok().flatten()
}

pub fn count_unresolved() {
    UNRESOLVED.fetch_add(1, Relaxed);
}

pub fn set_current_device(device: i32) {
    let _ = THREAD.try_with(|t| t.device.set(device));
}

/// What the recorder asks a runtime, supplied by that runtime's hooks with
/// each call: the recorder itself names no runtime function.
pub struct Queries {
    /// This thread's device, for threads that never set one through a hook.
    pub current_device: fn() -> Option<i32>,
    /// Free and total device memory, for the context of a failed allocation.
    pub mem_info: fn() -> Option<(u64, u64)>,
}

/// Proof that this is the outermost hooked call on this thread and that
/// recording is on. Dropping it re-arms the thread.
pub struct Scope {
    /// This thread's state; a thread-local outlives any call on its thread,
    /// and the raw pointer keeps `Scope` on this thread (!Send).
    thread: *const ThreadState,
    /// The runtime of the hooked call.
    queries: &'static Queries,
}

impl Scope {
    fn thread(&self) -> &ThreadState {
        // SAFETY: see the field: the pointee lives as long as this thread.
        unsafe { &*self.thread }
    }

    /// This thread's stripe, claimed on first use.
    #[inline(always)]
    fn lane(&self) -> cells::Lane {
        let thread = self.thread();
        match thread.lane.get() {
            Some(lane) => lane,
            None => {
                let lane = cells::claim();
                lifecycle::register_lane(lane.index);
                thread.lane.set(Some(lane));
                lane
            }
        }
    }

    fn tid(&self) -> i32 {
        let thread = self.thread();
        if thread.tid.get() == 0 {
            // SAFETY: gettid has no preconditions.
            thread.tid.set(unsafe { libc::gettid() });
        }
        thread.tid.get()
    }

    /// The calling thread's device, asking the runtime once per thread if needed.
    fn device(&self) -> i32 {
        let thread = self.thread();
        let known = thread.device.get();
        if known >= 0 {
            return known;
        }
        let device = (self.queries.current_device)().unwrap_or(0);
        thread.device.set(device);
        device
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let depth = &self.thread().depth;
        depth.set(depth.get() - 1);
    }
}

/// Whether this process records (NPU_ALLOC_SHIM_TRACE): the hooks' first
/// test, before anything else, so that with tracing off they only forward.
#[inline(always)]
pub fn tracing() -> bool {
    TRACING.load(Relaxed)
}

/// Starts recording one hooked call; `None` when tracing is off or the call
/// is nested inside another hooked call (a runtime calling itself).
#[inline(always)]
pub fn enter(queries: &'static Queries) -> Option<Scope> {
    if !TRACING.load(Relaxed) {
        return None;
    }
    // A thread-local already destroyed (a call from a late destructor) means
    // no recording, never a panic.
    let thread = THREAD.try_with(|t| t as *const ThreadState).ok()?;
    let scope = Scope { thread, queries };
    let depth = scope.thread().depth.get();
    scope.thread().depth.set(depth + 1);
    if depth != 0 {
        return None; // `scope` drops here and restores the depth
    }
    lifecycle::ensure_flusher();
    Some(scope)
}

/// Notes that this process has used the runtime (a load, and a store only once).
#[inline(always)]
fn mark_active() {
    if !ACTIVE.load(Relaxed) {
        ACTIVE.store(true, Relaxed);
    }
}

/// Runs recording code; a panic is counted, never propagated to the host.
#[inline(always)]
fn guarded(body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        PANICS.fetch_add(1, Relaxed);
    }
}

fn pool_of(index: usize) -> Option<usize> {
    match runtime::hook(index)?.1.class {
        ApiClass::DeviceAlloc | ApiClass::DeviceFree => Some(DEVICE),
        ApiClass::HostAlloc | ApiClass::HostFree => Some(HOST),
        _ => None,
    }
}

/// A block becomes live: its pool's level and its call site's bytes.
#[inline(always)]
fn hold(lane: cells::Lane, meta: live::Meta) {
    lane.add(&lane.stripe().site_live[usize::from(meta.pool) & 1][usize::from(meta.site)], meta.size);
    if pools::acquire(meta) {
        peak::on_new_peak(usize::from(meta.pool) & 1);
    }
}

/// A block is gone (freed, or its free went past us).
#[inline(always)]
fn release(lane: cells::Lane, meta: live::Meta) {
    pools::release(meta);
    lane.sub(&lane.stripe().site_live[usize::from(meta.pool) & 1][usize::from(meta.site)], meta.size);
}

/// Successful allocations of the process so far, device and host (a
/// failure's "did anything follow?"). Sums every stripe: failures only.
pub fn successful_allocations() -> u64 {
    // Both pools together: host calls through device-class APIs need no move.
    runtime::all_hooks()
        .filter(|(_, _, hook)| matches!(hook.class, ApiClass::DeviceAlloc | ApiClass::HostAlloc))
        .map(|(index, _, _)| {
            let calls = cells::sum(|s| &s.api_calls[index]);
            calls.wrapping_sub(cells::sum(|s| &s.api_failures[index]))
        })
        .fold(0, u64::wrapping_add)
}

/// How a recording names pool index `pool`.
pub fn pool_kind(pool: usize) -> common::format::Pool {
    if pool == HOST { common::format::Pool::Host } else { common::format::Pool::Device }
}

fn device_slot(device: i32) -> usize {
    usize::try_from(device).ok().filter(|&d| d < OTHER_DEVICE_SLOT).unwrap_or(OTHER_DEVICE_SLOT)
}

impl Scope {
    /// An allocation call returned `rc`; on success `key` is the pointer or
    /// handle it produced.
    pub fn alloc(&self, index: usize, rc: i32, key: usize, size: u64, caller: usize, placement: Placement) {
        guarded(|| {
            mark_active();
            let lane = self.lane();
            let stripe = lane.stripe();
            let site = callsites::slot(caller);
            lane.add(&stripe.api_calls[index], 1);
            lane.add(&stripe.site_calls[site], 1);
            let class_pool = pool_of(index).unwrap_or(DEVICE);
            let host = placement == Placement::Host;
            let pool = if host { HOST } else { class_pool };
            let device = match placement {
                _ if pool != DEVICE => -1,
                Placement::Device(device) => device,
                _ => self.device(),
            };
            let bucket = histogram::index(size);
            // A device-class API asked for host memory: its counts move pools.
            let crossed = host && class_pool == DEVICE;
            if rc != 0 {
                lane.add(&stripe.api_failures[index], 1);
                lane.add(&stripe.site_failures[site], 1);
                if crossed {
                    lane.add(&stripe.host_via_device[HostViaDevice::Failures as usize], 1);
                }
                self.failed(index, rc, size, device, pool, bucket as u32);
                return;
            }
            if crossed {
                lane.add(&stripe.host_via_device[HostViaDevice::Allocs as usize], 1);
                lane.add(&stripe.host_via_device[HostViaDevice::AllocBytes as usize], size);
            }
            let thread = self.thread();
            if thread.failed_bucket.get() == bucket as u32 {
                thread.failed_bucket.set(NO_FAILURE);
                failures::recovered(self.tid(), bucket as u32);
            }
            lane.add(&stripe.api_bytes[index], size);
            lane.add(&stripe.site_bytes[site], size);
            if pool == DEVICE {
                lane.add(&stripe.hist_count[bucket], 1);
                lane.add(&stripe.hist_bytes[bucket], size);
                lane.add(&stripe.device_calls[device_slot(device)], 1);
                lane.add(&stripe.device_bytes[device_slot(device)], size);
            }
            if key == 0 {
                NULL_RESULTS.fetch_add(1, Relaxed);
                return;
            }
            let meta = live::Meta::new(size, site, device_slot(device), pool);
            match live::insert(key as u64, meta) {
                live::Inserted::New => {}
                // The runtime handed out an address we still thought live:
                // its free went past us. Count the old block as gone.
                live::Inserted::Replaced(old) => release(lane, old),
                live::Inserted::Full => {
                    TABLE_FULL.fetch_add(1, Relaxed);
                    return;
                }
            }
            hold(lane, meta);
            if pool == DEVICE && used::wanted() {
                used::answer(device_slot(device), self.queries.mem_info);
            }
        });
    }

    /// A failed allocation: kept with the moment's state, and written out
    /// at once (`wake`) so that a process killed right after keeps it.
    #[cold]
    fn failed(&self, index: usize, rc: i32, size: u64, device: i32, pool: usize, bucket: u32) {
        let mem_info = if pool == DEVICE { (self.queries.mem_info)() } else { None };
        let thread = self.tid();
        self.thread().failed_bucket.set(bucket);
        let t_ms = failures::record(failures::Failed {
            api: index,
            size,
            code: rc,
            device,
            pool,
            mem_info,
            thread,
            bucket,
            successes_before: successful_allocations(),
        });
        wake::write_now(t_ms);
    }

    /// Before a free: forget `key`, returning what was recorded for it.
    /// It is looked for first where this call's memory most likely lives:
    /// pinned host memory for a host-class free, else this thread's device.
    pub fn take(&self, index: usize, key: usize) -> Option<live::Meta> {
        if key == 0 {
            return None;
        }
        let mut taken = None;
        guarded(|| {
            let first = match pool_of(index) {
                Some(HOST) => live::Home::Host,
                _ => live::Home::Device(device_slot(self.device())),
            };
            taken = live::remove(key as u64, first);
        });
        taken
    }

    /// After a free returned `rc`.
    pub fn freed(&self, index: usize, rc: i32, key: usize, taken: Option<live::Meta>) {
        guarded(|| {
            mark_active();
            let lane = self.lane();
            let stripe = lane.stripe();
            lane.add(&stripe.api_calls[index], 1);
            if rc != 0 {
                lane.add(&stripe.api_failures[index], 1);
                // The free did not happen: the block is still live.
                if let Some(meta) = taken
                    && let live::Inserted::Full = live::insert(key as u64, meta)
                {
                    TABLE_FULL.fetch_add(1, Relaxed);
                    release(lane, meta);
                }
                return;
            }
            match taken {
                Some(meta) => {
                    lane.add(&stripe.api_bytes[index], meta.size);
                    if usize::from(meta.pool) == HOST && pool_of(index) == Some(DEVICE) {
                        // Host memory freed through a device-class API (rtFree of
                        // an RT_MEMORY_HOST block): the free moves pools with it.
                        lane.add(&stripe.host_via_device[HostViaDevice::Frees as usize], 1);
                        lane.add(&stripe.host_via_device[HostViaDevice::FreedBytes as usize], meta.size);
                    }
                    release(lane, meta);
                    if usize::from(meta.pool) == DEVICE && used::wanted() {
                        used::answer(usize::from(meta.device_slot), self.queries.mem_info);
                    }
                }
                None => lane.add(&stripe.untracked_frees[pool_of(index).unwrap_or(DEVICE)], 1),
            }
        });
    }

    /// A call counted per API only.
    pub fn call(&self, index: usize, rc: i32, bytes: u64) {
        guarded(|| {
            mark_active();
            let lane = self.lane();
            let stripe = lane.stripe();
            lane.add(&stripe.api_calls[index], 1);
            if rc == 0 {
                lane.add(&stripe.api_bytes[index], bytes);
            } else {
                lane.add(&stripe.api_failures[index], 1);
            }
        });
    }
}
