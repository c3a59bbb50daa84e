//! Rules 4 to 9 of the normalization, checked in real processes with the
//! built library preloaded: CPython (`os.environ`), `/bin/sh` and a C program
//! calling `getenv` must all see the same result. The message is said by the
//! two that then look up the runtime; the shell stays silent.

use support::probes;
use support::probes::{GENERIC, PAIR, Probe, SPECIFIC};

/// What the library should print (at the default level, info).
#[derive(Clone, Copy, Debug)]
enum Log {
    /// Nothing: the value is left as it is, quietly.
    Silent,
    /// One info line containing these texts.
    Info(&'static [&'static str]),
    /// One warning line containing these texts.
    Warn(&'static [&'static str]),
}

struct Case {
    specific: Option<&'static [u8]>,
    generic: Option<&'static [u8]>,
    want_specific: Option<&'static [u8]>,
    want_generic: Option<&'static [u8]>,
    log: Log,
}

/// A case with only `PYTORCH_NPU_ALLOC_CONF` involved.
fn specific(value: Option<&'static [u8]>, want: &'static [u8], log: Log) -> Case {
    Case { specific: value, generic: None, want_specific: Some(want), want_generic: None, log }
}

/// A case where the value stays as it is.
fn kept(value: &'static [u8], log: Log) -> Case {
    specific(Some(value), value, log)
}

fn check(cases: &[Case]) {
    check_in(cases, &[]);
}

/// An Ascend deployment's environment, as CANN's set_env.sh leaves it.
const ASCEND_ENVIRONMENT: &[(&str, &str)] = &[("ASCEND_OPP_PATH", "/usr/local/Ascend/ascend-toolkit/latest/opp")];

/// `check` with these variables set too.
fn check_in(cases: &[Case], environment: &[(&str, &str)]) {
    for case in cases {
        for probe in Probe::ALL {
            let mut command = probe.command(true, &[]);
            command.envs(environment.iter().copied());
            if let Some(value) = case.specific {
                probes::env_bytes(&mut command, SPECIFIC, value);
            }
            if let Some(value) = case.generic {
                probes::env_bytes(&mut command, GENERIC, value);
            }
            let seen = probes::run(&mut command);
            let what = format!(
                "{probe:?} with {SPECIFIC}={:?} {GENERIC}={:?}: {seen:?}",
                case.specific.map(String::from_utf8_lossy),
                case.generic.map(String::from_utf8_lossy)
            );
            let view = seen.view();
            assert_eq!(view.specific.as_deref(), case.want_specific, "{what}");
            assert_eq!(view.generic.as_deref(), case.want_generic, "{what}");
            check_marker(case, view.marker.as_deref(), &what);
            // The library speaks only in processes that use the runtime.
            check_log(if probe.uses_runtime() { case.log } else { Log::Silent }, &seen, &what);
        }
    }
}

/// A change records `set:<VAR>:<hash>`, anything else `kept`.
fn check_marker(case: &Case, marker: Option<&[u8]>, what: &str) {
    let marker = String::from_utf8_lossy(marker.expect(what)).into_owned();
    let changed_var = if case.want_specific != case.specific {
        Some(SPECIFIC)
    } else if case.want_generic != case.generic {
        Some(GENERIC)
    } else {
        None
    };
    match changed_var {
        Some(var) => assert!(marker.starts_with(&format!("set:{var}:")), "{what}"),
        None => assert_eq!(marker, "kept", "{what}"),
    }
}

fn check_log(log: Log, seen: &probes::Seen, what: &str) {
    let lines = seen.lines();
    probes::assert_all_prefixed(&seen.stderr);
    let (prefix, texts) = match log {
        Log::Silent => {
            assert!(lines.is_empty(), "{what}");
            return;
        }
        Log::Info(texts) => ("npu-alloc-shim: ", texts),
        Log::Warn(texts) => ("npu-alloc-shim: warning: ", texts),
    };
    assert_eq!(lines.len(), 1, "{what}");
    assert!(lines[0].starts_with(prefix), "{what}");
    if matches!(log, Log::Info(_)) {
        assert!(!lines[0].contains("warning"), "{what}");
    }
    for text in texts {
        assert!(lines[0].contains(text), "{text:?} missing: {what}");
    }
}

