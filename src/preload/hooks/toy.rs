//! The tests' toy runtime (feature `toy-runtime`): its list made into exported
//! functions, exactly as for a real runtime. It has nothing to be asked.

use super::exports::hook_functions;
use crate::preload::record::Queries;
use common::runtime::toy::{SPEC, api};
use std::ffi::{c_int, c_void};

common::toy_hooks!(hook_functions; spec = SPEC; queries = QUERIES;);

static QUERIES: Queries = Queries { current_device: || None, mem_info: || None };
