//! The library's switches, read once from the environment at load. Each
//! `NPU_ALLOC_SHIM_*` variable maps to one field (README's table; a test
//! checks that every variable named here is documented there).

use super::log::{self, Threshold};
use super::process::getenv;
use crate::allocconf::decide::Level;

pub const DISABLE: &str = "NPU_ALLOC_SHIM_DISABLE";
pub const NORMALIZE: &str = "NPU_ALLOC_SHIM_NORMALIZE";
pub const LOG: &str = "NPU_ALLOC_SHIM_LOG";

/// Every variable the library reads, for the README check.
pub const ALL: [&str; 3] = [DISABLE, NORMALIZE, LOG];

#[derive(Clone, Debug)]
pub struct Opts {
    pub disabled: bool,
    pub normalize: bool,
    pub log: Threshold,
}

/// A variable counts as "on" for 1/true/yes/on and "off" for 0/false/no/off.
fn flag(name: &str) -> Option<bool> {
    let value = getenv(name)?;
    match value.to_ascii_lowercase().as_slice() {
        b"1" | b"true" | b"yes" | b"on" => Some(true),
        b"0" | b"false" | b"no" | b"off" | b"" => Some(false),
        _ => {
            log::emit(
                Level::Warn,
                &format!("{name}: unrecognised value, expected 0 or 1; ignored"),
            );
            None
        }
    }
}

impl Opts {
    pub fn from_env() -> Opts {
        let log = match getenv(LOG) {
            None => Threshold::Info,
            Some(text) => Threshold::parse(&text).unwrap_or_else(|| {
                log::emit(
                    Level::Warn,
                    &format!("{LOG}: expected off, warn, info or debug; using info"),
                );
                Threshold::Info
            }),
        };
        log::set_threshold(log);
        Opts {
            disabled: flag(DISABLE).unwrap_or(false),
            normalize: flag(NORMALIZE).unwrap_or(true),
            log,
        }
    }
}
