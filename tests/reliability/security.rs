//! Security (issue 7): the library creates and follows nothing outside the
//! configured path, leaves no temporary file, writes recordings with mode
//! 0600 whatever the umask, does nothing at all in set-user-ID processes
//! (AT_SECURE), and never echoes an environment value unescaped in its
//! one-line messages. (HTML escaping of reports: tests/report_*.rs.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;
use support::fixtures::{self as common, n};
use support::probes;
use support::setuid::{Installed, libc_dir, nosuid};

/// Every path under `root` with its kind, size, mode and mtime: what a test
/// compares before and after to prove nothing changed.
fn tree(root: &Path) -> BTreeMap<PathBuf, (String, u64, u32, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).expect("lstat");
            let kind = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(entry.path()).unwrap().display())
            } else if meta.is_dir() {
                stack.push(entry.path());
                "dir".to_owned()
            } else {
                "file".to_owned()
            };
            out.insert(entry.path(), (kind, meta.len(), meta.mode(), meta.modified().unwrap()));
        }
    }
    out
}

/// A scratch area: `trace/` (the configured directory) next to `outside/`
/// (what must never be touched), with a victim file in it.
struct Area {
    _root: tempfile::TempDir,
    trace: PathBuf,
    outside: PathBuf,
}

fn area() -> Area {
    let root = tempfile::tempdir().unwrap();
    let trace = root.path().join("trace");
    let outside = root.path().join("outside");
    std::fs::create_dir(&trace).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), "precious").unwrap();
    Area { _root: root, trace, outside }
}

#[test]
fn a_traced_run_touches_only_its_own_files() {
    let area = area();
    let parent = area.trace.parent().unwrap().to_path_buf();
    let outside_before = tree(&area.outside);
    let mut command = common::traced(&common::workload(), &area.trace.join("t.%p.json"), 20);
    command.args(["--threads", "4", "--iters", "40", "--fork", "--vmm", "--host", "--oom"]);
    let output = common::ok(&mut command);
    let pids: Vec<u64> = common::json_lines(&output).iter().map(|l| n(l, "/pid")).collect();
    assert_eq!(tree(&area.outside), outside_before, "nothing outside changed");
    assert_eq!(common::listing(&parent).len(), 2, "trace/ and outside/ only");
    let want: std::collections::BTreeSet<_> = pids.iter().map(|p| format!("t.{p}.json").into()).collect();
    assert_eq!(common::listing(&area.trace), want, "one file per process, no temporary file");
    for name in &want {
        let meta = std::fs::metadata(area.trace.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name:?}");
    }
}

