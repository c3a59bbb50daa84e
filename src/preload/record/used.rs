//! The device's own view of its used memory (total - free), the figure vLLM
//! reads to compute "non-torch memory". Only an application thread that is
//! making a device call has the device context the runtime needs to answer,
//! so the writer thread raises `WANTED` once per timeline interval and the
//! next successful device call on any thread answers it: one relaxed load
//! per call, no clock read, never inside the caller's failure path.
//!
//! A reading keeps what every call site held at the same moment, so that the
//! writer thread, which names the libraries, can split it into torch's share
//! and the rest even for a call site it had not named yet.

use super::{CALLSITES, DEVICE, MAX_DEVICES, held};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

static WANTED: AtomicBool = AtomicBool::new(false);
/// NPU_ALLOC_SHIM_DEVICE_READINGS: off, the runtime is never asked.
static ENABLED: AtomicBool = AtomicBool::new(true);

struct Reading {
    used: AtomicU64,
    /// ms since load + 1 when it was asked; 0: never.
    at: AtomicU64,
}

static READINGS: [Reading; MAX_DEVICES] =
    [const { Reading { used: AtomicU64::new(0), at: AtomicU64::new(0) } }; MAX_DEVICES];

/// Device bytes per call site at the latest reading. One thread answers a
/// request and the writer reads it before asking again, so the two never
/// overlap; the reading's `at` (stored with Release after these, loaded with
/// Acquire by `latest`) publishes them.
static SITES: [AtomicU64; CALLSITES] = [const { AtomicU64::new(0) }; CALLSITES];
/// Readings asked of the runtime (each is one aclrtGetMemInfo call).
pub static ASKED: AtomicU64 = AtomicU64::new(0);

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Asks the next device call for a reading (the writer thread).
pub fn request() {
    if ENABLED.load(Relaxed) {
        WANTED.store(true, Relaxed);
    }
}

#[inline(always)]
pub fn wanted() -> bool {
    WANTED.load(Relaxed)
}

/// Answers a request on an application thread whose current device is in
/// `device_slot`; only one thread answers each request.
#[cold]
pub fn answer(device_slot: usize, mem_info: fn() -> Option<(u64, u64)>) {
    if !WANTED.swap(false, Relaxed) {
        return;
    }
    ASKED.fetch_add(1, Relaxed);
    let Some((free, total)) = mem_info() else { return };
    let at = super::lifecycle::elapsed_ms() + 1;
    for (cell, bytes) in SITES.iter().zip(held::per_site(DEVICE)) {
        cell.store(bytes, Relaxed);
    }
    let reading = &READINGS[device_slot.min(MAX_DEVICES - 1)];
    reading.used.store(total.saturating_sub(free), Relaxed);
    reading.at.store(at, Release);
}

/// Used bytes summed over the devices read at or after `since_ms`; None
/// when none was.
pub fn latest(since_ms: u64) -> Option<u64> {
    let fresh = READINGS.iter().filter(|r| r.at.load(Acquire) > since_ms);
    fresh.map(|r| r.used.load(Relaxed)).reduce(u64::saturating_add)
}

/// Device bytes per call site at the latest reading (zeros before one);
/// call after `latest` found it.
pub fn sites_at_reading() -> [u64; CALLSITES] {
    let mut sites = [0u64; CALLSITES];
    for (out, cell) in sites.iter_mut().zip(&SITES) {
        *out = cell.load(Relaxed);
    }
    sites
}

pub fn reset() {
    WANTED.store(false, Relaxed);
    READINGS.iter().for_each(|r| r.at.store(0, Relaxed));
    ASKED.store(0, Relaxed);
}
