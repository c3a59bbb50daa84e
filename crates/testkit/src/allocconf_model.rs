//! An independent reference model of the allocator-configuration grammar and
//! of the normalization of one value, written from torch_npu's description
//! (shared/notes/torch_npu-alloc-conf.md, README's rules 4-8), not from
//! `crates/common/src/allocconf`. The property tests compare the library against it.
//!
//! It is deliberately written another way than the library: tokens are built
//! by classifying bytes, the pair loop is a small recursive descent over
//! indexes, numbers are recognised by hand-written grammars, and the key
//! words that decide rules 5 and 6 come from splitting the token stream at
//! top-level commas. Where two simple implementations agree on thousands of
//! generated inputs, a mistake would have to be made twice.

/// Which torch_npu tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// torch_npu's `lexArgs`: only ' ' is dropped.
    Strict,
    /// PyTorch's `ConfigTokenizer`: every `isspace` byte ("C" locale) is dropped.
    Lenient,
}

pub const DIALECTS: [Dialect; 2] = [Dialect::Strict, Dialect::Lenient];

/// What the tokenizer does with one byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `,` `:` `[` `]`: a token of its own, and the end of any word.
    Punct,
    /// Skipped without ending the word ("a b" is the word "ab").
    Dropped,
    Word,
}

fn class(byte: u8, dialect: Dialect) -> Class {
    match (byte, dialect) {
        (b',' | b':' | b'[' | b']', _) => Class::Punct,
        (b' ', _) => Class::Dropped,
        (b'\t' | b'\n' | 0x0b | 0x0c | b'\r', Dialect::Lenient) => Class::Dropped,
        _ => Class::Word,
    }
}

pub fn tokens(input: &[u8], dialect: Dialect) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    // Whether the last token pushed is a word that may still grow.
    let mut open = false;
    for &byte in input {
        match class(byte, dialect) {
            Class::Punct => {
                out.push(vec![byte]);
                open = false;
            }
            Class::Dropped => {}
            Class::Word if open => out.last_mut().expect("open word").push(byte),
            Class::Word => {
                out.push(vec![byte]);
                open = true;
            }
        }
    }
    out
}

/// The value rule of a key, as torch_npu documents it.
#[derive(Clone, Copy, Debug)]
enum Rule {
    TrueFalse,
    /// Integer megabytes strictly above 20.
    MegabytesAbove20,
    /// Inclusive integer range.
    Range(u64, u64),
    /// 0 < x < 1.
    OpenUnit,
    OneG,
    /// Read by C++'s stoull: a leading integer, the rest ignored.
    LeadingInteger,
    /// 0 <= x <= 1, read by C++'s stod: a leading decimal number.
    LeadingClosedUnit,
    /// `N` (0 or a power of two, read by C++'s stoi) or `[interval:N, ..., >:N]`.
    LeadingRoundup,
    /// Any one token (a key whose values were never probed).
    AnyToken,
}

/// Every key some torch_npu line accepts (typed again here, not imported).
const RULES: [(&str, Rule); 20] = [
    ("max_split_size_mb", Rule::MegabytesAbove20),
    ("garbage_collection_threshold", Rule::OpenUnit),
    ("expandable_segments", Rule::TrueFalse),
    ("base_addr_aligned_kb", Rule::Range(0, 16)),
    ("page_size", Rule::OneG),
    ("pin_memory_expandable_segments", Rule::TrueFalse),
    ("pinned_mem_register", Rule::TrueFalse),
    ("segment_size_mb", Rule::Range(20, 512)),
    ("pinned_reserve_segment_size_mb", Rule::LeadingInteger),
    ("roundup_power2_divisions", Rule::LeadingRoundup),
    ("pinned_use_background_threads", Rule::TrueFalse),
    ("multi_stream_lazy_reclaim", Rule::TrueFalse),
    ("per_process_memory_fraction", Rule::LeadingClosedUnit),
    ("release_lock_on_npumalloc", Rule::TrueFalse),
    ("max_non_split_rounding_mb", Rule::LeadingInteger),
    ("large_segment_size_mb", Rule::LeadingInteger),
    ("pinned_max_cached_size_mb", Rule::LeadingInteger),
    ("pinned_max_round_threshold_mb", Rule::LeadingInteger),
    ("throw_on_npumalloc_oom", Rule::TrueFalse),
    ("align_hugepages", Rule::AnyToken),
];

