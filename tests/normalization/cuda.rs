//! CUDA's variables in a real CUDA process (tests/fixtures/cuda_workload.c
//! on the fake CUDA runtime): changed only with NPU_ALLOC_SHIM_CUDA_NORMALIZE=1,
//! by the same rules as the NPU's with CUDA's facts, and never in a way that
//! touches torch_npu's variables.

use std::collections::BTreeMap;
use support::fake_cuda;
use support::fixtures as common;

/// What the client saw of each variable (absent: unset), and the library's lines.
fn seen(args: &[&str], env: &[(&str, &str)]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut command = support::preloaded(fake_cuda::workload());
    command.args(args).envs(env.iter().copied());
    let output = common::ok(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let values = stdout
        .lines()
        .filter(|line| !line.starts_with('{') && !line.ends_with(" unset"))
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    (values, common::library_lines(&output))
}

const OPT_IN: (&str, &str) = ("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1");
const CUDA: &str = "PYTORCH_CUDA_ALLOC_CONF";
const GENERIC: &str = "PYTORCH_ALLOC_CONF";

#[test]
fn without_the_switch_no_cuda_variable_changes() {
    for env in [vec![], vec![(GENERIC, "roundup_power2_divisions:4")], vec![(CUDA, "max_split_size_mb:128")]] {
        let (values, lines) = seen(&[], &env);
        assert_eq!(values.get(CUDA).map(String::as_str), env.iter().find(|e| e.0 == CUDA).map(|e| e.1), "{env:?}");
        assert_eq!(values.get(GENERIC).map(String::as_str), env.iter().find(|e| e.0 == GENERIC).map(|e| e.1));
        assert!(!values.contains_key("NPU_ALLOC_SHIM_CUDA_DECISION"), "{values:?}");
        assert!(lines.is_empty(), "{lines:?}");
    }
    // Switches other than 1 are not an opt-in either.
    let (values, _) = seen(&[], &[("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "yes please")]);
    assert!(!values.contains_key(CUDA), "{values:?}");
}

#[test]
fn opted_in_the_variable_read_on_every_line_gets_expandable_segments() {
    let (values, lines) = seen(&[], &[OPT_IN]);
    assert_eq!(values[CUDA], "expandable_segments:True");
    assert!(!values.contains_key(GENERIC), "never created: torch_npu refuses both of its variables together");
    assert!(values["NPU_ALLOC_SHIM_CUDA_DECISION"].starts_with("set:PYTORCH_CUDA_ALLOC_CONF:"), "{values:?}");
    assert_eq!(
        lines,
        [
            "npu-alloc-shim: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CuMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
        ]
    );
    let (values, _) = seen(&[], &[OPT_IN, (CUDA, "max_split_size_mb:128")]);
    assert_eq!(values[CUDA], "max_split_size_mb:128,expandable_segments:True");
    // The generic variable alone is the one PyTorch reads: appended there.
    let (values, _) = seen(&[], &[OPT_IN, (GENERIC, "roundup_power2_divisions:4")]);
    assert_eq!(values[GENERIC], "roundup_power2_divisions:4,expandable_segments:True");
    assert!(!values.contains_key(CUDA), "{values:?}");
}

/// Arguments, variables set, and what the one line says ("": nothing).
type Case = (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str);

#[test]
fn opted_in_the_known_breakages_are_left_alone_and_said() {
    let cases: [Case; 6] = [
        (&[], &[(CUDA, "backend:cudaMallocAsync")], "sets backend"),
        (&[], &[(CUDA, "expandable_segments:False")], ""),
        (&["--enable-sleep-mode"], &[], "pools device memory itself"),
        (&["--enable-memory-saver"], &[], "pools device memory itself"),
        (&["serve", "--tensor-parallel-size", "2"], &[], "tensor parallelism 2 with vLLM's custom all-reduce"),
        (&["--kv-transfer-config", "{}"], &[], "pools device memory itself"),
    ];
    for (args, env, said) in cases {
        let mut all = env.to_vec();
        all.push(OPT_IN);
        let (values, lines) = seen(args, &all);
        for (var, value) in env {
            assert_eq!(values[*var], *value, "{args:?} {env:?}");
        }
        if env.is_empty() {
            assert!(!values.contains_key(CUDA), "{args:?}: {values:?}");
        }
        assert_eq!(values.get("NPU_ALLOC_SHIM_CUDA_DECISION").map(String::as_str), Some("kept"), "{args:?} {env:?}");
        // The NPU's decision in the same process is not said here.
        assert!(lines.iter().all(|l| !l.contains("PYTORCH_NPU_ALLOC_CONF")), "{lines:?}");
        if said.is_empty() {
            assert!(lines.is_empty(), "{lines:?}");
        } else {
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains(said), "{args:?} {env:?}: {lines:?}");
        }
    }
    // Both set: every torch line reads PYTORCH_CUDA_ALLOC_CONF alone, so it decides.
    let (values, _) = seen(&[], &[OPT_IN, (CUDA, "max_split_size_mb:128"), (GENERIC, "roundup_power2_divisions:4")]);
    assert_eq!(values[CUDA], "max_split_size_mb:128,expandable_segments:True");
    assert_eq!(values[GENERIC], "roundup_power2_divisions:4");
    // Without custom all-reduce, tensor parallelism is no reason.
    let (values, _) = seen(&["serve", "-tp", "2", "--disable-custom-all-reduce"], &[OPT_IN]);
    assert_eq!(values[CUDA], "expandable_segments:True");
    // The switches that turn everything off still do.
    let (values, lines) = seen(&[], &[OPT_IN, ("NPU_ALLOC_SHIM_NORMALIZE", "0")]);
    assert!(!values.contains_key(CUDA) && lines.is_empty(), "{values:?} {lines:?}");
}

#[test]
fn in_an_ascend_deployment_the_cuda_switch_changes_nothing() {
    // torch_npu reads PYTORCH_ALLOC_CONF on its newest lines, and torch 2.14's
    // c10 parses PYTORCH_CUDA_ALLOC_CONF for every accelerator (torch_npu 2.14
    // takes expandable_segments from it): both are torch_npu's there.
    let ascend = ("ASCEND_OPP_PATH", "/usr/local/Ascend/opp");
    for user in [vec![], vec![(GENERIC, "roundup_power2_divisions:4")], vec![(GENERIC, "max_split_size_mb:256")]] {
        let with_npu_alone = seen(&[], &[&[ascend][..], &user].concat()).0;
        let (values, lines) = seen(&[], &[&[OPT_IN, ascend][..], &user].concat());
        let mut without_marker = values.clone();
        without_marker.remove("NPU_ALLOC_SHIM_CUDA_DECISION");
        assert_eq!(without_marker, with_npu_alone, "the switch changed something for {user:?}");
        assert!(!values.contains_key(CUDA), "{values:?}");
        assert_eq!(values["NPU_ALLOC_SHIM_CUDA_DECISION"], "kept", "{values:?}");
        // This client calls CUDA, so it hears why (an NPU process never does).
        let why = "PYTORCH_CUDA_ALLOC_CONF left alone: this is a torch_npu deployment (ASCEND_OPP_PATH is set)";
        assert!(lines.iter().any(|l| l.contains(why)), "{lines:?}");
    }
    // The NPU decision itself is as before: rule 9 appends to PYTORCH_ALLOC_CONF,
    // refuses max_split_size_mb there, writes its own variable when neither is set.
    let (values, _) = seen(&[], &[OPT_IN, ascend, (GENERIC, "roundup_power2_divisions:4")]);
    assert_eq!(values[GENERIC], "roundup_power2_divisions:4,expandable_segments:True");
    let (values, _) = seen(&[], &[OPT_IN, ascend, (GENERIC, "max_split_size_mb:256")]);
    assert_eq!(values[GENERIC], "max_split_size_mb:256", "{values:?}");
    let (values, _) = seen(&[], &[OPT_IN, ascend]);
    assert_eq!(values["PYTORCH_NPU_ALLOC_CONF"], "expandable_segments:True");
    // Outside an Ascend deployment the same value is CUDA's to change.
    let (values, _) = seen(&[], &[OPT_IN, (GENERIC, "max_split_size_mb:256")]);
    assert_eq!(values[GENERIC], "max_split_size_mb:256,expandable_segments:True", "{values:?}");
}
