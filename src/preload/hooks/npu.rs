//! The Ascend runtime (ACL): its hook list (`common::runtime::npu`) made into
//! exported functions, and what the recorder asks the runtime.

use super::exports::hook_functions;
use crate::preload::record::Queries;
use common::runtime::npu::{ACL_HBM_MEM, SPEC, api};
use std::ffi::{c_int, c_void};

common::npu_hooks!(hook_functions; spec = SPEC; queries = QUERIES;);

/// Handed to the recorder with every call of these hooks.
static QUERIES: Queries = Queries { current_device, mem_info };

/// The runtime's idea of this thread's device (`aclrtGetDevice`).
fn current_device() -> Option<i32> {
    let real = aclrtGetDevice::real()?;
    let mut device = -1;
    // SAFETY: `device` is a valid out-parameter.
    (unsafe { real(&mut device) } == 0).then_some(device)
}

/// Free and total HBM (`aclrtGetMemInfo`, as torch_npu asks it).
fn mem_info() -> Option<(u64, u64)> {
    let real = aclrtGetMemInfo::real()?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: valid out-parameters.
    (unsafe { real(ACL_HBM_MEM, &mut free, &mut total) } == 0).then_some((free as u64, total as u64))
}
