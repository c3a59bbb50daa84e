//! The `dlsym` interposer on each architecture it has assembly for (x86_64,
//! aarch64; scripts/test-aarch64.sh runs this under qemu):
//!
//! - `dlsym(RTLD_NEXT, …)` from a third library answers what glibc answers
//!   (read with `dlvsym`, which is not interposed) whether that library comes
//!   after the shim in LD_PRELOAD, before it, or arrives by `dlopen`;
//! - the caller trampolines name the calling object: the program, or a third
//!   library whose wrapper reached the hook through `RTLD_NEXT`;
//! - on a glibc older than 2.34 (simulated by tests/fixtures/old_glibc.c) the
//!   real `dlsym` is found at the architecture's base version, and on a newer
//!   one at GLIBC_2.34;
//! - what these tests run (library, CLI, fixtures, /bin/sh, python3) is built
//!   for the architecture of the tests, so that no test passes by running an
//!   x86_64 program that ignores an aarch64 preload.

use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use support::run_ok as ok;

/// glibc's base symbol version on this architecture (dlsym's before 2.34).
const BASE_VERSION: &str = if cfg!(target_arch = "aarch64") { "GLIBC_2.17" } else { "GLIBC_2.2.5" };

struct Fixtures {
    chain: PathBuf,
    chain_main: PathBuf,
    probe: PathBuf,
    probe_main: PathBuf,
    old_glibc: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: std::sync::OnceLock<Fixtures> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = support::fixture_dir().display().to_string();
        support::compile_c(
            "libascendcl.so",
            &["tests/fake_runtime/fake_ascendcl.c"],
            &["-Itests/fake_runtime", "-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread"],
        );
        let map = support::repo().join("tests/fixtures/old_glibc.map");
        Fixtures {
            chain: support::compile_c(
                "libnextchain.so",
                &["tests/fixtures/next_chain.c"],
                &["-DCHAIN_LIBRARY", "-shared", "-fPIC", "-ldl"],
            ),
            chain_main: support::compile_c(
                "nextchain",
                &["tests/fixtures/next_chain.c"],
                &[&format!("-L{dir}"), "-lascendcl", &format!("-Wl,-rpath,{dir}"), "-ldl"],
            ),
            probe: support::compile_c(
                "libnextprobe.so",
                &["tests/fixtures/rtld_next_probe.c"],
                &["-DPROBE_LIBRARY", "-shared", "-fPIC", "-ldl"],
            ),
            probe_main: support::compile_c("nextprobe", &["tests/fixtures/rtld_next_probe.c"], &[]),
            old_glibc: support::compile_c(
                "liboldglibc.so",
                &["tests/fixtures/old_glibc.c"],
                &["-shared", "-fPIC", &format!("-Wl,--version-script={}", map.display()), "-ldl"],
            ),
        }
    })
}

