//! What each call site held at the pool's peak. Summing every stripe per
//! site costs microseconds, too much for each allocation that sets a new
//! peak (a ramp-up sets one per call), so a capture is taken when the peak
//! has grown by 1/64 since the last one, and whenever a failure, a timeline
//! sample or a write sees more than was captured: the figure is exact when
//! the peak is reached in a step of at least 1/64, else within 1/64 of it.

use super::{CALLSITES, DEVICE, HOST, held, pools};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

pub struct Capture {
    /// Held by the capturing (or reading) thread; others skip or spin.
    busy: AtomicBool,
    /// The pool's live bytes when captured.
    live: AtomicU64,
    sites: [AtomicU64; CALLSITES],
}

impl Capture {
    const fn new() -> Capture {
        Capture {
            busy: AtomicBool::new(false),
            live: AtomicU64::new(0),
            sites: [const { AtomicU64::new(0) }; CALLSITES],
        }
    }
}

static CAPTURES: [Capture; 2] = [Capture::new(), Capture::new()];

fn live_of(pool: usize) -> u64 {
    if pool == DEVICE { pools::device_totals().0 } else { pools::HOST.live.load(Relaxed) }
}

/// After an allocation set a new peak of its level (the hot path's test).
#[inline(always)]
pub fn on_new_peak(pool: usize) {
    let captured = CAPTURES[pool & 1].live.load(Relaxed);
    let live = live_of(pool);
    if live > captured + captured / 64 {
        capture(pool, live, None);
    }
}

/// Captures now if the pool holds more than was captured (failures, samples,
/// writes); `sites` when the caller has summed the pool's per-site bytes.
pub fn if_higher(pool: usize, sites: Option<&[u64; CALLSITES]>) {
    let live = live_of(pool);
    if live > CAPTURES[pool & 1].live.load(Relaxed) {
        capture(pool, live, sites);
    }
}

/// Keeps `sites` (summed now when None: only once this thread captures).
#[cold]
fn capture(pool: usize, live: u64, sites: Option<&[u64; CALLSITES]>) {
    let capture = &CAPTURES[pool & 1];
    if capture.busy.compare_exchange(false, true, Acquire, Relaxed).is_err() {
        return; // another thread is capturing a moment as good
    }
    let summed;
    let sites = match sites {
        Some(sites) => sites,
        None => {
            summed = held::per_site(pool);
            &summed
        }
    };
    for (cell, bytes) in capture.sites.iter().zip(sites) {
        cell.store(*bytes, Relaxed);
    }
    capture.live.store(live, Relaxed);
    capture.busy.store(false, Release);
}

/// Bytes per site at the captured peak of `pool`.
pub fn read(pool: usize) -> [u64; CALLSITES] {
    let capture = &CAPTURES[pool & 1];
    while capture.busy.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
        std::hint::spin_loop();
    }
    let mut sites = [0u64; CALLSITES];
    for (out, cell) in sites.iter_mut().zip(&capture.sites) {
        *out = cell.load(Relaxed);
    }
    capture.busy.store(false, Release);
    sites
}

/// In a fork child (single-threaded): nothing captured.
pub fn reset() {
    for capture in &CAPTURES {
        capture.busy.store(false, Relaxed);
        capture.live.store(0, Relaxed);
        capture.sites.iter().for_each(|c| c.store(0, Relaxed));
    }
}

pub const POOLS: [usize; 2] = [DEVICE, HOST];
