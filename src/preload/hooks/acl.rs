//! The Ascend runtime hooks. Each body: find the real function, call it,
//! and, when recording, tell the recorder what happened. The value returned
//! and the out-parameters are always exactly the real function's.

// The exported hooks carry the runtime's own C names.
#![allow(non_snake_case)]

use super::real;
use super::trampoline::with_caller;
use crate::preload::record;
use common::runtime::npu::{ACL_HBM_MEM, api};
use std::ffi::{c_int, c_void};

type AclError = c_int;
/// ACL_ERROR_RT_FEATURE_NOT_SUPPORT: what a call gets when no runtime can be found.
const NOT_SUPPORTED: AclError = 207000;

type MallocFn = unsafe extern "C" fn(*mut *mut c_void, usize, c_int) -> AclError;
type MallocCfgFn = unsafe extern "C" fn(*mut *mut c_void, usize, c_int, *mut c_void) -> AclError;
type FreeFn = unsafe extern "C" fn(*mut c_void) -> AclError;
type PhysicalFn = unsafe extern "C" fn(*mut *mut c_void, usize, *const c_void, u64) -> AclError;
type ReserveFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize, *mut c_void, u64) -> AclError;
type MapFn = unsafe extern "C" fn(*mut c_void, usize, usize, *mut c_void, u64) -> AclError;
type MallocHostFn = unsafe extern "C" fn(*mut *mut c_void, usize) -> AclError;
type MallocHostCfgFn = unsafe extern "C" fn(*mut *mut c_void, u64, *mut c_void) -> AclError;
type SetDeviceFn = unsafe extern "C" fn(i32) -> AclError;
type GetDeviceFn = unsafe extern "C" fn(*mut i32) -> AclError;
type MemInfoFn = unsafe extern "C" fn(c_int, *mut usize, *mut usize) -> AclError;

