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

    #[test]
    fn one_of_accepts_exactly_its_words() {
        let rule = ValueRule::OneOf(&["native", "cudaMallocAsync"]);
        assert!(check_scalar(rule, "backend", b"native").is_ok());
        assert!(check_scalar(rule, "backend", b"cudaMallocAsync").is_ok());
        let refused = check_scalar(rule, "backend", b"Native").unwrap_err();
        assert_eq!(refused, "backend must be one of native, cudaMallocAsync (got \"Native\")");
    }
}
