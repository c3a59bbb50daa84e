//! Facts about the host process. The environment is read and written with
//! libc's `getenv`/`setenv`, not std's, whose lock a host thread could hold
//! (this runs before `main`, and from `dlopen` in processes that are already
//! busy); files under /proc are read with `std::fs`, which takes no lock.

use std::ffi::CStr;

/// The bytes of an environment variable, without going through std's
/// environment lock (the constructor runs before anyone else could hold it,
/// and a late `dlopen` must not wait on it).
pub fn getenv(name: &str) -> Option<Vec<u8>> {
    with_env(name, |value| value.map(<[u8]>::to_vec)).flatten()
}

/// Looks at an environment variable where it is, without copying it (for
/// `dlsym`, where `malloc` may not be safe to call): `body` gets its bytes.
pub fn with_env<T>(name: &str, body: impl FnOnce(Option<&[u8]>) -> T) -> Option<T> {
    with_c_string(name.as_bytes(), |name| {
        // SAFETY: `name` is a valid C string; getenv returns NULL or a pointer
        // to a NUL-terminated string in the environment block, read at once.
        let value = unsafe { libc::getenv(name) };
        // SAFETY: a non-NULL getenv answer is a NUL-terminated string.
        body((!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes()))
    })
}

/// Sets an environment variable. Callers make sure no other thread runs.
pub fn setenv(name: &str, value: &[u8]) -> Result<(), String> {
    if holds_nul(value) {
        return Err(format!("{name}: value holds a NUL byte"));
    }
    let mut value_c = Vec::with_capacity(value.len() + 1);
    value_c.extend_from_slice(value);
    value_c.push(0);
    let rc = with_c_string(name.as_bytes(), |name_c| {
        // SAFETY: both are valid C strings; setenv copies them. The caller has
        // checked that this process runs a single thread, so no concurrent getenv.
        unsafe { libc::setenv(name_c, value_c.as_ptr().cast(), 1) }
    })
    .ok_or_else(|| format!("{name}: not a variable name this library sets"))?;
    if rc == 0 { Ok(()) } else { Err(format!("setenv({name}) failed: {}", std::io::Error::last_os_error())) }
}

/// Removes `name` from the environment (single-threaded callers only, as `setenv`).
pub fn unsetenv(name: &str) -> Result<(), String> {
    let rc = with_c_string(name.as_bytes(), |name_c| {
        // SAFETY: a valid C string; the caller has checked that this process
        // runs a single thread, so no concurrent getenv.
        unsafe { libc::unsetenv(name_c) }
    })
    .ok_or_else(|| format!("{name}: not a variable name this library sets"))?;
    if rc == 0 { Ok(()) } else { Err(format!("unsetenv({name}) failed: {}", std::io::Error::last_os_error())) }
}

/// Calls `body` with `text` as a NUL-terminated string on the stack: the
/// names are the library's own short constants, and a heap copy (CString)
/// would bring more of the library's code into every process at start.
/// `None` for text too long or holding a NUL byte.
fn with_c_string<T>(text: &[u8], body: impl FnOnce(*const std::ffi::c_char) -> T) -> Option<T> {
    let mut buffer = [0u8; 128];
    if text.len() >= buffer.len() || holds_nul(text) {
        return None;
    }
    buffer[..text.len()].copy_from_slice(text);
    Some(body(buffer.as_ptr().cast()))
}

/// A plain loop rather than `contains(&0)`, whose memchr is more of the
/// library's code on every process's start-up path.
fn holds_nul(bytes: &[u8]) -> bool {
    !bytes.iter().all(|&b| b != 0)
}

/// True when the kernel marked this process for secure execution
/// (setuid, setgid, file capabilities).
pub fn is_secure() -> bool {
    // SAFETY: getauxval has no preconditions; it returns 0 for absent entries.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The command line. std keeps the `argv` glibc hands every constructor
/// (also those of a library loaded later by `dlopen`), so this reads no file:
/// a `/proc` read is several system calls, paid by every process at start.
/// A loop, not `collect`: the generic `from_iter` it would instantiate lies
/// outside the start path's text (src/preload/start_path.ld).
pub fn argv() -> Vec<Vec<u8>> {
    let mut argv = Vec::new();
    for arg in std::env::args_os().map(|arg| arg.into_encoded_bytes()) {
        if !arg.is_empty() {
            argv.push(arg);
        }
    }
    argv
}

/// Number of threads in this process, `None` when it cannot be told.
///
/// glibc 2.32 and later keep `__libc_single_threaded`, true until the
/// process first creates a thread: when it says so, that is the answer at no
/// cost (every process start pays for this). Otherwise (older glibc, or a
/// process that has had threads) `/proc/self/task` is counted. Under
/// qemu-user (an aarch64 program run on x86_64 through binfmt_misc, as the
/// aarch64 CI does) the emulator's own RCU thread is not counted: it is
/// there from the start and never touches the program's environment.
pub fn thread_count() -> Option<usize> {
    if never_threaded() {
        return Some(1);
    }
    let entries = std::fs::read_dir("/proc/self/task").ok()?;
    let count = entries.filter(Result::is_ok).count();
    Some(if under_qemu_user() { count.saturating_sub(1).max(1) } else { count })
}

/// glibc's `__libc_single_threaded` (GLIBC_2.32), false where it is absent.
fn never_threaded() -> bool {
    // SAFETY: dlvsym with valid C strings only looks the symbol up; the
    // symbol, where defined, is a `char` in libc that lives for the process.
    unsafe {
        let flag = libc::dlvsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr(), c"GLIBC_2.32".as_ptr());
        !flag.is_null() && std::ptr::read_volatile(flag.cast::<libc::c_char>()) != 0
    }
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
