//! Rule 1, secure execution: in a set-user-ID process (AT_SECURE) the library
//! is loaded but inert.
//!
//! glibc preloads nothing given by path in secure mode; it loads a bare name
//! from a standard directory, and only a file with the set-user-ID bit. So the
//! test (root only) copies the library under a unique name, mode 04755, next
//! to the libc this process uses, makes a set-user-ID-root copy of the
//! environment dump probe, and runs it as an unprivileged user. Everything it
//! installs is removed by drop guards, failure or not.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use support::probes;
use support::setuid::{Installed, libc_dir, nosuid};

/// The unprivileged user and group the probe runs as (nobody/nogroup).
const NOBODY: &str = "65534";

/// Why this test cannot run here, if it cannot.
fn skip_reason(scratch: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot install a set-user-ID library and probe".into());
    }
    if !Path::new("/usr/bin/setpriv").exists() && !Path::new("/bin/setpriv").exists() {
        return Some("setpriv (util-linux) is not installed".into());
    }
    if nosuid(scratch) {
        return Some(format!("{} is mounted nosuid", scratch.display()));
    }
    None
}

/// The dump of the probe run as nobody; `preload` is the bare library name.
fn run_as_nobody(probe: &Path, preload: Option<&str>, value: Option<&str>) -> Vec<String> {
    let mut command: Command = support::clean_command("setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args([
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            // Only the probe gets LD_PRELOAD: sh and setpriv are not secure
            // processes and would apply the library themselves.
            r#"if [ -n "$1" ]; then LD_PRELOAD="$1" exec "$2"; else exec "$2"; fi"#,
            "sh",
            preload.unwrap_or(""),
        ])
        .arg(probe)
        .current_dir("/");
    if let Some(value) = value {
        command.env(probes::SPECIFIC, value);
    }
    let out = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "inert means silent too");
    probes::records(&out.stdout).iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
}

#[test]
fn rule_1_a_set_user_id_process_loads_the_library_and_changes_nothing() {
    let scratch = tempfile::Builder::new().prefix("npu-alloc-shim-secure").tempdir_in("/tmp").expect("scratch dir");
    if let Some(reason) = skip_reason(scratch.path()) {
        println!("skipped: {reason}");
        return;
    }
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod scratch");
    let probe = scratch.path().join("environ_dump");
    std::fs::copy(probes::environ_dump(), &probe).expect("copy probe");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o4755)).expect("chmod probe");

    let name = format!(
        "libnpu_alloc_shim_secure_test_{}_{}.so",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
    );
    let installed = Installed(libc_dir().join(&name));
    std::fs::copy(support::library(), &installed.0).expect("install library copy");
    std::fs::set_permissions(&installed.0, std::fs::Permissions::from_mode(0o4755)).expect("chmod library copy");

    for value in [None, Some(""), Some("page_size:1g")] {
        let with = run_as_nobody(&probe, Some(&name), value);
        let without = run_as_nobody(&probe, None, value);
        assert_eq!(with[0], "secure=1 euid=0 loaded=1", "{with:?}");
        assert_eq!(without[0], "secure=1 euid=0 loaded=0", "{without:?}");
        assert_eq!(with[1..], without[1..], "the environment must not change");
        let var = format!("{}=", probes::SPECIFIC);
        let seen: Vec<&String> = with.iter().filter(|r| r.starts_with(&var)).collect();
        assert_eq!(seen.len(), usize::from(value.is_some()), "{with:?}");
        assert!(!with.iter().any(|r| r.starts_with(probes::MARKER)), "{with:?}");
    }
    drop(installed);
    assert!(!libc_dir().join(&name).exists());
}
