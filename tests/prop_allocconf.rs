//! Property tests of the allocator-configuration parser and the normalization
//! decision (issue 7), in-process, against an independent reference model
//! (tests/allocconf_model).
//!
//! Integration tests cannot call into the cdylib, so the pure modules are
//! compiled into this test crate from their own files. Their unit tests come
//! along and run here a second time; that costs milliseconds.
//!
//! Each property prints its figures (`cargo test --release --test
//! prop_allocconf -- --nocapture`); docs/reliability.md quotes them.
//! `PROPTEST_CASES=N` changes the number of generated inputs per property
//! (default below).

#[allow(dead_code)]
#[path = "../src/allocconf/mod.rs"]
mod allocconf;
#[allow(dead_code)]
#[path = "../src/runtime/mod.rs"]
mod runtime;

mod allocconf_model;

use allocconf::decide::{self, Action, Decision, Facts, Rule};
use allocconf::marker::Marker;
use allocconf::tokenizer::{self, Dialect};
use allocconf_model as model;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use runtime::npu::{KEYS, SPEC};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Generated inputs per property unless PROPTEST_CASES says otherwise:
/// enough to reach every rule many times, a few seconds in all.
const DEFAULT_CASES: u32 = 4096;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_CASES)
}

/// A runner that writes no regression files into the source tree (a failure
/// prints the shrunk input, which then becomes a plain test).
fn runner() -> TestRunner {
    TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() })
}

/// Runs `property` on `strategy`; prints and returns the number of inputs tried.
fn check<S: Strategy>(name: &str, strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>) -> u64
where
    S::Value: std::fmt::Debug,
{
    let tried = Cell::new(0u64);
    let result = runner().run(&strategy, |value| {
        tried.set(tried.get() + 1);
        property(value)
    });
    if let Err(error) = result {
        panic!("{name}: {error}");
    }
    println!("reliability figure: {name}: {} inputs tried", tried.get());
    tried.get()
}

fn dialect(d: model::Dialect) -> Dialect {
    match d {
        model::Dialect::Strict => Dialect::Strict,
        model::Dialect::Lenient => Dialect::Lenient,
    }
}

fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

// ---- inputs ----

/// Words that are keys, nearly keys, or neither.
const WORDS: &[&str] = &[
    "max_split_size_mb",
    "garbage_collection_threshold",
    "expandable_segments",
    "base_addr_aligned_kb",
    "page_size",
    "pin_memory_expandable_segments",
    "pinned_mem_register",
    "segment_size_mb",
    "pinned_reserve_segment_size_mb",
    "roundup_power2_divisions",
    "pinned_use_background_threads",
    "multi_stream_lazy_reclaim",
    "per_process_memory_fraction",
    "release_lock_on_npumalloc",
    "max_non_split_rounding_mb",
    "large_segment_size_mb",
    "expandable_segment",
    "EXPANDABLE_SEGMENTS",
    "expandable_segments_",
    "bogus",
    "page size",
];

/// Values valid for some key, nearly valid, or odd numbers.
const VALUES: &[&str] = &[
    "True",
    "False",
    "true",
    "TRUE",
    "1g",
    "2m",
    "0",
    "1",
    "2",
    "3",
    "4",
    "16",
    "17",
    "20",
    "21",
    "256",
    "512",
    "513",
    "0.5",
    "0.0",
    "1.0",
    "1.5",
    "0.99",
    "1e-1",
    ".5",
    "5.",
    "-0",
    "-1",
    "+4",
    "inf",
    "NaN",
    "007",
    "0x10",
    "1_0",
    "18446744073709551616",
    "18446744073709551615",
    "\u{e9}",
    ">",
    "1 0",
    "Tr ue",
];

const PUNCT: &[&str] = &[",", ":", "[", "]"];
const SPACES: &[&str] = &[" ", "\t", "\n", "\r", "\x0b", "\x0c", "  "];

fn bytes_of(choices: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(choices).prop_map(|s| s.as_bytes().to_vec())
}

