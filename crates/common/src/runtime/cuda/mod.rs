//! NVIDIA CUDA (PyTorch's own CUDA backend) facts. Sources: PyTorch's
//! `c10/core/AllocatorConfig.cpp` and `c10/cuda/CUDAAllocatorConfig.cpp`, the
//! key strings of the torch 2.10.0 wheel's `libc10.so`/`libc10_cuda.so`,
//! CUDA 12's `cuda_runtime_api.h` and `cuda.h` (shared/notes/cuda.md).

mod argv;
pub mod versions;

use super::keys::{Conflict, KeySpec, Since, ValueRule};
use super::{Placement, PoolingAllocator, RuntimeSpec, VersionFacts, Wording};

/// Keys torch 2.5.1 already knows.
const LEGACY: Since = Since::Legacy;
/// Keys added by later lines (all accepted by 2.10.0).
const NEWER: Since = Since::Newer;

pub static KEYS: [KeySpec; 14] = [
    KeySpec::new("max_split_size_mb", ValueRule::MegabytesAbove(19), LEGACY),
    KeySpec::new("max_non_split_rounding_mb", ValueRule::MegabytesAbove(19), LEGACY),
    KeySpec::new("garbage_collection_threshold", ValueRule::OpenFraction, LEGACY),
    KeySpec::new("roundup_power2_divisions", ValueRule::RoundupDivisions, LEGACY),
    KeySpec::new("expandable_segments", ValueRule::Bool, LEGACY),
    KeySpec::new("backend", ValueRule::OneOf(&["native", "cudaMallocAsync"]), LEGACY),
    KeySpec::new("release_lock_on_cudamalloc", ValueRule::Bool, LEGACY),
    KeySpec::new("pinned_use_cuda_host_register", ValueRule::Bool, LEGACY),
    KeySpec::new("pinned_num_register_threads", ValueRule::UnsignedInt, LEGACY),
    KeySpec::new("pinned_use_background_threads", ValueRule::Bool, NEWER),
    KeySpec::new("pinned_reserve_segment_size_mb", ValueRule::UnsignedInt, NEWER),
    KeySpec::new("graph_capture_record_stream_reuse", ValueRule::Bool, NEWER),
    KeySpec::new("per_process_memory_fraction", ValueRule::ClosedFraction, NEWER),
    // ROCm builds read the same variables.
    KeySpec::new("pinned_use_hip_host_register", ValueRule::Bool, NEWER),
];

