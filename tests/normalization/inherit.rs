//! Rule 3 in process chains: children follow the decision their parent
//! recorded in `NPU_ALLOC_SHIM_DECISION`, whatever their own command line.

use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use support::probes;
use support::probes::{NPU_SLEEP_SWITCH, PAIR, SPECIFIC, Seen};

/// Python: print what it sees, then run `child` (argv) with subprocess.
fn python_then(child: &[String], extra: &[&str]) -> Command {
    let script = format!("{}\nimport subprocess\nsubprocess.run({child:?}, check=True)\n", probes::PYTHON_PRINT);
    let mut command = support::preloaded(probes::python());
    command.args(["-c", &script]).args(extra);
    command
}

/// sh: print what it sees, then run `$1` (the C probe) without arguments.
fn shell_then_c(extra: &[&str]) -> Command {
    let mut command = support::preloaded("/bin/sh");
    command.args(["-c", &format!("{}; \"$1\"", probes::SHELL_PRINT), "sh"]).arg(probes::getenv_probe()).args(extra);
    command
}

/// The C probe: print, then exec itself without the extra arguments.
fn c_then_c(extra: &[&str]) -> Command {
    let probe = probes::getenv_probe();
    let mut command = support::preloaded(&probe);
    command.args(extra).arg("--then").arg(&probe);
    command
}

fn python_child() -> Vec<String> {
    vec![probes::python().to_string_lossy().into_owned(), "-c".to_owned(), probes::PYTHON_PRINT.to_owned()]
}

/// Each kind of parent with each kind of child: Python→Python, Python→C,
/// sh→C, C→C (exec).
fn chains(extra: &[&str]) -> Vec<(&'static str, Command)> {
    let c_child = vec![probes::getenv_probe().to_string_lossy().into_owned()];
    vec![
        ("python>python", python_then(&python_child(), extra)),
        ("python>c", python_then(&c_child, extra)),
        ("sh>c", shell_then_c(extra)),
        ("c>exec c", c_then_c(extra)),
    ]
}

fn run_chain(name: &str, mut command: Command, env: &[(&str, &str)]) -> Seen {
    command.envs(env.iter().copied());
    let seen = probes::run(&mut command);
    assert_eq!(seen.views.len(), 2, "{name}: {seen:?}");
    probes::assert_all_prefixed(&seen.stderr);
    seen
}

/// Whether the first process of a chain uses the runtime (and so speaks).
fn parent_speaks(chain: &str) -> bool {
    chain != "sh>c"
}

#[test]
fn children_of_a_normalized_process_see_it_applied_and_say_so_where_they_use_the_runtime() {
    for (value, want) in [(None, PAIR.to_owned()), (Some("page_size:1g"), format!("page_size:1g,{PAIR}"))] {
        let env: Vec<(&str, &str)> = value.map(|v| (SPECIFIC, v)).into_iter().collect();
        let inherited =
            format!("npu-alloc-shim: {SPECIFIC}=\"{want}\" (already applied by npu-alloc-shim){NPU_SLEEP_SWITCH}");
        for (name, command) in chains(&[]) {
            let seen = run_chain(name, command, &env);
            let (parent, child) = (&seen.views[0], &seen.views[1]);
            assert_eq!(parent.specific_str().as_deref(), Some(&*want), "{name}: {seen:?}");
            assert_eq!(child, parent, "{name}: the child changes nothing");
            assert!(
                parent.marker.as_ref().is_some_and(|m| m.starts_with(b"set:PYTORCH_NPU_ALLOC_CONF:")),
                "{name}: {seen:?}"
            );
            // Each process that uses the runtime says one line: the parent
            // what it did, the child what it inherited.
            let lines = seen.lines();
            assert_eq!(lines.len(), 1 + usize::from(parent_speaks(name)), "{name}: {seen:?}");
            if parent_speaks(name) {
                assert!(lines[0].contains("(was "), "{name}: {seen:?}");
            }
            assert_eq!(lines.last().copied(), Some(&*inherited), "{name}: {seen:?}");
        }
    }
    // At debug every process says it at load, the shell too.
    let inherited =
        format!("npu-alloc-shim: {SPECIFIC}=\"{PAIR}\" (already applied by npu-alloc-shim){NPU_SLEEP_SWITCH}");
    for (name, command) in chains(&[]) {
        let seen = run_chain(name, command, &[("NPU_ALLOC_SHIM_LOG", "debug")]);
        assert_eq!(seen.lines().len(), 2, "{name}: {seen:?}");
        assert_eq!(seen.lines().last().copied(), Some(&*inherited), "{name}: {seen:?}");
    }
}

