//! Where a recording goes and how it gets there: path templates and atomic
//! writes (temporary file in the same directory, mode 0600, never following
//! or reusing an existing file, then `rename`).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a template names a directory: it ends in `/`, or it has no `%`
/// escape and is an existing directory. Decided once, when recording starts.
pub fn names_directory(template: &[u8]) -> bool {
    template.ends_with(b"/") || (!template.contains(&b'%') && Path::new(std::ffi::OsStr::from_bytes(template)).is_dir())
}

/// Expands `%p` (pid), `%h` (host name), `%t` (load time, unix ms) and `%%`.
/// A directory (`is_dir`, see `names_directory`) gets the default file name
/// `npu-alloc-shim.<pid>.json`.
pub fn expand(template: &[u8], is_dir: bool, pid: u32, started_unix_ms: u64, hostname: &str) -> PathBuf {
    let mut out = Vec::with_capacity(template.len() + 16);
    let mut bytes = template.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        match bytes.peek().copied() {
            Some(b'p') => out.extend_from_slice(pid.to_string().as_bytes()),
            Some(b'h') => out.extend_from_slice(hostname.as_bytes()),
            Some(b't') => out.extend_from_slice(started_unix_ms.to_string().as_bytes()),
            Some(b'%') => out.push(b'%'),
            _ => {
                out.push(b'%');
                continue;
            }
        }
        bytes.next();
    }
    let mut path = PathBuf::from(std::ffi::OsStr::from_bytes(&out));
    if is_dir {
        path.push(format!("npu-alloc-shim.{pid}.json"));
    }
    path
}

static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically; `sync` also flushes to disk first.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the trace path names no file"))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A temporary name nobody else uses; a stale one (left by a killed
    // process whose pid came back) or a planted one is skipped, never reused.
    let mut attempt = 0;
    let (temp, mut file) = loop {
        let temp = dir.join(format!(
            ".{}.{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp);
        match opened {
            Ok(file) => break (temp, file),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 64 => attempt += 1,
            Err(error) => return Err(error),
        }
    };
    let result = (|| {
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes the temporary files of `path` that carry this process's pid: an
/// `exec` while the flush thread was writing leaves one behind, and the new
/// image (same pid, same file) is the only writer that can own it. Called
/// after the final write, never while another write of this process runs.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(format!(".{}.", std::process::id()).as_bytes());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let bytes = file.as_bytes();
        let sequence = bytes.strip_prefix(prefix.as_slice()).and_then(|rest| rest.strip_suffix(b".tmp"));
        if sequence.is_some_and(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_escape() {
        let path = expand(b"/x/t.%p.%h.%t.%%.%q.json", false, 42, 7, "node1");
        assert_eq!(path, PathBuf::from("/x/t.42.node1.7.%.%q.json"));
    }

    #[test]
    fn directories_get_a_file_name() {
        assert!(names_directory(b"/nonexistent/dir/"));
        assert_eq!(
            expand(b"/nonexistent/dir/", true, 5, 0, "h"),
            PathBuf::from("/nonexistent/dir/npu-alloc-shim.5.json")
        );
        let dir = std::env::temp_dir();
        assert!(names_directory(dir.as_os_str().as_bytes()));
        assert!(!names_directory(b"/nonexistent/file.json"));
        assert_eq!(expand(dir.as_os_str().as_bytes(), true, 5, 0, "h"), dir.join("npu-alloc-shim.5.json"));
    }

    #[test]
    fn writes_atomically_with_private_mode_and_replaces_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nas-output-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let target = dir.join("trace.json");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"{}", true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&target).unwrap(), b"{}");
        assert!(!std::fs::symlink_metadata(&target).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn removes_only_this_processes_temporaries_of_this_file() {
        let dir = tempfile_dir("stale");
        let pid = std::process::id();
        let ours = format!(".t.json.{pid}.3.tmp");
        let kept =
            [format!(".t.json.{}.3.tmp", pid + 1), format!(".u.json.{pid}.3.tmp"), format!(".t.json.{pid}.x.tmp")];
        for name in kept.iter().chain([&ours]) {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        remove_stale_temporaries(&dir.join("t.json"));
        assert!(!dir.join(&ours).exists());
        for name in &kept {
            assert!(dir.join(name).exists(), "{name} removed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nas-output-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
