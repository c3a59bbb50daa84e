//! What torch_npu and Ascend driver versions mean for the allocator
//! configuration (`npu-alloc-shim check`). The thresholds are torch_npu and
//! Ascend facts from shared/notes/torch_npu-alloc-conf.md.

use super::survey;
use crate::runtime::keys::{Acceptance, Since};
use crate::version::{Version, known};

/// First torch_npu release accepting `expandable_segments`: v2.1.0-6.0.rc1,
/// published as 2.1.0.post3 (2.1.0rc1 and 2.1.0 are 5.0.rc3 and 5.0.0).
pub const TORCH_NPU_EXPANDABLE_SINCE: &str = "2.1.0.post3";
/// First Ascend HDK (driver) with expandable segments.
pub const DRIVER_EXPANDABLE_SINCE: &str = "23.0.0";
/// First Ascend HDK where a process using them may use several cards.
pub const DRIVER_MULTI_CARD_SINCE: &str = "24.1.rc3";

/// The driver version from the text of Ascend's `version.info`
/// (`Version=23.0.3`, any case of the key).
pub fn driver_version(version_info: &str) -> Option<Version> {
    version_info.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        key.trim().eq_ignore_ascii_case("version").then(|| Version::parse(value))?
    })
}

/// What `torch_npu` of this version does with `key`: the survey of the
/// wheels says (`Since::Surveyed`, every NPU key).
pub fn acceptance(torch_npu: &Version, key: &str, since: Since) -> Acceptance {
    let line = torch_npu.line();
    match since {
        Since::Surveyed => survey::acceptance(torch_npu, key),
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

/// Which versions accept `key`.
pub fn describe_key(key: &str, since: Since) -> String {
    match since {
        Since::Surveyed => survey::describe(key),
        since => super::SPEC.wording.accepted_by(since).to_owned(),
    }
}

/// Whether this torch_npu reads PyTorch's generic `PYTORCH_ALLOC_CONF`: as
/// the survey of the wheels says for its version (or its line's newest
/// release); else, as checked by hand, the released lines up to
/// 2.10.0.post4 read only their own variable (only the
/// development branch also reads the generic one).
pub fn torch_npu_reads_generic_variable(torch_npu: &Version) -> bool {
    survey::fact(torch_npu, |v| v.reads_generic_variable)
        .unwrap_or_else(|| *torch_npu > known(TORCH_NPU_ONLY_OWN_VARIABLE_UNTIL))
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
        match acceptance(torch_npu, key, since) {
            Acceptance::Accepted => {}
            Acceptance::Rejected => warnings.push(format!(
                "torch_npu {v} rejects {key} (its parser does not know it: survey of the wheels, \
                 crates/common/data/torch-npu-lines.json); {key} is accepted by {}",
                describe_key(key, since)
            )),
            Acceptance::MayBeRejected => warnings.push(format!(
                "torch_npu {v} may reject {key} (this version was not surveyed, and its line's releases \
                 differ or were not surveyed); {key} is accepted by {}",
                describe_key(key, since)
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
    fn key_acceptance_follows_the_survey_of_the_wheels() {
        use Acceptance::*;
        let s = Since::Surveyed;
        let table = [
            ("2.5.1", [Accepted, Rejected, Rejected]),
            // 2.3.1 itself lacks page_size (2.3.1.post6 has it).
            ("2.3.1", [Rejected, Rejected, Rejected]),
            ("2.10.0.post4", [Accepted, Accepted, Rejected]),
            ("2.14.0", [Accepted, Accepted, Accepted]),
            // Not surveyed: its line's releases all know it, some, none.
            ("2.7.1.post99", [Accepted, MayBeRejected, Rejected]),
        ];
        for (version, expected) in table {
            let got = ["page_size", "segment_size_mb", "pinned_max_cached_size_mb"]
                .map(|key| acceptance(&v(version), key, s));
            assert_eq!(got, expected, "{version}");
        }
    }

    #[test]
    fn key_warnings_name_each_key_once() {
        let s = Since::Surveyed;
        let keys = [("page_size", s), ("segment_size_mb", s), ("segment_size_mb", s)];
        let warnings = torch_npu_warnings(&v("2.5.1"), &keys);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("rejects segment_size_mb (its parser does not know it"), "{warnings:?}");
        let warnings = torch_npu_warnings(&v("2.7.1.post99"), &keys);
        assert!(warnings[0].contains("may reject segment_size_mb"), "{warnings:?}");
        assert!(torch_npu_warnings(&v("2.10.0.post4"), &keys).is_empty());
    }

    #[test]
    fn the_generic_variable_is_read_where_the_survey_found_it() {
        for own_only in ["2.5.1", "2.8.0", "2.10.0", "2.10.0.post4"] {
            assert!(!torch_npu_reads_generic_variable(&v(own_only)), "{own_only}");
        }
        for reads in ["2.10.0.post7", "2.13.0", "2.14.0"] {
            assert!(torch_npu_reads_generic_variable(&v(reads)), "{reads}");
        }
        // A line not surveyed: the rule checked by hand.
        assert!(torch_npu_reads_generic_variable(&v("2.15.0.dev20260101")));
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