/// Every hooked CUDA function, one line each (grammar: `table.rs`): the
/// runtime API (libcudart), then the driver API (libcuda), then the calls that
/// hand out driver functions by name. Signatures from CUDA 12's headers;
/// `c_int` is `cudaError_t` / `CUresult`, device pointers of the driver API
/// and allocation handles are `u64`.
#[macro_export]
#[doc(hidden)]
macro_rules! cuda_hooks {
    ($($callback:ident)::+ ; $($with:tt)*) => {
        $($callback)::+! { $($with)*
            cudaMalloc(dev_ptr: *mut *mut c_void, size: usize) -> c_int = DeviceAlloc alloc(dev_ptr, size);
            cudaFree(dev_ptr: *mut c_void) -> c_int = DeviceFree free(dev_ptr);
            // backend:cudaMallocAsync allocates with these.
            cudaMallocAsync(dev_ptr: *mut *mut c_void, size: usize, stream: *mut c_void) -> c_int
                = DeviceAlloc alloc(dev_ptr, size);
            cudaFreeAsync(dev_ptr: *mut c_void, stream: *mut c_void) -> c_int = DeviceFree free(dev_ptr);
            cudaMallocFromPoolAsync(ptr: *mut *mut c_void, size: usize, pool: *mut c_void, stream: *mut c_void) -> c_int
                = DeviceAlloc alloc(ptr, size);
            cudaMallocManaged(dev_ptr: *mut *mut c_void, size: usize, flags: u32) -> c_int = DeviceAlloc alloc(dev_ptr, size);
            cudaMallocHost(ptr: *mut *mut c_void, size: usize) -> c_int = HostAlloc alloc(ptr, size);
            cudaHostAlloc(ptr: *mut *mut c_void, size: usize, flags: u32) -> c_int = HostAlloc alloc(ptr, size);
            cudaFreeHost(ptr: *mut c_void) -> c_int = HostFree free(ptr);
            cudaSetDevice(device: i32) -> c_int = Context set_device(device);
            cudaMemGetInfo(free: *mut usize, total: *mut usize) -> c_int = Context call();
            // Asked for a thread's device when it never set one through us.
            cudaGetDevice(device: *mut i32) -> c_int = Context query();
            // The driver: expandable segments (cuMemCreate into reserved
            // ranges), NCCL and other libraries that allocate themselves.
            // Its `prop` says where the memory lives (`placement`).
            cuMemCreate(handle: *mut u64, size: usize, prop: *const CuMemAllocationProp, flags: u64) -> c_int
                = DeviceAlloc alloc(handle, size, prop);
            cuMemRelease(handle: u64) -> c_int = DeviceFree free(handle);
            cuMemAddressReserve(ptr: *mut u64, size: usize, alignment: usize, addr: u64, flags: u64) -> c_int
                = Mapping call(size);
            cuMemAddressFree(ptr: u64, size: usize) -> c_int = Mapping call(size);
            cuMemMap(ptr: u64, size: usize, offset: usize, handle: u64, flags: u64) -> c_int = Mapping call(size);
            cuMemUnmap(ptr: u64, size: usize) -> c_int = Mapping call(size);
            cuMemSetAccess(ptr: u64, size: usize, desc: *const c_void, count: usize) -> c_int = Mapping call(size);
            cuMemAlloc_v2(dptr: *mut u64, size: usize) -> c_int = DeviceAlloc alloc(dptr, size);
            cuMemFree_v2(dptr: u64) -> c_int = DeviceFree free(dptr);
            cuMemAllocAsync(dptr: *mut u64, size: usize, stream: *mut c_void) -> c_int = DeviceAlloc alloc(dptr, size);
            cuMemFreeAsync(dptr: u64, stream: *mut c_void) -> c_int = DeviceFree free(dptr);
            cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> c_int = Context call();
            // Driver functions by name: PyTorch binds the VMM calls through the
            // runtime's entry points (older lines: dlsym on libcuda.so.1, which
            // the dlsym interposer answers), NCCL through cuGetProcAddress. The
            // hook is handed out in place of the function the real lookup found.
            cudaGetDriverEntryPoint(symbol: *const c_char, func: *mut *mut c_void, flags: u64, status: *mut c_int) -> c_int
                = Context entry_point(symbol, func, flags);
            cudaGetDriverEntryPointByVersion(symbol: *const c_char, func: *mut *mut c_void, version: u32, flags: u64, status: *mut c_int) -> c_int
                = Context entry_point(symbol, func, flags, version);
            cuGetProcAddress(symbol: *const c_char, func: *mut *mut c_void, version: c_int, flags: u64) -> c_int
                = Context entry_point(symbol, func, flags, version);
            cuGetProcAddress_v2(symbol: *const c_char, func: *mut *mut c_void, version: c_int, flags: u64, status: *mut c_int) -> c_int
                = Context entry_point(symbol, func, flags, version);
        }
    };
}

/// Numbered after the NPU's hooks.
pub const FIRST_HOOK: usize = super::npu::FIRST_HOOK + super::npu::HOOKS.len();

crate::cuda_hooks!(crate::hook_table; first = FIRST_HOOK;);

/// The head of `CUmemAllocationProp` (cuda.h, CUDA 12): what cuMemCreate's
/// placement is read from. Only ever read through the caller's pointer.
#[repr(C)]
pub struct CuMemAllocationProp {
    pub kind: i32,
    pub requested_handle_types: i32,
    /// `CUmemLocationType`: device 1, host 2, host NUMA node 3, the calling
    /// thread's host NUMA node 4 (the host ones since CUDA 12.2).
    pub location_type: i32,
    pub location_id: i32,
}

/// cuMemCreate's placement as its hook hands it over: the location's type
/// in the high half, its id in the low (`0`: no properties).
pub fn location_kind(location_type: i32, location_id: i32) -> u64 {
    (u64::from(location_type as u32) << 32) | u64::from(location_id as u32)
}

