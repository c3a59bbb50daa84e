//! The CUDA runtime and driver: their hook list (`common::runtime::cuda`)
//! made into exported functions, and what the recorder asks them.

use super::exports::hook_functions;
use crate::preload::record::Queries;
use common::runtime::cuda::{SPEC, api};
use std::ffi::{c_char, c_int, c_void};

common::cuda_hooks!(hook_functions; spec = SPEC; queries = QUERIES;);

/// Handed to the recorder with every call of these hooks.
static QUERIES: Queries = Queries { current_device, mem_info };

/// The runtime's idea of this thread's device (`cudaGetDevice`: it creates
/// no context).
fn current_device() -> Option<i32> {
    let real = cudaGetDevice::real()?;
    let mut device = -1;
    // SAFETY: `device` is a valid out-parameter.
    (unsafe { real(&mut device) } == 0).then_some(device)
}

/// Free and total memory of the calling thread's context
/// (`cuMemGetInfo_v2`). Not `cudaMemGetInfo`, which would create a
/// context on a thread that has none (hundreds of MiB on a real GPU).
fn mem_info() -> Option<(u64, u64)> {
    let real = cuMemGetInfo_v2::real()?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: valid out-parameters.
    (unsafe { real(&mut free, &mut total) } == 0).then_some((free as u64, total as u64))
}