/// The real function of `index` as a typed pointer.
///
/// # Safety
/// `F` must be the C signature of hook `index`.
#[inline(always)]
unsafe fn real_fn<F: Copy>(index: usize) -> Option<F> {
    // SAFETY: data and function pointers have the same size here; the caller
    // guarantees the signature.
    real::get(index).map(|p| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// Reads an out-parameter after a successful call (NULL-safe).
///
/// # Safety
/// `out` is NULL or points to a readable pointer.
#[inline(always)]
unsafe fn read_out(out: *mut *mut c_void) -> usize {
    // SAFETY: checked for NULL; the caller passed it to the runtime to fill.
    if out.is_null() { 0 } else { unsafe { out.read() as usize } }
}

fn unresolved() -> AclError {
    record::count_unresolved();
    NOT_SUPPORTED
}

// ---- device memory -------------------------------------------------------

with_caller!(aclrtMalloc(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> AclError
    => malloc_body, x86 = "rcx", arm = "x3");
with_caller!(aclrtMallocAlign32(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> AclError
    => malloc_align32_body, x86 = "rcx", arm = "x3");
with_caller!(aclrtMallocCached(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> AclError
    => malloc_cached_body, x86 = "rcx", arm = "x3");
with_caller!(aclrtMallocWithCfg(dev_ptr: *mut *mut c_void, size: usize, policy: c_int, cfg: *mut c_void) -> AclError
    => malloc_with_cfg_body, x86 = "r8", arm = "x4");
with_caller!(aclrtMallocPhysical(handle: *mut *mut c_void, size: usize, prop: *const c_void, flags: u64) -> AclError
    => malloc_physical_body, x86 = "r8", arm = "x4");
with_caller!(aclrtMallocHost(host_ptr: *mut *mut c_void, size: usize) -> AclError
    => malloc_host_body, x86 = "rdx", arm = "x2");
with_caller!(aclrtMallocHostWithCfg(ptr: *mut *mut c_void, size: u64, cfg: *mut c_void) -> AclError
    => malloc_host_with_cfg_body, x86 = "rcx", arm = "x3");

/// The real `index` (aclrtMalloc, Align32 or Cached), else aclrtMalloc: what
/// torch_npu itself falls back to when a variant is missing from the runtime.
fn policy_real(index: usize) -> Option<MallocFn> {
    // SAFETY: MallocFn is the signature of aclrtMalloc, Align32 and Cached.
    unsafe { real_fn::<MallocFn>(index).or_else(|| real_fn::<MallocFn>(api::MALLOC)) }
}

/// One policy-taking allocation recorded as API `index`.
#[inline(always)]
fn policy_alloc(
    index: usize,
    real: Option<MallocFn>,
    dev_ptr: *mut *mut c_void,
    size: usize,
    policy: c_int,
    caller: usize,
) -> AclError {
    let Some(real) = real else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments to the real function.
    let rc = unsafe { real(dev_ptr, size, policy) };
    if let Some(scope) = scope {
        // SAFETY: the runtime filled (or not) the caller's out-parameter.
        scope.alloc(index, rc, unsafe { read_out(dev_ptr) }, size as u64, caller);
    }
    rc
}

extern "C" fn malloc_body(dev_ptr: *mut *mut c_void, size: usize, policy: c_int, caller: usize) -> AclError {
    policy_alloc(api::MALLOC, policy_real(api::MALLOC), dev_ptr, size, policy, caller)
}

extern "C" fn malloc_align32_body(dev_ptr: *mut *mut c_void, size: usize, policy: c_int, caller: usize) -> AclError {
    policy_alloc(api::MALLOC_ALIGN32, policy_real(api::MALLOC_ALIGN32), dev_ptr, size, policy, caller)
}

extern "C" fn malloc_cached_body(dev_ptr: *mut *mut c_void, size: usize, policy: c_int, caller: usize) -> AclError {
    policy_alloc(api::MALLOC_CACHED, policy_real(api::MALLOC_CACHED), dev_ptr, size, policy, caller)
}

extern "C" fn malloc_with_cfg_body(
    dev_ptr: *mut *mut c_void,
    size: usize,
    policy: c_int,
    cfg: *mut c_void,
    caller: usize,
) -> AclError {
    // SAFETY: MallocCfgFn is aclrtMallocWithCfg's signature.
    let Some(real) = (unsafe { real_fn::<MallocCfgFn>(api::MALLOC_WITH_CFG) }) else {
        // A runtime without the cfg variant: plain aclrtMalloc, as torch_npu does.
        return policy_alloc(api::MALLOC_WITH_CFG, policy_real(api::MALLOC), dev_ptr, size, policy, caller);
    };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(dev_ptr, size, policy, cfg) };
    if let Some(scope) = scope {
        // SAFETY: as in policy_alloc.
        scope.alloc(api::MALLOC_WITH_CFG, rc, unsafe { read_out(dev_ptr) }, size as u64, caller);
    }
    rc
}

extern "C" fn malloc_physical_body(
    handle: *mut *mut c_void,
    size: usize,
    prop: *const c_void,
    flags: u64,
    caller: usize,
) -> AclError {
    // SAFETY: PhysicalFn is aclrtMallocPhysical's signature.
    let Some(real) = (unsafe { real_fn::<PhysicalFn>(api::MALLOC_PHYSICAL) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(handle, size, prop, flags) };
    if let Some(scope) = scope {
        // SAFETY: the handle is an opaque pointer-sized out-parameter.
        scope.alloc(api::MALLOC_PHYSICAL, rc, unsafe { read_out(handle) }, size as u64, caller);
    }
    rc
}

/// A free of a pointer (or handle) that an allocation returned.
#[inline(always)]
fn free_like(index: usize, pointer: *mut c_void) -> AclError {
    // SAFETY: FreeFn is the signature of every free-like hook.
    let Some(real) = (unsafe { real_fn::<FreeFn>(index) }) else { return unresolved() };
    let Some(scope) = record::enter() else {
        // SAFETY: forwarding the caller's argument.
        return unsafe { real(pointer) };
    };
    // Forget the pointer before freeing: once freed, another thread may get
    // the same address back and record it.
    let taken = scope.take(index, pointer as usize);
    // SAFETY: forwarding the caller's argument.
    let rc = unsafe { real(pointer) };
    scope.freed(index, rc, pointer as usize, taken);
    rc
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtFree(dev_ptr: *mut c_void) -> AclError {
    free_like(api::FREE, dev_ptr)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtFreePhysical(handle: *mut c_void) -> AclError {
    free_like(api::FREE_PHYSICAL, handle)
}

// ---- host memory ---------------------------------------------------------

extern "C" fn malloc_host_body(host_ptr: *mut *mut c_void, size: usize, caller: usize) -> AclError {
    // SAFETY: MallocHostFn is aclrtMallocHost's signature.
    let Some(real) = (unsafe { real_fn::<MallocHostFn>(api::MALLOC_HOST) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(host_ptr, size) };
    if let Some(scope) = scope {
        // SAFETY: as in policy_alloc.
        scope.alloc(api::MALLOC_HOST, rc, unsafe { read_out(host_ptr) }, size as u64, caller);
    }
    rc
}

extern "C" fn malloc_host_with_cfg_body(ptr: *mut *mut c_void, size: u64, cfg: *mut c_void, caller: usize) -> AclError {
    // SAFETY: MallocHostCfgFn is aclrtMallocHostWithCfg's signature.
    let Some(real) = (unsafe { real_fn::<MallocHostCfgFn>(api::MALLOC_HOST_WITH_CFG) }) else {
        // torch_npu falls back to aclrtMallocHost when the cfg variant is missing.
        return match usize::try_from(size) {
            Ok(size) => malloc_host_body(ptr, size, caller),
            Err(_) => unresolved(),
        };
    };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(ptr, size, cfg) };
    if let Some(scope) = scope {
        // SAFETY: as in policy_alloc.
        scope.alloc(api::MALLOC_HOST_WITH_CFG, rc, unsafe { read_out(ptr) }, size, caller);
    }
    rc
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtFreeHost(host_ptr: *mut c_void) -> AclError {
    free_like(api::FREE_HOST, host_ptr)
}

// ---- virtual memory: counted per API only --------------------------------

/// # Safety
/// Same contract as the runtime's aclrtReserveMemAddress.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn aclrtReserveMemAddress(
    vir_ptr: *mut *mut c_void,
    size: usize,
    alignment: usize,
    expect_ptr: *mut c_void,
    flags: u64,
) -> AclError {
    // SAFETY: ReserveFn is aclrtReserveMemAddress's signature.
    let Some(real) = (unsafe { real_fn::<ReserveFn>(api::RESERVE_MEM_ADDRESS) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(vir_ptr, size, alignment, expect_ptr, flags) };
    if let Some(scope) = scope {
        scope.call(api::RESERVE_MEM_ADDRESS, rc, size as u64);
    }
    rc
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtReleaseMemAddress(vir_ptr: *mut c_void) -> AclError {
    counted_unary(api::RELEASE_MEM_ADDRESS, vir_ptr)
}

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtUnmapMem(vir_ptr: *mut c_void) -> AclError {
    counted_unary(api::UNMAP_MEM, vir_ptr)
}

fn counted_unary(index: usize, pointer: *mut c_void) -> AclError {
    // SAFETY: FreeFn is the signature of the unary release calls.
    let Some(real) = (unsafe { real_fn::<FreeFn>(index) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's argument.
    let rc = unsafe { real(pointer) };
    if let Some(scope) = scope {
        scope.call(index, rc, 0);
    }
    rc
}

/// # Safety
/// Same contract as the runtime's aclrtMapMem.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn aclrtMapMem(
    vir_ptr: *mut c_void,
    size: usize,
    offset: usize,
    handle: *mut c_void,
    flags: u64,
) -> AclError {
    // SAFETY: MapFn is aclrtMapMem's signature.
    let Some(real) = (unsafe { real_fn::<MapFn>(api::MAP_MEM) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(vir_ptr, size, offset, handle, flags) };
    if let Some(scope) = scope {
        scope.call(api::MAP_MEM, rc, size as u64);
    }
    rc
}

// ---- context ------------------------------------------------------------

#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn aclrtSetDevice(device: i32) -> AclError {
    // SAFETY: SetDeviceFn is aclrtSetDevice's signature.
    let Some(real) = (unsafe { real_fn::<SetDeviceFn>(api::SET_DEVICE) }) else { return unresolved() };
    // SAFETY: forwarding the caller's argument.
    let rc = unsafe { real(device) };
    // The current device matters even before tracing records anything.
    if rc == 0 {
        record::set_current_device(device);
    }
    if let Some(scope) = record::enter() {
        scope.call(api::SET_DEVICE, rc, 0);
    }
    rc
}

/// # Safety
/// Same contract as the runtime's aclrtGetMemInfo.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn aclrtGetMemInfo(attr: c_int, free: *mut usize, total: *mut usize) -> AclError {
    // SAFETY: MemInfoFn is aclrtGetMemInfo's signature.
    let Some(real) = (unsafe { real_fn::<MemInfoFn>(api::GET_MEM_INFO) }) else { return unresolved() };
    let scope = record::enter();
    // SAFETY: forwarding the caller's own arguments.
    let rc = unsafe { real(attr, free, total) };
    if let Some(scope) = scope {
        scope.call(api::GET_MEM_INFO, rc, 0);
    }
    rc
}

/// The runtime's idea of this thread's device, for threads that never called
/// aclrtSetDevice through us. Called inside a recording scope.
pub fn query_current_device() -> Option<i32> {
    // SAFETY: GetDeviceFn is aclrtGetDevice's signature.
    let real = unsafe { real_fn::<GetDeviceFn>(api::GET_DEVICE) }?;
    let mut device = -1;
    // SAFETY: `device` is a valid out-parameter.
    (unsafe { real(&mut device) } == 0).then_some(device)
}

/// Free and total device memory, for the context of a failed allocation.
pub fn query_mem_info() -> Option<(u64, u64)> {
    // SAFETY: MemInfoFn is aclrtGetMemInfo's signature.
    let real = unsafe { real_fn::<MemInfoFn>(api::GET_MEM_INFO) }?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: valid out-parameters.
    (unsafe { real(ACL_HBM_MEM, &mut free, &mut total) } == 0).then_some((free as u64, total as u64))
}

/// Our hook for hooked function `index`, if it is exported.
pub fn hook_address(index: usize) -> Option<*mut c_void> {
    let address = match index {
        api::MALLOC => aclrtMalloc as *const (),
        api::MALLOC_ALIGN32 => aclrtMallocAlign32 as *const (),
        api::MALLOC_CACHED => aclrtMallocCached as *const (),
        api::MALLOC_WITH_CFG => aclrtMallocWithCfg as *const (),
        api::FREE => aclrtFree as *const (),
        api::MALLOC_PHYSICAL => aclrtMallocPhysical as *const (),
        api::FREE_PHYSICAL => aclrtFreePhysical as *const (),
        api::RESERVE_MEM_ADDRESS => aclrtReserveMemAddress as *const (),
        api::RELEASE_MEM_ADDRESS => aclrtReleaseMemAddress as *const (),
        api::MAP_MEM => aclrtMapMem as *const (),
        api::UNMAP_MEM => aclrtUnmapMem as *const (),
        api::MALLOC_HOST => aclrtMallocHost as *const (),
        api::MALLOC_HOST_WITH_CFG => aclrtMallocHostWithCfg as *const (),
        api::FREE_HOST => aclrtFreeHost as *const (),
        api::SET_DEVICE => aclrtSetDevice as *const (),
        api::GET_MEM_INFO => aclrtGetMemInfo as *const (),
        _ => return None,
    };
    Some(address as *mut c_void)
}

pub fn is_own_hook(pointer: *mut c_void) -> bool {
    (0..common::runtime::active().hooks.len()).any(|i| hook_address(i) == Some(pointer))
}
