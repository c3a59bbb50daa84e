//! Interposition: the exported runtime functions (`acl`), the `dlsym`
//! interposer that hands them out to `dlsym(handle, …)` callers (`dlsym`),
//! and how the real functions are found (`real`).

pub mod acl;
pub mod dlsym;
pub mod real;
pub mod trampoline;
