//! The pure code shared by the preloaded library and the CLI (bytehound's
//! `common`): the allocator-configuration grammar and decision
//! (`allocconf`), the recording format (`format`) and each runtime's facts
//! (`runtime`). Nothing here touches the process it runs in.
//!
//! Arrows point down only: `allocconf` uses `runtime`, `runtime` uses
//! `version` (PEP 440 ordering), which uses nothing of this crate; `format`
//! stands alone.

pub mod allocconf;
pub mod format;
pub mod metrics;
pub mod runtime;
pub mod version;
