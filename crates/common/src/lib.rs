//! The pure code shared by the preloaded library and the CLI (bytehound's
//! `common`): the allocator-configuration grammar and decision
//! (`allocconf`), the recording format (`format`) and each runtime's facts
//! (`runtime`). Nothing here touches the process it runs in.
//!
//! Arrows point down only: `allocconf` and `format` use `runtime`; `runtime`
//! uses nothing of this crate.

pub mod allocconf;
pub mod format;
pub mod runtime;