/// Starts `wait 2` traced to `trace`; returns the child and its pid once it
/// has loaded the library and waits for a line on stdin.
fn start_waiting(trace: &Path, flush_ms: u64) -> (std::process::Child, u32) {
    let mut child = common::traced(&common::shapes(), trace, flush_ms)
        .args(["wait", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    let pid = first.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).expect("ready line");
    (child, pid)
}

fn finish(mut child: std::process::Child) -> std::process::Output {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    output
}

#[test]
fn symlinks_planted_at_the_target_and_at_temporary_names_are_not_followed() {
    let area = area();
    let outside_before = tree(&area.outside);
    let trace = area.trace.join("t.json");
    let (child, pid) = start_waiting(&trace, 50);
    // The target, and the writer's first temporary names (predictable: name,
    // pid, sequence), point outside: to the victim and to a file that does
    // not exist yet (O_CREAT through a link would create it).
    std::os::unix::fs::symlink(area.outside.join("victim"), &trace).unwrap();
    for seq in 0..2 {
        let temp = area.trace.join(format!(".t.json.{pid}.{seq}.tmp"));
        std::os::unix::fs::symlink(area.outside.join(format!("created-{seq}")), temp).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let output = finish(child);
    assert_eq!(tree(&area.outside), outside_before, "nothing outside created or changed");
    // The write at exit met a planted temporary name and was refused (see
    // reliability_faults for a stale temporary file); the target is the
    // planted link or a private recording, never a write through the link.
    let meta = std::fs::symlink_metadata(&trace).unwrap();
    if meta.is_file() {
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(common::library_lines(&output).len() <= 1, "{:?}", common::library_lines(&output));
}

/// A link to a directory planted at a file path after the process started:
/// the recording must replace the link, not land in the linked directory.
#[test]
fn a_directory_link_planted_at_the_target_is_not_followed() {
    let area = area();
    let outside_before = tree(&area.outside);
    let trace = area.trace.join("t.json");
    let (child, _) = start_waiting(&trace, 0);
    std::os::unix::fs::symlink(&area.outside, &trace).unwrap();
    finish(child);
    assert_eq!(tree(&area.outside), outside_before, "a recording was written through the planted link");
}

#[test]
fn recordings_are_private_whatever_the_umask() {
    let area = area();
    // A readable file already at the target: replaced by a private one.
    let fixed = area.trace.join("fixed.json");
    std::fs::write(&fixed, "{}").unwrap();
    std::fs::set_permissions(&fixed, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (template, dump) in
        [(fixed.clone(), area.trace.join("dump.%p.json")), (area.trace.clone(), area.trace.join("d/"))]
    {
        if let Some(dir) = dump.to_str().and_then(|d| d.strip_suffix('/')) {
            std::fs::create_dir_all(dir).unwrap();
        }
        // umask 000: the mode comes from the library alone.
        let mut command = common::traced(Path::new("/bin/sh"), &template, 0);
        command
            .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
            .arg(common::shapes())
            .args(["dump-after", "2", "0"])
            .arg(&dump);
        common::ok(&mut command);
    }
    let mut checked = 0;
    for (path, (kind, _, mode, _)) in tree(&area.trace) {
        if kind == "file" {
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "{:?}", tree(&area.trace).keys());
}

// ---- set-user-ID processes ----

/// A set-user-ID-root program that calls the runtime, with the library
/// preloaded (as glibc allows: bare name, trusted directory, set-user-ID
/// library file) and NPU_ALLOC_SHIM_TRACE set, run by nobody: the library is
/// loaded and does nothing: no file, no message, no change.
/// (How the setup works: tests/normalization/secure.rs.)
#[test]
fn a_set_user_id_process_records_nothing() {
    let scratch = tempfile::Builder::new().prefix("npu-alloc-shim-reliability").tempdir_in("/tmp").unwrap();
    let skip = if !common::is_root() {
        Some("not root".to_owned())
    } else if !Path::new("/usr/bin/setpriv").exists() && !Path::new("/bin/setpriv").exists() {
        Some("setpriv (util-linux) is not installed".to_owned())
    } else if nosuid(scratch.path()) {
        Some("/tmp is mounted nosuid".to_owned())
    } else {
        None
    };
    if let Some(reason) = skip {
        println!("skipped: {reason}");
        return;
    }
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = scratch.path().join("shapes");
    std::fs::copy(common::shapes(), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let trace = scratch.path().join("trace");
    std::fs::create_dir(&trace).unwrap();
    // Writable by anyone: if the library wanted to write, nothing would stop it.
    std::fs::set_permissions(&trace, std::fs::Permissions::from_mode(0o777)).unwrap();
    let name = format!("libnpu_alloc_shim_reliability_{}.so", std::process::id());
    let installed = Installed(libc_dir().join(&name));
    std::fs::copy(support::library(), &installed.0).unwrap();
    std::fs::set_permissions(&installed.0, std::fs::Permissions::from_mode(0o4755)).unwrap();

    let mut command: Command = support::clean_command("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh", "-c"])
        // Only the program gets LD_PRELOAD (sh is not a secure process).
        .args([r#"LD_PRELOAD="$1" exec "$2" secure"#, "sh", &name])
        .arg(&program)
        .env("NPU_ALLOC_SHIM_TRACE", trace.join("t.%p.json"))
        .env("NPU_ALLOC_SHIM_FLUSH_MS", "10")
        .current_dir("/");
    let output = common::ok(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("secure=1 loaded=1\n"), "{stdout}");
    assert_eq!(common::json_lines(&output)[0]["allocs"], 2);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "inert means silent");
    assert!(common::listing(&trace).is_empty(), "{:?}", common::listing(&trace));
    drop(installed);
}

// ---- messages ----

/// What a value is turned into in a message: no byte outside printable ASCII.
fn assert_printable_line(line: &str, what: &str) {
    assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{what}: raw bytes in {:?}", line);
}

const HOSTILE: &str = "\n\x1b[2J\x1b]0;pwned\x07<script>alert(1)</script>";

#[test]
fn allocator_values_are_escaped_in_messages() {
    for value in [
        format!("page_size:1g,{HOSTILE}"),
        format!("page_size:{HOSTILE}"),
        format!("bogus{HOSTILE}:1"),
        format!("expandable_segments:{HOSTILE}"),
        format!("max_split_size_mb:{HOSTILE}"),
    ] {
        let mut command = support::preloaded(probes::getenv_probe());
        command.env(probes::SPECIFIC, &value);
        let output = support::run_with_timeout(&mut command, support::LIMIT);
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{value:?}: one line: {stderr:?}");
        assert_printable_line(lines[0], &format!("{value:?}"));
        assert!(lines[0].contains("\\x1b"), "{value:?}: escaped: {}", lines[0]);
    }
}

#[test]
fn a_hostile_trace_path_is_escaped_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join(format!("missing{HOSTILE}")).join("t.json");
    let output = common::ok(common::traced(&common::shapes(), &trace, 0).args(["alloc", "1"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert_printable_line(lines[0], "trace path");
}

#[test]
fn a_hostile_command_line_flag_is_escaped_in_messages() {
    // A Hydra-style override whose prefix holds control bytes still turns on
    // the sleep-mode rule, which quotes the flag.
    let flag = format!("{HOSTILE}.enable_sleep_mode=true");
    let output = common::ok(support::preloaded(probes::getenv_probe()).arg(&flag));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    assert_printable_line(lines[0], "flag");
    assert!(lines[0].contains("\\x1b"), "{}", lines[0]);
}
