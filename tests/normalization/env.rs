//! What the library may and may not change in its host: only the allocator
//! variables and its marker; the rest of the environment (order included)
//! and the open descriptors stay as they were. Also idempotence, non-UTF-8
//! values and values near the kernel's 128 KiB limit for one string.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use support::probes;
use support::probes::{GENERIC, MARKER, PAIR, Probe, SPECIFIC};

/// What the environment dump probe printed.
#[derive(Debug)]
struct Dump {
    header: String,
    environ: Vec<Vec<u8>>,
    fds: String,
}

fn dump(command: &mut Command) -> Dump {
    let out = support::run_with_timeout(command, support::LIMIT);
    assert!(out.status.success(), "{out:?}");
    let records = probes::records(&out.stdout);
    let count: usize = std::str::from_utf8(records[1])
        .ok()
        .and_then(|r| r.strip_prefix("environ="))
        .and_then(|n| n.parse().ok())
        .expect("environ count");
    assert_eq!(records.len(), count + 3, "{records:?}");
    Dump {
        header: String::from_utf8_lossy(records[0]).into_owned(),
        environ: records[2..2 + count].iter().map(|r| r.to_vec()).collect(),
        fds: String::from_utf8_lossy(records[2 + count]).into_owned(),
    }
}

/// The host's environment: a mix of ordinary, odd and non-UTF-8 entries.
fn host_env(command: &mut Command) -> &mut Command {
    command
        .env("A_FIRST", "1")
        .env("WITH_EQUALS", "a=b=c")
        .env("EMPTY", "")
        .env("SPACES", "  x  ")
        .env("NON_UTF8", OsStr::from_bytes(b"\xff\xfe\x80"))
        .env("NPU_ALLOC_SHIM_UNRELATED", "kept")
        .env("Z_LAST", "z")
}

fn named(entry: &[u8], name: &str) -> bool {
    entry.starts_with(name.as_bytes()) && entry.get(name.len()) == Some(&b'=')
}

/// The environment without the entries the library may touch (and
/// LD_PRELOAD, which only one of the two runs has).
fn untouchable(environ: &[Vec<u8>]) -> Vec<Vec<u8>> {
    environ.iter().filter(|e| ![SPECIFIC, GENERIC, MARKER, "LD_PRELOAD"].iter().any(|n| named(e, n))).cloned().collect()
}

#[test]
fn nothing_changes_but_the_allocator_variables_and_the_marker() {
    let scenarios: [&[(&str, &str)]; 5] = [
        &[],
        &[(SPECIFIC, "page_size:1g")],
        &[(SPECIFIC, "max_split_size_mb:256")],
        &[(GENERIC, "page_size:1g")],
        &[(SPECIFIC, ""), (GENERIC, "")],
    ];
    for env in scenarios {
        let mut with = support::preloaded(probes::environ_dump());
        host_env(&mut with).envs(env.iter().copied());
        let mut without = support::clean_command(probes::environ_dump());
        host_env(&mut without).envs(env.iter().copied());
        let (with, without) = (dump(&mut with), dump(&mut without));
        assert_eq!(with.header, format!("secure=0 {} loaded=1", euid()));
        assert!(without.header.ends_with("loaded=0"));
        assert_eq!(untouchable(&with.environ), untouchable(&without.environ), "{env:?}");
        assert_eq!(with.fds, without.fds, "{env:?}: no descriptor left open");
        let preload = format!("LD_PRELOAD={}", support::library().display());
        assert!(with.environ.iter().any(|e| e == preload.as_bytes()), "LD_PRELOAD is never removed");
        // Each variable at most once.
        for name in [SPECIFIC, GENERIC, MARKER] {
            let count = with.environ.iter().filter(|e| named(e, name)).count();
            assert!(count <= 1, "{name} appears {count} times");
        }
        // The NPU variable is never created when only the generic one is set.
        if env.iter().all(|(n, _)| *n != SPECIFIC) && !env.is_empty() {
            assert!(!with.environ.iter().any(|e| named(e, SPECIFIC)), "{env:?}");
        }
    }
}

fn euid() -> String {
    // SAFETY: geteuid has no preconditions.
    format!("euid={}", unsafe { libc::geteuid() })
}

#[test]
fn preloading_twice_changes_the_value_once() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    // A second copy is a second object for ld.so: two constructors run.
    let copy = scratch.path().join("libnpu_alloc_shim_copy.so");
    std::fs::copy(support::library(), &copy).expect("copy library");
    let library = support::library();
    for preload in
        [format!("{} {}", library.display(), library.display()), format!("{}:{}", library.display(), copy.display())]
    {
        for (value, want) in [(None, PAIR.to_owned()), (Some("page_size:1g"), format!("page_size:1g,{PAIR}"))] {
            for probe in Probe::ALL {
                let mut command = probe.command(false, &[]);
                command.env("LD_PRELOAD", &preload).env("NPU_ALLOC_SHIM_LOG", "debug");
                if let Some(value) = value {
                    command.env(SPECIFIC, value);
                }
                let seen = probes::run(&mut command);
                let what = format!("{probe:?} {preload}: {seen:?}");
                assert_eq!(seen.view().specific_str().as_deref(), Some(&*want), "{what}");
                let lines = seen.lines();
                assert!(!lines[0].contains("already"), "{what}");
                if preload.contains(':') {
                    assert_eq!(lines.len(), 2, "{what}");
                    let applied = format!(
                        "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=\"{want}\" (already applied by npu-alloc-shim); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
                    );
                    assert_eq!(lines[1], applied);
                }
            }
        }
    }
}

