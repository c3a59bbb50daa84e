//! Facts about the host process. The environment is read and written with
//! libc's `getenv`/`setenv`, not std's, whose lock a host thread could hold
//! (this runs before `main`, and from `dlopen` in processes that are already
//! busy); files under /proc are read with `std::fs`, which takes no lock.

use std::ffi::{CStr, CString};

/// The bytes of an environment variable, without going through std's
/// environment lock (the constructor runs before anyone else could hold it,
/// and a late `dlopen` must not wait on it).
pub fn getenv(name: &str) -> Option<Vec<u8>> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid C string; getenv returns NULL or a pointer to a
    // NUL-terminated string in the environment block, copied before returning.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        (!value.is_null()).then(|| CStr::from_ptr(value).to_bytes().to_vec())
    }
}

/// Sets an environment variable. Callers make sure no other thread runs.
pub fn setenv(name: &str, value: &[u8]) -> Result<(), String> {
    let name_c = CString::new(name).map_err(|_| format!("{name}: name holds a NUL byte"))?;
    let value_c = CString::new(value).map_err(|_| format!("{name}: value holds a NUL byte"))?;
    // SAFETY: both are valid C strings; setenv copies them. The caller has
    // checked that this process runs a single thread, so no concurrent getenv.
    let rc = unsafe { libc::setenv(name_c.as_ptr(), value_c.as_ptr(), 1) };
    if rc == 0 { Ok(()) } else { Err(format!("setenv({name}) failed: {}", std::io::Error::last_os_error())) }
}

/// True when the kernel marked this process for secure execution
/// (setuid, setgid, file capabilities).
pub fn is_secure() -> bool {
    // SAFETY: getauxval has no preconditions; it returns 0 for absent entries.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The command line, from `/proc/self/cmdline`.
pub fn argv() -> Vec<Vec<u8>> {
    match std::fs::read("/proc/self/cmdline") {
        Ok(bytes) => bytes.split(|&b| b == 0).filter(|a| !a.is_empty()).map(<[u8]>::to_vec).collect(),
        Err(_) => Vec::new(),
    }
}

/// Number of threads in this process, `None` when it cannot be told. Under
/// qemu-user (an aarch64 program run on x86_64 through binfmt_misc, as the
/// aarch64 CI does) the emulator's own RCU thread is not counted: it is
/// there from the start and never touches the program's environment.
pub fn thread_count() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/task").ok()?;
    let count = entries.filter(Result::is_ok).count();
    Some(if under_qemu_user() { count.saturating_sub(1).max(1) } else { count })
}

/// qemu-user answers `/proc/self/exe` with the emulated program, but the
/// main thread's own entry still shows the emulator; natively both agree.
/// Valgrind answers the same way, but it runs no thread of its own, so the
/// emulator is recognised by its name too (`qemu-aarch64`, `qemu-aarch64-static`).
/// Asked once: it cannot change, and the flush thread asks again and again
/// (also after the main thread ended, when its entry can no longer be read).
pub fn under_qemu_user() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let main_thread = format!("/proc/self/task/{}/exe", std::process::id());
        match (std::fs::read_link("/proc/self/exe"), std::fs::read_link(main_thread)) {
            (Ok(program), Ok(thread)) => program != thread && is_qemu(&thread),
            _ => false,
        }
    })
}

fn is_qemu(emulator: &std::path::Path) -> bool {
    emulator.file_name().is_some_and(|name| name.as_encoded_bytes().starts_with(b"qemu-"))
}
