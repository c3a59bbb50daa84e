//! Interposition: the exported runtime functions (made by `exports` from each
//! runtime's hook list; one module per runtime), the `dlsym` interposer that
//! hands them out to `dlsym(handle, …)` callers (`dlsym`), and how the real
//! functions are found (`real`).

pub mod dlsym;
pub mod exports;
pub mod npu;
pub mod real;

use common::runtime::HOOK_COUNT;
use std::ffi::c_void;

/// Our exported function for hook `index` (global), if it has one: one line
/// per runtime.
pub fn hook_address(index: usize) -> Option<*mut c_void> {
    npu::hook_address(index)
}

pub fn is_own_hook(pointer: *mut c_void) -> bool {
    (0..HOOK_COUNT).any(|index| hook_address(index) == Some(pointer))
}