#[test]
fn rule_4_unset_gets_the_pair_and_set_but_empty_is_left_alone() {
    let pair = PAIR.as_bytes();
    // Set to nothing is a choice: ROLL clears it for its vLLM workers in sleep mode.
    let empty = Log::Info(&["is set but empty: left alone", "unset it to get expandable_segments:True"]);
    check(&[
        specific(None, pair, Log::Info(&["PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset)"])),
        kept(b"", empty),
        kept(b"   ", empty),
        kept(b" \t\n ", empty),
    ]);
}

#[test]
fn rule_5_an_existing_key_is_left_alone_in_any_spacing() {
    check(&[
        kept(b"expandable_segments:True", Log::Silent),
        kept(b"expandable_segments:False", Log::Silent),
        kept(b" expandable_segments : True ", Log::Silent),
        kept(b"expandable_segments :False,page_size:1g", Log::Silent),
        kept(b"page_size:1g,\texpandable_segments:False", Log::Silent),
        // A wrong value of the key is not ours to fix, but worth a warning
        // before torch_npu fails on it at the first NPU tensor.
        kept(
            b"expandable_segments:true",
            Log::Warn(&["Expected a single True/False argument for expandable_segments", "left alone"]),
        ),
        // Set by hand beside a key torch_npu refuses it with: it will fail.
        kept(
            b"max_split_size_mb:256,expandable_segments:True",
            Log::Warn(&[
                "together with max_split_size_mb",
                "fail at the first NPU allocation",
                "remove max_split_size_mb",
            ]),
        ),
        kept(b"garbage_collection_threshold:0.6,expandable_segments:False", Log::Silent),
    ]);
}

#[test]
fn rule_5_the_pinned_memory_key_is_another_key() {
    check(&[specific(
        Some(b"pin_memory_expandable_segments:True"),
        b"pin_memory_expandable_segments:True,expandable_segments:True",
        Log::Info(&["(was \"pin_memory_expandable_segments:True\")"]),
    )]);
}

#[test]
fn rule_6_conflicting_keys_are_left_alone_with_a_warning() {
    check(&[
        kept(
            b"max_split_size_mb:256",
            Log::Warn(&[
                "PYTORCH_NPU_ALLOC_CONF=\"max_split_size_mb:256\" sets max_split_size_mb",
                "refuses together with expandable_segments:True",
                "remove max_split_size_mb",
                "NPU_ALLOC_SHIM_NORMALIZE=0",
            ]),
        ),
        kept(
            b"page_size:1g, garbage_collection_threshold:0.6",
            Log::Warn(&["sets garbage_collection_threshold", "remove garbage_collection_threshold"]),
        ),
    ]);
}

#[test]
fn rule_7_unparseable_or_unknown_values_are_left_alone_quoting_the_problem() {
    check(&[
        kept(b"bogus:1", Log::Warn(&["\"bogus:1\" does not parse", "Unrecognized CachingAllocator option: bogus"])),
        kept(b"page_size:2m", Log::Warn(&["page_size only accepts \"1g\" (got \"2m\")"])),
        kept(b"page_size:1g,,", Log::Warn(&["Unrecognized CachingAllocator option: ,"])),
        kept(b"page_size=1g", Log::Warn(&["Unrecognized CachingAllocator option: page_size=1g"])),
        kept(b"page_size:", Log::Warn(&["Error, expecting page_size value"])),
    ]);
}

