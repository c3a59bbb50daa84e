//! `npu-alloc-shim`: the command-line front end. All of it is the
//! `npu_alloc_shim_cli` library (testable as such); this only starts it.

fn main() {
    // Like other Unix tools, die quietly when a reader closes the pipe
    // (`npu-alloc-shim check | head`) instead of panicking on a write error.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::exit(npu_alloc_shim_cli::main());
}
