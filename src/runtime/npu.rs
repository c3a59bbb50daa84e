//! Ascend NPU (torch_npu + CANN) facts. Sources: torch_npu's
//! `NPUAllocatorConfig.cpp` and the key strings in the 2.5.1 and
//! 2.10.0.post4 wheels, CANN's `acl_rt.h` (see docs/torch_npu-grammar.md).

use super::RuntimeSpec;
use crate::allocconf::keys::{KeySpec, Since, ValueRule};

/// Versions 2.5.1 and earlier (and 2.1.0 from 6.0.rc1 on) know these five keys.
const LEGACY: Since = Since::Legacy;
/// Keys added by later lines; all of them are accepted by 2.10.0.post4.
const NEWER: Since = Since::Newer;

pub static KEYS: [KeySpec; 16] = [
    KeySpec::new("max_split_size_mb", ValueRule::MegabytesAbove(20), LEGACY),
    KeySpec::new(
        "garbage_collection_threshold",
        ValueRule::OpenFraction,
        LEGACY,
    ),
    KeySpec::new("expandable_segments", ValueRule::Bool, LEGACY),
    KeySpec::new("base_addr_aligned_kb", ValueRule::IntRange(0, 16), LEGACY),
    KeySpec::new("page_size", ValueRule::Literal("1g"), LEGACY),
    KeySpec::new("pin_memory_expandable_segments", ValueRule::Bool, NEWER),
    KeySpec::new("pinned_mem_register", ValueRule::Bool, NEWER),
    KeySpec::new("segment_size_mb", ValueRule::IntRange(20, 512), NEWER),
    KeySpec::new(
        "pinned_reserve_segment_size_mb",
        ValueRule::UnsignedInt,
        NEWER,
    ),
    KeySpec::new(
        "roundup_power2_divisions",
        ValueRule::RoundupDivisions,
        NEWER,
    ),
    KeySpec::new("pinned_use_background_threads", ValueRule::Bool, NEWER),
    KeySpec::new("multi_stream_lazy_reclaim", ValueRule::Bool, NEWER),
    KeySpec::new(
        "per_process_memory_fraction",
        ValueRule::ClosedFraction,
        NEWER,
    ),
    // Seen only on torch_npu master (2026): accepted there, listed so that a
    // config using them is not mistaken for a typo.
    KeySpec::new("release_lock_on_npumalloc", ValueRule::Bool, Since::Master),
    KeySpec::new(
        "max_non_split_rounding_mb",
        ValueRule::UnsignedInt,
        Since::Master,
    ),
    KeySpec::new(
        "large_segment_size_mb",
        ValueRule::UnsignedInt,
        Since::Master,
    ),
];

pub static SPEC: RuntimeSpec = RuntimeSpec {
    name: "npu",
    conf_var: "PYTORCH_NPU_ALLOC_CONF",
    generic_conf_var: "PYTORCH_ALLOC_CONF",
    enable_key: "expandable_segments",
    enable_value: "True",
    conflict_keys: &["max_split_size_mb", "garbage_collection_threshold"],
    keys: &KEYS,
    runtime_libraries: &["libascendcl.so"],
    // ACL_ERROR_RT_MEMORY_ALLOCATION, ACL_ERROR_RT_DEVICE_OOM
    oom_codes: &[207001, 207018],
    python_package: "torch_npu",
    driver_version_files: &["/usr/local/Ascend/driver/version.info"],
};
