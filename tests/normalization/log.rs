//! `NPU_ALLOC_SHIM_LOG`: which lines reach stderr at each level. Every line
//! starts with `npu-alloc-shim:`; a change or a refusal is exactly one line,
//! said in a process that uses the runtime (below `debug`, a shell that never
//! does says nothing).

use support::probes;
use support::probes::{Probe, SPECIFIC};

/// Lines printed for: a change (unset value), a refusal (conflict), a quiet
/// keep (the key is already there), by the probes that use the runtime; the
/// shell probe must print the same at `debug` and nothing below it.
fn lines_at(level: Option<&str>) -> [usize; 3] {
    let debug = level.is_some_and(|l| l.eq_ignore_ascii_case("debug"));
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
            if probe.uses_runtime() || debug {
                per_probe.push(seen.lines().len());
            } else {
                assert_eq!(seen.lines(), Vec::<&str>::new(), "{probe:?} {level:?} {value:?}");
            }
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
    for probe in Probe::ALL.into_iter().filter(|p| p.uses_runtime()) {
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
        if !probe.uses_runtime() {
            assert_eq!(lines, Vec::<&str>::new(), "an image-wide bad setting must not make every shell talk");
            continue;
        }
        assert_eq!(lines.len(), 2, "{probe:?}: {lines:?}");
        assert!(lines[0].starts_with("npu-alloc-shim: warning: NPU_ALLOC_SHIM_LOG"));
        assert!(lines[1].starts_with("npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF="));
    }
}
