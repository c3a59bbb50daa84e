//! torch_npu's own memory dump, `device_<N>_memUsageInfo_<YYYYmmddHHMMSS>.csv`:
//! the runtime's memory per CANN module (`aclrtGetMemUsageInfo`), written by
//! torch_npu 2.10 (`saveDevMemUsageInfo`) on `_dump_snapshot` and, with
//! `OOM_SNAPSHOT_ENABLE`, on out of memory, into `OOM_SNAPSHOT_PATH` or the
//! working directory. The report reads such files and ties each to the
//! recorded out-of-memory failure it follows (docs/reports.md).

use super::merge::FailureRecord;
use super::units::{bytes, seconds, truncate};
use serde::Serialize;
use std::path::Path;

/// torch_npu writes at most 128 modules; more rows than that are not its file.
const MAX_MODULES: usize = 128;
/// Bytes read of one file: 128 rows of a 32-byte name and two numbers fit.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Dumps kept per report.
pub const MAX_DUMPS: usize = 64;
const HEADER: &str = "moduleName,curMemSize(MB),memPeakSize(MB)";
/// How long after a failure a dump still belongs to it: torch_npu writes it
/// in the failing call's OOM observer, after the memory history's snapshot.
const MATCH_WINDOW_MS: u64 = 10 * 60 * 1000;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub current_bytes: u64,
    pub peak_bytes: u64,
}

/// The failure a dump was written after.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DumpFailure {
    pub hostname: String,
    pub pid: u32,
    pub api: String,
    pub size: u64,
    /// ms since that process loaded the library.
    pub t_ms: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MemUsageDump {
    pub file: String,
    pub device: i32,
    /// The time in the file's name (local time of the writer, to the second).
    pub written_local: String,
    /// That time read in this machine's time zone.
    pub written_unix_ms: Option<u64>,
    /// From torch_npu's `oom_snapshot_<pid>_<same time>.pickle` beside it.
    pub pid: Option<u32>,
    /// As torch_npu wrote them (the runtime's order: largest first).
    pub modules: Vec<Module>,
    pub follows: Option<DumpFailure>,
}

impl MemUsageDump {
    /// `after host pid 7: aclrtMalloc of 2.0 GiB failed at 3.2 s`.
    pub fn describe_follows(&self) -> String {
        self.follows.as_ref().map_or_else(
            || "no recorded out-of-memory failure before it".to_owned(),
            |f| {
                format!(
                    "after {} pid {}: {} of {} failed at {}",
                    f.hostname,
                    f.pid,
                    f.api,
                    bytes(f.size),
                    seconds(f.t_ms)
                )
            },
        )
    }
}

/// Whether a file name is torch_npu's dump: `(device, YYYYmmddHHMMSS)`.
pub fn dump_name(name: &str) -> Option<(i32, &str)> {
    let rest = name.strip_prefix("device_")?.strip_suffix(".csv")?;
    let (device, time) = rest.split_once("_memUsageInfo_")?;
    let device = device.parse::<i32>().ok().filter(|d| *d >= 0)?;
    (time.len() == 14 && time.bytes().all(|b| b.is_ascii_digit())).then_some((device, time))
}

/// `YYYYmmddHHMMSS` as `YYYY-mm-dd HH:MM:SS`.
fn readable(time: &str) -> String {
    format!("{}-{}-{} {}:{}:{}", &time[0..4], &time[4..6], &time[6..8], &time[8..10], &time[10..12], &time[12..14])
}

/// The local time `YYYYmmddHHMMSS` as Unix ms, in this machine's zone.
fn local_to_unix_ms(time: &str) -> Option<u64> {
    let field = |range: std::ops::Range<usize>| time.get(range)?.parse::<i32>().ok();
    // SAFETY: an all-zero `tm` is a valid value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = field(0..4)? - 1900;
    tm.tm_mon = field(4..6)? - 1;
    tm.tm_mday = field(6..8)?;
    tm.tm_hour = field(8..10)?;
    tm.tm_min = field(10..12)?;
    tm.tm_sec = field(12..14)?;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises the struct we own.
    let seconds = unsafe { libc::mktime(&mut tm) };
    u64::try_from(seconds).ok().map(|s| s * 1000)
}

/// The pid of a snapshot written in the same second beside the dump.
fn sibling_pid(dir: &Path, time: &str) -> Option<u32> {
    let suffix = format!("_{time}.pickle");
    let mut pids = std::fs::read_dir(dir).ok()?.flatten().filter_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        name.strip_prefix("oom_snapshot_")?.strip_suffix(suffix.as_str())?.parse::<u32>().ok()
    });
    let pid = pids.next()?;
    // Two processes' snapshots in the same second: the pid is not known.
    pids.next().is_none().then_some(pid)
}

