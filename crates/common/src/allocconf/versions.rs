//! Installed-version facts for `npu-alloc-shim check`: parsing torch_npu and
//! Ascend driver versions, and what each version makes of the keys of a value.
//! Pure, so it is unit-tested here (the CLI binary runs no unit tests).
//!
//! The thresholds are torch_npu/Ascend facts from the notes
//! (shared/notes/torch_npu-alloc-conf.md); only the CLI uses them.

use crate::runtime::keys::Since;
use std::cmp::Ordering;

/// First torch_npu release accepting `expandable_segments`: v2.1.0-6.0.rc1,
/// published as 2.1.0.post3 (2.1.0rc1 and 2.1.0 are 5.0.rc3 and 5.0.0).
pub const TORCH_NPU_EXPANDABLE_SINCE: &str = "2.1.0.post3";
/// First Ascend HDK (driver) with expandable segments.
pub const DRIVER_EXPANDABLE_SINCE: &str = "23.0.0";
/// First Ascend HDK where a process using them may use several cards.
pub const DRIVER_MULTI_CARD_SINCE: &str = "24.1.rc3";

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
    fn line(&self) -> (u64, u64) {
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

fn known(text: &str) -> Version {
    Version::parse(text).expect("built-in version parses")
}

/// The driver version from the text of Ascend's `version.info`
/// (`Version=23.0.3`, any case of the key).
pub fn driver_version(version_info: &str) -> Option<Version> {
    version_info.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        key.trim().eq_ignore_ascii_case("version").then(|| Version::parse(value))?
    })
}

/// How an installed torch_npu treats a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    Accepted,
    /// Known to be refused ("Unrecognized CachingAllocator option").
    Rejected,
    /// Probably refused; not checked against that version.
    MayBeRejected,
}

impl Acceptance {
    pub fn name(self) -> &'static str {
        match self {
            Acceptance::Accepted => "accepted",
            Acceptance::Rejected => "rejected",
            Acceptance::MayBeRejected => "may-be-rejected",
        }
    }
}

/// What `torch_npu` of this version does with a key accepted since `since`:
/// lines up to 2.5 were checked (2.5.1), 2.10 was checked (2.10.0.post4),
/// the lines between were not.
pub fn acceptance(torch_npu: &Version, since: Since) -> Acceptance {
    let line = torch_npu.line();
    match since {
        Since::Legacy => Acceptance::Accepted,
        _ if line < (2, 6) => Acceptance::Rejected,
        _ if line < (2, 10) => Acceptance::MayBeRejected,
        Since::Newer => Acceptance::Accepted,
        Since::Master => Acceptance::MayBeRejected,
    }
}

/// Whether this torch_npu knows `expandable_segments` at all.
pub fn torch_npu_has_expandable_segments(torch_npu: &Version) -> bool {
    *torch_npu >= known(TORCH_NPU_EXPANDABLE_SINCE)
}

/// The last release checked to read only `PYTORCH_NPU_ALLOC_CONF`.
pub const TORCH_NPU_ONLY_OWN_VARIABLE_UNTIL: &str = "2.10.0.post4";

/// Whether this torch_npu reads PyTorch's generic `PYTORCH_ALLOC_CONF`: the
/// released lines up to 2.10.0.post4 read only their own variable (only the
/// development branch also reads the generic one).
pub fn torch_npu_reads_generic_variable(torch_npu: &Version) -> bool {
    *torch_npu > known(TORCH_NPU_ONLY_OWN_VARIABLE_UNTIL)
}

