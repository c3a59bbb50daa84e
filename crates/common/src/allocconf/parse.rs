//! Parser for allocator settings, following torch_npu's `parseArgs` loop:
//! `key : value` pairs separated by `,`, a trailing `,` allowed, keys looked
//! up in the runtime's key table, values checked by the key's rule.

use super::keys;
use super::quote::token;
use super::tokenizer::{Dialect, Token, tokenize};
use crate::runtime::keys::{self as key_table, KeySpec, ValueRule};

/// One parsed `key:value` pair. `value` is the value text as tokens joined
/// (a roundup list keeps its brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    /// The last token is a `,`: appending must not add another one.
    pub ends_with_comma: bool,
}

impl Parsed {
    pub fn has_key(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    pub fn value_of(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }
}

/// Why a value does not parse; `Display` quotes torch_npu's own wording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A separator was expected (`:` after a key, `,` between pairs).
    Expected { expected: char, found: Option<String>, offset: usize },
    /// A word in key position that no version of the backend knows.
    UnknownKey { key: String, offset: usize },
    /// A key with a missing value.
    MissingValue { key: String },
    /// A value the key's rule refuses.
    InvalidValue { key: String, reason: String },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Expected { expected, found: Some(found), offset } => write!(
                f,
                "Error parsing CachingAllocator settings, expected {expected} (found \"{found}\" at byte {offset})"
            ),
            ParseError::Expected { expected, found: None, .. } => {
                write!(f, "Error parsing CachingAllocator settings, expected {expected} (found the end)")
            }
            ParseError::UnknownKey { key, offset } => {
                write!(f, "Unrecognized CachingAllocator option: {key} (at byte {offset})")
            }
            ParseError::MissingValue { key } => write!(f, "Error, expecting {key} value"),
            ParseError::InvalidValue { reason, .. } => f.write_str(reason),
        }
    }
}

struct Cursor<'a> {
    tokens: &'a [Token],
    index: usize,
}

impl Cursor<'_> {
    fn text(&self, index: usize) -> Option<&[u8]> {
        self.tokens.get(index).map(|t| t.text.as_slice())
    }

    fn lossy(&self, index: usize) -> Option<String> {
        self.text(index).map(token)
    }

    fn expect(&mut self, punct: u8) -> Result<(), ParseError> {
        self.index += 1;
        if self.text(self.index) == Some(&[punct][..]) {
            return Ok(());
        }
        let offset = self.tokens.get(self.index).map_or(usize::MAX, |t| t.offset);
        Err(ParseError::Expected { expected: punct as char, found: self.lossy(self.index), offset })
    }

    /// Moves to the value token after `key:`.
    fn value(&mut self, key: &str) -> Result<&[u8], ParseError> {
        self.index += 1;
        self.text(self.index).ok_or_else(|| ParseError::MissingValue { key: key.to_owned() })
    }
}

/// Parses `input` as the given torch_npu tokenizer would, with `table` as the
/// set of keys that exist.
pub fn parse(input: &[u8], dialect: Dialect, table: &[KeySpec]) -> Result<Parsed, ParseError> {
    let tokens = tokenize(input, dialect);
    let mut cursor = Cursor { tokens: &tokens, index: 0 };
    let mut entries = Vec::new();
    while cursor.index < tokens.len() {
        let key_token = &tokens[cursor.index];
        let Some(spec) = key_table::find(table, &key_token.text) else {
            return Err(ParseError::UnknownKey { key: token(&key_token.text), offset: key_token.offset });
        };
        cursor.expect(b':')?;
        let value = match spec.rule {
            ValueRule::RoundupDivisions | ValueRule::CxxRoundupDivisions
                if cursor.text(cursor.index + 1) == Some(b"[") =>
            {
                parse_roundup_list(&mut cursor, spec.name)?
            }
            rule => {
                let text = cursor.value(spec.name)?;
                keys::check_scalar(rule, spec.name, text)
                    .map_err(|reason| ParseError::InvalidValue { key: spec.name.to_owned(), reason })?;
                String::from_utf8_lossy(text).into_owned()
            }
        };
        entries.push(Entry { key: spec.name.to_owned(), value });
        if cursor.index + 1 < tokens.len() {
            cursor.expect(b',')?;
        }
        cursor.index += 1;
    }
    let ends_with_comma = tokens.last().is_some_and(|t| t.text == b",");
    Ok(Parsed { entries, ends_with_comma })
}

