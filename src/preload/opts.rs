//! The library's switches, read once from the environment at load. Each
//! `NPU_ALLOC_SHIM_*` variable maps to one field (README's table; a test
//! checks that every variable named here is documented there).

use super::log::{self, Threshold};
use super::process::getenv;
use common::allocconf::decide::Level;
use common::allocconf::switches::{self, parse_switch};
use common::metrics::Ranks;

pub const DISABLE: &str = switches::DISABLE;
pub const NORMALIZE: &str = switches::NORMALIZE;
pub const LOG: &str = "NPU_ALLOC_SHIM_LOG";
pub const TRACE: &str = "NPU_ALLOC_SHIM_TRACE";
pub const FLUSH_MS: &str = "NPU_ALLOC_SHIM_FLUSH_MS";
pub const DEVICE_READINGS: &str = "NPU_ALLOC_SHIM_DEVICE_READINGS";
pub const METRICS: &str = "NPU_ALLOC_SHIM_METRICS";
pub const METRICS_KEEP: &str = "NPU_ALLOC_SHIM_METRICS_KEEP";
/// The launchers' rank variables (torchrun, vLLM, Ray), labels of the metrics.
const RANK: &str = "RANK";
const LOCAL_RANK: &str = "LOCAL_RANK";

const DEFAULT_FLUSH_MS: u64 = 2000;

#[derive(Clone, Debug)]
pub struct Opts {
    pub disabled: bool,
    pub normalize: bool,
    /// Recording path template; recording is off without it.
    pub trace: Option<Vec<u8>>,
    /// Milliseconds between periodic writes; 0 = only at exit.
    pub flush_ms: u64,
    /// Whether the timeline asks the runtime for the device's used memory.
    pub device_readings: bool,
    /// Directory of the Prometheus files; off without it.
    pub metrics: Option<Vec<u8>>,
    /// Write the final metrics at exit instead of removing the file.
    pub keep_metrics: bool,
    pub ranks: Ranks,
}

/// A switch as `parse_switch` reads it (shared with `check`); an unknown
/// value is reported and ignored.
fn flag(name: &str) -> Option<bool> {
    let value = getenv(name)?;
    let parsed = parse_switch(&value);
    if parsed.is_none() {
        log::hold(Level::Warn, &format!("{name}: unrecognised value, expected 0 or 1; ignored"));
    }
    parsed
}

/// A variable's value as a label: lossy UTF-8, at most 32 characters.
fn short_text(name: &str) -> Option<String> {
    let value = getenv(name)?;
    Some(String::from_utf8_lossy(&value).chars().take(32).collect())
}

impl Opts {
    pub fn from_env() -> Opts {
        let log = match getenv(LOG) {
            None => Threshold::Info,
            Some(text) => Threshold::parse(&text).unwrap_or_else(|| {
                log::hold(Level::Warn, &format!("{LOG}: expected off, warn, info or debug; using info"));
                Threshold::Info
            }),
        };
        log::set_threshold(log);
        let trace = getenv(TRACE).filter(|path| !path.is_empty());
        let flush_ms = match getenv(FLUSH_MS) {
            None => DEFAULT_FLUSH_MS,
            Some(text) => std::str::from_utf8(&text).ok().and_then(|t| t.trim().parse().ok()).unwrap_or_else(|| {
                log::hold(Level::Warn, &format!("{FLUSH_MS}: expected milliseconds; using {DEFAULT_FLUSH_MS}"));
                DEFAULT_FLUSH_MS
            }),
        };
        Opts {
            disabled: flag(DISABLE).unwrap_or(false),
            normalize: flag(NORMALIZE).unwrap_or(true),
            trace,
            flush_ms,
            device_readings: flag(DEVICE_READINGS).unwrap_or(true),
            metrics: getenv(METRICS).filter(|dir| !dir.is_empty()),
            keep_metrics: flag(METRICS_KEEP).unwrap_or(false),
            ranks: Ranks { rank: short_text(RANK), local_rank: short_text(LOCAL_RANK) },
        }
    }
}