pub fn is_key(word: &[u8]) -> bool {
    rule_of(word).is_some()
}

pub fn key_names() -> Vec<&'static str> {
    RULES.iter().map(|(name, _)| *name).collect()
}

fn rule_of(word: &[u8]) -> Option<Rule> {
    RULES.iter().find(|(name, _)| name.as_bytes() == word).map(|(_, rule)| *rule)
}

/// Decimal digits only, fitting in 64 bits.
fn unsigned(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn power_of_two(n: u64) -> bool {
    n != 0 && n & (n - 1) == 0
}

/// A decimal floating-point number: `[+-]? (d+ | d+ . d* | d* . d+) ([eE][+-]?d+)?`,
/// or inf/infinity/nan in any case; returns its value when finite.
fn finite_number(text: &[u8]) -> Option<f64> {
    let body = text.strip_prefix(b"+").or_else(|| text.strip_prefix(b"-")).unwrap_or(text);
    let lowered = body.to_ascii_lowercase();
    if [&b"inf"[..], b"infinity", b"nan"].contains(&lowered.as_slice()) {
        return None; // recognised, but never finite
    }
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(body);
    let mut at = whole;
    let mut fraction = 0;
    if body.get(at) == Some(&b'.') {
        fraction = digits(&body[at + 1..]);
        at += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(body.get(at), Some(b'e' | b'E')) {
        let mut exp = at + 1;
        if matches!(body.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_digits = digits(&body[exp.min(body.len())..]);
        if exp_digits == 0 {
            return None;
        }
        at = exp + exp_digits;
    }
    if at != body.len() {
        return None;
    }
    // The text is a well-formed decimal: converting it is not what is modelled.
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    value.is_finite().then_some(value)
}

/// C++'s `stoull`/`stoi`: spaces, a sign, digits; the rest ignored. Returns
/// (negative, magnitude); `None` without digits or past 64 bits.
fn leading_integer(text: &[u8]) -> Option<(bool, u64)> {
    let start = text.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)).unwrap_or(text.len());
    let rest = &text[start..];
    let (negative, rest) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    Some((negative, unsigned(&rest[..end])?))
}

/// C++'s `stod`: the longest prefix that is a decimal number.
fn leading_number(text: &[u8]) -> Option<f64> {
    let start = text.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)).unwrap_or(text.len());
    let rest = &text[start..];
    (1..=rest.len()).rev().find_map(|end| finite_number(&rest[..end]))
}

fn scalar_ok(rule: Rule, text: &[u8]) -> bool {
    match rule {
        Rule::TrueFalse => text == b"True" || text == b"False",
        Rule::MegabytesAbove20 => unsigned(text).is_some_and(|n| n > 20),
        Rule::Range(lo, hi) => unsigned(text).is_some_and(|n| lo <= n && n <= hi),
        Rule::OpenUnit => finite_number(text).is_some_and(|x| 0.0 < x && x < 1.0),
        Rule::OneG => text == b"1g",
        Rule::LeadingInteger => leading_integer(text).is_some(),
        Rule::LeadingClosedUnit => leading_number(text).is_some_and(|x| (0.0..=1.0).contains(&x)),
        Rule::LeadingRoundup => leading_integer(text)
            .is_some_and(|(negative, n)| n == 0 || (!negative && n <= i32::MAX as u64 && power_of_two(n))),
        Rule::AnyToken => true,
    }
}

/// A successful parse: the pairs (value as tokens joined, lossy) and whether
/// the last token is a comma.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub pairs: Vec<(String, String)>,
    pub ends_with_comma: bool,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is(tokens: &[Vec<u8>], at: usize, text: &[u8]) -> bool {
    tokens.get(at).is_some_and(|t| t == text)
}