const LOCATION_DEVICE: u32 = 1;
const LOCATION_HOST_TYPES: [u32; 3] = [2, 3, 4];

/// A physical allocation lives where its properties say: on the device they
/// name (not necessarily the thread's), or, since CUDA 12.2, on the host.
fn placement(hook: usize, kind: u64) -> Placement {
    let (location_type, id) = ((kind >> 32) as u32, kind as u32 as i32);
    match location_type {
        _ if hook != api::cuMemCreate => Placement::ThreadDevice,
        LOCATION_DEVICE if id >= 0 => Placement::Device(id),
        t if LOCATION_HOST_TYPES.contains(&t) => Placement::Host,
        _ => Placement::ThreadDevice,
    }
}

/// `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM` and the runtime's
/// `cudaEnablePerThreadDefaultStream`: stream calls then come as `_ptsz`
/// variants.
const PER_THREAD_STREAM: u64 = 2;
/// The CUDA version from which a lookup of `cuMemAlloc`, `cuMemFree` or
/// `cuMemGetInfo` hands out their `_v2` ABI (3.2).
const V2_SINCE: u64 = 3020;
/// Hooks that take a stream: their per-thread-stream variant is another function.
const STREAM_HOOKS: [&str; 2] = ["cuMemAllocAsync", "cuMemFreeAsync"];

/// Whether a lookup of `asked` with these `version` and `flags` hands out
/// the function hooked as `hook` (CUDA's lookups take names without `_v2`).
fn entry_point_matches(hook: &str, asked: &str, version: u64, flags: u64) -> bool {
    let same_abi = hook == asked || (hook.strip_suffix("_v2") == Some(asked) && version >= V2_SINCE);
    same_abi && !(flags & PER_THREAD_STREAM != 0 && STREAM_HOOKS.contains(&hook))
}

