//! Builds a `Recording` from the recorder's state. Runs off the hot path
//! (flusher thread, exit, C API), so it may allocate and ask the loader.

use super::cells::{self, HostViaDevice, Stripe};
use super::origin;
use super::timeline::{self, Timeline};
use super::{
    CALLSITES, DEVICE, HOST, MAX_DEVICES, OTHER_DEVICE_SLOT, callsites, failures, held, marks, objects, peak, pools,
};
use common::format::{
    self, ApiCounters, Caller, Counters, Device, Failure, Held, MARKS_KEPT, Mark, Outcome, Pool, Recording,
    TimelineLibrary, histogram,
};
use common::runtime::{self, ApiClass, RuntimeSpec};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

fn api_counters(index: usize) -> ApiCounters {
    ApiCounters {
        calls: cells::sum(|s: &Stripe| &s.api_calls[index]),
        failures: cells::sum(|s: &Stripe| &s.api_failures[index]),
        bytes: cells::sum(|s: &Stripe| &s.api_bytes[index]),
    }
}

/// Totals of one pool, from the per-API counters of its alloc and free APIs.
pub fn pool_counters(pool: usize) -> Counters {
    let (alloc_class, free_class) = if pool == DEVICE {
        (ApiClass::DeviceAlloc, ApiClass::DeviceFree)
    } else {
        (ApiClass::HostAlloc, ApiClass::HostFree)
    };
    let mut counters = Counters::default();
    for (index, _, hook) in runtime::all_hooks() {
        let api = api_counters(index);
        if hook.class == alloc_class {
            counters.alloc_calls += api.calls - api.failures;
            counters.failed_calls += api.failures;
            counters.alloc_bytes += api.bytes;
        } else if hook.class == free_class {
            counters.free_calls += api.calls - api.failures;
            counters.freed_bytes += api.bytes;
        }
    }
    // Host memory that came through device-class APIs belongs to the host.
    let moved = |what: HostViaDevice| cells::sum(|s: &Stripe| &s.host_via_device[what as usize]);
    let sign = |n: u64| if pool == DEVICE { n.wrapping_neg() } else { n };
    counters.alloc_calls = counters.alloc_calls.wrapping_add(sign(moved(HostViaDevice::Allocs)));
    counters.alloc_bytes = counters.alloc_bytes.wrapping_add(sign(moved(HostViaDevice::AllocBytes)));
    counters.failed_calls = counters.failed_calls.wrapping_add(sign(moved(HostViaDevice::Failures)));
    counters.free_calls = counters.free_calls.wrapping_add(sign(moved(HostViaDevice::Frees)));
    counters.freed_bytes = counters.freed_bytes.wrapping_add(sign(moved(HostViaDevice::FreedBytes)));
    counters.untracked_frees = cells::sum(|s: &Stripe| &s.untracked_frees[pool]);
    (counters.live_bytes, counters.peak_live_bytes) = if pool == DEVICE {
        let (live, peak, _) = pools::device_totals();
        (live, peak)
    } else {
        (pools::HOST.live.load(Relaxed), pools::HOST.peak.load(Relaxed))
    };
    counters
}

fn by_api() -> BTreeMap<String, ApiCounters> {
    runtime::all_hooks()
        .map(|(index, _, hook)| (hook.name().to_owned(), api_counters(index)))
        .filter(|(_, c)| c.calls > 0)
        .collect()
}

fn histogram() -> Vec<format::Bucket> {
    (0..histogram::BUCKETS)
        .filter_map(|i| {
            let count = cells::sum(|s: &Stripe| &s.hist_count[i]);
            let (lo, hi) = histogram::bounds(i);
            (count > 0).then(|| format::Bucket { lo, hi, count, bytes: cells::sum(|s: &Stripe| &s.hist_bytes[i]) })
        })
        .collect()
}

fn devices() -> Vec<Device> {
    (0..MAX_DEVICES)
        .filter_map(|slot| {
            let level = &pools::DEVICES[slot];
            let device = Device {
                device: if slot == OTHER_DEVICE_SLOT { -1 } else { slot as i32 },
                live_bytes: level.live.load(Relaxed),
                peak_live_bytes: level.peak.load(Relaxed),
                alloc_calls: cells::sum(|s: &Stripe| &s.device_calls[slot]),
                alloc_bytes: cells::sum(|s: &Stripe| &s.device_bytes[slot]),
            };
            (device.alloc_calls > 0 || device.peak_live_bytes > 0).then_some(device)
        })
        .collect()
}

