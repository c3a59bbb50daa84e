//! The recording format `npu-alloc-shim/1` (docs/recording-format.md): one
//! JSON object per process. Shared by the library (writer) and the CLI
//! (reader); readers refuse a schema they do not know.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: &str = "npu-alloc-shim/1";

/// Marks kept per process; later ones are counted in `marks_dropped`.
pub const MARKS_KEPT: usize = 256;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    pub schema: String,
    pub runtime: String,
    pub library_version: String,
    pub pid: u32,
    pub ppid: u32,
    pub hostname: String,
    pub argv: Vec<String>,
    pub started_unix_ms: u64,
    pub written_unix_ms: u64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub config: Config,
    pub totals: Counters,
    /// True when the process used several devices: `totals.peak_live_bytes`
    /// is then the sum of the device peaks, an upper bound.
    #[serde(default)]
    pub totals_peak_is_upper_bound: bool,
    pub host: Counters,
    pub by_api: BTreeMap<String, ApiCounters>,
    pub histogram: Vec<Bucket>,
    pub devices: Vec<Device>,
    pub callers: Vec<Caller>,
    pub failures: Vec<Failure>,
    pub failures_dropped: u64,
    pub timeline: Timeline,
    pub errors: Errors,
    /// Phase marks (`npu_alloc_shim_mark`), in order; the first `MARKS_KEPT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    #[serde(default)]
    pub marks_dropped: u64,
    /// Times the library asked the runtime for the device's used memory
    /// (the timeline's `device_used_bytes`), besides one ask per failure.
    #[serde(default)]
    pub device_readings: u64,
}

/// Libraries named per moment (failure, mark, timeline sample): the largest
/// holders; the rest is "other" (the pool's live bytes minus these).
pub const HELD_TOP: usize = 8;

/// Which memory a figure is about.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    #[default]
    Device,
    /// Pinned host memory.
    Host,
}

/// Bytes one calling library held at one moment, in one pool.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Held {
    pub library: String,
    pub pool: Pool,
    pub bytes: u64,
}

/// What followed a failed allocation in the same process.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The same thread later allocated the same size class: the allocator
    /// freed cached memory and retried.
    Recovered,
    /// No retry succeeded, but the process went on allocating (the program
    /// caught the error).
    Survived,
    /// Nothing was allocated after it before the process ended.
    Fatal,
    /// Nothing was allocated after it yet, and the recording was not
    /// written at exit (the process was still running, or was killed).
    Unknown,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Survived => "survived",
            Outcome::Fatal => "fatal",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A phase mark: a name the program gave a moment, with what was held then.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mark {
    pub name: String,
    pub t_ms: u64,
    pub device_live_bytes: u64,
    pub host_live_bytes: u64,
    /// The device's own view of used memory (total - free), latest sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_used_bytes: Option<u64>,
    #[serde(default)]
    pub held: Vec<Held>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub var: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub rule: String,
    pub applied: bool,
}

/// Also the C API's `struct npu_alloc_shim_totals` (same fields, same order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    pub alloc_calls: u64,
    pub failed_calls: u64,
    pub free_calls: u64,
    pub untracked_frees: u64,
    pub alloc_bytes: u64,
    pub freed_bytes: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiCounters {
    pub calls: u64,
    pub failures: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bucket {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub device: i32,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
    pub alloc_calls: u64,
    pub alloc_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Caller {
    pub library: String,
    pub calls: u64,
    pub failures: u64,
    /// Bytes allocated over the run (device and host).
    pub bytes: u64,
    /// Bytes held now (at the write), per pool.
    #[serde(default)]
    pub live: PoolBytes,
    /// Bytes held when the pool's live bytes were highest (the timeline
    /// sample with the highest value).
    #[serde(default)]
    pub at_peak: PoolBytes,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PoolBytes {
    pub device: u64,
    pub host: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub api: String,
    pub size: u64,
    pub code: i32,
    pub device: i32,
    pub live_bytes: u64,
    pub device_free: Option<u64>,
    pub device_total: Option<u64>,
    pub t_ms: u64,
    /// Absent in recordings of versions before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The largest holders at that moment, in the failed allocation's pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Timeline {
    pub interval_ms: u64,
    pub samples: Vec<Sample>,
    /// What the samples' `held` indexes name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<TimelineLibrary>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimelineLibrary {
    pub library: String,
    pub pool: Pool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sample {
    pub t_ms: u64,
    pub live_bytes: u64,
    pub max_live_bytes: u64,
    /// Pinned host memory held through the hooked calls.
    #[serde(default)]
    pub host_live_bytes: u64,
    /// The device's own view of used memory (total - free from the runtime,
    /// asked on an application thread at most one interval before), summed
    /// over the devices the process used; null when not asked recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_used_bytes: Option<u64>,
    /// Device memory held by the framework's caching allocator (torch's
    /// libraries); `device_used_bytes - framework_bytes` is what vLLM calls
    /// non-torch memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_bytes: Option<u64>,
    /// The largest holders: [index into `timeline.libraries`, bytes].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<(u32, u64)>,
}

impl Sample {
    /// Non-torch memory as vLLM computes it (device used - torch-held).
    pub fn non_framework_bytes(&self) -> Option<u64> {
        Some(self.device_used_bytes?.saturating_sub(self.framework_bytes?))
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Errors {
    pub panics: u64,
    pub unresolved_calls: u64,
    pub table_full: u64,
    /// Successful allocations that returned a NULL pointer (not tracked).
    #[serde(default)]
    pub null_results: u64,
    pub write_errors: u64,
}

/// Histogram geometry shared by writer and readers: sizes 0..4 get one bucket
/// each; above, each power of two [2^k, 2^(k+1)) is split into 4 equal parts.
pub mod histogram {
    /// 4 single-size buckets + 4 per power of two from 2^2 to 2^63.
    pub const BUCKETS: usize = 4 + 62 * 4;

    pub fn index(size: u64) -> usize {
        if size < 4 {
            return size as usize;
        }
        let k = 63 - size.leading_zeros() as usize; // 2 <= k <= 63
        let quarter = ((size >> (k - 2)) & 3) as usize;
        4 + (k - 2) * 4 + quarter
    }

    /// `[lo, hi)` of a bucket; `hi` saturates at u64::MAX for the last one.
    pub fn bounds(index: usize) -> (u64, u64) {
        if index < 4 {
            return (index as u64, index as u64 + 1);
        }
        let k = (index - 4) / 4 + 2;
        let quarter = ((index - 4) % 4) as u64;
        let step = 1u64 << (k - 2);
        let lo = (1u64 << k) + quarter * step;
        (lo, lo.saturating_add(step))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_size_falls_in_its_bucket() {
            let mut sizes = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 511, 512, 513, 1 << 20, (1 << 20) + 1, 3 << 30];
            sizes.extend([u64::MAX, u64::MAX - 1, 1 << 63]);
            for size in sizes {
                let i = index(size);
                let (lo, hi) = bounds(i);
                assert!(i < BUCKETS);
                assert!(lo <= size && (size < hi || hi == u64::MAX), "{size} in [{lo},{hi})");
            }
        }

        #[test]
        fn buckets_tile_the_range_in_quarters() {
            assert_eq!(bounds(index(1024)), (1024, 1280));
            assert_eq!(bounds(index(1279)), (1024, 1280));
            assert_eq!(bounds(index(1280)), (1280, 1536));
            assert_eq!(bounds(index(2047)), (1792, 2048));
            for i in 0..BUCKETS - 1 {
                assert_eq!(bounds(i).1, bounds(i + 1).0, "bucket {i}");
            }
        }
    }
}