/// MB with torch_npu's 4 decimals, as bytes.
fn megabytes(text: &str) -> Option<u64> {
    let value: f64 = text.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * 1048576.0).round() as u64)
}

fn parse(text: &str) -> Result<Vec<Module>, String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some(HEADER) {
        return Err(format!("not a torch_npu memory dump: the first line is not {HEADER:?}"));
    }
    let mut modules = Vec::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if modules.len() == MAX_MODULES {
            return Err(format!("more than {MAX_MODULES} modules"));
        }
        // Names come unquoted from the runtime: the numbers are the last two fields.
        let mut fields = line.rsplitn(3, ',');
        let (peak, current, name) = (fields.next(), fields.next(), fields.next());
        let row = || format!("line {}: expected name,current MB,peak MB", n + 2);
        let (Some(peak), Some(current), Some(name)) = (peak, current, name) else { return Err(row()) };
        let (Some(current_bytes), Some(peak_bytes)) = (megabytes(current), megabytes(peak)) else { return Err(row()) };
        modules.push(Module { name: truncate(name, 64), current_bytes, peak_bytes });
    }
    Ok(modules)
}

/// Reads one dump; the problem when it is not one.
pub fn read(path: &Path) -> Result<MemUsageDump, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((device, time)) = dump_name(name) else {
        return Err("not named device_<N>_memUsageInfo_<YYYYmmddHHMMSS>.csv".to_owned());
    };
    let meta = std::fs::metadata(path).map_err(|e| super::load::io_problem(&e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes: not torch_npu's dump"));
    }
    let bytes = std::fs::read(path).map_err(|e| super::load::io_problem(&e))?;
    let modules = parse(&String::from_utf8_lossy(&bytes))?;
    Ok(MemUsageDump {
        file: truncate(&path.display().to_string(), super::summary::TEXT_LIMIT),
        device,
        written_local: readable(time),
        written_unix_ms: local_to_unix_ms(time),
        pid: path.parent().and_then(|dir| sibling_pid(dir, time)),
        modules,
        follows: None,
    })
}

/// Ties each dump to the out-of-memory failure on its device (and of its
/// process, when the snapshot beside it names one) that came last before it.
pub fn attach(dumps: &mut [MemUsageDump], failures: &[FailureRecord]) {
    for dump in dumps {
        let Some(at) = dump.written_unix_ms else { continue };
        // The name has whole seconds: the failure may be up to 1 s later.
        let candidates = failures.iter().filter(|f| {
            f.out_of_memory
                && f.failure.device == dump.device
                && dump.pid.is_none_or(|pid| pid == f.pid)
                && f.at_unix_ms < at + 1000
                && at.saturating_sub(f.at_unix_ms) <= MATCH_WINDOW_MS
        });
        dump.follows = candidates.max_by_key(|f| f.at_unix_ms).map(|f| DumpFailure {
            hostname: f.hostname.clone(),
            pid: f.pid,
            api: f.failure.api.clone(),
            size: f.failure.size,
            t_ms: f.failure.t_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rows_as_torch_npu_writes_them() {
        assert_eq!(dump_name("device_3_memUsageInfo_20261202143005.csv"), Some((3, "20261202143005")));
        for bad in ["device_x_memUsageInfo_20261202143005.csv", "device_0_memUsageInfo_2026.csv", "device_0.csv"] {
            assert_eq!(dump_name(bad), None, "{bad}");
        }
        let rows = parse("moduleName,curMemSize(MB),memPeakSize(MB)\nAPP,3.5000,4.0000\nHCCL,a,b,0.5000,0.5000\n");
        assert_eq!(
            rows.unwrap(),
            [
                Module { name: "APP".into(), current_bytes: 3670016, peak_bytes: 4 << 20 },
                Module { name: "HCCL,a,b".into(), current_bytes: 1 << 19, peak_bytes: 1 << 19 },
            ]
        );
        assert!(parse("a,b,c\n").unwrap_err().contains("not a torch_npu memory dump"));
        assert!(parse(&format!("{HEADER}\nAPP,1.0\n")).unwrap_err().contains("line 2"));
        assert!(parse(&format!("{HEADER}\nAPP,-1.0,2.0\n")).is_err());
        assert_eq!(readable("20261202143005"), "2026-12-02 14:30:05");
    }
}
