//! Shared helpers for the integration tests and benchmarks: where the built
//! library and CLI are, compiling C fixtures, running processes with a time
//! limit (here); the fake-runtime fixtures and recording readers
//! (`fixtures`), the normalization probes (`probes`), hand-made recordings for
//! the report tests (`reports`), the reference model of the grammar
//! (`allocconf_model`) and the benchmark suite (`overhead`).

pub mod allocconf_model;
pub mod fake_cuda;
pub mod fixtures;
pub mod overhead;
pub mod probes;
pub mod reports;
pub mod setuid;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `target/<profile>`, found from the test executable (`target/<profile>/deps/x`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

/// The built preload library. `cargo test` does not build a cdylib for
/// integration tests, so the first call in each test binary runs
/// `cargo build` for the same profile (a no-op when it is fresh).
pub fn library() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| built(&["-p", "npu-alloc-shim", "--lib"], "libnpu_alloc_shim.so")).clone()
}

/// The built CLI, built the same way (it is another package of the workspace,
/// so cargo hands the tests no path to it).
pub fn cli() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| built(&["-p", "npu-alloc-shim-cli", "--bin", "npu-alloc-shim"], "npu-alloc-shim")).clone()
}

/// The library built with the tests' toy second runtime (feature
/// `toy-runtime`), in a target directory of its own (`<target>/toy`) so that
/// it never replaces the real one.
pub fn library_with_toy_runtime() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let toy = target_root().join("toy");
            built_in(&toy, &["-p", "npu-alloc-shim", "--lib", "--features", "toy-runtime"], "libnpu_alloc_shim.so")
        })
        .clone()
}

/// The target directory cargo was given (above `<triple>/<profile>` or `<profile>`).
fn target_root() -> PathBuf {
    let mut root = target_dir().parent().map(Path::to_path_buf).expect("target/<profile> has a parent");
    if cross_target().is_some() {
        root = root.parent().map(Path::to_path_buf).expect("target/<triple>/<profile>");
    }
    root
}

/// Runs `cargo build <what>` for the tests' profile and target, under a lock
/// shared by every test binary, and returns `target/<profile>/<file>`.
fn built(what: &[&str], file: &str) -> PathBuf {
    built_in(&target_root(), what, file)
}

/// `built` into the target directory `root`.
fn built_in(root: &Path, what: &[&str], file: &str) -> PathBuf {
    let target = target_dir();
    let profile = target.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
    let _guard = FileLock::acquire(&target.join("npu-alloc-shim-build.lock"));
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(repo()).arg("build").args(what).arg("--quiet");
    if profile == "release" {
        cargo.arg("--release");
    }
    let mut out = root.to_path_buf();
    if let Some(triple) = cross_target() {
        // `cargo test --target T` puts the tests in `<dir>/T/<profile>`.
        cargo.args(["--target", &triple]);
        out.push(&triple);
    }
    cargo.env("CARGO_TARGET_DIR", root);
    let status = cargo.status().expect("run cargo build");
    assert!(status.success(), "cargo build {what:?} failed");
    let path = out.join(&profile).join(file);
    assert!(path.exists(), "{} missing after cargo build {what:?}", path.display());
    path
}

/// The target triple the tests were built for with `cargo test --target`, or
/// None for a native build: `NPU_ALLOC_SHIM_TEST_TARGET` when set, else the
/// name of the directory above `target/<profile>` when that is a triple
/// directory (no `CACHEDIR.TAG`, which cargo writes only at the top).
pub fn cross_target() -> Option<String> {
    if let Some(triple) = std::env::var("NPU_ALLOC_SHIM_TEST_TARGET").ok().filter(|t| !t.is_empty()) {
        return Some(triple);
    }
    let target = target_dir();
    let triple_dir = target.parent()?;
    let top = triple_dir.parent()?;
    (!triple_dir.join("CACHEDIR.TAG").exists() && top.join("CACHEDIR.TAG").exists())
        .then(|| triple_dir.file_name()?.to_str().map(str::to_owned))
        .flatten()
}

/// The C compiler for fixtures: `NPU_ALLOC_SHIM_TEST_CC` (e.g.
/// `aarch64-linux-gnu-gcc` for a cross test run), else `cc`.
pub fn c_compiler() -> std::ffi::OsString {
    std::env::var_os("NPU_ALLOC_SHIM_TEST_CC").filter(|cc| !cc.is_empty()).unwrap_or_else(|| "cc".into())
}

/// The workspace root (this crate is `crates/testkit`).
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().and_then(Path::parent).expect("crates/testkit sits two levels down").to_path_buf()
}

/// A scratch directory for compiled fixtures, shared by the tests of one run.
pub fn fixture_dir() -> PathBuf {
    let dir = target_dir().join("test-fixtures");
    std::fs::create_dir_all(&dir).expect("fixture dir");
    dir
}