fn preload_list(objects: &[&Path]) -> OsString {
    let mut list = OsString::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            list.push(" ");
        }
        list.push(object.as_os_str());
    }
    list
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Runs nextchain with `preload`, traced; returns its report and the
/// recording's callers by file name.
fn chain_run(preload: &[&Path], args: &[&str], extra_env: &[(&str, &str)]) -> (Value, BTreeMap<String, u64>, String) {
    let f = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = support::clean_command(&f.chain_main);
    command
        .args(args)
        .env("LD_PRELOAD", preload_list(preload))
        .env("NPU_ALLOC_SHIM_TRACE", dir.path().join("t.%p.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "0")
        .env("NPU_ALLOC_SHIM_LOG", "off")
        .envs(extra_env.iter().copied());
    let output = ok(&mut command);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    let mut callers = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).expect("read_dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("recording");
        let recording: Value = serde_json::from_str(&text).expect("recording is JSON");
        for caller in recording["callers"].as_array().expect("callers") {
            let library = file_name(caller["library"].as_str().expect("library"));
            *callers.entry(library).or_insert(0) += caller["calls"].as_u64().expect("calls");
        }
    }
    (report, callers, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Both lookups of `name` in a report: through the interposed dlsym, and
/// glibc's own answer.
fn answers(report: &Value, name: &str) -> (String, String) {
    let get = |key: &str| report[name][key].as_str().unwrap_or_else(|| panic!("{name}.{key} in {report}")).to_owned();
    (get("dlsym"), get("glibc"))
}

fn assert_glibc_answers(report: &Value, what: &str) {
    for name in ["puts", "aclrtMalloc"] {
        let (via_dlsym, glibc) = answers(report, name);
        assert_eq!(via_dlsym, glibc, "{what}: dlsym(RTLD_NEXT, {name:?}) is not glibc's answer: {report}");
        assert_ne!(via_dlsym, "libnextchain.so", "{what}: {name} resolved to the caller itself");
    }
    assert_eq!(answers(report, "puts").0, "libc.so.6", "{what}: {report}");
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn rtld_next_from_a_library_after_the_shim_finds_the_runtime_and_calls_name_the_program() {
    let f = fixtures();
    let shim = support::library();
    let (report, callers, _) = chain_run(&[&shim, &f.chain], &["linked", "3", "2"], &[]);
    assert_glibc_answers(&report, "shim, chain");
    assert_eq!(answers(&report, "aclrtMalloc").0, "libascendcl.so", "{report}");
    // Every call, through the PLT (the shim's export comes first) or the
    // handle, went from the program into the hooks.
    assert_eq!(callers, counts(&[("nextchain", 5)]), "{report}");
}

#[test]
fn rtld_next_from_a_library_before_the_shim_finds_the_shim_and_calls_name_that_library() {
    let f = fixtures();
    let shim = support::library();
    let (report, callers, _) = chain_run(&[&f.chain, &shim], &["linked", "3", "2"], &[]);
    assert_glibc_answers(&report, "chain, shim");
    assert_eq!(answers(&report, "aclrtMalloc").0, "libnpu_alloc_shim.so", "{report}");
    assert_eq!(report["forwarded"], 3, "{report}");
    // The three PLT calls reached the hook from the chain library's wrapper,
    // the two through the runtime handle from the program.
    assert_eq!(callers, counts(&[("libnextchain.so", 3), ("nextchain", 2)]), "{report}");
}

#[test]
fn rtld_next_from_a_library_loaded_by_dlopen_is_answered_by_glibc() {
    let shim = support::library();
    for mode in ["local", "global"] {
        let (report, _, _) = chain_run(&[&shim], &[mode], &[]);
        assert_glibc_answers(&report, mode);
    }
}

#[test]
fn rtld_next_stays_correct_with_the_probe_library_first_or_last() {
    let f = fixtures();
    let shim = support::library();
    for order in [[&shim, &f.probe], [&f.probe, &shim]] {
        let mut command = support::clean_command(&f.probe_main);
        command.env("LD_PRELOAD", preload_list(&[order[0], order[1]])).env("NPU_ALLOC_SHIM_LOG", "off");
        let output = ok(&mut command);
        assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo\nthree\n");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("nextprobe: forwarded 3"), "{order:?}: {stderr}");
    }
}

/// The `oldglibc:` lines of a run with tests/fixtures/old_glibc.c preloaded.
fn asked(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("oldglibc: ")).collect()
}

#[test]
fn the_real_dlsym_is_the_base_version_before_glibc_2_34_and_glibc_2_34_after() {
    let f = fixtures();
    let shim = support::library();
    let base = format!("oldglibc: dlsym@{BASE_VERSION} found");
    for (version, want) in
        [("2.28", base.as_str()), ("2.17", base.as_str()), ("2.36", "oldglibc: dlsym@GLIBC_2.34 found")]
    {
        // RTLD_NEXT from a third library.
        let mut command = support::clean_command(&f.probe_main);
        command
            .env("LD_PRELOAD", preload_list(&[&f.old_glibc, &shim, &f.probe]))
            .env("OLD_GLIBC_VERSION", version)
            .env("NPU_ALLOC_SHIM_LOG", "off");
        let output = ok(&mut command);
        assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo\nthree\n", "glibc {version}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("nextprobe: forwarded 3"), "glibc {version}: {stderr}");
        assert_eq!(asked(&stderr), [want], "glibc {version}: {stderr}");

        // Hooks on every binding path, and RTLD_NEXT, through that dlsym.
        let (report, callers, stderr) =
            chain_run(&[&f.old_glibc, &shim, &f.chain], &["linked", "2", "2"], &[("OLD_GLIBC_VERSION", version)]);
        assert_glibc_answers(&report, &format!("glibc {version}"));
        assert_eq!(callers, counts(&[("nextchain", 4)]), "glibc {version}: {report}");
        assert_eq!(asked(&stderr), [want], "glibc {version}: {stderr}");
    }
}

/// The ELF machine of a file (following symbolic links).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 20 && bytes.starts_with(b"\x7fELF"), "{} is not ELF", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn everything_the_tests_run_is_built_for_their_architecture() {
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    let want = if cfg!(target_arch = "aarch64") { EM_AARCH64 } else { EM_X86_64 };
    let f = fixtures();
    let mut programs = vec![support::library(), support::cli(), f.chain.clone(), f.chain_main.clone()];
    // The programs the real-process tests start with the library preloaded:
    // one of another architecture would ignore it (scripts/test-aarch64.sh
    // provides aarch64 ones).
    programs.push(PathBuf::from("/bin/sh"));
    let python = support::run_with_timeout(
        support::clean_command("python3").args(["-c", "import sys; print(sys.executable)"]),
        support::LIMIT,
    );
    if python.status.success() {
        programs.push(PathBuf::from(String::from_utf8_lossy(&python.stdout).trim()));
    } else {
        println!("no python3: its architecture is not checked");
    }
    for program in programs {
        assert_eq!(
            elf_machine(&program),
            want,
            "{} is not built for {} (for aarch64 run scripts/test-aarch64.sh)",
            program.display(),
            std::env::consts::ARCH
        );
    }
}