#[test]
fn running_the_normalized_environment_again_changes_nothing() {
    for value in [None, Some("page_size:1g")] {
        for probe in Probe::ALL {
            let mut first = probe.command(true, &[]);
            if let Some(value) = value {
                first.env(SPECIFIC, value);
            }
            let first = probes::run(&mut first);
            let applied = first.view().clone();
            // With the marker the parent left, and without it.
            for keep_marker in [true, false] {
                let mut again = probe.command(true, &[]);
                probes::env_bytes(&mut again, SPECIFIC, applied.specific.as_deref().unwrap());
                if keep_marker {
                    probes::env_bytes(&mut again, MARKER, applied.marker.as_deref().unwrap());
                }
                let again = probes::run(&mut again);
                let what = format!("{probe:?} {value:?} marker={keep_marker}: {again:?}");
                assert_eq!(again.view().specific, applied.specific, "{what}");
                // With the marker, a process using the runtime says what it
                // inherited; without it the key is there and nothing is said.
                if keep_marker && probe.uses_runtime() {
                    assert_eq!(again.lines().len(), 1, "{what}");
                    assert!(again.stderr.ends_with("(already applied by npu-alloc-shim); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0\n"), "{what}");
                } else {
                    assert_eq!(again.stderr, "", "{what}");
                }
                if keep_marker {
                    assert_eq!(again.view().marker, applied.marker, "{what}");
                }
            }
        }
    }
}

#[test]
fn non_utf8_values_are_kept_byte_exact() {
    let value: &[u8] = b"page_size:1g,\xff\xfeexpandable";
    for var in [SPECIFIC, GENERIC] {
        for probe in Probe::ALL {
            let mut command = probe.command(true, &[]);
            probes::env_bytes(&mut command, var, value);
            // An Ascend deployment, where the generic variable is ours to read (rule 9).
            command.env("ASCEND_OPP_PATH", "/usr/local/Ascend/ascend-toolkit/latest/opp");
            let seen = probes::run(&mut command);
            let view = seen.view();
            let got = if var == SPECIFIC { &view.specific } else { &view.generic };
            assert_eq!(got.as_deref(), Some(value), "{probe:?} {var}: {seen:?}");
            let lines = seen.lines();
            assert_eq!(lines.len(), probe.says(1), "{seen:?}");
            assert!(lines.iter().all(|l| l.contains("\\xff\\xfe")), "quoted, not raw: {lines:?}");
        }
    }
    // A non-UTF-8 marker is no marker.
    for probe in Probe::ALL {
        let mut command = probe.command(true, &[]);
        probes::env_bytes(&mut command, MARKER, b"set:\xff");
        let seen = probes::run(&mut command);
        assert_eq!(seen.view().specific_str().as_deref(), Some(PAIR), "{probe:?}");
    }
}

/// A value near the kernel's limit for one environment string (128 KiB with
/// the name and the NUL), valid under both tokenizers.
fn long_value() -> Vec<u8> {
    let mut value = b"page_size:1g".to_vec();
    value.resize(130_000, b' ');
    value
}

#[test]
fn a_128_kib_value_goes_through_execve_whole() {
    let value = long_value();
    let mut want = value.clone();
    want.extend_from_slice(b",expandable_segments:True");
    for probe in Probe::ALL {
        let mut command = probe.command(true, &[]);
        probes::env_bytes(&mut command, SPECIFIC, &value);
        let seen = probes::run(&mut command);
        let got = seen.view().specific.as_deref().expect("set");
        assert_eq!(got.len(), want.len(), "{probe:?}");
        assert!(got == want, "{probe:?}: not byte-exact");
        assert_eq!(seen.lines().len(), probe.says(1), "{probe:?}");
        assert!(seen.stderr.len() < 1000, "messages are cut: {}", seen.stderr.len());
    }
    // And on through another execve, where nothing is appended twice.
    let probe = probes::getenv_probe();
    let mut command = support::preloaded(&probe);
    command.arg("--then").arg(&probe);
    probes::env_bytes(&mut command, SPECIFIC, &value);
    let seen = probes::run(&mut command);
    assert_eq!(seen.views.len(), 2);
    for view in &seen.views {
        assert!(view.specific.as_deref() == Some(&want[..]), "{view:?}");
    }
}

#[test]
fn a_long_invalid_value_is_kept_whole_and_quoted_short() {
    let mut value = long_value();
    value.extend_from_slice(b",bogus:1");
    for probe in Probe::ALL {
        let mut command = probe.command(true, &[]);
        probes::env_bytes(&mut command, SPECIFIC, &value);
        let seen = probes::run(&mut command);
        assert!(seen.view().specific.as_deref() == Some(&value[..]), "{probe:?}");
        let lines = seen.lines();
        assert_eq!(lines.len(), probe.says(1), "{probe:?}");
        for line in lines {
            assert!(line.contains("(130008 bytes)"), "{line:?}");
            assert!(line.contains("Unrecognized CachingAllocator option: bogus"));
        }
    }
}
