//! Safe quoting of untrusted bytes for one-line messages.

/// Quotes bytes for a message: printable ASCII as is, everything else escaped,
/// and at most `limit` input bytes shown (the length is stated when cut).
pub fn quote(bytes: &[u8], limit: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(limit) + 2);
    out.push('"');
    for &byte in bytes.iter().take(limit) {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > limit {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// The limit used in library messages.
pub const MESSAGE_LIMIT: usize = 200;

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn escapes_control_and_non_ascii_bytes() {
        assert_eq!(quote(b"a\tb\xff\"", 100), "\"a\\tb\\xff\\\"\"");
    }

    #[test]
    fn states_the_length_when_cut() {
        assert_eq!(quote(b"abcdef", 3), "\"abc\"... (6 bytes)");
    }
}
