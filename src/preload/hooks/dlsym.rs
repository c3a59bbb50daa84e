//! The `dlsym` interposer.
//!
//! Older torch_npu binds the runtime with `dlsym(handle, name)` on its own
//! handle of libascendcl, which a preloaded symbol cannot catch. This `dlsym`
//! answers lookups of hooked names with the hook (after checking that the
//! handle really has the function, which becomes the hook's real function)
//! and forwards every other lookup to glibc's `dlsym` by a tail jump, so that
//! glibc sees the original caller's return address: `RTLD_NEXT` (resolved
//! relative to the caller) and `RTLD_DEFAULT` (searched in the caller's
//! scope) keep working for everybody. A plain wrapper would make every
//! library's `dlsym(RTLD_NEXT, …)` resolve relative to this one.

use super::{hook_address, is_own_hook, real};
use crate::preload::log;
use common::runtime;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

static REAL_DLSYM: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Set when the library is disabled: the interposer then only forwards.
pub static PASS_THROUGH: AtomicBool = AtomicBool::new(false);

/// glibc's own `dlsym`. Found with `dlvsym(RTLD_NEXT, …)` under the version
/// this glibc defines as default, so that no failing lookup (which would
/// allocate an error string) happens on the way.
pub fn real_dlsym_ptr() -> *mut c_void {
    let known = REAL_DLSYM.load(Ordering::Acquire);
    if !known.is_null() {
        return known;
    }
    let mut found = std::ptr::null_mut();
    for version in versions() {
        // SAFETY: dlvsym with valid C strings; RTLD_NEXT from this library
        // finds the next definition, libc's.
        found = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), version.as_ptr()) };
        if !found.is_null() {
            break;
        }
    }
    REAL_DLSYM.store(found, Ordering::Release);
    found
}

/// Candidate symbol versions of `dlsym`, newest default first.
fn versions() -> [&'static CStr; 2] {
    #[cfg(target_arch = "x86_64")]
    let base = c"GLIBC_2.2.5";
    #[cfg(target_arch = "aarch64")]
    let base = c"GLIBC_2.17";
    if glibc_at_least_2_34() { [c"GLIBC_2.34", base] } else { [base, c"GLIBC_2.34"] }
}

fn glibc_at_least_2_34() -> bool {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(gnu_get_libc_version()) }.to_bytes();
    let mut parts = version.split(|&b| b == b'.').map(|p| std::str::from_utf8(p).ok()?.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (2, 34),
        _ => true,
    }
}

unsafe extern "C" {
    fn gnu_get_libc_version() -> *const c_char;
}

/// Calls glibc's `dlsym` from this library (never through our own export).
///
/// # Safety
/// Same contract as `dlsym`.
pub unsafe fn real_dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    let pointer = real_dlsym_ptr();
    if pointer.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `pointer` is glibc's dlsym, whose signature is DlsymFn.
    unsafe { std::mem::transmute::<*mut c_void, DlsymFn>(pointer)(handle, name) }
}

/// The main program's handle: lookups on it search the global scope.
fn main_program() -> *mut c_void {
    static MAIN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
    let known = MAIN.load(Ordering::Acquire);
    if !known.is_null() {
        return known;
    }
    // SAFETY: dlopen(NULL) returns the main program's handle; never closed.
    let handle = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) };
    MAIN.store(handle, Ordering::Release);
    handle
}

/// Decides one lookup. Returns 1 with the answer in `*out`, or 0 with glibc's
/// `dlsym` in `*out` for the assembly to jump to. Never panics; allocates
/// nothing (the held messages said at the first hooked name were allocated at load).
extern "C" fn decide(handle: *mut c_void, name: *const c_char, out: *mut *mut c_void) -> c_int {
    let answer = if handle == libc::RTLD_NEXT || name.is_null() || PASS_THROUGH.load(Ordering::Relaxed) {
        None
    } else {
        // SAFETY: dlsym's contract: `name` is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) };
        let hooked = hooked_index(name);
        if hooked.is_none() {
            super::pooling::on_lookup(name);
        }
        hooked.and_then(|index| lookup(handle, name, index))
    };
    let (answered, value) = match answer {
        Some(value) => (1, value),
        None => (0, real_dlsym_ptr()),
    };
    // SAFETY: `out` points at the stack slot reserved by the assembly below.
    unsafe { out.write(value) };
    answered
}

/// Index of a hooked name that has an exported hook.
fn hooked_index(name: &CStr) -> Option<usize> {
    let bytes = name.to_bytes();
    let spec = runtime::RUNTIMES
        .iter()
        .find(|spec| spec.symbol_prefixes.iter().any(|prefix| bytes.starts_with(prefix.as_bytes())))?;
    let index = spec.first_hook + spec.hooks.iter().position(|h| h.name.to_bytes() == bytes)?;
    // Looking up the runtime's allocation calls is using the runtime: what was
    // decided at load is said now, before the caller can call anything.
    log::speak_held(spec);
    hook_address(index).map(|_| index)
}

/// Answers a lookup of hooked function `index`: the hook when the real
/// function exists, NULL (as glibc would say) when it does not.
fn lookup(handle: *mut c_void, name: &CStr, index: usize) -> Option<*mut c_void> {
    let hook = hook_address(index)?;
    if handle == libc::RTLD_DEFAULT {
        // The global scope answers the same for every caller: the main
        // program's own definition if it has one, else our export (we are
        // preloaded). Asked through the main program's handle, because this
        // library is linked -Bsymbolic and would find itself first. Only say
        // "our hook" when the runtime really has the function; without a
        // runtime the caller would have got NULL.
        // SAFETY: dlsym's contract; `name` is a C string.
        let found = unsafe { real_dlsym(main_program(), name.as_ptr()) };
        if !is_own_hook(found) {
            return Some(found);
        }
        return Some(if real::get(index).is_some() { hook } else { std::ptr::null_mut() });
    }
    // SAFETY: a lookup on the caller's handle; handle lookups do not depend on
    // who calls, so making it from here answers what the caller would get.
    let found = unsafe { real_dlsym(handle, name.as_ptr()) };
    if found.is_null() || is_own_hook(found) {
        return Some(found);
    }
    real::offer(index, found);
    Some(hook)
}

// The exported `dlsym`: save the arguments, ask `decide`, then either return
// its answer or restore the arguments and tail-jump to glibc's dlsym with the
// caller's return address still on the stack (x86_64) / in x30 (aarch64).
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(test), unsafe(no_mangle))]
#[unsafe(naked)]
/// # Safety
/// Same contract as glibc's `dlsym`.
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        // 8 (return address) + 16 (pushes) + 24 = 48: 16-byte aligned for the call.
        "sub rsp, 24",
        "mov rdx, rsp",
        "call {decide}",
        "mov rcx, [rsp]",
        "add rsp, 24",
        "pop rsi",
        "pop rdi",
        "test eax, eax",
        "jz 2f",
        "mov rax, rcx",
        "ret",
        "2:",
        "jmp rcx",
        decide = sym decide,
    )
}

#[cfg(target_arch = "aarch64")]
#[cfg_attr(not(test), unsafe(no_mangle))]
#[unsafe(naked)]
/// # Safety
/// Same contract as glibc's `dlsym`.
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-48]!",
        "mov x29, sp",
        "stp x0, x1, [sp, #16]",
        "add x2, sp, #32",
        "bl {decide}",
        "mov w17, w0",
        "ldr x16, [sp, #32]",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #48",
        "cbz w17, 2f",
        "mov x0, x16",
        "ret",
        "2:",
        "br x16",
        decide = sym decide,
    )
}