/// Values a key accepts (so that generated configurations often parse).
fn good_values(key: &str) -> &'static [&'static str] {
    match key {
        "max_split_size_mb" => &["21", "256", "4096"],
        "garbage_collection_threshold" => &["0.6", "0.01", "9e-1", ".5"],
        "base_addr_aligned_kb" => &["0", "2", "16"],
        "page_size" => &["1g"],
        "segment_size_mb" => &["20", "64", "512"],
        "pinned_reserve_segment_size_mb" | "max_non_split_rounding_mb" | "large_segment_size_mb" => &["0", "1024"],
        "roundup_power2_divisions" => &["4", "0", "[256:1,512:2,>:8]", "[>:4]", "[]", "[1:1,]", "[ 256 : 0 ]"],
        "per_process_memory_fraction" => &["0", "1", "0.5", "1.0"],
        _ => &["True", "False"],
    }
}

/// Pieces of configurations glued together at random.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => bytes_of(WORDS),
        4 => bytes_of(VALUES),
        4 => bytes_of(PUNCT),
        2 => bytes_of(SPACES),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// Well-formed configurations with optional whitespace around every token and
/// an optional trailing comma; mostly valid.
fn configuration() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(model::key_names());
    let pair = (key, any::<prop::sample::Index>(), any::<bool>(), any::<prop::sample::Index>()).prop_map(
        |(key, pick, odd, odd_pick)| {
            let value = if odd { odd_pick.get(VALUES) } else { pick.get(good_values(key)) };
            (key, *value)
        },
    );
    let pad = prop::sample::select(&["", "", "", " ", "  ", "\t", "\n"][..]);
    (prop::collection::vec((pair, pad.clone(), pad.clone(), pad), 0..5), any::<bool>(), any::<bool>()).prop_map(
        |(pairs, trailing_comma, duplicate_first)| {
            let mut out = Vec::new();
            let mut pairs = pairs;
            if duplicate_first && let Some(first) = pairs.first().cloned() {
                pairs.push(first);
            }
            for (i, ((key, value), a, b, c)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("{a}{key}{b}:{c}{value}{a}").as_bytes());
            }
            if trailing_comma {
                out.push(b',');
            }
            out
        },
    )
}

/// A configuration with one byte inserted, replaced or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (configuration(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(|(mut value, at, byte, how)| {
        if value.is_empty() {
            return vec![byte];
        }
        let i = at.index(value.len());
        match how {
            0 => value.insert(i, byte),
            1 => value[i] = byte,
            _ => {
                value.remove(i);
            }
        }
        value
    })
}

/// Every kind of input: soup, configurations, mutants, raw bytes.
fn any_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => configuration(),
        3 => soup(),
        2 => mutated(),
        2 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn facts(specific: Option<Vec<u8>>) -> Facts {
    Facts { specific, ..Facts::default() }
}

fn set_value(decision: &Decision) -> Option<&[u8]> {
    match &decision.action {
        Action::Set { value, .. } => Some(value),
        _ => None,
    }
}

// ---- the model describes the library ----

#[test]
fn the_model_knows_the_same_keys_as_the_library() {
    let library: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(model::key_names(), library, "a key was added or removed: update tests/allocconf_model too");
}

#[test]
fn the_model_accepts_and_refuses_the_documented_examples() {
    for ok in ["", " ", "page_size:1g", "page_size:1g,", "roundup_power2_divisions:[256:1,>:8]", "a b"] {
        let expect = ok != "a b";
        assert_eq!(model::parse(ok.as_bytes(), model::Dialect::Lenient).is_some(), expect, "{ok}");
    }
    for bad in ["page_size:1g,,", "expandable_segments:true", "bogus:1", ",expandable_segments:True", "page_size"] {
        assert!(model::parse(bad.as_bytes(), model::Dialect::Lenient).is_none(), "{bad}");
    }
    assert!(model::parse(b"page_size:\t1g", model::Dialect::Strict).is_none());
    assert!(model::parse(b"page_size:\t1g", model::Dialect::Lenient).is_some());
}

#[test]
fn tokenizers_agree_with_the_model() {
    check("tokenizers agree (2 dialects each)", any_value(), |value| {
        for d in model::DIALECTS {
            let got: Vec<Vec<u8>> = tokenizer::tokenize(&value, dialect(d)).into_iter().map(|t| t.text).collect();
            prop_assert_eq!(got, model::tokens(&value, d), "{:?} {}", d, show(&value));
        }
        Ok(())
    });
}

