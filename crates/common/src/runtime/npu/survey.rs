//! What every torch-npu version on PyPI accepts, generated from the wheels
//! (`scripts/torch-npu-lines.py` -> `data/torch-npu-lines.json` -> build.rs):
//! the keys its parser knows, whether it reads `PYTORCH_ALLOC_CONF`, whether
//! setting both variables is a hard error.

use crate::runtime::keys::Acceptance;
use crate::version::Version;

/// One surveyed version. Holds no pointer (the name inline, the keys as bits
/// of `KEY_NAMES`), so the table lies in read-only data that the loader does
/// not relocate: every process that loads the library would otherwise write
/// its pages at start (src/preload/start_path.ld).
pub struct SurveyedVersion {
    /// The version, padded with NULs.
    name: [u8; NAME_LEN],
    pub prerelease: bool,
    /// Bit `i`: the version knows `KEY_NAMES[i]`.
    key_bits: u64,
    pub has_expandable_segments: bool,
    pub reads_generic_variable: bool,
    /// "Both PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF have been set".
    pub both_set_error: bool,
}

/// Room for the longest version name ("2.10.0.post7", "2.6.0rc1").
const NAME_LEN: usize = 24;

include!(concat!(env!("OUT_DIR"), "/torch_npu_survey.rs"));

impl SurveyedVersion {
    /// The version as PyPI spells it.
    pub fn version(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        // build.rs writes ASCII names only.
        std::str::from_utf8(&self.name[..len]).unwrap_or_default()
    }

    /// Whether this version's parser knows `key`.
    pub fn knows(&self, key: &str) -> bool {
        KEY_NAMES.iter().position(|known| *known == key).is_some_and(|at| self.key_bits & (1 << at) != 0)
    }

    /// How many keys this version's parser knows.
    pub fn key_count(&self) -> u32 {
        self.key_bits.count_ones()
    }
}

/// Surveyed releases (no release candidates).
fn releases() -> impl Iterator<Item = &'static SurveyedVersion> {
    VERSIONS.iter().filter(|v| !v.prerelease)
}

/// The surveyed entry of exactly this version.
pub fn exactly(installed: &Version) -> Option<&'static SurveyedVersion> {
    let wanted = installed.as_str().split('+').next().unwrap_or_default();
    VERSIONS.iter().find(|v| v.version() == wanted)
}

/// The surveyed releases of the installed version's line (2.10.x for 2.10.0.post9).
fn same_line(installed: &Version) -> impl Iterator<Item = &'static SurveyedVersion> + '_ {
    releases().filter(move |v| Version::parse(v.version()).is_some_and(|s| s.line() == installed.line()))
}

/// Whether the installed torch_npu knows `key`: exactly, when its version
/// was surveyed; else from its line's releases (all know it, none, or some).
pub fn acceptance(installed: &Version, key: &str) -> Acceptance {
    if let Some(entry) = exactly(installed) {
        return if entry.knows(key) { Acceptance::Accepted } else { Acceptance::Rejected };
    }
    let (mut knowing, mut all) = (0, 0);
    for entry in same_line(installed) {
        all += 1;
        knowing += usize::from(entry.knows(key));
    }
    match (knowing, all) {
        (_, 0) => Acceptance::MayBeRejected,
        (0, _) => Acceptance::Rejected,
        (k, a) if k == a => Acceptance::Accepted,
        _ => Acceptance::MayBeRejected,
    }
}

/// Which releases know `key`, in a few words.
pub fn describe(key: &str) -> String {
    let knowing: Vec<&str> = releases().filter(|v| v.knows(key)).map(|v| v.version()).collect();
    let total = releases().count();
    match (knowing.first(), knowing.last()) {
        (Some(first), Some(last)) if knowing.len() == total => format!("every torch_npu release ({first} to {last})"),
        (Some(first), Some(last)) => {
            format!("{} of {total} torch_npu releases, {first} to {last}", knowing.len())
        }
        _ => "no torch_npu release (release candidates only)".to_owned(),
    }
}

/// A fact of the installed version, exactly if surveyed, else from the
/// newest surveyed release of its line; `None` when its line was not surveyed.
pub fn fact(installed: &Version, of: impl Fn(&SurveyedVersion) -> bool) -> Option<bool> {
    exactly(installed).or_else(|| same_line(installed).last()).map(of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn the_survey_holds_what_the_real_wheels_were_seen_to_do() {
        // Checked on the real parsers (tests/real_clients/torch_npu.rs).
        assert_eq!(exactly(&v("2.5.1")).unwrap().key_count(), 5);
        assert_eq!(exactly(&v("2.10.0.post4")).unwrap().key_count(), 13);
        for key in ["pinned_max_cached_size_mb", "pinned_max_round_threshold_mb", "throw_on_npumalloc_oom"] {
            assert_eq!(acceptance(&v("2.14.0"), key), Acceptance::Accepted, "{key}");
            assert_eq!(acceptance(&v("2.10.0.post4"), key), Acceptance::Rejected, "{key}");
        }
        assert_eq!(acceptance(&v("2.5.1"), "segment_size_mb"), Acceptance::Rejected);
        let newest = exactly(&v("2.14.0")).unwrap();
        assert!(newest.reads_generic_variable && newest.both_set_error);
        let pinned = exactly(&v("2.10.0.post4")).unwrap();
        assert!(!pinned.reads_generic_variable && !pinned.both_set_error);
        assert!(KEY_NAMES.len() >= 19 && KEY_NAMES.contains(&"align_hugepages"));
    }

    #[test]
    fn an_unsurveyed_version_is_judged_by_its_line() {
        // 2.5.x releases all know page_size, none segment_size_mb.
        assert_eq!(acceptance(&v("2.5.9"), "page_size"), Acceptance::Accepted);
        assert_eq!(acceptance(&v("2.5.9"), "segment_size_mb"), Acceptance::Rejected);
        // Within 2.10, only some releases know it.
        assert_eq!(acceptance(&v("2.10.0.post99"), "per_process_memory_fraction"), Acceptance::MayBeRejected);
        assert_eq!(acceptance(&v("3.0.0"), "page_size"), Acceptance::MayBeRejected);
        assert!(describe("page_size").contains("torch_npu releases"), "{}", describe("page_size"));
    }
}
