//! `NPU_ALLOC_SHIM_LOG`: which lines reach stderr at each level. Every line
//! starts with `npu-alloc-shim:`; a change or a refusal is exactly one line.

mod probes;
mod support;

use probes::{Probe, SPECIFIC};

/// Lines printed for: a change (unset value), a refusal (conflict), a quiet
/// keep (the key is already there).
fn lines_at(level: Option<&str>) -> [usize; 3] {
    let mut counts = [usize::MAX; 3];
    for (slot, value) in
        [None, Some("max_split_size_mb:256"), Some("expandable_segments:False")].into_iter().enumerate()
    {
        let mut per_probe = Vec::new();
        for probe in Probe::ALL {
            let mut command = probe.command(true, &[]);
            if let Some(level) = level {
                command.env("NPU_ALLOC_SHIM_LOG", level);
            }
            if let Some(value) = value {
                command.env(SPECIFIC, value);
            }
            let seen = probes::run(&mut command);
            probes::assert_all_prefixed(&seen.stderr);
            per_probe.push(seen.lines().len());
        }
        assert!(per_probe.windows(2).all(|w| w[0] == w[1]), "{level:?} {value:?}: {per_probe:?}");
        counts[slot] = per_probe[0];
    }
    counts
}

#[test]
fn each_level_prints_what_it_should() {
    assert_eq!(lines_at(Some("off")), [0, 0, 0]);
    assert_eq!(lines_at(Some("warn")), [0, 1, 0]);
    assert_eq!(lines_at(Some("info")), [1, 1, 0]);
    assert_eq!(lines_at(None), [1, 1, 0], "info is the default");
    assert_eq!(lines_at(Some("debug")), [1, 1, 1]);
    assert_eq!(lines_at(Some("WARN")), [0, 1, 0], "any case");
}

#[test]
fn a_refusal_is_a_warning_line_and_a_change_is_not() {
    for probe in Probe::ALL {
        let mut command = probe.command(true, &[]);
        command.env(SPECIFIC, "bogus:1");
        let seen = probes::run(&mut command);
        assert!(seen.stderr.starts_with("npu-alloc-shim: warning: "), "{seen:?}");
        let seen = probes::run(&mut probe.command(true, &[]));
        assert!(seen.stderr.starts_with("npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF="), "{seen:?}");
    }
}

#[test]
fn an_unknown_level_is_reported_and_info_is_used() {
    for probe in Probe::ALL {
        let mut command = probe.command(true, &[]);
        command.env("NPU_ALLOC_SHIM_LOG", "loud");
        let seen = probes::run(&mut command);
        probes::assert_all_prefixed(&seen.stderr);
        let lines = seen.lines();
        assert_eq!(lines.len(), 2, "{probe:?}: {lines:?}");
        assert!(lines[0].starts_with("npu-alloc-shim: warning: NPU_ALLOC_SHIM_LOG"));
        assert!(lines[1].starts_with("npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF="));
    }
}
