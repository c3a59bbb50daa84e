//! `npu-alloc-shim run`: finding the library, composing LD_PRELOAD, the trace
//! destination, and passing the program's exit status and signals through.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::probes;

/// The CLI with a clean environment (no NPU_ALLOC_SHIM_LIB, no LD_PRELOAD).
fn cli() -> Command {
    // The library sits next to the CLI once built.
    support::library();
    support::clean_command(support::cli())
}

fn run(command: &mut Command) -> Output {
    support::run_with_timeout(command, support::LIMIT)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `run ... -- sh -c 'printf %s "$VAR"'`.
fn print_var(command: &mut Command, var: &str) -> Output {
    command.args(["--", "/bin/sh", "-c", &format!("printf %s \"${var}\"")]);
    let out = run(command);
    assert!(out.status.success(), "{out:?}");
    out
}

fn canonical_library() -> PathBuf {
    std::fs::canonicalize(support::library()).expect("library path")
}

#[test]
fn the_exit_status_passes_through() {
    for code in [0, 1, 7, 126, 255] {
        let out = run(cli().args(["run", "--", "/bin/sh", "-c", &format!("exit {code}")]));
        assert_eq!(out.status.code(), Some(code), "{out:?}");
    }
    // Without `--` too.
    let out = run(cli().args(["run", "/bin/sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn signals_pass_through_because_run_becomes_the_program() {
    let out = run(cli().args(["run", "--", "/bin/sh", "-c", "kill -TERM $$"]));
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    // `run` became the program: the program's parent is this test process.
    let out = run(cli().args(["run", "--", "/bin/sh", "-c", "echo $PPID"]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), std::process::id().to_string());
}

#[test]
fn the_library_next_to_the_binary_is_preloaded_and_normalizes() {
    let out = print_var(cli().arg("run"), "LD_PRELOAD");
    assert_eq!(stdout(&out), canonical_library().to_string_lossy());
    let out = print_var(cli().arg("run"), "PYTORCH_NPU_ALLOC_CONF");
    assert_eq!(stdout(&out), "expandable_segments:True");
    assert_eq!(stderr(&out), "", "a shell never uses the runtime: nothing is said");
    // A program that looks up the runtime hears what was decided, once.
    let lookup =
        "import ctypes, os; hasattr(ctypes.CDLL(None), 'aclrtMalloc'); print(os.environ['PYTORCH_NPU_ALLOC_CONF'])";
    let out = run(cli().args(["run", "--"]).arg(probes::python()).args(["-c", lookup]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "expandable_segments:True\n");
    assert_eq!(
        stderr(&out),
        "npu-alloc-shim: PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (was unset); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0\n"
    );
}

#[test]
fn an_existing_ld_preload_is_kept_after_the_library() {
    let noop = support::probes::noop_preload();
    let lib = canonical_library();
    let cases = [
        (noop.display().to_string(), format!("{}:{}", lib.display(), noop.display())),
        (format!("{0} {0}", noop.display()), format!("{}:{1} {1}", lib.display(), noop.display())),
        (String::new(), lib.display().to_string()),
        (" ".to_owned(), lib.display().to_string()),
        // Already there (in any position): not added twice.
        (format!("{}:{}", noop.display(), lib.display()), format!("{}:{}", noop.display(), lib.display())),
        (
            format!("{} {}", noop.display(), support::library().display()),
            format!("{} {}", noop.display(), support::library().display()),
        ),
    ];
    for (existing, want) in cases {
        let mut command = cli();
        command.arg("run").env("LD_PRELOAD", &existing);
        let out = print_var(&mut command, "LD_PRELOAD");
        assert_eq!(stdout(&out), want, "LD_PRELOAD={existing:?}");
    }
}

#[test]
fn lib_and_the_environment_variable_choose_the_library() {
    let scratch = tempfile::tempdir().expect("scratch");
    let copy = scratch.path().join("custom.so");
    std::fs::copy(support::library(), &copy).expect("copy");
    let copy = std::fs::canonicalize(&copy).unwrap();
    let out = print_var(cli().args(["run", "--lib"]).arg(&copy), "LD_PRELOAD");
    assert_eq!(stdout(&out), copy.to_string_lossy());
    // A relative --lib becomes absolute: children may change directory.
    let mut command = cli();
    command.current_dir(scratch.path()).args(["run", "--lib", "custom.so"]);
    assert_eq!(stdout(&print_var(&mut command, "LD_PRELOAD")), copy.to_string_lossy());
    let mut command = cli();
    command.arg("run").env("NPU_ALLOC_SHIM_LIB", &copy);
    assert_eq!(stdout(&print_var(&mut command, "LD_PRELOAD")), copy.to_string_lossy());
    // --lib wins over the variable.
    let mut command = cli();
    command.args(["run", "--lib"]).arg(support::library()).env("NPU_ALLOC_SHIM_LIB", &copy);
    assert_eq!(stdout(&print_var(&mut command, "LD_PRELOAD")), canonical_library().to_string_lossy());
}

/// A copy of the CLI at `dir/bin/npu-alloc-shim`.
fn installed_cli(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cli = bin.join("npu-alloc-shim");
    std::fs::copy(support::cli(), &cli).expect("copy cli");
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    cli
}

#[test]
fn an_installed_layout_finds_lib_next_to_bin_or_says_where_it_looked() {
    let scratch = tempfile::tempdir().expect("scratch");
    let cli = installed_cli(scratch.path());
    let out = run(support::clean_command(&cli).args(["run", "--", "true"]));
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let message = stderr(&out);
    assert!(message.starts_with("npu-alloc-shim: cannot find libnpu_alloc_shim.so (looked in: "), "{message}");
    assert!(message.contains("--lib PATH"), "{message}");

    let lib = scratch.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(support::library(), lib.join("libnpu_alloc_shim.so")).unwrap();
    let out = print_var(support::clean_command(&cli).arg("run"), "LD_PRELOAD");
    let want = std::fs::canonicalize(lib.join("libnpu_alloc_shim.so")).unwrap();
    assert_eq!(stdout(&out), want.to_string_lossy());
}

/// `npu-alloc-shim lib` prints what `run` would preload, for
/// `LD_PRELOAD=$(npu-alloc-shim lib)`.
#[test]
fn lib_prints_the_path_run_would_preload() {
    let out = run(cli().arg("lib"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("{}\n", canonical_library().display()));
    // From an installed layout, and its path works as LD_PRELOAD.
    let scratch = tempfile::tempdir().expect("scratch");
    let cli_copy = installed_cli(scratch.path());
    let out = run(support::clean_command(&cli_copy).arg("lib"));
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(stderr(&out).starts_with("npu-alloc-shim: cannot find libnpu_alloc_shim.so (looked in: "), "{out:?}");
    let lib = scratch.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(support::library(), lib.join("libnpu_alloc_shim.so")).unwrap();
    let out = run(support::clean_command(&cli_copy).arg("lib"));
    let path = stdout(&out).trim_end().to_owned();
    assert_eq!(path, std::fs::canonicalize(lib.join("libnpu_alloc_shim.so")).unwrap().to_string_lossy());
    let mut probe = support::clean_command("/bin/sh");
    probe.args(["-c", "printf %s \"$PYTORCH_NPU_ALLOC_CONF\""]).env("LD_PRELOAD", &path);
    assert_eq!(stdout(&run(&mut probe)), "expandable_segments:True");
    // A path LD_PRELOAD cannot hold is refused, as by `run`.
    let odd = scratch.path().join("with space.so");
    std::fs::copy(support::library(), &odd).unwrap();
    let out = run(cli().arg("lib").env("NPU_ALLOC_SHIM_LIB", &odd));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("LD_PRELOAD cannot hold a path with a space or a colon"), "{out:?}");
}

/// A pip install puts the CLI in `bin/` and the library in the package:
/// `../lib/python3.X/site-packages/npu_alloc_shim/` (newest Python first).
#[test]
fn a_pip_installed_layout_finds_the_library_in_the_package() {
    let scratch = tempfile::tempdir().expect("scratch");
    let cli_copy = installed_cli(scratch.path());
    let package = |python: &str| {
        let dir = scratch.path().join("lib").join(python).join("site-packages/npu_alloc_shim");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(support::library(), dir.join("libnpu_alloc_shim.so")).unwrap();
        std::fs::canonicalize(dir.join("libnpu_alloc_shim.so")).unwrap()
    };
    let (older, newer) = (package("python3.9"), package("python3.12"));
    let out = run(support::clean_command(&cli_copy).arg("lib"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out).trim_end(), newer.to_string_lossy(), "not {}", older.display());
}

#[test]
fn a_missing_library_is_a_clear_error() {
    let out = run(cli().args(["run", "--lib", "/nonexistent/libx.so", "--", "true"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).starts_with("npu-alloc-shim: --lib /nonexistent/libx.so: No such file"), "{out:?}");
    let mut command = cli();
    command.args(["run", "--", "true"]).env("NPU_ALLOC_SHIM_LIB", "/nonexistent/liby.so");
    let out = run(&mut command);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).starts_with("npu-alloc-shim: NPU_ALLOC_SHIM_LIB=/nonexistent/liby.so"));
}

#[test]
fn a_library_path_ld_preload_cannot_hold_is_refused() {
    let scratch = tempfile::tempdir().expect("scratch");
    let odd = scratch.path().join("with space.so");
    std::fs::copy(support::library(), &odd).unwrap();
    let out = run(cli().args(["run", "--lib"]).arg(&odd).args(["--", "true"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("LD_PRELOAD cannot hold a path with a space or a colon"));
}

#[test]
fn a_missing_or_unexecutable_program_is_a_clear_error() {
    let out = run(cli().args(["run", "--", "no-such-program-npu-alloc-shim"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).starts_with("npu-alloc-shim: cannot run no-such-program-npu-alloc-shim: "), "{out:?}");
    let scratch = tempfile::tempdir().expect("scratch");
    let plain = scratch.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(cli().args(["run", "--"]).arg(&plain));
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(stderr(&out).contains("Permission denied"), "{out:?}");
}

#[test]
fn trace_sets_an_absolute_destination() {
    let scratch = tempfile::tempdir().expect("scratch");
    let dir = std::fs::canonicalize(scratch.path()).unwrap();
    let cases = [
        (dir.display().to_string(), format!("{}/npu-alloc-shim.%p.json", dir.display())),
        (format!("{}/later/", dir.display()), format!("{}/later/npu-alloc-shim.%p.json", dir.display())),
        ("t.json".to_owned(), format!("{}/t.json", dir.display())),
        ("sub/".to_owned(), format!("{}/sub/npu-alloc-shim.%p.json", dir.display())),
    ];
    for (trace, want) in cases {
        let mut command = cli();
        command.current_dir(&dir).args(["run", "--trace", &trace]).env("NPU_ALLOC_SHIM_LOG", "off");
        let out = print_var(&mut command, "NPU_ALLOC_SHIM_TRACE");
        assert_eq!(stdout(&out), want, "--trace {trace}");
    }
    // Without --trace nothing is set.
    let out = print_var(cli().arg("run"), "NPU_ALLOC_SHIM_TRACE");
    assert_eq!(stdout(&out), "");
    // The directories named with a trailing '/' were made (the library
    // writes into existing ones only); a file's directory is not.
    assert!(dir.join("later").is_dir() && dir.join("sub").is_dir());
}

#[test]
fn a_trace_directory_that_cannot_be_made_is_a_clear_error() {
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let trace = format!("{}/below/", file.display());
    let out = run(cli().args(["run", "--trace", &trace, "--", "true"]));
    assert_eq!(out.status.code(), Some(73), "{out:?}");
    assert!(
        stderr(&out).starts_with(&format!("npu-alloc-shim: --trace {trace}: cannot create the directory: ")),
        "{out:?}"
    );
}

#[test]
fn usage_errors_exit_64() {
    for args in [&["run"][..], &["run", "--bogus", "--", "true"], &["run", "--lib"], &["frobnicate"], &[]] {
        let out = run(cli().args(args));
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let out = run(cli().args(args));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty());
    }
}