/// Compiles C sources into `out` (in `fixture_dir()`) with `cc` (or
/// `c_compiler()`), once per test run; `args` are passed after the sources.
/// Stale when a source or any header a fixture can include (those of
/// `HEADER_DIRS`) is newer. Returns the output path.
pub fn compile_c(out: &str, sources: &[&str], args: &[&str]) -> PathBuf {
    let output = fixture_dir().join(out);
    let lock = fixture_dir().join(format!("{out}.lock"));
    // Several test binaries may compile the same fixture at once: serialise
    // with an exclusive lock file and rebuild when an input is newer.
    let _guard = FileLock::acquire(&lock);
    let inputs = sources.iter().map(|s| repo().join(s)).chain(headers());
    let newest_input = inputs.map(|p| std::fs::metadata(&p).and_then(|m| m.modified()).expect("fixture input")).max();
    let fresh = std::fs::metadata(&output).and_then(|m| m.modified()).ok();
    if fresh.is_some() && fresh >= newest_input {
        return output;
    }
    let tmp = fixture_dir().join(format!("{out}.tmp{}", std::process::id()));
    let status = Command::new(c_compiler())
        .args(["-g", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .args(sources.iter().map(|s| repo().join(s)))
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", c_compiler()));
    assert!(status.success(), "{:?} failed for {out}", c_compiler());
    std::fs::rename(&tmp, &output).expect("rename fixture");
    output
}

/// Where the headers of the C fixtures are: the fake runtime's and the
/// accounting core it shares with the simulated runtime.
const HEADER_DIRS: [&str; 3] = ["tests/fake_runtime", "tests/fake_cuda", "crates/cli/assets/sim_runtime"];

fn headers() -> Vec<PathBuf> {
    let dirs = HEADER_DIRS.iter().filter_map(|dir| std::fs::read_dir(repo().join(dir)).ok());
    dirs.flatten().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "h")).collect()
}

pub(crate) struct FileLock {
    _held: std::fs::File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).expect("lock file");
        // SAFETY: flock on a valid descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock");
        FileLock { _held: file }
    }
}

/// Spawns with stdin closed and both outputs read by threads while the
/// caller waits: a child writing more than a pipe buffer (64 KiB) would
/// otherwise block until the time limit.
fn spawn_piped(command: &mut Command) -> (Child, JoinHandle<Vec<u8>>, JoinHandle<Vec<u8>>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    (child, stdout, stderr)
}

/// Runs a command to the end like `run_with_timeout` and also returns the
/// peak resident memory of that child alone (`wait4`'s rusage; the test
/// process's RUSAGE_CHILDREN would count every child of every test).
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_measuring_peak_memory(command: &mut Command, limit: Duration) -> (Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let (mut child, stdout, stderr) = spawn_piped(command);
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it and `status`.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: our own child, reaped here only (the Child is never waited on).
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let output = Output {
                status: std::process::ExitStatus::from_raw(status),
                stdout: stdout.join().expect("stdout reader"),
                stderr: stderr.join().expect("stderr reader"),
            };
            return (output, usage.ru_maxrss as u64 * 1024);
        }
        assert!(reaped == 0, "wait4 {pid}: {}", std::io::Error::last_os_error());
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {limit:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `done` until it holds; fails the test naming `what` after 60 s (a
/// deadline that only catches a hang: tests wait for conditions, not times).
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs to the end (time-limited) and requires exit status 0; the failure
/// names the command and shows both outputs.
pub fn run_ok(command: &mut Command) -> Output {
    let output = run_with_timeout(command, LIMIT);
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command with a time limit; kills it and fails the test on timeout.
///
/// In a cross test run under qemu-user (`cross_target()`), a child forked by
/// the emulated, multithreaded test process can hang before it executes its
/// program (an emulator bug, rare): when after `EMULATOR_FORK_GRACE` the child
/// still runs this test program, it is killed and the command started again,
/// once. A program that hangs after it started is never retried.
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> Output {
    let mut retried = false;
    'spawn: loop {
        let (mut child, stdout, stderr) = spawn_piped(command);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Output {
                    status,
                    stdout: stdout.join().expect("stdout reader"),
                    stderr: stderr.join().expect("stderr reader"),
                };
            }
            if !retried
                && start.elapsed() > EMULATOR_FORK_GRACE
                && cross_target().is_some()
                && never_executed(child.id())
            {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (stdout.join(), stderr.join());
                eprintln!("note: a forked child never started {command:?} (qemu-user); starting it again");
                retried = true;
                continue 'spawn;
            }
            if start.elapsed() > limit {
                let state = child_state(child.id());
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "timed out after {limit:?}: {command:?}\nchild: {state}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                    String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How long a child may take to execute its program under emulation.
const EMULATOR_FORK_GRACE: Duration = Duration::from_secs(10);

/// Whether child `pid` still runs this test program: forked, never executed.
fn never_executed(pid: u32) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(cmdline), Ok(me)) = (std::fs::read(format!("/proc/{pid}/cmdline")), std::env::current_exe()) else {
        return false;
    };
    let me = std::fs::canonicalize(&me).unwrap_or(me);
    cmdline.split(|&b| b == 0).take(3).any(|arg| {
        let arg = Path::new(std::ffi::OsStr::from_bytes(arg));
        std::fs::canonicalize(arg).is_ok_and(|arg| arg == me)
    })
}

/// A timed-out child's state, command line and wait channel, for the failure.
fn child_state(pid: u32) -> String {
    let read = |what: &str| std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
    let stat = String::from_utf8_lossy(&read("stat")).into_owned();
    let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("?").to_owned();
    let cmdline: Vec<u8> = read("cmdline").iter().take(300).map(|&b| if b == 0 { b' ' } else { b }).collect();
    format!(
        "state {state}, wchan {}, cmdline {}",
        String::from_utf8_lossy(&read("wchan")),
        String::from_utf8_lossy(&cmdline).trim_end()
    )
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The default limit for one process in a test.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A command with a clean environment apart from PATH/HOME and the given pairs,
/// so that the developer's own variables cannot change a result.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
}

/// The same, with the library preloaded.
pub fn preloaded(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = clean_command(program);
    command.env("LD_PRELOAD", library());
    command
}
