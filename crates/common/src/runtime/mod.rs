//! The seam between the product and one accelerator runtime.
//!
//! Everything that names a particular runtime (environment variables,
//! configuration keys, library names, hooked symbols, error codes, version
//! files) lives in one `RuntimeSpec`. The NPU backend is `npu::SPEC`; a CUDA
//! backend is a second module that fills the same struct.

pub mod keys;
pub mod npu;

use keys::KeySpec;
use std::ffi::CStr;

/// What a hooked function does, which decides how a call is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiClass {
    /// Allocates device memory (counted in `totals`).
    DeviceAlloc,
    /// Frees device memory.
    DeviceFree,
    /// Allocates pinned host memory (counted in `host`).
    HostAlloc,
    HostFree,
    /// Virtual address or mapping calls: counted per API only.
    Mapping,
    /// Device selection and queries: counted per API only.
    Context,
}

/// One hooked runtime function.
pub struct HookSpec {
    pub name: &'static CStr,
    pub class: ApiClass,
}

impl HookSpec {
    pub const fn new(name: &'static CStr, class: ApiClass) -> Self {
        HookSpec { name, class }
    }

    pub fn name(&self) -> &'static str {
        self.name.to_str().unwrap_or("?")
    }
}

/// What the normalizer and the hooks need to know about one runtime.
pub struct RuntimeSpec {
    /// Short name used in messages and recordings ("npu").
    pub name: &'static str,
    /// The runtime-specific allocator variable (`PYTORCH_NPU_ALLOC_CONF`).
    pub conf_var: &'static str,
    /// PyTorch's generic allocator variable (`PYTORCH_ALLOC_CONF`), read by newer
    /// backends when the specific one is unset.
    pub generic_conf_var: &'static str,
    /// The key this product turns on.
    pub enable_key: &'static str,
    /// The value written for `enable_key`.
    pub enable_value: &'static str,
    /// Keys that the allocator refuses to combine with `enable_key`.
    pub conflict_keys: &'static [&'static str],
    /// Every key any known version of the backend accepts, with its value rule.
    pub keys: &'static [KeySpec],
    /// Prefix shared by every hooked name: a cheap first test in `dlsym`.
    pub symbol_prefix: &'static str,
    /// Every hooked function; the index in this table identifies it everywhere.
    pub hooks: &'static [HookSpec],
    /// Sonames of the runtime library, tried in order when resolving hooks.
    pub runtime_libraries: &'static [&'static str],
    /// Error codes the runtime returns when it is out of memory.
    pub oom_codes: &'static [i32],
    /// Python package whose version decides which keys are accepted.
    pub python_package: &'static str,
    /// Files that hold the driver version on a standard install.
    pub driver_version_files: &'static [&'static str],
}

/// The runtime this build serves.
pub fn active() -> &'static RuntimeSpec {
    &npu::SPEC
}