/// `[interval:divisions, ...]` starting at the `[` at `at`; returns the value
/// text and the index after the closing `]`.
fn roundup_list(tokens: &[Vec<u8>], at: usize) -> Option<(String, usize)> {
    let mut items = Vec::new();
    let mut i = at + 1;
    loop {
        let interval = tokens.get(i)?;
        if interval == b"]" {
            return Some((format!("[{}]", items.join(",")), i + 1));
        }
        let interval_ok = interval == b">" || unsigned(interval).is_some_and(power_of_two);
        if !interval_ok || !is(tokens, i + 1, b":") {
            return None;
        }
        let divisions = tokens.get(i + 2)?;
        if !unsigned(divisions).is_some_and(|n| n == 0 || power_of_two(n)) {
            return None;
        }
        items.push(format!("{}:{}", lossy(interval), lossy(divisions)));
        i += 3;
        if is(tokens, i, b",") {
            i += 1; // a comma right before `]` is accepted, as torch_npu's loop does
        } else if !is(tokens, i, b"]") {
            return None;
        }
    }
}

/// torch_npu's pair loop, on the given tokenizer: `None` means it refuses.
pub fn parse(input: &[u8], dialect: Dialect) -> Option<Parsed> {
    let tokens = tokens(input, dialect);
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let key = &tokens[i];
        let rule = rule_of(key)?;
        if !is(&tokens, i + 1, b":") {
            return None;
        }
        let (value, next) = match rule {
            Rule::LeadingRoundup if is(&tokens, i + 2, b"[") => roundup_list(&tokens, i + 2)?,
            rule => {
                let value = tokens.get(i + 2)?;
                if !scalar_ok(rule, value) {
                    return None;
                }
                (lossy(value), i + 3)
            }
        };
        pairs.push((lossy(key), value));
        match tokens.get(next) {
            None => i = next,
            Some(t) if t == b"," => i = next + 1,
            Some(_) => return None,
        }
    }
    Some(Parsed { pairs, ends_with_comma: tokens.last().is_some_and(|t| t == b",") })
}

/// The key of every top-level `key:` segment (the stream split at commas
/// outside brackets), whatever else is wrong with the value.
pub fn key_words(input: &[u8], dialect: Dialect) -> Vec<Vec<u8>> {
    let tokens = tokens(input, dialect);
    let mut segments: Vec<Vec<&Vec<u8>>> = vec![Vec::new()];
    let mut depth = 0usize;
    for token in &tokens {
        match token.as_slice() {
            b"[" => depth += 1,
            b"]" => depth = depth.saturating_sub(1),
            b"," if depth == 0 => {
                segments.push(Vec::new());
                continue;
            }
            _ => {}
        }
        segments.last_mut().expect("a segment").push(token);
    }
    segments.iter().filter(|s| s.len() >= 2 && s[1] == b":").map(|s| s[0].clone()).collect()
}

pub const PAIR: &[u8] = b"expandable_segments:True";
const CONFLICTS: [&[u8]; 2] = [b"max_split_size_mb", b"garbage_collection_threshold"];

/// What the normalizer should do to one variable's value (README rules 4-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Set(Vec<u8>),
}

pub fn is_blank(value: &[u8]) -> bool {
    value.iter().all(|&b| class(b, Dialect::Lenient) == Class::Dropped)
}

pub fn normalize(value: Option<&[u8]>) -> Outcome {
    let value = match value {
        Some(v) if !is_blank(v) => v,
        // Set but empty is a choice (ROLL's): left alone.
        Some(_) => return Outcome::Unchanged,
        None => return Outcome::Set(PAIR.to_vec()),
    };
    let keys: Vec<Vec<u8>> = DIALECTS.iter().flat_map(|&d| key_words(value, d)).collect();
    let names = |name: &[u8]| keys.iter().any(|k| k == name);
    if names(b"expandable_segments") || CONFLICTS.iter().any(|c| names(c)) {
        return Outcome::Unchanged;
    }
    match parse(value, Dialect::Lenient) {
        None => Outcome::Unchanged,
        Some(parsed) => {
            let mut out = value.to_vec();
            if !parsed.ends_with_comma {
                out.push(b',');
            }
            out.extend_from_slice(PAIR);
            Outcome::Set(out)
        }
    }
}
