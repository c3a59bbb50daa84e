//! The tests' toy runtime (feature `toy-runtime`): its list made into exported
//! functions, exactly as for a real runtime. It has nothing to be asked; with
//! `TOY_RECORDER_PANICS` set, asking it for memory information (the context of
//! a failed toy allocation) panics inside the recorder, so the tests can show
//! that a panic unwinds (through the statically linked unwinder, `build.rs`)
//! and is caught without reaching the host.

use super::exports::hook_functions;
use crate::preload::record::Queries;
use common::runtime::toy::{SPEC, api};
use std::ffi::{c_int, c_void};

common::toy_hooks!(hook_functions; spec = SPEC; queries = QUERIES;);

static QUERIES: Queries = Queries { current_device: || None, mem_info: toy_mem_info };

fn toy_mem_info() -> Option<(u64, u64)> {
    if std::env::var_os("TOY_RECORDER_PANICS").is_some() {
        panic!("TOY_RECORDER_PANICS: a panic in the recorder, on purpose");
    }
    None
}
