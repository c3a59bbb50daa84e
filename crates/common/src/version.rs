//! Versions as Python packages and Ascend drivers spell them (`2.5.1`,
//! `2.1.0.post3`, `2.10.0rc1+cpu`, `24.1.rc3`), in PEP 440 order, which also
//! fits Ascend's `RC` spelling. Pure; what a runtime's versions mean is that
//! runtime's business (`runtime::npu::versions`).

use std::cmp::Ordering;

/// A pre-release label, in PEP 440 order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Pre {
    Alpha,
    Beta,
    Rc,
}

/// A version such as `2.5.1`, `2.1.0.post3`, `2.10.0rc1+cpu` or the driver's
/// `24.1.rc3`: PEP 440 ordering, which also fits Ascend's `RC` spelling.
#[derive(Clone, Debug)]
pub struct Version {
    text: String,
    release: Vec<u64>,
    pre: Option<(Pre, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    /// Numbers after a label that PEP 440 has no place for (`25.0.rc1.1`).
    extra: Vec<u64>,
}

/// Where a version stands between its dev, pre and final releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Dev,
    Pre(Pre, u64),
    Final,
}

impl Version {
    /// Parses a version; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Version> {
        let trimmed = text.trim();
        let lowered = trimmed.to_ascii_lowercase();
        let public = lowered.split('+').next()?;
        let public = public.strip_prefix('v').unwrap_or(public);
        let mut version = Version {
            text: trimmed.to_owned(),
            release: Vec::new(),
            pre: None,
            post: None,
            dev: None,
            extra: Vec::new(),
        };
        let mut label: Option<&str> = None;
        for run in runs(public)? {
            match run {
                Run::Number(n) => match label.take() {
                    None if version.pre.is_none() && version.post.is_none() && version.dev.is_none() => {
                        version.release.push(n)
                    }
                    None => version.extra.push(n),
                    Some(word) => version.set_label(word, n)?,
                },
                Run::Word(word) => {
                    if let Some(previous) = label.replace(word) {
                        version.set_label(previous, 0)?;
                    }
                }
            }
        }
        if let Some(word) = label {
            version.set_label(word, 0)?;
        }
        (!version.release.is_empty()).then_some(version)
    }

    fn set_label(&mut self, word: &str, number: u64) -> Option<()> {
        let pre = match word {
            "a" | "alpha" => Some(Pre::Alpha),
            "b" | "beta" => Some(Pre::Beta),
            "c" | "rc" | "pre" | "preview" => Some(Pre::Rc),
            _ => None,
        };
        let slot = match (pre, word) {
            (Some(kind), _) if self.pre.is_none() => {
                self.pre = Some((kind, number));
                return Some(());
            }
            (None, "post" | "rev" | "r") => &mut self.post,
            (None, "dev") => &mut self.dev,
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(number);
        Some(())
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `major.minor`, the torch_npu "line".
    pub fn line(&self) -> (u64, u64) {
        (self.release[0], self.release.get(1).copied().unwrap_or(0))
    }

    fn phase(&self) -> Phase {
        match (self.pre, self.post, self.dev) {
            (Some((kind, n)), _, _) => Phase::Pre(kind, n),
            (None, None, Some(_)) => Phase::Dev,
            _ => Phase::Final,
        }
    }
}

enum Run<'a> {
    Number(u64),
    Word(&'a str),
}

/// Splits `2.1.0rc1` into numbers and words; `.`, `-` and `_` only separate.
fn runs(text: &str) -> Option<Vec<Run<'_>>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Run::Number(text[start..i].parse().ok()?));
        } else if bytes[i].is_ascii_alphabetic() {
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(Run::Word(&text[start..i]));
        } else if matches!(bytes[i], b'.' | b'-' | b'_') {
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

fn compare_release(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len).map(|i| at(a, i).cmp(&at(b, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_release(&self.release, &other.release)
            .then_with(|| self.phase().cmp(&other.phase()))
            .then_with(|| self.post.cmp(&other.post))
            // A dev release comes before the release it leads to.
            .then_with(|| match (self.dev, other.dev) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| compare_release(&self.extra, &other.extra))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

pub fn known(text: &str) -> Version {
    Version::parse(text).expect("built-in version parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn orders_as_pep_440() {
        let ascending = [
            "1.11.0.post11",
            "2.1.0.dev20230101",
            "2.1.0rc1",
            "2.1.0.rc2",
            "2.1.0",
            "2.1.0.post1",
            "2.1.0.post3",
            "2.1.0.post10",
            "2.5.1",
            "2.5.1.post1",
            "2.6.0a1",
            "2.6.0b1",
            "2.6.0",
            "2.10.0.post4",
            "26.0.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn ignores_local_parts_prefixes_and_trailing_zeros() {
        assert_eq!(v("2.5.1+cpu"), v("2.5.1"));
        assert_eq!(v("v2.5.1"), v("2.5.1"));
        assert_eq!(v("2.5"), v("2.5.0"));
        assert_eq!(v(" 2.5.1\n").as_str(), "2.5.1");
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for text in ["", "torch", "2.5.1 x", "2.5.1.weird", "2.1.0.post1.post2", "+cpu"] {
            assert!(Version::parse(text).is_none(), "{text:?}");
        }
    }
}