/// Library names of call site slots, read from the loader's maps once per
/// snapshot for every slot in use.
struct SiteNames(Vec<Option<String>>);

impl SiteNames {
    fn now() -> SiteNames {
        let used: Vec<usize> =
            (0..CALLSITES).filter(|&slot| cells::sum(|s: &Stripe| &s.site_calls[slot]) > 0).collect();
        let mut names = vec![None; CALLSITES];
        for (&slot, name) in used.iter().zip(callsites::library_names(&used)) {
            names[slot] = Some(name);
        }
        SiteNames(names)
    }

    fn used(&self) -> impl Iterator<Item = (usize, &str)> {
        self.0.iter().enumerate().filter_map(|(slot, name)| Some((slot, name.as_deref()?)))
    }

    fn of(&self, slot: usize) -> &str {
        self.0.get(slot).and_then(|n| n.as_deref()).unwrap_or(objects::UNKNOWN)
    }
}

/// Holders by site made holders by library (sites of one library added up).
fn held_by_library(names: &SiteNames, sites: &[(usize, u64)], pool: Pool) -> Vec<Held> {
    let mut by_library: Vec<Held> = Vec::new();
    for &(site, bytes) in sites {
        let library = names.of(site);
        match by_library.iter_mut().find(|h| h.library == library) {
            Some(held) => held.bytes += bytes,
            None => by_library.push(Held { library: library.to_owned(), pool, bytes }),
        }
    }
    by_library.sort_by_key(|h| std::cmp::Reverse(h.bytes));
    by_library
}

fn callers(names: &SiteNames) -> Vec<Caller> {
    let device_live = held::per_site(DEVICE);
    let host_live = held::per_site(HOST);
    let (device_peak, host_peak) = (peak::read(DEVICE), peak::read(HOST));
    let mut by_library: BTreeMap<String, Caller> = BTreeMap::new();
    for (slot, library) in names.used() {
        let entry = by_library
            .entry(library.to_owned())
            .or_insert_with(|| Caller { library: library.to_owned(), ..Caller::default() });
        entry.calls += cells::sum(|s: &Stripe| &s.site_calls[slot]);
        entry.failures += cells::sum(|s: &Stripe| &s.site_failures[slot]);
        entry.bytes += cells::sum(|s: &Stripe| &s.site_bytes[slot]);
        entry.live.device += device_live[slot];
        entry.live.host += host_live[slot];
        entry.at_peak.device += device_peak[slot];
        entry.at_peak.host += host_peak[slot];
    }
    let mut callers: Vec<Caller> = by_library.into_values().collect();
    callers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.calls.cmp(&a.calls)));
    callers
}

/// What followed a kept failure (see `format::Outcome`).
fn outcome(slot: &failures::Slot, successes_now: u64, is_final: bool) -> Outcome {
    if slot.recovered.load(Relaxed) {
        Outcome::Recovered
    } else if successes_now > slot.successes_before.load(Relaxed) {
        Outcome::Survived
    } else if is_final {
        Outcome::Fatal
    } else {
        Outcome::Unknown
    }
}

fn failures(names: &SiteNames, is_final: bool) -> (Vec<Failure>, u64) {
    let seen = failures::SEEN.load(Acquire);
    let successes_now = super::successful_allocations();
    let kept: Vec<Failure> = failures::SLOTS
        .iter()
        .take(seen.min(failures::CAPACITY as u64) as usize)
        .filter(|slot| slot.ready.load(Acquire))
        .map(|slot| {
            let known = |v: u64| (v != u64::MAX).then_some(v);
            Failure {
                api: runtime::hook(slot.api.load(Relaxed)).map_or("?", |(_, h)| h.name()).to_owned(),
                size: slot.size.load(Relaxed),
                code: slot.code.load(Relaxed),
                device: slot.device.load(Relaxed),
                live_bytes: slot.live_bytes.load(Relaxed),
                device_free: known(slot.device_free.load()),
                device_total: known(slot.device_total.load()),
                t_ms: slot.t_ms.load(Relaxed),
                outcome: Some(outcome(slot, successes_now, is_final)),
                held: held_by_library(names, &slot.held.read(), super::pool_kind(slot.pool.load(Relaxed))),
            }
        })
        .collect();
    (kept, seen.saturating_sub(failures::CAPACITY as u64))
}