#[test]
fn parsers_agree_with_the_model() {
    let accepted = Cell::new(0u64);
    let tried = check("parsers agree on success, pairs and trailing comma (2 dialects each)", any_value(), |value| {
        for d in model::DIALECTS {
            let got = allocconf::parse::parse(&value, dialect(d), &KEYS);
            let want = model::parse(&value, d);
            match (&got, &want) {
                (Ok(parsed), Some(want)) => {
                    let pairs: Vec<(String, String)> =
                        parsed.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
                    prop_assert_eq!(&pairs, &want.pairs, "{:?} {}", d, show(&value));
                    prop_assert_eq!(parsed.ends_with_comma, want.ends_with_comma, "{:?} {}", d, show(&value));
                    accepted.set(accepted.get() + 1);
                }
                (Err(_), None) => {}
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "{d:?} {}: library {got:?}, model {}",
                        show(&value),
                        if want.is_some() { "accepts" } else { "refuses" }
                    )));
                }
            }
        }
        Ok(())
    });
    println!("reliability figure: parses accepted by both {} of {}", accepted.get(), tried * 2);
}

#[test]
fn key_words_agree_with_the_model() {
    check("key words agree (2 dialects each)", any_value(), |value| {
        for d in model::DIALECTS {
            let known = |words: Vec<Vec<u8>>| words.into_iter().filter(|w| model::is_key(w)).collect::<Vec<_>>();
            let got = known(allocconf::parse::key_words(&value, dialect(d)));
            prop_assert_eq!(got, known(model::key_words(&value, d)), "{:?} {}", d, show(&value));
        }
        Ok(())
    });
}

#[test]
fn normalization_agrees_with_the_model() {
    let rules: std::cell::RefCell<BTreeMap<&'static str, u64>> = Default::default();
    let values = prop_oneof![9 => any_value().prop_map(Some), 1 => Just(None)];
    check("normalization agrees (specific and generic variable)", values, |value| {
        let want = match model::normalize(value.as_deref()) {
            model::Outcome::Unchanged => None,
            model::Outcome::Set(v) => Some(v),
        };
        let specific = decide::decide(&SPEC, &facts(value.clone()));
        *rules.borrow_mut().entry(specific.rule.name()).or_default() += 1;
        prop_assert_eq!(
            set_value(&specific),
            want.as_deref(),
            "{:?}: {}",
            value.as_deref().map(show),
            specific.message
        );
        if let Action::Set { var, .. } = specific.action {
            prop_assert_eq!(var, SPEC.conf_var);
        }
        // The generic variable alone follows the same rules, under its own name.
        if let Some(value) = &value {
            let generic = decide::decide(&SPEC, &Facts { generic: Some(value.clone()), ..Facts::default() });
            prop_assert_eq!(set_value(&generic), want.as_deref(), "generic {}", show(value));
            if let Action::Set { var, .. } = generic.action {
                prop_assert_eq!(var, SPEC.generic_conf_var);
            }
        }
        Ok(())
    });
    println!("reliability figure: rules reached: {:?}", rules.borrow());
    for rule in ["unset", "has-key", "conflict", "invalid", "append"] {
        assert!(rules.borrow().get(rule).copied().unwrap_or(0) >= 10, "rule {rule} rarely reached: {:?}", rules);
    }
}

// ---- properties that need no model ----

/// The value is unchanged, or the original bytes plus exactly one appended
/// pair, or (unset or blank) exactly the pair.
#[test]
fn normalization_appends_one_pair_or_nothing() {
    let values = prop_oneof![9 => any_value().prop_map(Some), 1 => Just(None)];
    check("one pair appended or nothing", values, |value| {
        let decision = decide::decide(&SPEC, &facts(value.clone()));
        let Some(new) = set_value(&decision) else {
            prop_assert!(matches!(decision.action, Action::Keep | Action::Nothing));
            return Ok(());
        };
        let pair = model::PAIR;
        match value.as_deref() {
            None => prop_assert_eq!(new, pair),
            Some(v) if model::is_blank(v) => prop_assert_eq!(new, pair, "blank {}", show(v)),
            Some(v) => {
                prop_assert!(new.starts_with(v), "original bytes kept: {}", show(v));
                let tail = &new[v.len()..];
                let after_comma = model::tokens(v, model::Dialect::Lenient).last().is_some_and(|t| t == b",");
                let want: Vec<u8> = if after_comma { pair.to_vec() } else { [b",", pair].concat() };
                prop_assert_eq!(tail, &want[..], "{}", show(v));
                prop_assert_eq!(decision.rule, Rule::Append);
            }
        }
        Ok(())
    });
}

