//! Quiet unless it matters (issue 13): with the library in an image-wide
//! `LD_PRELOAD`, programs that never use the runtime behave exactly as
//! without it (exit status, stdout, stderr, no recording written even with
//! tracing on), and a process that does use the runtime hears what was
//! decided once, at its first hooked call or lookup.

use std::path::{Path, PathBuf};
use std::process::Output;
use support::fixtures::{self as common};
use support::probes;

/// What an ordinary program shows of itself.
#[derive(Debug, PartialEq, Eq)]
struct Behaviour {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn behaviour(output: Output) -> Behaviour {
    Behaviour {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A scratch directory with a small tree and a C source for the programs.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("scratch dir");
    std::fs::write(dir.path().join("b.txt"), "pear\napple\nfig\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/a.txt"), "x\n").unwrap();
    std::fs::write(dir.path().join("hello.c"), "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 3; }\n")
        .unwrap();
    dir
}

/// Ordinary programs of this machine, as `sh -c` lines run in the scratch
/// directory: a pipeline, coreutils, CPython with a multiprocessing pool
/// (forked workers ended by SIGTERM), a C compiler and its program, git,
/// perl and tar. Each prints something, and some exit non-zero on purpose.
fn programs(python: &Path) -> Vec<String> {
    let python = python.display();
    vec![
        "printf 'b\\na\\nc\\n' | sort | tr a-z A-Z | head -n 2 | wc -l".to_owned(),
        "ls -l --time-style=+ . sub".to_owned(),
        "cat b.txt | sort; sha256sum b.txt; wc -c b.txt; date -d @0 -u; true".to_owned(),
        "false".to_owned(),
        "ls /nonexistent-npu-alloc-shim".to_owned(),
        format!("{python} -c 'pass'"),
        format!(
            "{python} -c 'import multiprocessing as mp\nif __name__ == \"__main__\":\n    with mp.Pool(2) as pool: \
             print(sorted(pool.map(abs, range(-6, 6))))'"
        ),
        format!("{python} -c 'import sys; print(sys.argv[1:]); sys.exit(5)' x y"),
        "cc -o hello hello.c && ./hello".to_owned(),
        "git init -q repo && git -C repo -c user.name=t -c user.email=t@t commit -q --allow-empty -m m && \
         git -C repo log --format=%s && git -C repo status --short"
            .to_owned(),
        "perl -e 'print join(\",\", map { $_ * 2 } 1..5), \"\\n\"; warn \"careful\\n\"; exit 2'".to_owned(),
        "tar -cf t.tar b.txt sub && tar -tf t.tar | sort && tar -xOf t.tar b.txt".to_owned(),
    ]
}

fn run_in(dir: &Path, line: &str, env: &[(&str, &str)], preload: Option<&Path>) -> Behaviour {
    let mut command = support::clean_command("/bin/sh");
    command.current_dir(dir).args(["-c", line]).envs(env.iter().copied());
    if let Some(library) = preload {
        command.env("LD_PRELOAD", library);
    }
    behaviour(support::run_with_timeout(&mut command, support::LIMIT))
}

/// Settings an image might carry for everybody: none, a conflicting value
/// the library warns about, a value torch_npu rejects, a bad log level.
const IMAGE_SETTINGS: [&[(&str, &str)]; 4] = [
    &[],
    &[("PYTORCH_NPU_ALLOC_CONF", "max_split_size_mb:256")],
    &[("PYTORCH_NPU_ALLOC_CONF", "bogus:1"), ("NPU_ALLOC_SHIM_DISABLE", "maybe")],
    &[("NPU_ALLOC_SHIM_LOG", "loud"), ("NPU_ALLOC_SHIM_FLUSH_MS", "soon")],
];

#[test]
fn ordinary_programs_behave_exactly_as_without_the_library() {
    let library = support::library();
    let python = probes::python();
    let mut spoke = 0;
    for settings in IMAGE_SETTINGS {
        for line in programs(&python) {
            // Two fresh directories, so that files a program writes (git,
            // tar, cc) cannot make the second run differ from the first.
            let (without_dir, with_dir) = (scratch(), scratch());
            let traces = tempfile::tempdir().unwrap();
            let without = run_in(without_dir.path(), &line, settings, None);
            let mut env = settings.to_vec();
            let trace = format!("{}/", traces.path().display());
            env.push(("NPU_ALLOC_SHIM_TRACE", &trace));
            let with = run_in(with_dir.path(), &line, &env, Some(&library));
            assert_eq!(with, without, "{line:?} with {settings:?}");
            assert_eq!(common::listing(traces.path()).len(), 0, "{line:?}: never used the runtime, wrote a file");
            spoke += usize::from(!without.stdout.is_empty() && !without.stdout.contains("not found"));
        }
    }
    // The comparison is not of empty outputs: all but `false`, `ls` of a
    // missing path and `python -c pass` print on stdout.
    assert_eq!(spoke, IMAGE_SETTINGS.len() * (programs(&python).len() - 3));
}

/// The fake runtime's workload built without linking the runtime: it
/// `dlopen`s libascendcl itself, as torch_npu does.
fn workload_dlopen() -> PathBuf {
    common::fake_runtime();
    let dir = support::fixture_dir().display().to_string();
    common::build(
        "quiet_acl_workload_dlopen",
        &["tests/fixtures/acl_workload.c"],
        &[
            &format!("-I{}", support::repo().join("tests/fake_runtime").display()),
            &format!("-Wl,-rpath,{dir}"),
            "-ldl",
            "-pthread",
        ],
    )
}

/// The library's lines of one run of `program args` (preloaded, not traced).
fn said(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let output = common::ok(support::preloaded(program).args(args).envs(env.iter().copied()));
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect()
}

#[test]
fn a_program_using_the_runtime_hears_the_decision_once() {
    let change = "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0";
    let dlopen_only = workload_dlopen();
    let linked = common::workload();
    // Four threads race to the first call; a forked child inherits that it
    // was said. Through dlopen + dlsym(handle), dlsym(RTLD_DEFAULT) and PLT.
    for (program, bind) in [(&dlopen_only, "handle"), (&dlopen_only, "default"), (&linked, "plt")] {
        for extra in [&[][..], &["--fork"][..]] {
            let args = [&["--bind", bind, "--threads", "4", "--iters", "3"][..], extra].concat();
            assert_eq!(said(program, &args, &[]), [change], "{bind} {extra:?}");
        }
    }
    // A warning about the configuration is said the same way, once.
    let lines = said(
        &dlopen_only,
        &["--bind", "handle", "--threads", "4"],
        &[("PYTORCH_NPU_ALLOC_CONF", "max_split_size_mb:256")],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(
        "npu-alloc-shim: warning: PYTORCH_NPU_ALLOC_CONF=\"max_split_size_mb:256\" sets max_split_size_mb"
    ));
    // Off means off.
    assert_eq!(said(&dlopen_only, &["--bind", "handle"], &[("NPU_ALLOC_SHIM_LOG", "off")]), Vec::<String>::new());
}

#[test]
fn a_shell_that_starts_a_runtime_user_stays_silent_and_its_child_speaks() {
    // The shell decides at load and writes the variable; only the child that
    // uses the runtime says anything, and says what it inherited.
    let program = workload_dlopen();
    let line = format!("echo start; {} --bind handle >/dev/null; echo end", program.display());
    let output = common::ok(support::preloaded("/bin/sh").args(["-c", &line]));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "start\nend\n");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=\"expandable_segments:True\" (already applied by npu-alloc-shim); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0\n"
    );
}

#[test]
fn at_debug_every_process_says_it_at_load() {
    let lines = said(Path::new("/bin/true"), &[], &[("NPU_ALLOC_SHIM_LOG", "debug")]);
    assert_eq!(
        lines,
        [
            "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
        ]
    );
}
