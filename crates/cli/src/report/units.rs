//! How numbers and untrusted strings are shown: binary byte units, signed
//! changes, percentages, and strings made safe for a terminal.

/// `1536` -> `1.5 KiB`; below 1 KiB the exact count (`512 B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A change in bytes with its sign: `+2.8 GiB`, `-512 B`, `0 B`.
pub fn signed_bytes(delta: i128) -> String {
    let magnitude = u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX);
    match delta.signum() {
        1 => format!("+{}", bytes(magnitude)),
        -1 => format!("-{}", bytes(magnitude)),
        _ => bytes(0),
    }
}

/// Relative change `before -> after` in whole percent (`-34%`), or `new`
/// when there was nothing before.
pub fn change_percent(before: u64, after: u64) -> String {
    if before == 0 {
        return if after == 0 { "0%".to_owned() } else { "new".to_owned() };
    }
    let percent = (after as f64 - before as f64) / before as f64 * 100.0;
    format!("{:+.0}%", percent)
}

/// `part` of `whole` in percent, one decimal; 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// Milliseconds as seconds with one decimal (`12.3 s`).
pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A device id as shown: `-1` is the library's slot for devices beyond its
/// table.
pub fn device(id: i32) -> String {
    if id < 0 { "other".to_owned() } else { id.to_string() }
}

/// A string from a recording made safe to print on a terminal: control
/// characters (an escape sequence in a hostile argv could rewrite the screen)
/// become `\u{..}`, and it is cut to `limit` characters.
pub fn terminal_safe(text: &str, limit: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == limit {
            out.push('…');
            break;
        }
        if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts a string to `limit` characters (for bounded summaries).
pub fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The last path component of a library path (`/a/b/libhccl.so` -> `libhccl.so`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().filter(|name| !name.is_empty()).unwrap_or(path)
}

/// `libtorch_npu.so 2.9 GiB`: a holder as tables and findings name it.
pub fn holder(held: &common::format::Held) -> String {
    format!("{} {}", basename(&held.library), bytes(held.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units_and_changes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(signed_bytes(-(1 << 30)), "-1.0 GiB");
        assert_eq!(signed_bytes(2 << 20), "+2.0 MiB");
        assert_eq!(signed_bytes(0), "0 B");
        assert_eq!(change_percent(100, 66), "-34%");
        assert_eq!(change_percent(100, 150), "+50%");
        assert_eq!(change_percent(0, 5), "new");
        assert_eq!(change_percent(0, 0), "0%");
        assert_eq!(device(-1), "other");
    }

    #[test]
    fn terminal_strings_lose_their_control_characters() {
        assert_eq!(terminal_safe("a\u{1b}[2Jb", 100), "a\\u{1b}[2Jb");
        assert_eq!(terminal_safe("x\u{202e}y\n", 100), "x\\u{202e}y\\u{a}");
        assert_eq!(terminal_safe("abcdef", 3), "abc…");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(basename("/usr/lib/libhccl.so"), "libhccl.so");
        assert_eq!(basename("/"), "/");
    }
}
