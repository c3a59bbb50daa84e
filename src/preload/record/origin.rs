//! What the constructor saw and decided, kept for the recordings: the command
//! line and, per runtime, the allocator variable before and after. Set once
//! at load by `init`, read by `snapshot`.

use crate::preload::set_once::SetOnce;
use common::runtime::{self, RUNTIMES, RuntimeSpec};

/// One runtime's normalization: its variable, before and after, and the rule.
#[derive(Clone, Debug)]
pub struct ConfigRecord {
    pub var: &'static str,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
    pub rule: &'static str,
    pub applied: bool,
}

static ARGV: SetOnce<Vec<Vec<u8>>> = SetOnce::new();
static CONFIGS: [SetOnce<ConfigRecord>; RUNTIMES.len()] = [const { SetOnce::new() }; RUNTIMES.len()];

pub fn set_argv(argv: Vec<Vec<u8>>) {
    ARGV.set(argv);
}

/// The command line read at load (empty when disabled or unreadable).
pub fn argv() -> &'static [Vec<u8>] {
    ARGV.get().map_or(&[], Vec::as_slice)
}

pub fn set_config(spec: &'static RuntimeSpec, config: ConfigRecord) {
    if let Some(at) = runtime::position(spec) {
        CONFIGS[at].set(config);
    }
}

pub fn config(spec: &'static RuntimeSpec) -> Option<&'static ConfigRecord> {
    CONFIGS[runtime::position(spec)?].get()
}

/// The runtime a recording is about: the first whose hooks were called
/// (`called(index)`), else the first runtime.
pub fn recorded_runtime(called: impl Fn(usize) -> bool) -> &'static RuntimeSpec {
    let used = runtime::all_hooks().find(|(index, _, _)| called(*index)).map(|(_, spec, _)| spec);
    used.unwrap_or_else(runtime::primary)
}