fn marks(names: &SiteNames) -> (Vec<Mark>, u64) {
    let seen = marks::SEEN.load(Acquire);
    let kept = marks::SLOTS
        .iter()
        .take(seen.min(MARKS_KEPT as u64) as usize)
        .filter(|slot| slot.ready.load(Acquire))
        .map(|slot| {
            let mut held = held_by_library(names, &slot.device_held.read(), Pool::Device);
            held.extend(held_by_library(names, &slot.host_held.read(), Pool::Host));
            let used = slot.device_used.load();
            Mark {
                name: String::from_utf8_lossy(&slot.name()).into_owned(),
                t_ms: slot.t_ms.load(Relaxed),
                device_live_bytes: slot.device_live.load(Relaxed),
                host_live_bytes: slot.host_live.load(Relaxed),
                device_used_bytes: (used != u64::MAX).then_some(used),
                held,
            }
        })
        .collect();
    (kept, seen.saturating_sub(MARKS_KEPT as u64))
}

/// The timeline with its holders renumbered to the libraries it names.
fn timeline_of(timeline: &Timeline) -> format::Timeline {
    let mut libraries: Vec<TimelineLibrary> = Vec::new();
    let mut index_of_key: BTreeMap<u32, u32> = BTreeMap::new();
    let samples = timeline
        .samples()
        .iter()
        .map(|sample| {
            let held = sample
                .held
                .iter()
                .map(|&(key, bytes)| {
                    let index = *index_of_key.entry(key).or_insert_with(|| {
                        let library = timeline.libraries.get(key as usize / 2).cloned().unwrap_or_default();
                        libraries.push(TimelineLibrary { library, pool: timeline::pool_of_key(key as usize) });
                        libraries.len() as u32 - 1
                    });
                    (index, bytes)
                })
                .collect();
            format::Sample { held, ..sample.clone() }
        })
        .collect();
    format::Timeline { interval_ms: timeline.interval_ms, samples, libraries }
}

fn config(spec: &'static RuntimeSpec) -> format::Config {
    let lossy = |v: &Option<Vec<u8>>| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
    match origin::config(spec) {
        Some(c) => format::Config {
            var: c.var.to_owned(),
            before: lossy(&c.before),
            after: lossy(&c.after),
            rule: c.rule.to_owned(),
            applied: c.applied,
        },
        None => format::Config { var: spec.conf_var.to_owned(), ..format::Config::default() },
    }
}

pub fn build(timeline: &Timeline, is_final: bool) -> Recording {
    peak::POOLS.into_iter().for_each(|pool| peak::if_higher(pool, None));
    let names = SiteNames::now();
    let (failures, failures_dropped) = failures(&names, is_final);
    let (marks, marks_dropped) = marks(&names);
    let times = super::lifecycle::times();
    let spec = origin::recorded_runtime(|index| api_counters(index).calls > 0);
    Recording {
        schema: format::SCHEMA.to_owned(),
        runtime: spec.name.to_owned(),
        library_version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        // SAFETY: getppid has no preconditions.
        ppid: unsafe { libc::getppid() } as u32,
        hostname: super::lifecycle::hostname(),
        argv: origin::argv().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
        started_unix_ms: times.started_unix_ms,
        written_unix_ms: super::lifecycle::unix_ms(),
        is_final,
        config: config(spec),
        totals: pool_counters(DEVICE),
        totals_peak_is_upper_bound: !pools::device_totals().2,
        host: pool_counters(HOST),
        by_api: by_api(),
        histogram: histogram(),
        devices: devices(),
        callers: callers(&names),
        failures,
        failures_dropped,
        timeline: timeline_of(timeline),
        errors: format::Errors {
            panics: super::PANICS.load(Relaxed),
            unresolved_calls: super::UNRESOLVED.load(Relaxed),
            table_full: super::TABLE_FULL.load(Relaxed),
            null_results: super::NULL_RESULTS.load(Relaxed),
            write_errors: super::WRITE_ERRORS.load(Relaxed),
        },
        marks,
        marks_dropped,
        device_readings: super::used::ASKED.load(Relaxed),
    }
}
