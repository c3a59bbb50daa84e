//! Hooks and recording: the exported hooks and the dlsym interposer in real processes on the fake runtime, what they record, the exports, the toy second runtime and the benchmarks' smoke run.
//!
//! One test binary per room; each module was a test file of its own.

mod below_acl;
mod bench_smoke;
mod calls;
mod cuda;
mod dlsym_answers;
mod dlsym_next;
mod evidence;
mod exports;
mod lifecycle;
mod metrics;
mod python_module;
mod second_runtime;
mod smoke;
