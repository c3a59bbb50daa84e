//! The seam between the product and one accelerator runtime.
//!
//! Everything that names a particular runtime (environment variables,
//! configuration keys, library names, hooked symbols, error codes, version
//! files) lives in one `RuntimeSpec`. The NPU backend is `npu::SPEC`; a CUDA
//! backend is a second module that fills the same struct.

pub mod cuda;
pub mod keys;
pub mod npu;
mod table;
#[cfg(feature = "toy-runtime")]
pub mod toy;

use crate::version::Version;
use keys::{Acceptance, Conflict, KeySpec, Since};
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

/// Where an allocation's memory lives, as its own arguments say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the calling thread's device (what most allocation calls do).
    ThreadDevice,
    /// On this device, whatever the thread's current one.
    Device(i32),
    /// Pinned host memory, asked through a device-class call.
    Host,
}

/// One hooked runtime function.
pub struct HookSpec {
    pub name: &'static CStr,
    pub class: ApiClass,
    /// Whether the library exports a function of this name (a `query` is
    /// only looked up, to ask the runtime something).
    pub exported: bool,
}

impl HookSpec {
    pub const fn new(name: &'static CStr, class: ApiClass, exported: bool) -> Self {
        HookSpec { name, class, exported }
    }

    pub fn name(&self) -> &'static str {
        self.name.to_str().unwrap_or("?")
    }
}

/// What the normalizer and the hooks need to know about one runtime.
pub struct RuntimeSpec {
    /// Short name used in messages and recordings ("npu").
    pub name: &'static str,
    /// The PyTorch backend package whose allocator reads the variables, as
    /// messages name it ("torch_npu").
    pub framework: &'static str,
    /// The call expandable segments get their memory with (physical memory
    /// mapped into reserved ranges): a process that made none did not use them.
    pub segment_alloc_api: &'static str,
    /// The runtime-specific allocator variable (`PYTORCH_NPU_ALLOC_CONF`).
    pub conf_var: &'static str,
    /// PyTorch's generic allocator variable (`PYTORCH_ALLOC_CONF`), read by newer
    /// backends when the specific one is unset.
    pub generic_conf_var: &'static str,
    /// The library's variable that tells child processes what this one
    /// decided (`allocconf::marker`).
    pub marker_var: &'static str,
    /// Variables the runtime's own setup exports into every process of a
    /// deployment before `main` (CANN's `set_env.sh`): where none is set, the
    /// process is not known to be one of this runtime, and the generic
    /// variable, which other backends read too, is left alone (rule 9).
    /// Empty: no marker is needed.
    pub environment_markers: &'static [&'static str],
    /// The switch an operator sets to `1` before this runtime's variables may
    /// be changed at all (`None`: changed by default). CUDA's is opt-in: the
    /// field has not made expandable segments its default.
    pub opt_in_var: Option<&'static str>,
    /// Which of the two variables the framework's lines read when both are
    /// set, for the message of that case.
    pub both_set_note: &'static str,
    /// Whether every line reads the specific variable alone when both are
    /// set (CUDA, measured): the decision is then made on it. Otherwise
    /// both are left alone (newer torch_npu refuses the pair).
    pub specific_wins: bool,
    /// Command-line flags of programs whose allocator pools device memory
    /// itself (sleep mode, memory savers), which keep their configuration.
    pub memory_pool_flags: &'static [&'static str],
    /// Allocators that pool device memory themselves, installed from Python
    /// as a pluggable allocator: torch looks their entry point up by name
    /// (`ctypes` -> `dlsym`), which is when the library can still say that the
    /// expandable segments it wrote will break them.
    pub pooling_allocators: &'static [PoolingAllocator],
    /// Other command lines where expandable segments are known to break,
    /// and why (`None`: this one is not).
    pub argv_breakage: fn(argv: &[Vec<u8>]) -> Option<String>,
    /// The key this product turns on.
    pub enable_key: &'static str,
    /// The value written for `enable_key`.
    pub enable_value: &'static str,
    /// Keys (or values of keys) the allocator refuses to combine with `enable_key`.
    pub conflicts: &'static [Conflict],
    /// Every key any known version of the backend accepts, with its value rule.
    pub keys: &'static [KeySpec],
    /// Prefixes of the hooked names (one per layer): a cheap first test in `dlsym`.
    pub symbol_prefixes: &'static [&'static str],
    /// Every hooked function, in the order of the runtime's hook list.
    pub hooks: &'static [HookSpec],
    /// The global index of `hooks[0]`: runtimes' hooks are numbered one
    /// after the other, in `RUNTIMES` order.
    pub first_hook: usize,
    /// What a hook returns when the runtime has no such function (the
    /// runtime's own "not supported" code).
    pub unresolved_code: i32,
    /// Where an allocation hook with a memory-kind argument (`alloc(out,
    /// size, kind)`) was asked to place its memory, from that argument.
    pub placement: fn(hook: usize, kind: u64) -> Placement,
    /// Whether the runtime's own lookup by name (`cuGetProcAddress`), asked
    /// for `asked` with `version` and `flags`, hands out the function hooked
    /// as `hook`; its hook is then handed out instead.
    pub entry_point_matches: fn(hook: &str, asked: &str, version: u64, flags: u64) -> bool,
    /// Allocation hooks below the API the framework calls (the runtime's
    /// own layer and the driver's), where collective and operator libraries
    /// allocate directly: reports show them apart.
    pub lower_layer_allocs: &'static [&'static str],
    /// Sonames of the runtime libraries, tried in order when resolving hooks.
    pub runtime_libraries: &'static [&'static str],
    /// Error codes the runtime returns when it is out of memory.
    pub oom_codes: &'static [i32],
    /// Python package whose version decides which keys are accepted.
    pub python_package: &'static str,
    /// How messages name the driver ("Ascend driver").
    pub driver_name: &'static str,
    /// Files that hold the driver version on a standard install.
    pub driver_version_files: &'static [&'static str],
    /// What installed versions of the framework and the driver mean.
    pub versions: VersionFacts,
    /// How reports' advice names this runtime's things.
    pub wording: Wording,
}

