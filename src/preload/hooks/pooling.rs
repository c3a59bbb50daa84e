//! A self-pooling allocator installed after the library wrote expandable
//! segments: vllm-ascend's CaMemAllocator (whose assertion `python -O`
//! drops), vLLM's CuMemAllocator, torch_memory_saver. torch makes a pluggable
//! allocator by looking its entry point up by name (`ctypes` -> `dlsym`), and
//! the `dlsym` interposer asks here first: the process is told once more,
//! before the pool is used, that it needs `NPU_ALLOC_SHIM_NORMALIZE=0`.

use crate::preload::{log, process};
use common::allocconf::decide::Level;
use common::runtime::{RUNTIMES, RuntimeSpec, position};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Per runtime: the variable holds expandable segments this library wrote
/// (in this process, or in a parent and kept).
static WRITTEN: [AtomicBool; RUNTIMES.len()] = [const { AtomicBool::new(false) }; RUNTIMES.len()];
/// Per runtime: the warning was said.
static WARNED: [AtomicBool; RUNTIMES.len()] = [const { AtomicBool::new(false) }; RUNTIMES.len()];

/// Called at load when the decision left the library's expandable segments
/// in `spec`'s variable.
pub fn note_written(spec: &RuntimeSpec) {
    if let Some(at) = position(spec) {
        WRITTEN[at].store(true, Relaxed);
    }
}

/// Whether `value` has `key:value` as one of its pairs' start.
fn holds_pair(config: &[u8], key: &str, value: &str) -> bool {
    config.split(|&b| b == b',').any(|pair| {
        let pair = pair.trim_ascii();
        pair.strip_prefix(key.as_bytes())
            .and_then(|rest| rest.trim_ascii_start().strip_prefix(b":"))
            .is_some_and(|rest| rest.trim_ascii() == value.as_bytes())
    })
}

/// A lookup of `name` (other than a hooked one): warns once per runtime when
/// it is a pooling allocator's entry point and the variable still holds the
/// library's expandable segments. Allocates nothing.
pub fn on_lookup(name: &CStr) {
    let name = name.to_bytes();
    for (at, spec) in RUNTIMES.iter().enumerate() {
        if !WRITTEN[at].load(Relaxed) || WARNED[at].load(Relaxed) {
            continue;
        }
        let Some(pool) = spec.pooling_allocators.iter().find(|p| p.entry.as_bytes() == name) else { continue };
        // Either variable: the library writes the generic one where only it is read.
        let Some(var) = [spec.conf_var, spec.generic_conf_var].into_iter().find(|var| {
            let holds = process::with_env(var, |config| {
                config.is_some_and(|config| holds_pair(config, spec.enable_key, spec.enable_value))
            });
            holds.unwrap_or(false)
        }) else {
            continue;
        };
        if WARNED[at].swap(true, Relaxed) {
            continue;
        }
        // The line from load comes first, then this one.
        log::speak_held(spec);
        log::emit_parts(
            Level::Warn,
            &[
                pool.who,
                " is being set up (torch looked up \"",
                pool.entry,
                "\") while ",
                var,
                " has ",
                spec.enable_key,
                ":",
                spec.enable_value,
                " from npu-alloc-shim: a pool of its own does not work with expandable segments; \
                 start this process with NPU_ALLOC_SHIM_NORMALIZE=0",
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::holds_pair;

    #[test]
    fn finds_the_pair_wherever_it_stands() {
        for config in
            ["expandable_segments:True", "page_size:1g,expandable_segments:True", " expandable_segments : True "]
        {
            assert!(holds_pair(config.as_bytes(), "expandable_segments", "True"), "{config}");
        }
        for config in ["", "expandable_segments:False", "xexpandable_segments:True", "expandable_segments:Truee"] {
            assert!(!holds_pair(config.as_bytes(), "expandable_segments", "True"), "{config}");
        }
    }
}
