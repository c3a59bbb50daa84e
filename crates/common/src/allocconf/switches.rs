//! The library's on/off switches and how their values are read. Shared so
//! that `npu-alloc-shim check` reads them exactly as the constructor does.

/// `NPU_ALLOC_SHIM_DISABLE=1`: the library does nothing at all.
pub const DISABLE: &str = "NPU_ALLOC_SHIM_DISABLE";
/// `NPU_ALLOC_SHIM_NORMALIZE=0`: no normalization (hooks may still run).
pub const NORMALIZE: &str = "NPU_ALLOC_SHIM_NORMALIZE";

/// Reads a switch value: "on" for 1/true/yes/on, "off" for 0/false/no/off
/// and the empty string (any case); `None` for anything else, which callers
/// treat as unset after saying so.
pub fn parse_switch(value: &[u8]) -> Option<bool> {
    match value.to_ascii_lowercase().as_slice() {
        b"1" | b"true" | b"yes" | b"on" => Some(true),
        b"0" | b"false" | b"no" | b"off" | b"" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_switch;

    #[test]
    fn reads_every_spelling_in_any_case() {
        for on in ["1", "true", "TRUE", "Yes", "on"] {
            assert_eq!(parse_switch(on.as_bytes()), Some(true), "{on}");
        }
        for off in ["0", "false", "False", "NO", "off", ""] {
            assert_eq!(parse_switch(off.as_bytes()), Some(false), "{off}");
        }
        for other in ["2", " 1", "enable", "\u{fffd}"] {
            assert_eq!(parse_switch(other.as_bytes()), None, "{other}");
        }
    }
}