/// Deciding again on the result changes nothing, with the marker the first
/// decision leaves for children and without it.
#[test]
fn normalization_is_idempotent() {
    let values = prop_oneof![9 => any_value().prop_map(Some), 1 => Just(None)];
    check("normalizing twice changes nothing", values, |value| {
        let first = decide::decide(&SPEC, &facts(value.clone()));
        let after = set_value(&first).map(<[u8]>::to_vec).or(value.clone());
        let again = decide::decide(&SPEC, &facts(after.clone()));
        prop_assert!(
            set_value(&again).is_none(),
            "{:?} -> {:?}: {}",
            value.as_deref().map(show),
            again.rule,
            again.message
        );
        if let Some(marker) = first.marker() {
            let child = Facts { marker: Some(marker.render().into_bytes()), ..facts(after) };
            let child = decide::decide(&SPEC, &child);
            prop_assert_eq!(&child.action, &Action::Nothing);
            prop_assert!(matches!(child.rule, Rule::InheritedApplied | Rule::InheritedKept), "{:?}", child.rule);
        }
        Ok(())
    });
}

/// Every pure entry point on arbitrary bytes: no panic (the runner fails on one).
#[test]
fn no_panic_on_any_bytes() {
    let bytes = || prop::collection::vec(any::<u8>(), 0..96);
    let inputs = (
        prop_oneof![bytes(), any_value()],
        prop::option::of(bytes()),
        prop::option::of(prop_oneof![bytes(), Just(b"kept".to_vec()), Just(b"set:PYTORCH_NPU_ALLOC_CONF:".to_vec())]),
        prop::collection::vec(bytes(), 0..4),
        any::<[bool; 3]>(),
    );
    check("no panic: decide, parse, tokenize, marker, switches, quote, versions", inputs, |input| {
        let (value, generic, marker, argv, [disabled, normalize_off, secure]) = input;
        for d in Dialect::ALL {
            let _ = allocconf::parse::parse(&value, d, &KEYS);
            let _ = allocconf::parse::key_words(&value, d);
        }
        let _ = Marker::parse(&value);
        let _ = allocconf::sleep::memory_pool_flag(&argv);
        let _ = allocconf::switches::parse_switch(&value);
        let _ = allocconf::quote::quote(&value, 7);
        let _ = allocconf::versions::Version::parse(&String::from_utf8_lossy(&value));
        let _ = allocconf::versions::driver_version(&String::from_utf8_lossy(&value));
        let all = Facts { disabled, normalize_off, secure, argv, marker, specific: Some(value), generic };
        let decision = decide::decide(&SPEC, &all);
        let _ = (decision.verdict(), decision.marker().map(|m| m.render()));
        Ok(())
    });
}

/// Quoting: printable ASCII only, and lossless below the limit.
#[test]
fn quote_escapes_everything_and_loses_nothing() {
    check("quote is printable and reversible", prop::collection::vec(any::<u8>(), 0..64), |value| {
        let quoted = allocconf::quote::quote(&value, 1000);
        prop_assert!(quoted.bytes().all(|b| (0x20..0x7f).contains(&b)), "{quoted}");
        prop_assert_eq!(unquote(&quoted), value.clone());
        let cut = allocconf::quote::quote(&value, 8);
        prop_assert!(cut.len() <= 2 + 8 * 4 + 32, "{cut}");
        Ok(())
    });
}

/// Reverses `quote` (for the round trip only).
fn unquote(quoted: &str) -> Vec<u8> {
    let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).expect("quoted");
    let bytes = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'x' => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 4;
                continue;
            }
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            other => out.push(other),
        }
        i += 2;
    }
    out
}

/// The library's messages carry values only escaped and cut: one line of
/// printable ASCII whatever the value holds (README: "messages quote them
/// escaped and cut at 200 bytes").
#[test]
fn decision_messages_are_one_short_escaped_line() {
    let values = prop_oneof![
        any_value(),
        // Values whose broken token is long or holds control bytes.
        (bytes_of(WORDS), prop::collection::vec(any::<u8>(), 0..400)).prop_map(|(k, v)| [k, b":".to_vec(), v].concat()),
        prop::collection::vec(any::<u8>(), 0..400),
    ];
    check("messages are one printable line of bounded length", values, |value| {
        for f in [facts(Some(value.clone())), Facts { generic: Some(value.clone()), ..Facts::default() }] {
            let message = decide::decide(&SPEC, &f).message;
            prop_assert!(
                message.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "raw bytes of the value in the message: {}",
                message.escape_debug()
            );
            prop_assert!(message.len() <= 1200, "message of {} bytes for a value of {}", message.len(), value.len());
        }
        Ok(())
    });
}

