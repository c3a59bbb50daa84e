//! `npu-alloc-shim top` on live processes: Python workers on the fake
//! runtime (preloaded, recording every 100 ms) that allocate when told, the
//! full-screen view driven in tmux (send-keys, capture-pane), and the plain
//! table when stdout is a pipe. Every wait is for a state, not a time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Allocates on one device when told on stdin; answers each command.
const WORKER: &str = r#"
import ctypes, sys
acl = ctypes.CDLL(sys.argv[1])
assert acl.aclrtSetDevice(int(sys.argv[2])) == 0
held = []
print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "alloc":
        ptr = ctypes.c_void_p()
        rc = acl.aclrtMalloc(ctypes.byref(ptr), ctypes.c_size_t(int(words[1]) << 20), 0)
        if rc == 0:
            held.append(ptr)
        print("ok" if rc == 0 else "failed", flush=True)
    elif words[0] == "exit":
        break
"#;

/// A worker process, killed when dropped (a failing test leaves none).
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(traces: &Path, device: u32) -> Worker {
        let mut command = support::preloaded("python3");
        command
            .args(["-c", WORKER])
            .arg(support::fixtures::fake_runtime())
            .arg(device.to_string())
            .env("NPU_ALLOC_SHIM_TRACE", format!("{}/", traces.display()))
            .env("NPU_ALLOC_SHIM_FLUSH_MS", "100")
            .env("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut worker = Worker { child, stdin, stdout };
        assert_eq!(worker.answer(), "ready");
        worker
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("worker answers");
        line.trim().to_owned()
    }

    fn tell(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("worker reads");
        self.answer()
    }

    /// Ends the process normally (the library writes its final recording).
    fn exit(mut self) {
        writeln!(self.stdin, "exit").expect("worker reads");
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmux server of this test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = support::clean_command("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]).env("TERM", "xterm-256color");
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let out = support::run_ok(self.command().args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Waits until the screen shows what `ready` wants; returns it. The
    /// 60 s deadline only catches a hang, and shows the last screen.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(std::time::Instant::now() < deadline, "waited 60 s for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// The screen line of a pid's row (the first column is the host, then the pid).
fn row_of(screen: &str, pid: u32) -> Option<&str> {
    screen.lines().find(|l| l.split_whitespace().nth(1) == Some(pid.to_string().as_str()))
}

fn line_index(screen: &str, pid: u32) -> usize {
    let row = row_of(screen, pid).unwrap_or_else(|| panic!("no row for {pid}:\n{screen}"));
    screen.lines().position(|l| l == row).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = support::fixture_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_live_view_refreshes_sorts_and_quits_under_tmux() {
    let traces = scratch("top-live");
    let mut small = Worker::start(&traces, 0);
    let mut large = Worker::start(&traces, 1);
    assert_eq!(small.tell("alloc 64"), "ok");
    assert_eq!(large.tell("alloc 192"), "ok");
    let (small_pid, large_pid) = (small.pid(), large.pid());

    let tmux = Tmux { socket: format!("npu-alloc-shim-top-{}", std::process::id()) };
    // The shell prints top's exit status on the normal screen once it quits.
    let top = format!(
        "{} top {} --interval 0.2; echo \"top exited with $?\"; exec sleep 600",
        support::cli().display(),
        traces.display()
    );
    tmux.run(&["new-session", "-d", "-s", "top", "-x", "230", "-y", "30", "sh", "-c", &top]);

    // Both processes, largest live first (the default order), on their devices.
    let screen = tmux.wait_for("both workers with their live bytes", |s| {
        row_of(s, small_pid).is_some_and(|r| r.contains("64.0 MiB"))
            && row_of(s, large_pid).is_some_and(|r| r.contains("192.0 MiB"))
    });
    assert!(line_index(&screen, large_pid) < line_index(&screen, small_pid), "{screen}");
    assert!(screen.contains("LIVE↓"), "{screen}");
    let words = |pid| row_of(&screen, pid).unwrap().split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(small_pid)[2..4], ["0", "running"], "{screen}");
    assert_eq!(words(large_pid)[2..4], ["1", "running"], "{screen}");
    assert!(row_of(&screen, small_pid).unwrap().contains("+64.0 MiB"), "growth since the start: {screen}");

    // By pid, then reversed.
    tmux.run(&["send-keys", "-t", "top", "i"]);
    let screen = tmux.wait_for("sorted by pid", |s| s.contains("PID↓"));
    let (first, second) = if small_pid < large_pid { (small_pid, large_pid) } else { (large_pid, small_pid) };
    assert!(line_index(&screen, first) < line_index(&screen, second), "{screen}");
    tmux.run(&["send-keys", "-t", "top", "r"]);
    let screen = tmux.wait_for("sorted by pid, reversed", |s| s.contains("PID↑"));
    assert!(line_index(&screen, second) < line_index(&screen, first), "{screen}");

    // Back to live: the small worker grows past the large one, which then
    // fails an allocation larger than its device.
    tmux.run(&["send-keys", "-t", "top", "r", "l"]);
    assert_eq!(small.tell("alloc 256"), "ok");
    assert_eq!(large.tell("alloc 4096"), "failed");
    let screen = tmux.wait_for("the new live bytes and the failure", |s| {
        s.contains("LIVE↓")
            && row_of(s, small_pid).is_some_and(|r| r.contains("320.0 MiB"))
            && row_of(s, large_pid).is_some_and(|r| r.split_whitespace().nth(10) == Some("1"))
    });
    assert!(line_index(&screen, small_pid) < line_index(&screen, large_pid), "{screen}");

    // One exits normally, the other is killed: exited and gone.
    small.exit();
    drop(large);
    let screen = tmux.wait_for("exited and gone", |s| {
        row_of(s, small_pid).is_some_and(|r| r.contains("exited"))
            && row_of(s, large_pid).is_some_and(|r| r.contains("gone"))
    });
    assert!(screen.contains("2 processes (0 running)"), "{screen}");

    // q quits with status 0 and leaves the alternate screen.
    tmux.run(&["send-keys", "-t", "top", "q"]);
    let after = tmux.wait_for("top to exit", |s| s.contains("top exited with "));
    assert!(after.contains("top exited with 0"), "{after}");
    assert!(!after.contains("GROWTH/1m"), "the table is still on the screen after q:\n{after}");
}

#[test]
fn off_a_terminal_it_prints_one_plain_table() {
    let traces = scratch("top-plain");
    let mut worker = Worker::start(&traces, 2);
    assert_eq!(worker.tell("alloc 48"), "ok");
    let pid = worker.pid();
    let path = traces.join(format!("npu-alloc-shim.{pid}.json"));
    support::fixtures::wait_for_recording(&path, "48 MiB recorded", |r| r["totals"]["live_bytes"] == 48 << 20);
    let out = support::run_ok(support::clean_command(support::cli()).arg("top").arg(&traces));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "control sequences in a pipe: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("npu-alloc-shim top  1 process (1 running) on 1 host"), "{text}");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>()[..5], ["HOST", "PID", "DEV", "STATE", "LIVE"], "{text}");
    let row: Vec<&str> = row_of(&text, pid).unwrap_or_else(|| panic!("{text}")).split_whitespace().collect();
    assert_eq!(row[2..6], ["2", "running", "48.0", "MiB"], "{text}");
    assert_eq!(lines.len(), 3, "one row: {text}");
}

#[test]
fn top_refuses_a_missing_directory_and_shows_an_empty_one() {
    let empty = scratch("top-empty");
    let out = support::run_ok(support::clean_command(support::cli()).arg("top").arg(&empty));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("no recordings yet\n"), "{out:?}");
    let missing = empty.join("missing");
    let out =
        support::run_with_timeout(support::clean_command(support::cli()).arg("top").arg(&missing), support::LIMIT);
    assert_eq!(out.status.code(), Some(66), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&format!("npu-alloc-shim: {}: ", missing.display())));
    let out = support::run_with_timeout(
        support::clean_command(support::cli()).args(["top", "--interval", "0"]),
        support::LIMIT,
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}