/// `[interval:divisions, ..., >:divisions]`, intervals and divisions powers of two.
fn parse_roundup_list(cursor: &mut Cursor<'_>, key: &str) -> Result<String, ParseError> {
    let invalid = |reason: &str| ParseError::InvalidValue { key: key.to_owned(), reason: reason.to_owned() };
    cursor.index += 1; // the '['
    let mut shown = String::from("[");
    loop {
        cursor.index += 1;
        match cursor.text(cursor.index) {
            None => {
                return Err(invalid("Expected closing bracket ']' while parsing roundup_power2_divisions"));
            }
            Some(b"]") => break,
            Some(interval) => {
                // Digits only, as for the scalar form (no sign).
                let is_power = |t: &[u8]| {
                    !t.is_empty()
                        && t.iter().all(u8::is_ascii_digit)
                        && std::str::from_utf8(t)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .is_some_and(u64::is_power_of_two)
                };
                if interval != b">" && !is_power(interval) {
                    return Err(invalid("For roundups, the intervals have to be power of 2"));
                }
                let interval = String::from_utf8_lossy(interval).into_owned();
                cursor.expect(b':')?;
                let divisions = cursor.value(key)?;
                let divisions_ok = divisions == b"0" || is_power(divisions);
                if !divisions_ok {
                    return Err(invalid("For roundups, the divisions has to be power of 2 or 0 to disable roundup"));
                }
                if shown.len() > 1 {
                    shown.push(',');
                }
                shown.push_str(&format!("{interval}:{}", String::from_utf8_lossy(divisions)));
                match cursor.text(cursor.index + 1) {
                    Some(b",") => cursor.index += 1,
                    Some(b"]") => {}
                    None => {
                        return Err(invalid("Expected closing bracket ']' while parsing roundup_power2_divisions"));
                    }
                    other => {
                        return Err(ParseError::Expected {
                            expected: ',',
                            found: other.map(token),
                            offset: cursor.tokens.get(cursor.index + 1).map_or(usize::MAX, |t| t.offset),
                        });
                    }
                }
            }
        }
    }
    shown.push(']');
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::npu::KEYS;

    fn ok(input: &str, dialect: Dialect) -> Parsed {
        parse(input.as_bytes(), dialect, &KEYS).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn err(input: &str, dialect: Dialect) -> ParseError {
        parse(input.as_bytes(), dialect, &KEYS).expect_err(input)
    }

    #[test]
    fn every_key_of_the_table_parses_with_a_valid_value() {
        let cases = [
            "max_split_size_mb:256",
            "garbage_collection_threshold:0.6",
            "expandable_segments:True",
            "expandable_segments:False",
            "pin_memory_expandable_segments:True",
            "pinned_mem_register:False",
            "base_addr_aligned_kb:0",
            "base_addr_aligned_kb:16",
            "page_size:1g",
            "segment_size_mb:20",
            "segment_size_mb:512",
            "pinned_reserve_segment_size_mb:1024",
            "roundup_power2_divisions:4",
            "roundup_power2_divisions:[256:1,512:2,>:8]",
            "pinned_use_background_threads:True",
            "multi_stream_lazy_reclaim:False",
            "per_process_memory_fraction:0.5",
            "per_process_memory_fraction:1",
            "release_lock_on_npumalloc:True",
            "max_non_split_rounding_mb:64",
        ];
        for case in cases {
            for dialect in Dialect::ALL {
                let parsed = ok(case, dialect);
                assert_eq!(parsed.entries.len(), 1, "{case}");
                assert_eq!(format!("{}:{}", parsed.entries[0].key, parsed.entries[0].value), case);
            }
        }
    }

    #[test]
    fn every_key_rejects_a_bad_value() {
        let cases = [
            "max_split_size_mb:20",
            "max_split_size_mb:abc",
            "garbage_collection_threshold:1.0",
            "garbage_collection_threshold:0",
            "expandable_segments:true",
            "expandable_segments:1",
            "pin_memory_expandable_segments:yes",
            "pinned_mem_register:TRUE",
            "base_addr_aligned_kb:17",
            "page_size:2m",
            "segment_size_mb:19",
            "segment_size_mb:513",
            "pinned_reserve_segment_size_mb:abc",
            "pinned_max_cached_size_mb:True",
            "roundup_power2_divisions:3",
            "roundup_power2_divisions:[3:1]",
            "roundup_power2_divisions:[256:3]",
            "pinned_use_background_threads:on",
            "multi_stream_lazy_reclaim:0",
            "per_process_memory_fraction:1.5",
        ];
        for case in cases {
            assert!(matches!(err(case, Dialect::Lenient), ParseError::InvalidValue { .. }), "{case}");
        }
    }

    #[test]
    fn separators_are_checked() {
        assert!(matches!(err("expandable_segments=True", Dialect::Strict), ParseError::UnknownKey { .. }));
        assert!(matches!(err("max_split_size_mb:256;page_size:1g", Dialect::Strict), ParseError::InvalidValue { .. }));
        assert_eq!(
            err("page_size", Dialect::Strict),
            ParseError::Expected { expected: ':', found: None, offset: usize::MAX }
        );
        assert!(matches!(err("page_size,1g", Dialect::Strict), ParseError::Expected { expected: ':', .. }));
        assert!(matches!(err("page_size:1g:", Dialect::Strict), ParseError::Expected { expected: ',', .. }));
    }

    #[test]
    fn missing_values_and_unclosed_lists_are_errors() {
        assert!(matches!(err("page_size:", Dialect::Strict), ParseError::MissingValue { .. }));
        assert!(matches!(err("roundup_power2_divisions:[256:1", Dialect::Strict), ParseError::InvalidValue { .. }));
        assert!(matches!(
            err("roundup_power2_divisions:[256:1;512:2]", Dialect::Strict),
            ParseError::InvalidValue { .. }
        ));
    }

    #[test]
    fn unknown_keys_quote_the_key() {
        let e = err("bogus:1", Dialect::Strict);
        assert_eq!(e.to_string(), "Unrecognized CachingAllocator option: bogus (at byte 0)");
        let e = err(",expandable_segments:True", Dialect::Lenient);
        assert!(e.to_string().starts_with("Unrecognized CachingAllocator option: ,"));
    }

    #[test]
    fn a_trailing_comma_is_accepted_and_remembered() {
        let parsed = ok("page_size:1g,", Dialect::Strict);
        assert!(parsed.ends_with_comma);
        assert!(!ok("page_size:1g", Dialect::Strict).ends_with_comma);
        assert!(matches!(err("page_size:1g,,", Dialect::Strict), ParseError::UnknownKey { .. }));
    }

    #[test]
    fn dialects_differ_on_tabs() {
        assert!(parse(b"page_size:\t1g", Dialect::Lenient, &KEYS).is_ok());
        assert!(parse(b"page_size:\t1g", Dialect::Strict, &KEYS).is_err());
        assert!(parse(b" page_size : 1g ", Dialect::Strict, &KEYS).is_ok());
    }

    #[test]
    fn the_empty_value_has_no_entries() {
        assert_eq!(ok("", Dialect::Strict).entries, vec![]);
        assert_eq!(ok("   ", Dialect::Strict).entries, vec![]);
    }

    #[test]
    fn pin_memory_key_is_not_the_device_key() {
        let parsed = ok("pin_memory_expandable_segments:True", Dialect::Strict);
        assert!(!parsed.has_key("expandable_segments"));
    }
}

/// The words in key position (`key` in `key:` at the start or after a `,`),
/// found without validating anything else, so that a key is seen even when
/// another part of the value is broken.
pub fn key_words(input: &[u8], dialect: Dialect) -> Vec<Vec<u8>> {
    let tokens = tokenize(input, dialect);
    let mut keys = Vec::new();
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_slice() {
            b"[" => depth += 1,
            b"]" => depth = depth.saturating_sub(1),
            _ => {}
        }
        let starts_pair = depth == 0 && (i == 0 || tokens[i - 1].text == b",");
        let before_colon = tokens.get(i + 1).is_some_and(|t| t.text == b":");
        if starts_pair && before_colon {
            keys.push(token.text.clone());
        }
    }
    keys
}

#[cfg(test)]
mod key_word_tests {
    use super::*;

    #[test]
    fn finds_keys_even_in_broken_values() {
        let words = key_words(b"bogus:1, expandable_segments :yes,", Dialect::Strict);
        assert_eq!(words, vec![b"bogus".to_vec(), b"expandable_segments".to_vec()]);
    }

    #[test]
    fn roundup_list_intervals_are_not_keys() {
        let words = key_words(b"roundup_power2_divisions:[256:1,>:8]", Dialect::Lenient);
        assert_eq!(words, vec![b"roundup_power2_divisions".to_vec()]);
    }
}
