//! Builds a `Recording` from the recorder's state. Runs off the hot path
//! (flusher thread, exit, C API), so it may allocate and ask the loader.

use super::cells::{self, Stripe};
use super::origin;
use super::timeline::Timeline;
use super::{CALLSITES, DEVICE, HOST, MAX_DEVICES, OTHER_DEVICE_SLOT, callsites, failures, objects, pools};
use common::format::{self, ApiCounters, Caller, Counters, Device, Failure, Recording, histogram};
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

fn callers() -> Vec<Caller> {
    let slots: Vec<usize> = (0..CALLSITES).filter(|&slot| cells::sum(|s: &Stripe| &s.site_calls[slot]) > 0).collect();
    let addresses: Vec<usize> = slots
        .iter()
        .map(|&slot| if slot == callsites::OVERFLOW { 0 } else { callsites::ADDRESSES[slot].load(Acquire) })
        .collect();
    let libraries = objects::names_of(&addresses);
    let mut by_library: BTreeMap<String, Caller> = BTreeMap::new();
    for (&slot, library) in slots.iter().zip(libraries) {
        let library = if slot == callsites::OVERFLOW { "(other call sites)".to_owned() } else { library };
        let entry = by_library.entry(library.clone()).or_insert_with(|| Caller { library, ..Caller::default() });
        entry.calls += cells::sum(|s: &Stripe| &s.site_calls[slot]);
        entry.failures += cells::sum(|s: &Stripe| &s.site_failures[slot]);
        entry.bytes += cells::sum(|s: &Stripe| &s.site_bytes[slot]);
    }
    let mut callers: Vec<Caller> = by_library.into_values().collect();
    callers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.calls.cmp(&a.calls)));
    callers
}

fn failures() -> (Vec<Failure>, u64) {
    let seen = failures::SEEN.load(Acquire);
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
                device_free: known(slot.device_free.load(Relaxed)),
                device_total: known(slot.device_total.load(Relaxed)),
                t_ms: slot.t_ms.load(Relaxed),
            }
        })
        .collect();
    (kept, seen.saturating_sub(failures::CAPACITY as u64))
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
    let (failures, failures_dropped) = failures();
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
        callers: callers(),
        failures,
        failures_dropped,
        timeline: format::Timeline { interval_ms: timeline.interval_ms, samples: timeline.samples().to_vec() },
        errors: format::Errors {
            panics: super::PANICS.load(Relaxed),
            unresolved_calls: super::UNRESOLVED.load(Relaxed),
            table_full: super::TABLE_FULL.load(Relaxed),
            null_results: super::NULL_RESULTS.load(Relaxed),
            write_errors: super::WRITE_ERRORS.load(Relaxed),
        },
    }
}
