//! Issue 16: a self-pooling allocator made after the library wrote
//! expandable segments (vllm-ascend's CaMemAllocator with its assertion
//! dropped by `python -O`, vLLM's CuMemAllocator, torch_memory_saver) is
//! found when torch looks its entry point up by name, and the process is told
//! once more, just then, to start with NPU_ALLOC_SHIM_NORMALIZE=0.

use support::probes::{self, NPU_SLEEP_SWITCH, SPECIFIC};

const CAMEM: &str = "npu-alloc-shim: warning: vllm-ascend's CaMemAllocator (sleep mode, vllm_ascend_C) is being \
                     set up (torch looked up \"my_malloc\") while PYTORCH_NPU_ALLOC_CONF has expandable_segments:True \
                     from npu-alloc-shim: a pool of its own does not work with expandable segments; start this \
                     process with NPU_ALLOC_SHIM_NORMALIZE=0";

/// Runs pool_lookup preloaded on the fixture allocator; returns stdout and
/// the stderr lines.
fn lookup(names: &[&str], env: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut command = support::preloaded(probes::pool_lookup());
    command.arg(probes::pool_allocator()).args(names).envs(env.iter().copied());
    let out = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    probes::assert_all_prefixed(&stderr);
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr.lines().map(str::to_owned).collect())
}

fn written_line() -> String {
    format!("npu-alloc-shim: {SPECIFIC}=expandable_segments:True (was unset){NPU_SLEEP_SWITCH}")
}

#[test]
fn a_pool_entry_point_looked_up_after_the_write_is_warned_about_once() {
    let (stdout, lines) = lookup(&["my_malloc", "my_free"], &[]);
    assert_eq!(stdout, "my_malloc found\nmy_free found\nmy_malloc found\nmy_free found\n", "lookups answered");
    // The line from load, then the warning, once for two lookups.
    assert_eq!(lines, [written_line(), CAMEM.to_owned()]);
}

#[test]
fn torch_memory_saver_is_named_as_itself() {
    let (_, lines) = lookup(&["tms_torch_malloc"], &[]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].starts_with(
            "npu-alloc-shim: warning: torch_memory_saver is being set up (torch looked up \"tms_torch_malloc\")"
        ),
        "{lines:?}"
    );
}

#[test]
fn no_warning_where_the_library_did_not_write_the_key() {
    // Switched off: nothing written, nothing said.
    let (_, lines) = lookup(&["my_malloc"], &[("NPU_ALLOC_SHIM_NORMALIZE", "0")]);
    assert_eq!(lines, Vec::<String>::new());
    // Set by hand: the operator's choice, not the library's write.
    let (_, lines) = lookup(&["my_malloc"], &[(SPECIFIC, "expandable_segments:True")]);
    assert!(!lines.iter().any(|l| l.contains("is being set up")), "{lines:?}");
    // Another name: no pool.
    let (_, lines) = lookup(&["my_other_malloc"], &[]);
    assert_eq!(lines, Vec::<String>::new(), "the runtime was not used: nothing to say");
}

#[test]
fn a_child_that_kept_the_parents_write_is_warned_too() {
    // sh (preloaded) writes the key; the child keeps it (rule inherited-applied).
    let script = format!("exec {} {} my_malloc", probes::pool_lookup().display(), probes::pool_allocator().display());
    let mut command = support::preloaded("/bin/sh");
    command.args(["-c", &script]);
    let out = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("is being set up").count(), 1, "{stderr}");
    assert!(stderr.contains(CAMEM), "{stderr}");
}