/// A self-pooling allocator, known by the allocation function a pluggable
/// allocator is made from.
#[derive(Clone, Copy, Debug)]
pub struct PoolingAllocator {
    /// The name torch's pluggable allocator looks up (`"my_malloc"`).
    pub entry: &'static str,
    /// Who uses it, as messages name it.
    pub who: &'static str,
}

/// Names reports' advice uses, in the runtime's own terms.
#[derive(Clone, Copy)]
pub struct Wording {
    /// The framework call that shows what its caching allocator holds.
    pub memory_reserved: &'static str,
    /// How the collective library's own buffers are made smaller.
    pub collective_buffers: &'static str,
    /// Where an error code is looked up.
    pub error_codes: &'static str,
    /// Which lines accept a key, for `Since::Legacy`, `Newer` and `Master`.
    pub key_lines: [&'static str; 3],
    /// What accepts a key no line knows.
    pub no_line: &'static str,
    /// Said with every value the library writes: how to turn it off for a
    /// memory pool that refuses expandable segments and that the command
    /// line does not show (sleep mode started from Python), so that the line
    /// stands in the log just before that pool's own assertion.
    pub sleep_mode_switch: &'static str,
    /// What the framework does with the enable key set beside a conflicting
    /// key that has no reason of its own (measured on the real lines).
    pub conflict_effect: &'static str,
    /// The framework's tokenizers, for the strict and the lenient dialect
    /// (`allocconf::tokenizer::Dialect`, in that order); `None`: no line
    /// of it tokenizes that way.
    pub dialects: [Option<&'static str>; 2],
}

impl Wording {
    /// Which lines accept a key accepted since `since`.
    pub fn accepted_by(&self, since: Since) -> &'static str {
        match since {
            Since::Legacy => self.key_lines[0],
            Since::Newer => self.key_lines[1],
            Since::Master => self.key_lines[2],
            Since::Surveyed => "the surveyed versions of the framework",
        }
    }
}

impl RuntimeSpec {
    /// Whether the process is one of this runtime's deployment, by its
    /// environment (`is_set` tells whether a variable is set).
    pub fn in_deployment(&self, is_set: impl Fn(&str) -> bool) -> bool {
        self.environment_markers.is_empty() || self.environment_markers.iter().any(|name| is_set(name))
    }

    /// Another runtime whose deployment the process is (one of its markers
    /// is set): that runtime's framework and the marker. PyTorch's allocator
    /// variables are that framework's there (torch 2.14's c10 parses
    /// PYTORCH_CUDA_ALLOC_CONF for every accelerator, and torch_npu 2.14 takes
    /// expandable_segments from it): this runtime changes none of them.
    pub fn other_deployment(&self, is_set: impl Fn(&str) -> bool) -> Option<(&'static str, &'static str)> {
        RUNTIMES
            .iter()
            .filter(|other| other.name != self.name)
            .find_map(|other| other.environment_markers.iter().find(|m| is_set(m)).map(|m| (other.framework, *m)))
    }

    /// Whether the operator allowed this runtime's variables to be changed
    /// (`value` reads a variable).
    pub fn opted_in(&self, value: impl Fn(&str) -> Option<Vec<u8>>) -> bool {
        self.opt_in_var.is_none_or(|var| value(var).is_some_and(|v| v == b"1"))
    }
}

/// Each key of a value with the lines that accept it.
pub type KeyLines<'a> = [(&'a str, Since)];

