//! The CUDA runtime and driver: their hook list (`common::runtime::cuda`)
//! made into exported functions, and what the recorder asks them.

use super::exports::{MemoryKind, hook_functions};
use crate::preload::record::Queries;
use common::runtime::cuda::{CuMemAllocationProp, SPEC, api, location_kind};
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

impl MemoryKind for *const CuMemAllocationProp {
    /// cuMemCreate's location, encoded for `SPEC.placement` (`0`: NULL).
    unsafe fn kind(self) -> u64 {
        if self.is_null() {
            return 0;
        }
        // SAFETY: cuMemCreate's contract: a non-NULL `prop` points to a
        // CUmemAllocationProp, which the real function reads the same way
        // (this head's layout is the same in CUDA 11, 12 and 13).
        let prop = unsafe { &*self };
        location_kind(prop.location_type, prop.location_id)
    }
}
