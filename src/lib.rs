//! `libnpu_alloc_shim.so`: preloaded into torch_npu processes, it turns on
//! expandable segments in `PYTORCH_NPU_ALLOC_CONF` at load.
//!
//! Three rooms: `allocconf` (pure parsing and decisions, shared with the CLI),
//! `runtime` (what is specific to one accelerator runtime, shared too) and
//! `preload` (the code that runs inside the host process).

pub mod allocconf;
pub mod format;
pub mod preload;
pub mod runtime;