/// What installed versions mean, for `npu-alloc-shim check`.
#[derive(Clone, Copy)]
pub struct VersionFacts {
    /// Warnings about the installed framework and the keys of a value.
    pub framework_warnings: fn(&Version, &KeyLines) -> Vec<String>,
    /// Whether the framework reads PyTorch's generic variable too.
    pub reads_generic_variable: fn(&Version) -> bool,
    /// How the installed framework treats `key` (accepted by `Since`).
    pub acceptance: fn(&Version, &str, Since) -> Acceptance,
    /// Which versions accept `key` (accepted by `Since`), in a few words.
    pub describe_key: fn(&str, Since) -> String,
    /// Whether the installed framework refuses both allocator variables set
    /// together (a hard error at its first allocation).
    pub both_set_error: fn(&Version) -> bool,
    /// The driver version from the text of a driver version file.
    pub driver_version: fn(&str) -> Option<Version>,
    /// Warnings about the installed driver.
    pub driver_warnings: fn(&Version) -> Vec<String>,
}

/// Every runtime the library serves, each with its own variables, decisions
/// and hooks. A new runtime is a module and one entry here (and its
/// `first_hook` follows the one before).
#[cfg(not(feature = "toy-runtime"))]
pub static RUNTIMES: [&RuntimeSpec; 2] = [&npu::SPEC, &cuda::SPEC];
/// With the tests' toy runtime (`toy.rs`) last.
#[cfg(feature = "toy-runtime")]
pub static RUNTIMES: [&RuntimeSpec; 3] = [&npu::SPEC, &cuda::SPEC, &toy::SPEC];

/// Hooks of all runtimes together: the size of the library's tables.
#[cfg(not(feature = "toy-runtime"))]
pub const HOOK_COUNT: usize = npu::HOOKS.len() + cuda::HOOKS.len();
#[cfg(feature = "toy-runtime")]
pub const HOOK_COUNT: usize = npu::HOOKS.len() + cuda::HOOKS.len() + toy::HOOKS.len();

/// The runtime named in messages when none is singled out: the first.
pub fn primary() -> &'static RuntimeSpec {
    RUNTIMES[0]
}

/// Where `spec` stands in `RUNTIMES` (the index of per-runtime tables).
pub fn position(spec: &RuntimeSpec) -> Option<usize> {
    RUNTIMES.iter().position(|known| std::ptr::eq(*known, spec))
}

/// A runtime by the name its recordings carry (`"npu"`).
pub fn by_name(name: &str) -> Option<&'static RuntimeSpec> {
    RUNTIMES.iter().copied().find(|spec| spec.name == name)
}

/// The runtime and the facts of the hook with global index `index`.
pub fn hook(index: usize) -> Option<(&'static RuntimeSpec, &'static HookSpec)> {
    RUNTIMES.iter().copied().find_map(|spec| {
        let local = index.checked_sub(spec.first_hook)?;
        spec.hooks.get(local).map(|hook| (spec, hook))
    })
}

/// Whether a library file (path) belongs to the framework's caching
/// allocator: torch's own libraries or any runtime's torch backend. What
/// other libraries allocate is what vLLM calls "non-torch memory".
pub fn is_framework_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let backend =
        RUNTIMES.iter().any(|spec| path.contains(&format!("/{}/", spec.framework)) || name.contains(spec.framework));
    backend || TORCH_LIBRARY_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// PyTorch's own libraries, on every runtime.
const TORCH_LIBRARY_PREFIXES: [&str; 2] = ["libtorch", "libc10"];

/// Every hook of every runtime with its global index.
pub fn all_hooks() -> impl Iterator<Item = (usize, &'static RuntimeSpec, &'static HookSpec)> {
    RUNTIMES
        .iter()
        .copied()
        .flat_map(|spec| spec.hooks.iter().enumerate().map(move |(i, h)| (spec.first_hook + i, spec, h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_numbered_one_runtime_after_the_other() {
        let mut next = 0;
        for spec in RUNTIMES {
            assert_eq!(spec.first_hook, next, "{}", spec.name);
            next += spec.hooks.len();
        }
        assert_eq!(next, HOOK_COUNT);
        for (index, spec, hook) in all_hooks() {
            let (found_spec, found) = super::hook(index).unwrap();
            assert_eq!((found_spec.name, found.name), (spec.name, hook.name));
        }
        assert!(super::hook(HOOK_COUNT).is_none());
    }

    #[test]
    fn the_list_makes_the_indexes_and_the_table() {
        assert_eq!(npu::api::aclrtMalloc, 0);
        assert_eq!(npu::HOOKS[npu::api::aclrtMallocHostWithCfg].name, c"aclrtMallocHostWithCfg");
        assert_eq!(npu::HOOKS[npu::api::aclrtFree].class, ApiClass::DeviceFree);
        assert!(!npu::HOOKS[npu::api::aclrtGetDevice].exported);
        assert!(npu::HOOKS[npu::api::aclrtSetDevice].exported);
        assert_eq!(by_name("npu").map(|s| s.conf_var), Some("PYTORCH_NPU_ALLOC_CONF"));
    }
}
