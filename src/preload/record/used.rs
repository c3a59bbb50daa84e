//! The device's own view of its used memory (total - free), the figure vLLM
//! reads to compute "non-torch memory". Only an application thread that is
//! making a device call has the device context the runtime needs to answer,
//! so the writer thread raises `WANTED` once per timeline interval and the
//! next successful device call on any thread answers it: one relaxed load
//! per call, no clock read, never inside the caller's failure path.

use super::{CALLSITES, DEVICE, MAX_DEVICES, cells};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static WANTED: AtomicBool = AtomicBool::new(false);

/// Call sites in the framework's libraries (torch), one bit each, set by the
/// writer thread as it names libraries.
static FRAMEWORK_SITES: [AtomicU64; CALLSITES / 64] = [const { AtomicU64::new(0) }; CALLSITES / 64];

pub fn set_framework_site(site: usize) {
    FRAMEWORK_SITES[site / 64].fetch_or(1 << (site % 64), Relaxed);
}

/// Device bytes the framework's call sites hold now.
fn framework_bytes() -> u64 {
    let mut total = 0u64;
    for (word_index, word) in FRAMEWORK_SITES.iter().enumerate() {
        let mut bits = word.load(Relaxed);
        while bits != 0 {
            let site = word_index * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            total = total.wrapping_add(cells::sum(|s| &s.site_live[DEVICE][site]));
        }
    }
    if total > i64::MAX as u64 { 0 } else { total }
}

struct Reading {
    used: AtomicU64,
    /// What the framework held at the same moment.
    framework: AtomicU64,
    /// ms since load + 1 when it was asked; 0: never.
    at: AtomicU64,
}

static READINGS: [Reading; MAX_DEVICES] =
    [const { Reading { used: AtomicU64::new(0), framework: AtomicU64::new(0), at: AtomicU64::new(0) } }; MAX_DEVICES];

/// Asks the next device call for a reading (the writer thread).
pub fn request() {
    WANTED.store(true, Relaxed);
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
    let Some((free, total)) = mem_info() else { return };
    let reading = &READINGS[device_slot.min(MAX_DEVICES - 1)];
    reading.used.store(total.saturating_sub(free), Relaxed);
    reading.framework.store(framework_bytes(), Relaxed);
    reading.at.store(super::lifecycle::elapsed_ms() + 1, Relaxed);
}

/// Used bytes and the framework's share at the same moments, summed over
/// the devices read at or after `since_ms`; None when none was.
pub fn latest(since_ms: u64) -> Option<(u64, u64)> {
    let fresh = READINGS.iter().filter(|r| r.at.load(Relaxed) > since_ms);
    fresh
        .map(|r| (r.used.load(Relaxed), r.framework.load(Relaxed)))
        .reduce(|a, b| (a.0.saturating_add(b.0), a.1.saturating_add(b.1)))
}

pub fn reset() {
    WANTED.store(false, Relaxed);
    FRAMEWORK_SITES.iter().for_each(|w| w.store(0, Relaxed));
    READINGS.iter().for_each(|r| r.at.store(0, Relaxed));
}