// ---- big values, in-process ----

/// A reproducible pseudo-random byte source (xorshift64*).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

const MIB: usize = 1 << 20;

fn one_mebibyte_values() -> Vec<(&'static str, Vec<u8>)> {
    let repeat = |unit: &[u8]| unit.iter().copied().cycle().take(MIB).collect::<Vec<u8>>();
    let mut roundup = b"roundup_power2_divisions:[".to_vec();
    while roundup.len() < MIB {
        roundup.extend_from_slice(b"256:1,");
    }
    roundup.extend_from_slice(b">:8]");
    let mut spaced = b"page_size:1g".to_vec();
    spaced.resize(MIB, b' ');
    let mut long_key = vec![b'k'; MIB];
    long_key.extend_from_slice(b":1");
    let mut long_value = b"page_size:".to_vec();
    long_value.resize(MIB, b'g');
    vec![
        ("random bytes", noise(MIB, 0x9e37_79b9_7f4a_7c15)),
        ("random printable", noise(MIB, 7).into_iter().map(|b| 0x20 + b % 95).collect()),
        ("valid pairs repeated", repeat(b"page_size:1g,pinned_mem_register:True,")),
        ("valid value padded with spaces", spaced),
        ("tabs and newlines", repeat(b"\t\n\r page_size\t:\n1g ,")),
        ("one huge unknown key", long_key),
        ("one huge value", long_value),
        ("open brackets", repeat(b"[")),
        ("commas", repeat(b",")),
        ("colons", repeat(b":")),
        ("non-UTF-8", repeat(b"\xff\xfe\xc3")),
        ("a roundup list of 170k items", roundup),
    ]
}

#[test]
fn one_mebibyte_values_are_decided_whole_and_quickly() {
    let mut slowest = Duration::ZERO;
    let values = one_mebibyte_values();
    for (name, value) in &values {
        let start = Instant::now();
        let decision = decide::decide(&SPEC, &facts(Some(value.clone())));
        let elapsed = start.elapsed();
        slowest = slowest.max(elapsed);
        let want = match model::normalize(Some(value)) {
            model::Outcome::Unchanged => None,
            model::Outcome::Set(v) => Some(v),
        };
        assert!(set_value(&decision) == want.as_deref(), "{name}: {:?}", decision.rule);
        if let Some(new) = set_value(&decision) {
            assert!(new.starts_with(value) && new.len() <= value.len() + 1 + model::PAIR.len(), "{name}");
        }
        // Linear work: a quadratic path would take minutes on a mebibyte.
        assert!(elapsed < Duration::from_secs(2), "{name}: {elapsed:?}");
    }
    println!("reliability figure: {} values of 1 MiB decided, slowest {slowest:?}", values.len());
}

#[test]
fn one_mebibyte_values_give_short_messages() {
    for (name, value) in one_mebibyte_values() {
        let message = decide::decide(&SPEC, &facts(Some(value))).message;
        assert!(message.len() <= 1200, "{name}: a message of {} bytes", message.len());
        assert!(message.bytes().all(|b| (0x20..0x7f).contains(&b)), "{name}: raw bytes in the message");
    }
}

/// Linux refuses an `execve` whose environment holds a string longer than
/// MAX_ARG_STRLEN (32 pages: 131072 bytes with the name, `=` and the NUL). A
/// value that fits must not be pushed over by the appended pair: every exec
/// the host makes afterwards would fail with E2BIG (tests/reliability_values.rs
/// shows it in a real process).
#[test]
fn appending_never_pushes_a_fitting_value_over_the_exec_limit() {
    const MAX_ARG_STRLEN: usize = 131_072;
    let room = MAX_ARG_STRLEN - SPEC.conf_var.len() - 2; // name, '=', NUL
    for len in [room - model::PAIR.len() - 1, room - model::PAIR.len(), room - 10, room] {
        let mut value = b"page_size:1g".to_vec();
        value.resize(len, b' ');
        let decision = decide::decide(&SPEC, &facts(Some(value.clone())));
        if let Some(new) = set_value(&decision) {
            assert!(new.len() <= room, "a value of {len} bytes becomes {} bytes (room: {room})", new.len());
        }
    }
}
