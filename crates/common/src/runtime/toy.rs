//! A toy second runtime, compiled only with the `toy-runtime` feature, for
//! the tests that prove the seam (tests/hooks_and_recording/second_runtime.rs): its own library
//! (`libtoyrt.so`, tests/fixtures/toy_runtime.c), two hooked calls and its own
//! variable. Everything the library knows of it is this value and its list;
//! nothing in `record/`, `allocconf/` or the CLI's reports names it.

use super::keys::{Conflict, KeySpec, Since, ValueRule};
use super::{PoolingAllocator, RuntimeSpec, VersionFacts, Wording};

static KEYS: [KeySpec; 2] = [
    KeySpec::new("expandable_segments", ValueRule::Bool, Since::Legacy),
    KeySpec::new("backend", ValueRule::OneOf(&["native", "async"]), Since::Legacy),
];

/// The toy's hooks (grammar: `table.rs`).
#[macro_export]
#[doc(hidden)]
macro_rules! toy_hooks {
    ($($callback:ident)::+ ; $($with:tt)*) => {
        $($callback)::+! { $($with)*
            toyMalloc(ptr: *mut *mut c_void, size: usize) -> c_int = DeviceAlloc alloc(ptr, size);
            toyFree(ptr: *mut c_void) -> c_int = DeviceFree free(ptr);
        }
    };
}

/// Numbered after the CUDA hooks.
pub const FIRST_HOOK: usize = super::cuda::FIRST_HOOK + super::cuda::HOOKS.len();

crate::toy_hooks!(crate::hook_table; first = FIRST_HOOK;);

fn no_warnings(_: &crate::version::Version, _: &super::KeyLines) -> Vec<String> {
    Vec::new()
}

pub static SPEC: RuntimeSpec = RuntimeSpec {
    name: "toy",
    framework: "torch_toy",
    segment_alloc_api: "toyMallocPhysical",
    conf_var: "TOY_ALLOC_CONF",
    generic_conf_var: "TOY_GENERIC_ALLOC_CONF",
    // Not an NPU_ALLOC_SHIM_ name: the toy is no product variable (README table).
    marker_var: "TOY_ALLOC_SHIM_DECISION",
    environment_markers: &["TOY_RUNTIME_HOME"],
    opt_in_var: None,
    specific_wins: false,
    both_set_note: "torch_toy reads only TOY_ALLOC_CONF",
    memory_pool_flags: &["--toy-pool"],
    pooling_allocators: &[PoolingAllocator { entry: "toy_pool_malloc", who: "the toy pool" }],
    argv_breakage: |_| None,
    enable_key: "expandable_segments",
    enable_value: "True",
    conflicts: &[Conflict::values("backend", &["async"], Since::Legacy)],
    keys: &KEYS,
    symbol_prefixes: &["toy"],
    hooks: &HOOKS,
    first_hook: FIRST_HOOK,
    unresolved_code: 99,
    placement: |_, _| super::Placement::ThreadDevice,
    // No lookups by name of its own (dlsym is answered by the interposer).
    entry_point_matches: |_, _, _, _| false,
    lower_layer_allocs: &[],
    runtime_libraries: &["libtoyrt.so"],
    oom_codes: &[2],
    python_package: "torch_toy",
    driver_name: "toy driver",
    driver_version_files: &[],
    versions: VersionFacts {
        framework_warnings: no_warnings,
        reads_generic_variable: |_| false,
        acceptance: |_, _, _| super::keys::Acceptance::Accepted,
        describe_key: |_, _| "every toy version".to_owned(),
        both_set_error: |_| false,
        driver_version: |_| None,
        driver_warnings: |_| Vec::new(),
    },
    wording: Wording {
        memory_reserved: "torch.toy.memory_reserved()",
        collective_buffers: "the toy's buffer size",
        error_codes: "the toy's error codes",
        key_lines: ["every toy line", "newer toy lines", "the toy's development branch"],
        no_line: "no toy version",
        sleep_mode_switch: "the toy pool needs NPU_ALLOC_SHIM_NORMALIZE=0",
        conflict_effect: "the toy runtime refuses it",
        dialects: [None, Some("the toy's tokenizer")],
    },
};
