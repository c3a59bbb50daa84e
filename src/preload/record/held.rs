//! Bytes held per call site, and the largest holders of one moment (a
//! failure, a mark). Summed over the stripes off the hot path; a moment keeps
//! its holders packed in atomic words so that fixed slots can carry them.

use super::CALLSITES;
use super::cells;
use common::format::HELD_TOP;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bytes held now by each call site in `pool`. A free on one thread may be
/// seen before the allocation it undoes on another: such a transient
/// "negative" sum reads as 0.
pub fn per_site(pool: usize) -> [u64; CALLSITES] {
    let mut sums = cells::site_live_sums(pool);
    for sum in &mut sums {
        if *sum > i64::MAX as u64 {
            *sum = 0;
        }
    }
    sums
}

/// `(index, bytes)` of the `HELD_TOP` largest non-zero holders, largest
/// first (ties: lower index first); indexes are call sites or library keys.
pub fn top(bytes_by_index: &[u64]) -> Vec<(usize, u64)> {
    let mut top: Vec<(usize, u64)> = bytes_by_index.iter().copied().enumerate().filter(|&(_, b)| b > 0).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(HELD_TOP);
    top
}

/// The holders of one moment in atomic words: site in the top byte, bytes in
/// the rest (56 bits: 64 PiB); 0 is an empty entry.
pub struct Holders([AtomicU64; HELD_TOP]);

impl Default for Holders {
    fn default() -> Self {
        Holders::new()
    }
}

impl Holders {
    pub const fn new() -> Holders {
        Holders([const { AtomicU64::new(0) }; HELD_TOP])
    }

    /// Keeps the largest holders of `pool` now (the caller publishes them).
    pub fn capture(&self, sites: &[u64; CALLSITES]) {
        let top = top(sites);
        for (index, word) in self.0.iter().enumerate() {
            let packed = top.get(index).map_or(0, |&(site, bytes)| (site as u64) << 56 | bytes.min((1 << 56) - 1));
            word.store(packed, Relaxed);
        }
    }

    /// `(site, bytes)` as captured.
    pub fn read(&self) -> Vec<(usize, u64)> {
        self.0
            .iter()
            .map(|w| w.load(Relaxed))
            .filter(|&w| w != 0)
            .map(|w| ((w >> 56) as usize, w & ((1 << 56) - 1)))
            .collect()
    }
}
