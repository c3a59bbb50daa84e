//! Ascend NPU (torch_npu + CANN) facts. Sources: torch_npu's
//! `NPUAllocatorConfig.cpp` and the key strings in the 2.5.1 and
//! 2.10.0.post4 wheels, CANN's `acl_rt.h` (see docs/torch_npu-grammar.md).

use super::keys::{KeySpec, Since, ValueRule};
use super::{ApiClass, HookSpec, RuntimeSpec};

/// Versions 2.5.1 and earlier (and 2.1.0 from 6.0.rc1 on) know these five keys.
const LEGACY: Since = Since::Legacy;
/// Keys added by later lines; all of them are accepted by 2.10.0.post4.
const NEWER: Since = Since::Newer;

pub static KEYS: [KeySpec; 16] = [
    KeySpec::new("max_split_size_mb", ValueRule::MegabytesAbove(20), LEGACY),
    KeySpec::new("garbage_collection_threshold", ValueRule::OpenFraction, LEGACY),
    KeySpec::new("expandable_segments", ValueRule::Bool, LEGACY),
    KeySpec::new("base_addr_aligned_kb", ValueRule::IntRange(0, 16), LEGACY),
    KeySpec::new("page_size", ValueRule::Literal("1g"), LEGACY),
    KeySpec::new("pin_memory_expandable_segments", ValueRule::Bool, NEWER),
    KeySpec::new("pinned_mem_register", ValueRule::Bool, NEWER),
    KeySpec::new("segment_size_mb", ValueRule::IntRange(20, 512), NEWER),
    KeySpec::new("pinned_reserve_segment_size_mb", ValueRule::UnsignedInt, NEWER),
    KeySpec::new("roundup_power2_divisions", ValueRule::RoundupDivisions, NEWER),
    KeySpec::new("pinned_use_background_threads", ValueRule::Bool, NEWER),
    KeySpec::new("multi_stream_lazy_reclaim", ValueRule::Bool, NEWER),
    KeySpec::new("per_process_memory_fraction", ValueRule::ClosedFraction, NEWER),
    // Seen only on torch_npu master (2026): accepted there, listed so that a
    // config using them is not mistaken for a typo.
    KeySpec::new("release_lock_on_npumalloc", ValueRule::Bool, Since::Master),
    KeySpec::new("max_non_split_rounding_mb", ValueRule::UnsignedInt, Since::Master),
    KeySpec::new("large_segment_size_mb", ValueRule::UnsignedInt, Since::Master),
];

/// Indexes into `HOOKS`, used by the hook bodies.
pub mod api {
    pub const MALLOC: usize = 0;
    pub const MALLOC_ALIGN32: usize = 1;
    pub const MALLOC_CACHED: usize = 2;
    pub const MALLOC_WITH_CFG: usize = 3;
    pub const FREE: usize = 4;
    pub const MALLOC_PHYSICAL: usize = 5;
    pub const FREE_PHYSICAL: usize = 6;
    pub const RESERVE_MEM_ADDRESS: usize = 7;
    pub const RELEASE_MEM_ADDRESS: usize = 8;
    pub const MAP_MEM: usize = 9;
    pub const UNMAP_MEM: usize = 10;
    pub const MALLOC_HOST: usize = 11;
    pub const MALLOC_HOST_WITH_CFG: usize = 12;
    pub const FREE_HOST: usize = 13;
    pub const SET_DEVICE: usize = 14;
    pub const GET_MEM_INFO: usize = 15;
    pub const GET_DEVICE: usize = 16;
}

pub static HOOKS: [HookSpec; 17] = [
    HookSpec::new(c"aclrtMalloc", ApiClass::DeviceAlloc),
    HookSpec::new(c"aclrtMallocAlign32", ApiClass::DeviceAlloc),
    HookSpec::new(c"aclrtMallocCached", ApiClass::DeviceAlloc),
    HookSpec::new(c"aclrtMallocWithCfg", ApiClass::DeviceAlloc),
    HookSpec::new(c"aclrtFree", ApiClass::DeviceFree),
    HookSpec::new(c"aclrtMallocPhysical", ApiClass::DeviceAlloc),
    HookSpec::new(c"aclrtFreePhysical", ApiClass::DeviceFree),
    HookSpec::new(c"aclrtReserveMemAddress", ApiClass::Mapping),
    HookSpec::new(c"aclrtReleaseMemAddress", ApiClass::Mapping),
    HookSpec::new(c"aclrtMapMem", ApiClass::Mapping),
    HookSpec::new(c"aclrtUnmapMem", ApiClass::Mapping),
    HookSpec::new(c"aclrtMallocHost", ApiClass::HostAlloc),
    HookSpec::new(c"aclrtMallocHostWithCfg", ApiClass::HostAlloc),
    HookSpec::new(c"aclrtFreeHost", ApiClass::HostFree),
    HookSpec::new(c"aclrtSetDevice", ApiClass::Context),
    HookSpec::new(c"aclrtGetMemInfo", ApiClass::Context),
    // Not exported as a hook: looked up to learn a thread's device lazily.
    HookSpec::new(c"aclrtGetDevice", ApiClass::Context),
];

/// `aclrtMemAttr` value for device HBM, as torch_npu passes to aclrtGetMemInfo.
pub const ACL_HBM_MEM: i32 = 1;

pub static SPEC: RuntimeSpec = RuntimeSpec {
    name: "npu",
    conf_var: "PYTORCH_NPU_ALLOC_CONF",
    generic_conf_var: "PYTORCH_ALLOC_CONF",
    enable_key: "expandable_segments",
    enable_value: "True",
    conflict_keys: &["max_split_size_mb", "garbage_collection_threshold"],
    keys: &KEYS,
    symbol_prefix: "aclrt",
    hooks: &HOOKS,
    runtime_libraries: &["libascendcl.so"],
    // ACL_ERROR_RT_MEMORY_ALLOCATION, ACL_ERROR_RT_DEVICE_OOM
    oom_codes: &[207001, 207018],
    python_package: "torch_npu",
    driver_version_files: &["/usr/local/Ascend/driver/version.info"],
};
