//! `libnpu_alloc_shim.so`: preloaded into torch_npu processes, it turns on
//! expandable segments in `PYTORCH_NPU_ALLOC_CONF` at load and, when asked,
//! records the runtime's allocations.
//!
//! Only `preload` (the code that runs inside the host process) lives in this
//! crate; the pure parsing, decisions, recording format and runtime facts are
//! the `common` crate, shared with the CLI.

pub mod preload;
