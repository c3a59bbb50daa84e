//! `npu-alloc-shim`: the command-line front end (`run`, `check`, `report`,
//! `diff`). It never
//! links the preload code (constructor, hooks); it shares only the pure
//! modules below, compiled from the library's own files.

// Shared with the library and compiled from the same files: not every item is
// used by both, so unused ones are expected here.
#[allow(dead_code)]
mod allocconf;
#[allow(dead_code)]
mod format;
#[allow(dead_code)]
mod runtime;

mod cli;

fn main() {
    // Like other Unix tools, die quietly when a reader closes the pipe
    // (`npu-alloc-shim check | head`) instead of panicking on a write error.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::exit(cli::main());
}
