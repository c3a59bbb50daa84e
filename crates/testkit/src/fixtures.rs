//! Helpers shared by the reliability tests (issue 7): the C fixtures built
//! against the fake runtime, traced runs, recordings, directory listings,
//! tmpfs mounts that are always unmounted, and the library's stderr lines.

use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const MIB: u64 = 1024 * 1024;

/// Compiles a fixture (`crate::compile_c`, which also sees header changes).
pub fn build(out: &str, sources: &[&str], args: &[&str]) -> PathBuf {
    crate::compile_c(out, sources, args)
}

fn include() -> String {
    format!("-I{}", crate::repo().join("tests/fake_runtime").display())
}

/// The fake Ascend runtime, `libascendcl.so` in the fixture directory (built
/// with the arguments the other hook tests use, so that they share it).
pub fn fake_runtime() -> PathBuf {
    build(
        "libascendcl.so",
        &["tests/fake_runtime/fake_ascendcl.c"],
        &["-Itests/fake_runtime", "-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread"],
    )
}

/// Arguments that link a program with the fake runtime (rpath to it).
fn link_fake() -> Vec<String> {
    let dir = crate::fixture_dir().display().to_string();
    vec![
        include(),
        format!("-L{dir}"),
        "-lascendcl".into(),
        format!("-Wl,-rpath,{dir}"),
        "-ldl".into(),
        "-pthread".into(),
    ]
}

fn build_linked(out: &str, source: &str, extra: &[&str]) -> PathBuf {
    fake_runtime();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(link_fake());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build(out, &[source], &args)
}

/// tests/fixtures/reliability_shapes.c, linked with the fake runtime.
pub fn shapes() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_linked("reliability_shapes", "tests/fixtures/reliability_shapes.c", &[])).clone()
}

/// The same program built without the runtime (for `no-runtime-hooks`).
pub fn shapes_without_runtime() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let include = include();
        build(
            "reliability_shapes_no_runtime",
            &["tests/fixtures/reliability_shapes.c"],
            &[&include, "-DNO_RUNTIME", "-ldl", "-pthread"],
        )
    })
    .clone()
}

/// tests/fixtures/reliability_plugin.c as a shared library.
pub fn plugin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_linked("libreliability_plugin.so", "tests/fixtures/reliability_plugin.c", &["-shared", "-fPIC"])
    })
    .clone()
}

/// tests/fixtures/reliability_load.c.
pub fn load() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_linked("reliability_load", "tests/fixtures/reliability_load.c", &["-lm"])).clone()
}

/// tests/fixtures/reliability_fastclock.c: a preload that speeds time up.
pub fn fastclock() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build("libreliability_fastclock.so", &["tests/fixtures/reliability_fastclock.c"], &["-shared", "-fPIC", "-ldl"])
    })
    .clone()
}

/// tests/fixtures/acl_workload.c (the hook tests' workload), under a name of
/// its own so that other test binaries' builds are not disturbed.
pub fn workload() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_linked("reliability_acl_workload", "tests/fixtures/acl_workload.c", &["-DWORKLOAD_LINKED"])
    })
    .clone()
}

/// A command running `program` preloaded, tracing to `trace`, with the
/// allocator variable already set so that normalization prints nothing
/// (every stderr line is then about the case under test).
pub fn traced(program: &Path, trace: &Path, flush_ms: u64) -> Command {
    let mut command = crate::preloaded(program);
    command
        .env("NPU_ALLOC_SHIM_TRACE", trace)
        .env("NPU_ALLOC_SHIM_FLUSH_MS", flush_ms.to_string())
        .env("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True");
    command
}

pub use crate::run_ok as ok;

/// One JSON value per stdout line that starts with `{`.
pub fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The library's lines on stderr (each starts with its prefix).
pub fn library_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("npu-alloc-shim:"))
        .map(str::to_owned)
        .collect()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not whole JSON: {e}", path.display()))
}

/// Waits for a periodic write at `path` that `ready` accepts and returns it.
/// Every read must be whole JSON: writes replace the file atomically.
pub fn wait_for_recording(path: &Path, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let found = std::cell::RefCell::new(None);
    crate::wait_until(what, || {
        let Ok(text) = std::fs::read_to_string(path) else { return false };
        let rec: Value = serde_json::from_str(&text).expect("a periodic write is whole JSON");
        let accepted = ready(&rec);
        *found.borrow_mut() = Some(rec);
        accepted
    });
    found.into_inner().expect("a recording was read")
}

/// The recording `t.<pid>.json` in `dir`.
pub fn recording(dir: &Path, pid: u64) -> Value {
    read_json(&dir.join(format!("t.{pid}.json")))
}

/// A number at a JSON pointer ("/totals/alloc_calls"); panics naming it.
pub fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

/// `by_api.<name>.calls`, 0 when the function was never called.
pub fn api_calls(rec: &Value, name: &str) -> u64 {
    rec.pointer(&format!("/by_api/{name}/calls")).and_then(Value::as_u64).unwrap_or(0)
}

/// Every `errors` counter of a recording is zero.
pub fn assert_no_errors(rec: &Value) {
    for (key, value) in rec["errors"].as_object().expect("errors") {
        assert_eq!(value.as_u64(), Some(0), "errors.{key} in {}", rec["errors"]);
    }
}

/// File names in a directory (sorted).
pub fn listing(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
}

/// Temporary files of the atomic writer (`.<name>.<pid>.<n>.tmp`).
pub fn temporaries(dir: &Path) -> Vec<OsString> {
    listing(dir).into_iter().filter(|n| n.to_string_lossy().ends_with(".tmp")).collect()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted on a directory for one test; unmounted when dropped,
/// whether the test passed or not.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. "size=64k" or "ro,size=1m") on
    /// `dir`; `Err` with the reason when that is not possible here.
    pub fn mount(dir: &Path, options: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not root: cannot mount a tmpfs".into());
        }
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs -o {options} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Changes mount options (e.g. "remount,ro").
    pub fn remount(&self, options: &str) {
        let status = Command::new("mount").args(["-o", options]).arg(&self.dir).status().expect("run mount");
        assert!(status.success(), "mount -o {options} {}", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a child still holds it): detach it now, it goes when free.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Prints a figure the documentation quotes (visible with --nocapture).
pub fn figure(text: impl std::fmt::Display) {
    println!("reliability figure: {text}");
}

/// Runs a command in a process group of its own with a time limit, then
/// kills whatever is left of the group (a forked child that hangs included);
/// `Err` describes a timeout with what was printed.
pub fn run_group(command: &mut Command, limit: std::time::Duration) -> Result<Output, String> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let pgid = child.id() as i32;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Whatever is left of the group (a hung forked child keeps the pipes open).
    // SAFETY: kill(2) on our own process group id.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Ok(Output { status, stdout, stderr }),
        None => Err(format!(
            "timed out after {limit:?}: {command:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )),
    }
}
