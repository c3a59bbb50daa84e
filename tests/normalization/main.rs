//! Normalization: the allocator variable each runtime decides on, in real processes (CPython, sh, C), inherited by children, quiet unless it matters, and the README's variable table.
//!
//! One test binary per room; each module was a test file of its own.

mod cuda;
mod dlopen;
mod env;
mod inherit;
mod log;
mod pooling;
mod quiet;
mod readme;
mod rules;
mod secure;
mod start_cost;
mod switches;
mod vllm_ascend;
