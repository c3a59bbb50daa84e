//! Interposition: the exported runtime functions (made by `exports` from each
//! runtime's hook list; one module per runtime), the `dlsym` interposer that
//! hands them out to `dlsym(handle, …)` callers (`dlsym`), the runtimes' own
//! lookups by name that hand them out too (`by_name`), and how the real
//! functions are found (`real`).

pub mod by_name;
pub mod cuda;
pub mod dlsym;
pub mod exports;
pub mod npu;
pub mod pooling;
pub mod real;
#[cfg(feature = "toy-runtime")]
pub mod toy;

use common::runtime::HOOK_COUNT;
use std::ffi::c_void;

/// Our exported function for hook `index` (global), if it has one: one line
/// per runtime.
pub fn hook_address(index: usize) -> Option<*mut c_void> {
    let found = npu::hook_address(index).or_else(|| cuda::hook_address(index));
    #[cfg(feature = "toy-runtime")]
    let found = found.or_else(|| toy::hook_address(index));
    found
}

pub fn is_own_hook(pointer: *mut c_void) -> bool {
    (0..HOOK_COUNT).any(|index| hook_address(index) == Some(pointer))
}
