//! The library loaded late with `dlopen`: it may change the environment only
//! while the process runs a single thread (`setenv` races with `getenv` in
//! other threads); otherwise it says what it would have done and does nothing.

use support::probes;
use support::probes::{PAIR, View};

/// Runs the dlopen probe (not preloaded); returns the version it found, what
/// getenv returned after the dlopen, and stderr lines.
fn dlopen(mode: &str, value: Option<&str>) -> (String, View, Vec<String>) {
    let mut command = support::clean_command(probes::dlopen_probe());
    command.arg(support::library()).args(mode.split(' '));
    if let Some(value) = value {
        command.env(probes::SPECIFIC, value);
    }
    let out = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(out.status.success(), "{out:?}");
    let records = probes::records(&out.stdout);
    let version = String::from_utf8_lossy(records[0]).into_owned();
    let view = probes::views(&records[1..]).remove(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    probes::assert_all_prefixed(&stderr);
    (version, view, stderr.lines().map(str::to_owned).collect())
}

#[test]
fn dlopen_in_a_single_threaded_program_normalizes() {
    let (version, view, lines) = dlopen("single", None);
    assert!(version.starts_with("loaded=") && version.len() > "loaded=".len());
    assert_eq!(view.specific_str().as_deref(), Some(PAIR));
    assert!(view.marker.is_some());
    assert_eq!(lines, Vec::<String>::new(), "the runtime was not used: nothing to say");
    let (_, view, lines) = dlopen("single call", None);
    assert_eq!(view.specific_str().as_deref(), Some(PAIR));
    assert_eq!(
        lines,
        [
            "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
        ]
    );
}

#[test]
fn dlopen_while_another_thread_runs_does_not_setenv_and_says_so() {
    for value in [None, Some("page_size:1g")] {
        let (version, view, lines) = dlopen("thread", value);
        assert!(version.len() > "loaded=".len(), "the library did load");
        assert_eq!(view.specific_str().as_deref(), value, "untouched");
        assert_eq!(view.marker, None, "no marker either");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("npu-alloc-shim: warning: not changing the environment: 2 threads run"),
            "{lines:?}"
        );
        assert!(lines[0].contains("would have: PYTORCH_NPU_ALLOC_CONF="), "{lines:?}");
    }
}
