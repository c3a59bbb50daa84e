//! The preloaded side: what runs inside every host process.

pub mod capi;
pub mod hooks;
pub mod init;
pub mod log;
pub mod opts;
pub mod process;
pub mod record;
pub mod set_once;