/// Warnings about an installed torch_npu and the keys of a value
/// (`keys`: each key name with the lines that accept it).
pub fn torch_npu_warnings(torch_npu: &Version, keys: &[(&str, Since)]) -> Vec<String> {
    let v = torch_npu.as_str();
    let mut warnings = Vec::new();
    if !torch_npu_has_expandable_segments(torch_npu) {
        warnings.push(format!(
            "torch_npu {v} rejects expandable_segments (accepted from {TORCH_NPU_EXPANDABLE_SINCE}, \
             v2.1.0-6.0.rc1): with expandable_segments:True it fails at the first NPU allocation; \
             upgrade torch_npu or set NPU_ALLOC_SHIM_NORMALIZE=0"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for &(key, since) in keys {
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        match acceptance(torch_npu, since) {
            Acceptance::Accepted => {}
            Acceptance::Rejected => warnings.push(format!(
                "torch_npu {v} rejects {key} (verified on 2.5.1: \
                 \"Unrecognized CachingAllocator option: {key}\"); {key} is accepted by {}",
                since.describe()
            )),
            Acceptance::MayBeRejected => warnings.push(format!(
                "torch_npu {v} may reject {key} (not verified); {key} is accepted by {}",
                since.describe()
            )),
        }
    }
    warnings
}

/// Warnings about an installed Ascend driver.
pub fn driver_warnings(driver: &Version) -> Vec<String> {
    let v = driver.as_str();
    if *driver < known(DRIVER_EXPANDABLE_SINCE) {
        vec![format!("Ascend driver {v} lacks expandable segments (they need HDK {DRIVER_EXPANDABLE_SINCE} or later)")]
    } else if *driver < known(DRIVER_MULTI_CARD_SINCE) {
        vec![format!(
            "Ascend driver {v}: before HDK 24.1.RC3 a process using expandable segments cannot use several cards"
        )]
    } else {
        Vec::new()
    }
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

    #[test]
    fn reads_ascend_driver_spellings() {
        assert!(v("23.0.rc3") < v("23.0.0"));
        assert!(v("24.1.RC3") < v("24.1.0"));
        assert!(v("24.1.rc2") < v("24.1.rc3"));
        assert!(v("25.0.rc1.1") > v("25.0.rc1"));
        let info = "package_name=Ascend-hdk-910b-npu-driver\nVersion=23.0.3\ninnerversion=V100R001C15\n";
        assert_eq!(driver_version(info), Some(v("23.0.3")));
        assert_eq!(driver_version("version = 24.1.rc3\n"), Some(v("24.1.rc3")));
        assert_eq!(driver_version("package_version=1.0\n"), None);
    }

    #[test]
    fn expandable_segments_start_at_6_0_rc1() {
        for old in ["1.11.0", "2.0.1", "2.1.0rc1", "2.1.0", "2.1.0.post2"] {
            assert!(!torch_npu_has_expandable_segments(&v(old)), "{old}");
            let warnings = torch_npu_warnings(&v(old), &[]);
            assert!(warnings[0].contains("rejects expandable_segments"), "{old}");
        }
        for new in ["2.1.0.post3", "2.2.0", "2.5.1", "2.10.0.post4"] {
            assert!(torch_npu_has_expandable_segments(&v(new)), "{new}");
            assert!(torch_npu_warnings(&v(new), &[]).is_empty(), "{new}");
        }
    }

    #[test]
    fn key_acceptance_follows_the_verified_lines() {
        use Acceptance::*;
        let table = [
            ("2.5.1", [Accepted, Rejected, Rejected]),
            ("2.3.1", [Accepted, Rejected, Rejected]),
            ("2.6.0", [Accepted, MayBeRejected, MayBeRejected]),
            ("2.9.0rc1", [Accepted, MayBeRejected, MayBeRejected]),
            ("2.10.0.post4", [Accepted, Accepted, MayBeRejected]),
            ("2.11.0", [Accepted, Accepted, MayBeRejected]),
        ];
        for (version, expected) in table {
            let got = [Since::Legacy, Since::Newer, Since::Master].map(|s| acceptance(&v(version), s));
            assert_eq!(got, expected, "{version}");
        }
    }

    #[test]
    fn key_warnings_name_each_key_once() {
        let keys = [("page_size", Since::Legacy), ("segment_size_mb", Since::Newer), ("segment_size_mb", Since::Newer)];
        let warnings = torch_npu_warnings(&v("2.5.1"), &keys);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("rejects segment_size_mb (verified on 2.5.1"));
        let warnings = torch_npu_warnings(&v("2.7.1"), &keys);
        assert!(warnings[0].contains("may reject segment_size_mb (not verified)"));
        assert!(torch_npu_warnings(&v("2.10.0.post4"), &keys).is_empty());
    }

    #[test]
    fn only_unreleased_lines_read_the_generic_variable() {
        for old in ["2.5.1", "2.8.0", "2.10.0", "2.10.0.post4"] {
            assert!(!torch_npu_reads_generic_variable(&v(old)), "{old}");
        }
        assert!(torch_npu_reads_generic_variable(&v("2.11.0.dev20260101")));
    }

    #[test]
    fn driver_thresholds() {
        assert!(driver_warnings(&v("22.0.0"))[0].contains("lacks expandable segments"));
        assert!(driver_warnings(&v("23.0.rc3"))[0].contains("lacks"));
        assert!(driver_warnings(&v("23.0.3"))[0].contains("several cards"));
        assert!(driver_warnings(&v("24.1.rc3")).is_empty());
        assert!(driver_warnings(&v("25.0.0")).is_empty());
    }
}