pub static SPEC: RuntimeSpec = RuntimeSpec {
    name: "cuda",
    framework: "torch",
    segment_alloc_api: "cuMemCreate",
    // Every line from 2.5.1 to 2.15.0 reads it and, when both are set, it
    // alone; PYTORCH_ALLOC_CONF is read from 2.10 on only
    // (docs/cuda-variables.md): the variable written when neither is set.
    conf_var: "PYTORCH_CUDA_ALLOC_CONF",
    generic_conf_var: "PYTORCH_ALLOC_CONF",
    marker_var: "NPU_ALLOC_SHIM_CUDA_DECISION",
    // No deployment marker is needed: the operator opted in.
    environment_markers: &[],
    opt_in_var: Some("NPU_ALLOC_SHIM_CUDA_NORMALIZE"),
    specific_wins: true,
    both_set_note: "every torch line reads only PYTORCH_CUDA_ALLOC_CONF then",
    // vLLM sleep mode (CuMemAllocator + MemPool), SGLang's torch_memory_saver,
    // vLLM's KV-transfer connectors (NIXL) (shared/notes/cuda.md).
    memory_pool_flags: &[
        "--enable-sleep-mode",
        "--vllm-enable-sleep-mode",
        "--enable-memory-saver",
        "--kv-transfer-config",
    ],
    // vLLM's CuMemAllocator (cumem_allocator: "my_malloc"/"my_free"),
    // torch_memory_saver's torch hook mode ("tms_torch_malloc").
    pooling_allocators: &[
        PoolingAllocator { entry: "my_malloc", who: "vLLM's CuMemAllocator (sleep mode, cumem_allocator)" },
        PoolingAllocator { entry: "tms_torch_malloc", who: "torch_memory_saver" },
    ],
    argv_breakage: argv::breakage,
    enable_key: "expandable_segments",
    enable_value: "True",
    // The asynchronous backend has no expandable segments; the max_split and
    // GC conflict was removed before 2.5 (pytorch#134338).
    conflicts: &[Conflict::values("backend", &["cudaMallocAsync"], LEGACY)
        .because("the cudaMallocAsync backend has no expandable segments (the key has no effect there)")],
    keys: &KEYS,
    symbol_prefixes: &["cuda", "cu"],
    hooks: &HOOKS,
    first_hook: FIRST_HOOK,
    // cudaErrorNotSupported, CUDA_ERROR_NOT_SUPPORTED
    unresolved_code: 801,
    placement,
    entry_point_matches,
    lower_layer_allocs: &["cuMemAlloc_v2", "cuMemAllocAsync"],
    // The runtime of CUDA 12 and 13 builds, then the driver.
    runtime_libraries: &["libcudart.so.12", "libcudart.so.13", "libcudart.so", "libcuda.so.1"],
    // cudaErrorMemoryAllocation, CUDA_ERROR_OUT_OF_MEMORY
    oom_codes: &[2],
    python_package: "torch",
    driver_name: "NVIDIA driver",
    driver_version_files: &["/proc/driver/nvidia/version"],
    versions: VersionFacts {
        framework_warnings: versions::torch_warnings,
        reads_generic_variable: versions::torch_reads_generic_variable,
        acceptance: |torch, _, since| versions::acceptance(torch, since),
        describe_key: |_, since| SPEC.wording.accepted_by(since).to_owned(),
        // Measured on 2.5.1-2.15.0: PYTORCH_CUDA_ALLOC_CONF wins, no error.
        both_set_error: |_| false,
        driver_version: versions::driver_version,
        driver_warnings: |_| Vec::new(),
    },
    wording: Wording {
        memory_reserved: "torch.cuda.memory_reserved()",
        collective_buffers: "NCCL_BUFFSIZE for libnccl",
        error_codes: "CUDA's cudaError_t / CUresult codes",
        key_lines: [
            "every torch line from 2.5.1 on",
            "newer torch (2.10 accepts it; older lines not checked)",
            "torch development branch only",
        ],
        no_line: "no torch version",
        sleep_mode_switch: "sleep mode started from Python (vLLM's CuMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0",
        conflict_effect: "no torch line from 2.5.1 on refuses a pair",
        // c10's ConfigTokenizer on every line: splits on , : [ ] and drops whitespace.
        dialects: [None, Some("PyTorch allocator config tokenizer")],
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_base_name_hand_out_the_v2_abi_and_only_legacy_stream_calls() {
        assert!(entry_point_matches("cuMemCreate", "cuMemCreate", 12000, 0));
        assert!(entry_point_matches("cuMemAlloc_v2", "cuMemAlloc", 12000, 0));
        assert!(!entry_point_matches("cuMemAlloc_v2", "cuMemAlloc", 3000, 0));
        assert!(!entry_point_matches("cuMemAlloc_v2", "cuMemFree", 12000, 0));
        assert!(entry_point_matches("cuMemAllocAsync", "cuMemAllocAsync", 12000, 1));
        assert!(!entry_point_matches("cuMemAllocAsync", "cuMemAllocAsync", 12000, PER_THREAD_STREAM));
        assert!(entry_point_matches("cuMemCreate", "cuMemCreate", u64::MAX, PER_THREAD_STREAM));
    }

    #[test]
    fn a_physical_allocation_lives_where_its_properties_say() {
        let create = api::cuMemCreate;
        assert_eq!(placement(create, location_kind(1, 3)), Placement::Device(3));
        assert_eq!(placement(create, location_kind(1, 0)), Placement::Device(0));
        for host in [2, 3, 4] {
            assert_eq!(placement(create, location_kind(host, 0)), Placement::Host);
        }
        // No properties, an invalid location, a negative device id: the thread's.
        assert_eq!(placement(create, 0), Placement::ThreadDevice);
        assert_eq!(placement(create, location_kind(0, 2)), Placement::ThreadDevice);
        assert_eq!(placement(create, location_kind(1, -1)), Placement::ThreadDevice);
        assert_eq!(placement(api::cudaMalloc, location_kind(2, 0)), Placement::ThreadDevice);
    }

    #[test]
    fn runtime_then_driver_hooks_after_the_npu_ones() {
        assert_eq!(api::cudaMalloc, super::super::npu::HOOKS.len());
        assert_eq!(HOOKS[api::cuMemCreate - FIRST_HOOK].name, c"cuMemCreate");
        assert!(!HOOKS[api::cudaGetDevice - FIRST_HOOK].exported);
        assert!(HOOKS[api::cuGetProcAddress_v2 - FIRST_HOOK].exported);
    }
}
