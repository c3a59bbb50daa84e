//! The runtimes' own lookups by name (`cudaGetDriverEntryPoint`,
//! `cuGetProcAddress`): PyTorch binds the driver's VMM calls and NCCL all of
//! its driver calls this way, which no symbol interposition reaches. The
//! lookup runs as asked; when the function it found is one that is hooked,
//! the caller gets the hook instead, and the found function becomes the
//! hook's real one if none was known. Nothing else is ever handed out: a
//! variant the hook does not stand for (another ABI version, a per-thread
//! stream variant) goes back untouched.

use super::{dlsym::PASS_THROUGH, exports, hook_address, is_own_hook, real};
use crate::preload::record::Queries;
use common::runtime;
use std::ffi::{CStr, c_char, c_void};
use std::sync::atomic::Ordering;

/// One lookup's arguments.
pub struct Asked {
    pub symbol: *const c_char,
    /// The out-parameter the real lookup fills.
    pub func: *mut *mut c_void,
    /// The CUDA version asked for (`u64::MAX`: the runtime's own).
    pub version: u64,
    pub flags: u64,
}

/// Runs a lookup (counted per API) and hands out the hook for what it found.
///
/// # Safety
/// `asked.symbol` is NULL or a C string; `asked.func` is NULL or the
/// pointer-sized out-parameter `forward` fills.
pub unsafe fn entry_point(
    index: usize,
    forward: Option<impl FnOnce() -> i32>,
    asked: Asked,
    queries: &'static Queries,
    unresolved_code: i32,
) -> i32 {
    let rc = exports::call(index, forward, 0, queries, unresolved_code);
    if rc != 0 || asked.symbol.is_null() || asked.func.is_null() || PASS_THROUGH.load(Ordering::Relaxed) {
        return rc;
    }
    // SAFETY: the lookup succeeded, so it filled the caller's out-parameter;
    // the symbol is the caller's C string.
    let (found, name) = unsafe { (asked.func.read(), CStr::from_ptr(asked.symbol)) };
    if let Some(hook) = hook_for(name, found, asked.version, asked.flags) {
        // SAFETY: the same out-parameter, written with a function of the same signature.
        unsafe { asked.func.write(hook) };
    }
    rc
}

/// The hook standing for `found`, the function a lookup of `name` handed
/// out, if one does.
fn hook_for(name: &CStr, found: *mut c_void, version: u64, flags: u64) -> Option<*mut c_void> {
    if found.is_null() || is_own_hook(found) {
        return None;
    }
    let asked = name.to_str().ok()?;
    runtime::all_hooks().find_map(|(index, spec, hook)| {
        // Only hooks of that name or a versioned one of it (`cuMemAlloc_v2`)
        // are looked at: resolving every hook would cost each lookup dearly.
        let versioned = hook.name().strip_prefix(asked).is_some_and(|rest| rest.is_empty() || rest.starts_with("_v"));
        let ours = hook_address(index).filter(|_| versioned)?;
        let known = real::get(index);
        let stands_for = known == Some(found) || (spec.entry_point_matches)(hook.name(), asked, version, flags);
        if !stands_for {
            return None;
        }
        // The runtime's own lookup is the best source of the real function.
        (known.is_some() || real::offer(index, found)).then_some(ours)
    })
}
