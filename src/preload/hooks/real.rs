//! Finding the real runtime functions, lazily and without linking the runtime.
//!
//! Order: a pointer handed over by the `dlsym` interposer (the function a
//! caller's own handle resolves to), then the runtime library if it is loaded
//! anywhere (`dlopen(RTLD_NOLOAD)`, which also finds libraries loaded with
//! RTLD_LOCAL), then `dlsym(RTLD_NEXT)`. `redhook` only does the last and
//! panics when it fails, which is why it is not used here.

use super::{dlsym, is_own_hook};
use crate::preload::log;
use common::runtime::{self, HOOK_COUNT};
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The real function of every hook of every runtime, by global index.
static REAL: [AtomicPtr<c_void>; HOOK_COUNT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; HOOK_COUNT];

/// Records the real function for hook `index` if none is known yet.
/// Returns false when the pointer is one of our own hooks.
pub fn offer(index: usize, pointer: *mut c_void) -> bool {
    if pointer.is_null() || is_own_hook(pointer) {
        return false;
    }
    let _ = REAL[index].compare_exchange(std::ptr::null_mut(), pointer, Ordering::AcqRel, Ordering::Acquire);
    true
}

/// The real function of hook `index` as a typed pointer.
///
/// # Safety
/// `F` must be the C signature of hook `index`.
#[inline(always)]
pub unsafe fn typed<F: Copy>(index: usize) -> Option<F> {
    // SAFETY: the caller's guarantee, passed on.
    get(index).map(|pointer| unsafe { cast(pointer) })
}

/// The real function of hook `index` if it was found already (one load, no
/// lookup): the hooks' path with tracing off.
///
/// # Safety
/// `F` must be the C signature of hook `index`.
#[inline(always)]
pub unsafe fn found<F: Copy>(index: usize) -> Option<F> {
    // SAFETY: the caller's guarantee, passed on.
    known(index).map(|pointer| unsafe { cast(pointer) })
}

/// A function pointer as the typed pointer `F`.
///
/// # Safety
/// `F` must be the pointed-to function's C signature.
#[inline(always)]
unsafe fn cast<F: Copy>(pointer: *mut c_void) -> F {
    // SAFETY: data and function pointers have the same size here; the caller
    // guarantees the signature.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&pointer) }
}

/// The real function of hook `index` if known.
#[inline(always)]
fn known(index: usize) -> Option<*mut c_void> {
    let pointer = REAL[index].load(Ordering::Acquire);
    (!pointer.is_null()).then_some(pointer)
}

/// The real function of hook `index`, found on first use.
#[inline]
pub fn get(index: usize) -> Option<*mut c_void> {
    known(index).or_else(|| resolve(index))
}

#[cold]
fn resolve(index: usize) -> Option<*mut c_void> {
    // The first call of a hook that `dlsym` did not hand out lands here: the
    // process uses the runtime, so what was decided at load is said now.
    let (spec, hook) = runtime::hook(index)?;
    log::speak_held(spec);
    let name = hook.name;
    for library in spec.runtime_libraries {
        let Ok(library) = std::ffi::CString::new(*library) else { continue };
        // SAFETY: RTLD_NOLOAD never loads anything; it returns a new reference
        // to an already loaded library (or NULL), released right after.
        let pointer = unsafe {
            let handle = libc::dlopen(library.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY);
            if handle.is_null() {
                continue;
            }
            let pointer = dlsym::real_dlsym(handle, name.as_ptr());
            libc::dlclose(handle);
            pointer
        };
        if offer(index, pointer) {
            return Some(REAL[index].load(Ordering::Acquire));
        }
    }
    // SAFETY: RTLD_NEXT from this library searches the objects loaded after it.
    let pointer = unsafe { dlsym::real_dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    offer(index, pointer).then(|| REAL[index].load(Ordering::Acquire))
}

/// Forgets every resolved pointer (tests of resolution order only).
#[cfg(test)]
pub fn clear() {
    for slot in &REAL {
        slot.store(std::ptr::null_mut(), Ordering::Release);
    }
}
