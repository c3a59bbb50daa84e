//! What the set-user-ID tests need: a trusted directory to install the
//! library in, whether a directory honours set-user-ID bits, and removal of
//! what they installed.

use std::path::{Path, PathBuf};

/// Removes an installed file when dropped.
pub struct Installed(pub PathBuf);

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The directory of this process's libc: a trusted directory for ld.so,
/// where a set-user-ID program may preload a library by bare name.
pub fn libc_dir() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let path = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with("libc.so")))
        .expect("libc in /proc/self/maps");
    Path::new(path).parent().expect("libc dir").to_path_buf()
}

/// Whether `dir` is on a file system mounted nosuid.
pub fn nosuid(dir: &Path) -> bool {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statvfs fills the zeroed struct for a valid C path.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        libc::statvfs(path.as_ptr(), &mut stat) == 0 && stat.f_flag & libc::ST_NOSUID != 0
    }
}
