//! Rules 1 and 2 in real processes: the switches that turn the library off
//! (`NPU_ALLOC_SHIM_DISABLE`, `NPU_ALLOC_SHIM_NORMALIZE`) and the command-line
//! flags of programs whose allocators pool device memory themselves.

use support::probes;
use support::probes::{PAIR, Probe, SPECIFIC};

/// Runs every probe preloaded with `env` and `extra` arguments.
fn run_all(env: &[(&str, &str)], extra: &[&str]) -> Vec<(Probe, probes::Seen)> {
    Probe::ALL
        .iter()
        .map(|&probe| {
            let mut command = probe.command(true, extra);
            command.envs(env.iter().copied());
            (probe, probes::run(&mut command))
        })
        .collect()
}

#[test]
fn rule_1_disable_makes_the_library_do_nothing_at_all() {
    for on in ["1", "true", "YES", "on"] {
        for value in [None, Some("page_size:1g")] {
            let mut env = vec![("NPU_ALLOC_SHIM_DISABLE", on), ("NPU_ALLOC_SHIM_LOG", "debug")];
            env.extend(value.map(|v| (SPECIFIC, v)));
            for (probe, seen) in run_all(&env, &[]) {
                let view = seen.view();
                assert_eq!(view.specific_str().as_deref(), value, "{probe:?} {on}");
                assert_eq!(view.marker, None, "{probe:?} {on}: no marker either");
                assert_eq!(seen.stderr, "", "{probe:?} {on}: not even at debug");
            }
        }
    }
}

#[test]
fn rule_1_disable_off_values_leave_the_library_on() {
    for off in ["0", "false", "no", "off", ""] {
        for (probe, seen) in run_all(&[("NPU_ALLOC_SHIM_DISABLE", off)], &[]) {
            assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{probe:?} {off:?}");
        }
    }
}

#[test]
fn rule_1_an_unrecognised_switch_value_is_reported_and_ignored() {
    for (probe, seen) in run_all(&[("NPU_ALLOC_SHIM_DISABLE", "maybe")], &[]) {
        assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{probe:?}");
        let lines = seen.lines();
        assert_eq!(lines.len(), probe.says(2), "{probe:?}: {lines:?}");
        assert!(
            lines
                .first()
                .is_none_or(|l| l.starts_with("npu-alloc-shim: warning: NPU_ALLOC_SHIM_DISABLE: unrecognised value")),
            "{lines:?}"
        );
    }
}

#[test]
fn rule_1_normalize_off_leaves_the_value_alone() {
    for off in ["0", "false", "No", "off", ""] {
        for value in [None, Some(""), Some("page_size:1g")] {
            let mut env = vec![("NPU_ALLOC_SHIM_NORMALIZE", off)];
            env.extend(value.map(|v| (SPECIFIC, v)));
            for (probe, seen) in run_all(&env, &[]) {
                let view = seen.view();
                assert_eq!(view.specific_str().as_deref(), value, "{probe:?} {off:?}");
                assert_eq!(view.marker, None, "{probe:?} {off:?}");
                assert_eq!(seen.stderr, "", "{probe:?} {off:?}: quiet at info");
            }
        }
    }
    // At debug it says why.
    let env = [("NPU_ALLOC_SHIM_NORMALIZE", "0"), ("NPU_ALLOC_SHIM_LOG", "debug")];
    for (probe, seen) in run_all(&env, &[]) {
        assert_eq!(
            seen.lines(),
            ["npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF left alone: NPU_ALLOC_SHIM_NORMALIZE=0"],
            "{probe:?}"
        );
    }
    for (probe, seen) in run_all(&[("NPU_ALLOC_SHIM_NORMALIZE", "1")], &[]) {
        assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{probe:?}");
    }
}

/// Every documented way a memory-pooling mode shows on a command line.
const POOL_FLAGS: [&str; 10] = [
    "--enable-sleep-mode",
    "--ENABLE-SLEEP-MODE",
    "--enable_sleep_mode",
    "--enable-sleep-mode=true",
    "--vllm.enable_sleep",
    "--vllm_enable_sleep",
    "actor_rollout_ref.rollout.enable_sleep_mode=true",
    "+actor_rollout_ref.rollout.enable_sleep_mode=True",
    "--enable-memory-saver",
    "--Enable_Memory_Saver",
];

#[test]
fn rule_2_sleep_mode_and_memory_savers_on_the_own_command_line_leave_the_value_alone() {
    for flag in POOL_FLAGS {
        for value in [None, Some("page_size:1g")] {
            let env: Vec<(&str, &str)> = value.map(|v| (SPECIFIC, v)).into_iter().collect();
            for (probe, seen) in run_all(&env, &["serve", flag]) {
                let what = format!("{probe:?} {flag} {value:?}: {seen:?}");
                let view = seen.view();
                assert_eq!(view.specific_str().as_deref(), value, "{what}");
                assert_eq!(view.marker.as_deref(), Some(&b"kept"[..]), "{what}");
                let lines = seen.lines();
                assert_eq!(lines.len(), probe.says(1), "{what}");
                for line in lines {
                    assert!(
                        line.starts_with(&format!(
                            "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF left alone: \"{flag}\" pools device memory itself"
                        )),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn rule_2_flags_turned_off_or_lookalikes_do_not_count() {
    for flag in [
        "--enable-sleep-mode=false",
        "actor_rollout_ref.rollout.enable_sleep_mode=false",
        "--enable-sleep-mode-x",
        "--no-enable-memory-saver",
    ] {
        for (probe, seen) in run_all(&[], &[flag]) {
            assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{probe:?} {flag}");
        }
    }
}
