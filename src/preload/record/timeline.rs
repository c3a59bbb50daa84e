//! Memory over time, bounded: at most `MAX_SAMPLES` samples; when full,
//! neighbours merge (keeping the later level and the higher maximum) and the
//! interval doubles, so a long run keeps its shape and its spikes.
//!
//! Each sample also keeps the largest holders by calling library, the
//! device's own used memory (`used`) and torch's share.
//! Runs on the writer thread only, so it may allocate and read
//! `/proc/self/maps` (once per new call site, to name its library).

use super::{CALLSITES, DEVICE, HOST, callsites, held, peak, pools, used};
use common::format::{self, Pool};

pub const MAX_SAMPLES: usize = 1024;
pub const BASE_INTERVAL_MS: u64 = 50;
const UNRESOLVED: u32 = u32::MAX;

pub struct Timeline {
    pub interval_ms: u64,
    samples: Vec<format::Sample>,
    /// Library names, and whether each is the framework's (torch).
    pub libraries: Vec<String>,
    framework: Vec<bool>,
    /// The library of each call site, once named.
    library_of_site: [u32; CALLSITES],
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

/// A library in one pool: `library * 2 + pool`.
pub fn key(library: u32, pool: usize) -> usize {
    library as usize * 2 + pool
}

pub fn pool_of_key(key: usize) -> Pool {
    super::pool_kind(key % 2)
}

impl Timeline {
    pub const fn new() -> Timeline {
        Timeline {
            interval_ms: BASE_INTERVAL_MS,
            samples: Vec::new(),
            libraries: Vec::new(),
            framework: Vec::new(),
            library_of_site: [UNRESOLVED; CALLSITES],
        }
    }

    /// Names the libraries of call sites that were called and have none yet.
    fn resolve(&mut self, holding: impl Iterator<Item = usize>) {
        let new: Vec<usize> = holding.filter(|&site| self.library_of_site[site] == UNRESOLVED).collect();
        if new.is_empty() {
            return;
        }
        for (site, name) in new.iter().zip(callsites::library_names(&new)) {
            let index = match self.libraries.iter().position(|l| *l == name) {
                Some(index) => index,
                None => {
                    self.framework.push(common::runtime::is_framework_library(&name));
                    self.libraries.push(name);
                    self.libraries.len() - 1
                }
            };
            self.library_of_site[*site] = index as u32;
        }
    }

    /// Bytes held per `key`, from per-site sums of both pools.
    fn by_key(&mut self, device: &[u64; CALLSITES], host: &[u64; CALLSITES]) -> Vec<u64> {
        // Every site called so far, so that the device reading's sites are named.
        let called = (0..CALLSITES).filter(|&s| device[s] > 0 || host[s] > 0 || callsites::is_used(s));
        self.resolve(called);
        let mut totals = vec![0u64; self.libraries.len() * 2];
        for site in 0..CALLSITES {
            let library = self.library_of_site[site];
            if library != UNRESOLVED {
                totals[key(library, DEVICE)] += device[site];
                totals[key(library, HOST)] += host[site];
            }
        }
        totals
    }

    /// Takes one sample at `t_ms`, and asks for the next device reading.
    pub fn sample(&mut self, t_ms: u64) {
        let (live, max) = pools::take_window();
        let host_live = pools::HOST.live.load(std::sync::atomic::Ordering::Relaxed);
        let totals = self.by_key(&held::per_site(DEVICE), &held::per_site(HOST));
        let top: Vec<(u32, u64)> = held::top(&totals).into_iter().map(|(k, b)| (k as u32, b)).collect();
        peak::POOLS.into_iter().for_each(|pool| peak::if_higher(pool, None));
        // Readings taken since the previous sample (which asked for them).
        let used = used::latest(self.samples.last().map_or(0, |s| s.t_ms));
        let framework = used.map(|_| {
            let at_reading = used::sites_at_reading();
            (0..CALLSITES)
                .filter(|&site| self.library_of_site[site] != UNRESOLVED)
                .filter(|&site| self.framework[self.library_of_site[site] as usize])
                .map(|site| at_reading[site])
                .fold(0u64, u64::saturating_add)
        });
        used::request();
        self.push(format::Sample {
            t_ms,
            live_bytes: live,
            max_live_bytes: max,
            host_live_bytes: host_live,
            device_used_bytes: used,
            framework_bytes: framework,
            held: top,
        });
    }

    fn push(&mut self, sample: format::Sample) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(MAX_SAMPLES);
        }
        if self.samples.len() == MAX_SAMPLES {
            let merged: Vec<format::Sample> = self
                .samples
                .chunks(2)
                .map(|pair| {
                    let (a, b) = (&pair[0], &pair[pair.len() - 1]);
                    format::Sample { max_live_bytes: a.max_live_bytes.max(b.max_live_bytes), ..b.clone() }
                })
                .collect();
            self.samples.clear();
            self.samples.extend(merged);
            self.interval_ms *= 2;
        }
        self.samples.push(sample);
    }

    pub fn samples(&self) -> &[format::Sample] {
        &self.samples
    }

    pub fn reset(&mut self) {
        *self = Timeline::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_the_spike() {
        let mut timeline = Timeline::new();
        for t in 0..10_000u64 {
            let live = if t == 7_777 { 1 << 40 } else { t };
            timeline.push(format::Sample { t_ms: t, live_bytes: live, max_live_bytes: live, ..Default::default() });
        }
        assert!(timeline.samples().len() <= MAX_SAMPLES);
        assert!(timeline.interval_ms > BASE_INTERVAL_MS);
        assert_eq!(timeline.samples().iter().map(|s| s.max_live_bytes).max(), Some(1 << 40));
        assert!(timeline.samples().windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert_eq!(timeline.samples().last().unwrap().t_ms, 9_999);
    }
}