#[test]
fn a_child_of_a_sleep_mode_parent_leaves_the_value_alone_without_the_flag() {
    for flag in ["--enable-sleep-mode", "--vllm.enable_sleep"] {
        for value in [None, Some("page_size:1g")] {
            let env: Vec<(&str, &str)> = value.map(|v| (SPECIFIC, v)).into_iter().collect();
            for (name, command) in chains(&[flag]) {
                let seen = run_chain(name, command, &env);
                for view in &seen.views {
                    assert_eq!(view.specific_str().as_deref(), value, "{name}: {seen:?}");
                    assert_eq!(view.marker.as_deref(), Some(&b"kept"[..]), "{name}");
                }
                let lines = seen.lines();
                assert_eq!(lines.len(), 1 + usize::from(parent_speaks(name)), "{name}: {seen:?}");
                if parent_speaks(name) {
                    assert!(lines[0].contains("pools device memory itself"), "{lines:?}");
                }
                assert_eq!(
                    lines.last().copied(),
                    Some("npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF left alone: a parent process decided so"),
                    "{name}: {seen:?}"
                );
            }
        }
    }
}

#[test]
fn a_value_removed_by_python_is_not_put_back_in_its_children() {
    let children = [("python", python_child()), ("c", vec![probes::getenv_probe().to_string_lossy().into_owned()])];
    for (child_name, child) in &children {
        for (edit, want) in [
            (format!("del os.environ[{SPECIFIC:?}]"), None),
            (format!("os.environ[{SPECIFIC:?}] = 'page_size:1g'"), Some("page_size:1g")),
            (format!("os.environ[{SPECIFIC:?}] = ''"), Some("")),
        ] {
            // The parent looks up the runtime (so it speaks) after the edit.
            let script = format!(
                "import ctypes, os, subprocess\n{edit}\nhasattr(ctypes.CDLL(None), 'aclrtMalloc')\n\
                 subprocess.run({child:?}, check=True)\n"
            );
            let mut command = support::preloaded(probes::python());
            command.args(["-c", &script]);
            let seen = probes::run(&mut command);
            let what = format!("{edit} then {child_name}: {seen:?}");
            assert_eq!(seen.view().specific_str().as_deref(), want, "{what}");
            // The parent's one line (it normalized); the child is silent.
            assert_eq!(seen.lines().len(), 1, "{what}");
        }
    }
}

#[test]
fn a_value_unset_by_a_shell_is_not_put_back_in_its_children() {
    let mut command = support::preloaded("/bin/sh");
    command.args(["-c", &format!("unset {SPECIFIC}; exec \"$1\""), "sh"]).arg(probes::getenv_probe());
    let seen = probes::run(&mut command);
    let view = seen.view();
    assert_eq!(view.specific, None, "{seen:?}");
    assert!(view.marker.is_some(), "{seen:?}");
}

#[test]
fn a_malformed_marker_is_ignored() {
    for marker in ["zzz", "set:PYTORCH_NPU_ALLOC_CONF:12", ""] {
        let mut command = probes::Probe::C.command(true, &[]);
        command.env(probes::MARKER, marker);
        let seen = probes::run(&mut command);
        assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{marker:?}");
    }
}

/// A Ray worker started by a preloaded raylet inherits the value the
/// raylet's library wrote; with `NPU_ALLOC_SHIM_NORMALIZE=0` in its
/// runtime_env (the switch every written line names for sleep mode), or a
/// sleep-mode flag of its own, the worker's library undoes that write, so
/// vllm-ascend's CaMemAllocator finds expandable segments off.
#[test]
fn a_child_that_must_not_have_expandable_segments_undoes_its_parents_write() {
    for (value, restored) in [(None, None), (Some("page_size:1g"), Some("page_size:1g"))] {
        let mut parent = support::preloaded(probes::getenv_probe());
        if let Some(value) = value {
            parent.env(SPECIFIC, value);
        }
        let seen = probes::run(&mut parent);
        let (written, marker) = (seen.views[0].specific.clone().unwrap(), seen.views[0].marker.clone().unwrap());
        assert!(written.ends_with(PAIR.as_bytes()), "{seen:?}");
        let child = |extra: &[(&str, &str)], args: &[&str], value: &[u8]| {
            let mut command = support::preloaded(probes::getenv_probe());
            command
                .env(SPECIFIC, std::ffi::OsStr::from_bytes(value))
                .env("NPU_ALLOC_SHIM_DECISION", std::ffi::OsStr::from_bytes(&marker))
                .envs(extra.iter().copied())
                .args(args);
            probes::run(&mut command)
        };
        for (extra, args) in
            [(&[("NPU_ALLOC_SHIM_NORMALIZE", "0")][..], &[][..]), (&[][..], &["--enable-sleep-mode"][..])]
        {
            let seen = child(extra, args, &written);
            assert_eq!(seen.views[0].specific_str().as_deref(), restored, "{extra:?} {args:?}: {seen:?}");
            assert_eq!(seen.views[0].marker.as_deref(), Some(&b"kept"[..]), "its children leave it alone");
            let said = seen.lines();
            assert!(said.len() == 1 && said[0].contains("a parent process had appended"), "{said:?}");
        }
        // Changed since the parent wrote it: not the library's to undo.
        let changed = [&written[..], b",page_size:1g"].concat();
        let seen = child(&[("NPU_ALLOC_SHIM_NORMALIZE", "0")], &[], &changed);
        assert_eq!(seen.views[0].specific.as_deref(), Some(&changed[..]), "{seen:?}");
    }
}
