//! The decision marker passed to child processes in the environment.
//!
//! Workers are spawned with other command lines (vLLM's engine cores do not
//! repeat `--enable-sleep-mode`), so a process records what it decided and its
//! children follow: `kept` means "leave the configuration alone";
//! `set:<VAR>:<hash>` means "this library wrote VAR with this value", so a
//! child finding the same value knows it is applied, and a child finding
//! another value knows somebody changed it on purpose. The variable is the
//! runtime's `marker_var`.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A parent left the configuration alone.
    Kept,
    /// A parent wrote `var`; `hash` is the FNV-1a hash of what it wrote.
    Set { var: String, hash: u64 },
}

impl Marker {
    pub fn parse(text: &[u8]) -> Option<Marker> {
        if text == b"kept" {
            return Some(Marker::Kept);
        }
        let text = std::str::from_utf8(text).ok()?;
        let rest = text.strip_prefix("set:")?;
        let (var, hash) = rest.rsplit_once(':')?;
        if var.is_empty() || hash.len() != 16 {
            return None;
        }
        Some(Marker::Set { var: var.to_owned(), hash: u64::from_str_radix(hash, 16).ok()? })
    }

    pub fn render(&self) -> String {
        match self {
            Marker::Kept => "kept".to_owned(),
            Marker::Set { var, hash } => format!("set:{var}:{hash:016x}"),
        }
    }
}

/// FNV-1a, 64 bit: stable across builds and architectures.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for marker in [Marker::Kept, Marker::Set { var: "PYTORCH_NPU_ALLOC_CONF".into(), hash: fingerprint(b"x") }] {
            assert_eq!(Marker::parse(marker.render().as_bytes()), Some(marker));
        }
    }

    #[test]
    fn refuses_malformed_text() {
        for text in ["", "keep", "set:", "set:VAR:12", "set::0123456789abcdef", "set:V:0123456789abcdeg"] {
            assert_eq!(Marker::parse(text.as_bytes()), None, "{text}");
        }
    }
}
