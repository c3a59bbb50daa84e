//! Checking a value against its key's rule (the rules themselves are
//! runtime facts: `runtime::keys`).

use crate::runtime::keys::ValueRule;

fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn number(text: &[u8]) -> Option<f64> {
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    value.is_finite().then_some(value)
}

/// The integer C++'s `std::stoull`/`std::stoi` read from the start of `text`:
/// leading whitespace skipped, an optional sign, at least one digit, the
/// rest ignored; `None` where they throw (no digits, or too many).
fn cxx_integer(text: &[u8]) -> Option<i128> {
    let text = text.trim_ascii_start();
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let count = body.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return None;
    }
    let magnitude: u64 = std::str::from_utf8(&body[..count]).ok()?.parse().ok()?;
    Some(if negative { -i128::from(magnitude) } else { i128::from(magnitude) })
}

/// The number C++'s `std::stod` reads from the start of `text`: the longest
/// prefix `[+-]? (d+ [. d*] | . d+) ([eE] [+-]? d+)?` after whitespace.
fn cxx_number(text: &[u8]) -> Option<f64> {
    let text = text.trim_ascii_start();
    let digits = |from: usize| text[from.min(text.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = usize::from(matches!(text.first(), Some(b'+' | b'-')));
    let whole = digits(end);
    end += whole;
    let mut fraction = 0;
    if text.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if whole + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(text.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(text.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    number(&text[..end])
}

/// Checks a scalar value; returns the reason it is refused.
pub fn check_scalar(rule: ValueRule, key: &str, text: &[u8]) -> Result<(), String> {
    let shown = super::quote::token(text);
    match rule {
        ValueRule::Bool => match text {
            b"True" | b"False" => Ok(()),
            _ => Err(format!("Expected a single True/False argument for {key} (got \"{shown}\")")),
        },
        ValueRule::MegabytesAbove(min) => match digits(text) {
            Some(v) if v > min => Ok(()),
            Some(_) => Err(format!("{key} too small, must be > {min}")),
            None => Err(format!("{key} must be an integer number of MB (got \"{shown}\")")),
        },
        ValueRule::IntRange(lo, hi) => match digits(text) {
            Some(v) if (lo..=hi).contains(&v) => Ok(()),
            _ => Err(format!("{key} must be an integer in [{lo}, {hi}] (got \"{shown}\")")),
        },
        ValueRule::UnsignedInt => match digits(text) {
            Some(_) => Ok(()),
            None => Err(format!("{key} must be a non-negative integer (got \"{shown}\")")),
        },
        ValueRule::OpenFraction => match number(text) {
            Some(v) if v > 0.0 && v < 1.0 => Ok(()),
            _ => Err(format!("{key} must be a number with 0 < x < 1 (got \"{shown}\")")),
        },
        ValueRule::ClosedFraction => match number(text) {
            Some(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(format!("{key} must be a number in [0.0, 1.0] (got \"{shown}\")")),
        },
        ValueRule::Literal(word) => {
            if text == word.as_bytes() {
                Ok(())
            } else {
                Err(format!("{key} only accepts \"{word}\" (got \"{shown}\")"))
            }
        }
        ValueRule::OneOf(words) => {
            if words.iter().any(|w| text == w.as_bytes()) {
                Ok(())
            } else {
                Err(format!("{key} must be one of {} (got \"{shown}\")", words.join(", ")))
            }
        }
        ValueRule::AnyWord => Ok(()),
        ValueRule::CxxUnsigned => match cxx_integer(text) {
            Some(_) => Ok(()),
            None => Err(format!("{key} must start with an integer (got \"{shown}\")")),
        },
        ValueRule::CxxClosedFraction => match cxx_number(text) {
            Some(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(format!("{key} must be a number in [0.0, 1.0] (got \"{shown}\")")),
        },
        ValueRule::CxxRoundupDivisions => match cxx_integer(text) {
            Some(v) if v == 0 || (v > 0 && v <= i128::from(i32::MAX) && (v as u64).is_power_of_two()) => Ok(()),
            _ => Err(format!(
                "For roundups, the divisions has to be power of 2 or 0 to disable roundup (got \"{shown}\")"
            )),
        },
        ValueRule::RoundupDivisions => match digits(text) {
            Some(v) if v == 0 || v.is_power_of_two() => Ok(()),
            _ => Err(format!(
                "For roundups, the divisions has to be power of 2 or 0 to disable roundup (got \"{shown}\")"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the real parsers accepted (tests/real_clients/torch_npu.rs
    /// probes them): C++ reads the leading number and ignores the rest.
    #[test]
    fn cxx_rules_read_a_leading_number_as_the_real_parsers_do() {
        for ok in ["1", "256", "0", "0.5", "-1", "1g", " 7", "+3", "\t256"] {
            assert!(check_scalar(ValueRule::CxxUnsigned, "k", ok.as_bytes()).is_ok(), "{ok:?}");
        }
        for refused in ["", "abc", "True", "-", "g1", "99999999999999999999"] {
            assert!(check_scalar(ValueRule::CxxUnsigned, "k", refused.as_bytes()).is_err(), "{refused:?}");
        }
        for ok in ["1", "0", "0.5", "1g", ".5", "1e-1", "0.5.5"] {
            assert!(check_scalar(ValueRule::CxxClosedFraction, "k", ok.as_bytes()).is_ok(), "{ok:?}");
        }
        for refused in ["256", "-1", "abc", "", ".", "2e0"] {
            assert!(check_scalar(ValueRule::CxxClosedFraction, "k", refused.as_bytes()).is_err(), "{refused:?}");
        }
        for ok in ["1", "256", "0", "0.5", "1g"] {
            assert!(check_scalar(ValueRule::CxxRoundupDivisions, "k", ok.as_bytes()).is_ok(), "{ok:?}");
        }
        for refused in ["-1", "3", "abc", "True", "4294967296"] {
            assert!(check_scalar(ValueRule::CxxRoundupDivisions, "k", refused.as_bytes()).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn one_of_accepts_exactly_its_words() {
        let rule = ValueRule::OneOf(&["native", "cudaMallocAsync"]);
        assert!(check_scalar(rule, "backend", b"native").is_ok());
        assert!(check_scalar(rule, "backend", b"cudaMallocAsync").is_ok());
        let refused = check_scalar(rule, "backend", b"Native").unwrap_err();
        assert_eq!(refused, "backend must be one of native, cudaMallocAsync (got \"Native\")");
    }
}
