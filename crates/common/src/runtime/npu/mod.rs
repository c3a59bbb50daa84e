//! Ascend NPU (torch_npu + CANN) facts. Sources: torch_npu's
//! `NPUAllocatorConfig.cpp` and the key strings in the 2.5.1 and
//! 2.10.0.post4 wheels (shared/notes/torch_npu-alloc-conf.md), CANN's `acl_rt.h`
//! (shared/notes/acl-interposition.md).

pub mod versions;

use super::keys::{Conflict, KeySpec, Since, ValueRule};
use super::{Placement, PoolingAllocator, RuntimeSpec, VersionFacts, Wording};

pub mod survey;

/// Every key any torch_npu release knows (`survey::KEY_NAMES`, found in the
/// wheels), each with its value rule (`rule_for`); which versions accept
/// it is looked up in the survey.
pub static KEYS: [KeySpec; survey::KEY_NAMES.len()] = {
    let mut keys = [KeySpec::new("", ValueRule::AnyWord, Since::Surveyed); survey::KEY_NAMES.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = KeySpec::new(survey::KEY_NAMES[i], rule_for(survey::KEY_NAMES[i]), Since::Surveyed);
        i += 1;
    }
    keys
};

/// The value rule of a key, as torch_npu's parser checks it: the keys of
/// 2.5.1 and 2.10.0.post4 from their parsers' source and verdicts
/// (tests/real_clients/torch_npu.rs); the keys new in 2.11-2.13 probed on
/// 2.14.0 (2026-12-04: digits accepted and "abc" refused for the `_mb` keys,
/// only True/False for throw_on_npumalloc_oom). The keys read with C++'s
/// `stoull`/`stoi`/`stod` take what those read ("-1", "0.5", "1g"): the real
/// parsers of 2.10 and 2.14 accepted them (`the_librarys_writes_keep_the_real_
/// parsers_verdict`), and a value some line accepts gets expandable segments
/// (issue 16). A key nobody probed (align_hugepages) takes any one word.
const fn rule_for(key: &str) -> ValueRule {
    const RULES: [(&str, ValueRule); 19] = [
        ("max_split_size_mb", ValueRule::MegabytesAbove(20)),
        ("garbage_collection_threshold", ValueRule::OpenFraction),
        ("expandable_segments", ValueRule::Bool),
        ("base_addr_aligned_kb", ValueRule::IntRange(0, 16)),
        ("page_size", ValueRule::Literal("1g")),
        ("pin_memory_expandable_segments", ValueRule::Bool),
        ("pinned_mem_register", ValueRule::Bool),
        ("segment_size_mb", ValueRule::IntRange(20, 512)),
        ("pinned_reserve_segment_size_mb", ValueRule::CxxUnsigned),
        ("roundup_power2_divisions", ValueRule::CxxRoundupDivisions),
        ("pinned_use_background_threads", ValueRule::Bool),
        ("multi_stream_lazy_reclaim", ValueRule::Bool),
        ("per_process_memory_fraction", ValueRule::CxxClosedFraction),
        ("release_lock_on_npumalloc", ValueRule::Bool),
        ("max_non_split_rounding_mb", ValueRule::CxxUnsigned),
        ("large_segment_size_mb", ValueRule::CxxUnsigned),
        ("pinned_max_cached_size_mb", ValueRule::CxxUnsigned),
        ("pinned_max_round_threshold_mb", ValueRule::CxxUnsigned),
        ("throw_on_npumalloc_oom", ValueRule::Bool),
    ];
    let mut i = 0;
    while i < RULES.len() {
        if same(RULES[i].0, key) {
            return RULES[i].1;
        }
        i += 1;
    }
    ValueRule::AnyWord
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every line that refuses max_split_size_mb or garbage_collection_threshold
/// beside expandable segments, as far as the survey goes.
const LEGACY: Since = Since::Legacy;

/// Every hooked ACL function, one line each (grammar: `table.rs`). This is
/// the only place a hook is declared: `HOOKS` and `api` below, and the
/// library's exported functions (`src/preload/hooks/npu.rs`), are made from
/// it. Signatures from CANN's `acl_rt.h`; `c_int` is `aclError`.
#[macro_export]
#[doc(hidden)]
macro_rules! npu_hooks {
    ($($callback:ident)::+ ; $($with:tt)*) => {
        $($callback)::+! { $($with)*
            aclrtMalloc(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> c_int = DeviceAlloc alloc(dev_ptr, size);
            // torch_npu falls back to aclrtMalloc where a variant is missing.
            aclrtMallocAlign32(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> c_int
                = DeviceAlloc alloc(dev_ptr, size) else aclrtMalloc(dev_ptr, size, policy);
            aclrtMallocCached(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> c_int
                = DeviceAlloc alloc(dev_ptr, size) else aclrtMalloc(dev_ptr, size, policy);
            aclrtMallocWithCfg(dev_ptr: *mut *mut c_void, size: usize, policy: c_int, cfg: *mut c_void) -> c_int
                = DeviceAlloc alloc(dev_ptr, size) else aclrtMalloc(dev_ptr, size, policy);
            aclrtFree(dev_ptr: *mut c_void) -> c_int = DeviceFree free(dev_ptr);
            aclrtMallocPhysical(handle: *mut *mut c_void, size: usize, prop: *const c_void, flags: u64) -> c_int
                = DeviceAlloc alloc(handle, size);
            aclrtFreePhysical(handle: *mut c_void) -> c_int = DeviceFree free(handle);
            aclrtReserveMemAddress(vir_ptr: *mut *mut c_void, size: usize, alignment: usize, expect_ptr: *mut c_void, flags: u64) -> c_int
                = Mapping call(size);
            aclrtReleaseMemAddress(vir_ptr: *mut c_void) -> c_int = Mapping call();
            aclrtMapMem(vir_ptr: *mut c_void, size: usize, offset: usize, handle: *mut c_void, flags: u64) -> c_int
                = Mapping call(size);
            aclrtUnmapMem(vir_ptr: *mut c_void) -> c_int = Mapping call();
            aclrtMallocHost(host_ptr: *mut *mut c_void, size: usize) -> c_int = HostAlloc alloc(host_ptr, size);
            aclrtMallocHostWithCfg(ptr: *mut *mut c_void, size: u64, cfg: *mut c_void) -> c_int
                = HostAlloc alloc(ptr, size) else aclrtMallocHost(ptr, size);
            aclrtFreeHost(host_ptr: *mut c_void) -> c_int = HostFree free(host_ptr);
            aclrtSetDevice(device: i32) -> c_int = Context set_device(device);
            aclrtGetMemInfo(attr: c_int, free: *mut usize, total: *mut usize) -> c_int = Context call();
            // Asked for a thread's device when it never set one through us.
            aclrtGetDevice(device: *mut i32) -> c_int = Context query();
            // Below the ACL API, where HCCL, ATB and GE allocate (docs/below-acl.md
            // cites the headers). The third argument says device or host
            // (`host_memory`). rtMalloc has three arguments in CANN headers up to
            // early 2023 and a fourth (`moduleId`) since: the first three are
            // the same registers in both, and the fourth is forwarded untouched.
            rtMalloc(dev_ptr: *mut *mut c_void, size: u64, mem_type: u32, module_id: u16) -> c_int
                = DeviceAlloc alloc(dev_ptr, size, mem_type);
            rtFree(dev_ptr: *mut c_void) -> c_int = DeviceFree free(dev_ptr);
            halMemAlloc(pp: *mut *mut c_void, size: u64, flag: u64) -> c_int = DeviceAlloc alloc(pp, size, flag);
            halMemFree(pp: *mut c_void) -> c_int = DeviceFree free(pp);
        }
    };
}

/// The first runtime: its hooks are numbered from 0.
pub const FIRST_HOOK: usize = 0;

crate::npu_hooks!(crate::hook_table; first = FIRST_HOOK;);

/// `aclrtMemAttr` value for device HBM, as torch_npu passes to aclrtGetMemInfo.
pub const ACL_HBM_MEM: i32 = 1;

/// `RT_MEMORY_HOST` in rtMalloc's type (its low 10 bits, `MEM_ALLOC_TYPE_BIT`).
const RT_MEMORY_HOST: u64 = 0x81;
/// halMemAlloc's flag: the virtual memory type in bits 10-13; MEM_HOST,
/// MEM_HOST_AGENT and MEM_HOST_UVA are host memory.
const MEM_VIRT_BIT: u64 = 10;
const HOST_VIRT_TYPES: [u64; 3] = [0x2, 0x4, 0x6];

/// Whether an allocation below the ACL API asked for host memory, from its
/// type (rtMalloc) or flag (halMemAlloc) argument.
fn host_memory(hook: usize, kind: u64) -> bool {
    if hook == api::rtMalloc {
        kind & 0x3FF == RT_MEMORY_HOST
    } else if hook == api::halMemAlloc {
        HOST_VIRT_TYPES.contains(&((kind >> MEM_VIRT_BIT) & 0xF))
    } else {
        false
    }
}

/// The type and flag arguments name no device: the thread's, or the host.
fn placement(hook: usize, kind: u64) -> Placement {
    if host_memory(hook, kind) { Placement::Host } else { Placement::ThreadDevice }
}

pub static SPEC: RuntimeSpec = RuntimeSpec {
    name: "npu",
    framework: "torch_npu",
    segment_alloc_api: "aclrtMallocPhysical",
    conf_var: "PYTORCH_NPU_ALLOC_CONF",
    generic_conf_var: "PYTORCH_ALLOC_CONF",
    marker_var: "NPU_ALLOC_SHIM_DECISION",
    // vLLM (vllm-ascend) sleep mode and SGLang's memory saver.
    // CANN's set_env.sh (toolkit and nnae) exports these; torch_npu finds its
    // operator packages through ASCEND_OPP_PATH. CUDA hosts have none.
    environment_markers: &["ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_OPP_PATH", "ASCEND_AICPU_PATH"],
    opt_in_var: None,
    specific_wins: false,
    both_set_note: "newer torch_npu refuses that, older ones ignore PYTORCH_ALLOC_CONF",
    // vLLM's own flag, OpenRLHF's (`--vllm.enable_sleep`, `--vllm_enable_sleep`),
    // TRL's (`--vllm_enable_sleep_mode`), SGLang's memory saver
    // (docs/sleep-mode-markers.md).
    memory_pool_flags: &[
        "--enable-sleep-mode",
        "--vllm.enable-sleep",
        "--vllm-enable-sleep",
        "--vllm-enable-sleep-mode",
        "--enable-memory-saver",
    ],
    // vllm-ascend 0.23.0 device_allocator/camem.py: NPUPluggableAllocator(
    // vllm_ascend_C, "my_malloc", "my_free"), after the assertion that
    // `python -O` drops; torch_memory_saver's torch hook mode for NPU:
    // NPUPluggableAllocator(..., "tms_torch_malloc", "tms_torch_free").
    pooling_allocators: &[
        PoolingAllocator { entry: "my_malloc", who: "vllm-ascend's CaMemAllocator (sleep mode, vllm_ascend_C)" },
        PoolingAllocator { entry: "tms_torch_malloc", who: "torch_memory_saver" },
    ],
    argv_breakage: |_| None,
    enable_key: "expandable_segments",
    enable_value: "True",
    // NPUCachingAllocator refuses expandable segments with either (2.1.0-6.0.rc1 on).
    conflicts: &[Conflict::key("max_split_size_mb", LEGACY), Conflict::key("garbage_collection_threshold", LEGACY)],
    keys: &KEYS,
    // ACL, the CANN runtime below it, the driver.
    symbol_prefixes: &["aclrt", "rt", "hal"],
    hooks: &HOOKS,
    first_hook: FIRST_HOOK,
    // ACL_ERROR_RT_FEATURE_NOT_SUPPORT
    unresolved_code: 207000,
    placement,
    // No lookups by name of its own (dlsym is answered by the interposer).
    entry_point_matches: |_, _, _, _| false,
    lower_layer_allocs: &["rtMalloc", "halMemAlloc"],
    runtime_libraries: &["libascendcl.so", "libruntime.so", "libascend_hal.so"],
    // ACL_ERROR_RT_MEMORY_ALLOCATION, ACL_ERROR_RT_DEVICE_OOM (ACL and the
    // runtime), DRV_ERROR_OUT_OF_MEMORY (the driver)
    oom_codes: &[207001, 207018, 6],
    python_package: "torch_npu",
    driver_name: "Ascend driver",
    driver_version_files: &["/usr/local/Ascend/driver/version.info"],
    versions: VersionFacts {
        framework_warnings: versions::torch_npu_warnings,
        reads_generic_variable: versions::torch_npu_reads_generic_variable,
        acceptance: versions::acceptance,
        describe_key: versions::describe_key,
        both_set_error: |torch_npu| survey::fact(torch_npu, |v| v.both_set_error).unwrap_or(false),
        driver_version: versions::driver_version,
        driver_warnings: versions::driver_warnings,
    },
    wording: Wording {
        memory_reserved: "torch.npu.memory_reserved()",
        collective_buffers: "HCCL_BUFFSIZE for libhccl",
        error_codes: "the CANN error codes",
        key_lines: [
            "all torch_npu lines (2.5.1 included)",
            "newer torch_npu (2.10.0.post4 accepts it, 2.5.1 rejects it)",
            "torch_npu development branch only",
        ],
        no_line: "no torch_npu version",
        sleep_mode_switch: "sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0",
        conflict_effect: "torch_npu 2.5.1, 2.10.0.post4 and 2.14.0 fail at the first NPU allocation: \"cannot be enabled with `expandable_segments`\"",
        dialects: [Some("older torch_npu tokenizer (2.5.1)"), Some("newer torch_npu tokenizer (2.10)")],
    },
};