#[test]
fn rule_8_valid_values_get_the_pair_appended() {
    check(&[
        specific(
            Some(b"page_size:1g"),
            b"page_size:1g,expandable_segments:True",
            Log::Info(&["PYTORCH_NPU_ALLOC_CONF=\"page_size:1g,expandable_segments:True\" (was \"page_size:1g\")"]),
        ),
        // Keys only newer torch_npu lines know: appending changes nothing there.
        specific(Some(b"segment_size_mb:64"), b"segment_size_mb:64,expandable_segments:True", Log::Info(&[])),
        specific(
            Some(b"release_lock_on_npumalloc:True"),
            b"release_lock_on_npumalloc:True,expandable_segments:True",
            Log::Info(&[]),
        ),
        specific(
            Some(b"roundup_power2_divisions:[256:1,512:2,>:8]"),
            b"roundup_power2_divisions:[256:1,512:2,>:8],expandable_segments:True",
            Log::Info(&[]),
        ),
        // Keys the survey of the wheels found in the newest lines (2.13, 2.14)
        // and in old ones (align_hugepages, 2.1-2.3): known keys, not typos.
        specific(
            Some(b"pinned_max_cached_size_mb:64,throw_on_npumalloc_oom:True"),
            b"pinned_max_cached_size_mb:64,throw_on_npumalloc_oom:True,expandable_segments:True",
            Log::Info(&[]),
        ),
        specific(Some(b"align_hugepages:True"), b"align_hugepages:True,expandable_segments:True", Log::Info(&[])),
    ]);
}

#[test]
fn rule_8_a_trailing_comma_is_not_doubled() {
    check(&[
        specific(Some(b"page_size:1g,"), b"page_size:1g,expandable_segments:True", Log::Info(&[])),
        specific(Some(b"page_size:1g, "), b"page_size:1g, expandable_segments:True", Log::Info(&[])),
    ]);
}

/// A case with only `PYTORCH_ALLOC_CONF` set.
fn generic(value: &'static [u8], want: &'static [u8], log: Log) -> Case {
    Case { specific: None, generic: Some(value), want_specific: None, want_generic: Some(want), log }
}

#[test]
fn rule_9_the_generic_variable_alone_is_normalized_and_the_npu_one_never_created() {
    check_in(
        &[
            generic(
                b"page_size:1g",
                b"page_size:1g,expandable_segments:True",
                Log::Info(&["PYTORCH_ALLOC_CONF=\"page_size:1g,expandable_segments:True\""]),
            ),
            generic(b"", b"", Log::Info(&["PYTORCH_ALLOC_CONF=\"\" is set but empty: left alone"])),
            generic(b"expandable_segments:False", b"expandable_segments:False", Log::Silent),
            generic(
                b"max_split_size_mb:256",
                b"max_split_size_mb:256",
                Log::Warn(&["PYTORCH_ALLOC_CONF=\"max_split_size_mb:256\" sets max_split_size_mb"]),
            ),
            generic(b"bogus:1", b"bogus:1", Log::Warn(&["Unrecognized CachingAllocator option: bogus"])),
        ],
        ASCEND_ENVIRONMENT,
    );
}

/// PyTorch's CUDA allocator reads `PYTORCH_ALLOC_CONF` too: a process that
/// shows no Ascend deployment (none of CANN's variables) keeps it as given,
/// whatever its value, and gets no NPU variable either.
#[test]
fn rule_9_the_generic_variable_is_left_alone_outside_an_ascend_deployment() {
    const OUTSIDE: &str = "PYTORCH_ALLOC_CONF alone is left alone outside a torch_npu deployment";
    let kept = |value: &'static [u8]| generic(value, value, Log::Info(&[OUTSIDE]));
    check(&[kept(b"roundup_power2_divisions:4"), kept(b""), kept(b"page_size:1g"), kept(b"max_split_size_mb:256")]);
}

#[test]
fn rule_9_both_variables_set_are_left_alone_with_a_warning() {
    let both = |specific: &'static [u8], generic: &'static [u8]| Case {
        specific: Some(specific),
        generic: Some(generic),
        want_specific: Some(specific),
        want_generic: Some(generic),
        log: Log::Warn(&["both PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF are set"]),
    };
    check(&[
        both(b"page_size:1g", b"page_size:1g"),
        both(b"", b""),
        both(b"expandable_segments:True", b"max_split_size_mb:256"),
    ]);
}
