//! Safe quoting of untrusted bytes for one-line messages.

/// Quotes bytes for a message: printable ASCII as is, everything else
/// escaped, and cut once the quoted text reaches `limit` characters (the
/// length is then stated), so hostile bytes cannot make a message long.
pub fn quote(bytes: &[u8], limit: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(limit) + 24);
    out.push('"');
    let mut taken = 0;
    for &byte in bytes {
        if out.len() > limit {
            break;
        }
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
        taken += 1;
    }
    out.push('"');
    if taken < bytes.len() {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// A token of a value for a message: as is when it is short printable ASCII
/// (so torch_npu's own wording reads the same), else quoted and cut.
pub fn token(bytes: &[u8]) -> String {
    const TOKEN_LIMIT: usize = 64;
    if bytes.len() <= TOKEN_LIMIT && bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        quote(bytes, TOKEN_LIMIT)
    }
}

/// The limit used in library messages.
pub const MESSAGE_LIMIT: usize = 200;

#[cfg(test)]
mod tests {
    use super::{quote, token};

    #[test]
    fn escapes_control_and_non_ascii_bytes() {
        assert_eq!(quote(b"a\tb\xff\"", 100), "\"a\\tb\\xff\\\"\"");
    }

    #[test]
    fn tokens_stay_readable_and_hostile_ones_are_quoted() {
        assert_eq!(token(b"bogus"), "bogus");
        assert_eq!(token(b"a\x1b[2J"), "\"a\\x1b[2J\"");
        assert!(token(&[b'k'; 1000]).len() < 100);
    }

    #[test]
    fn states_the_length_when_cut() {
        assert_eq!(quote(b"abcdef", 3), "\"abc\"... (6 bytes)");
    }
}
