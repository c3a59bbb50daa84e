//! `npu-alloc-shim run`: preload the library into a program and become it.
//! `exec` (no child) keeps the program's pid, exit status and signals as they
//! are; `LD_PRELOAD` is only ever extended, never unset, so the program's own
//! children get the library too.

use super::locate;
use super::preload_env::{self, TRACE_VAR};
use clap::Args;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Exit status when the library or the program is not found (as a shell does).
const EXIT_NOT_FOUND: i32 = 127;
/// EX_CANTCREAT: the `--trace` directory cannot be made.
const EXIT_CANNOT_CREATE: i32 = 73;
/// Exit status when the program exists but cannot be executed.
const EXIT_NOT_EXECUTABLE: i32 = 126;

/// Run PROGRAM with the library preloaded (LD_PRELOAD); its exit status
/// passes through.
#[derive(Args)]
#[command(override_usage = "npu-alloc-shim run [--lib PATH] [--trace PATH] -- PROGRAM [ARGS]...")]
pub struct RunArgs {
    /// The library to preload [default: $NPU_ALLOC_SHIM_LIB, else
    /// libnpu_alloc_shim.so next to this program, else ../lib/ from it]
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
    /// Record allocations to PATH (sets NPU_ALLOC_SHIM_TRACE); a directory, or
    /// a PATH ending in '/' (created if missing), gets PATH/npu-alloc-shim.%p.json
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
    /// The program and its arguments (after `--`)
    #[arg(value_name = "PROGRAM", required = true, trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// Execs the program; returns only when that fails.
pub fn run(args: RunArgs) -> i32 {
    let library = match locate::find_library(args.lib.as_deref()) {
        Ok(library) => library,
        Err(error) => {
            eprintln!("npu-alloc-shim: {error}");
            return EXIT_NOT_FOUND;
        }
    };
    let preload = std::env::var_os("LD_PRELOAD");
    let preload = match preload_env::with_library(preload.as_deref(), &library) {
        Ok(preload) => preload,
        Err(error) => {
            eprintln!("npu-alloc-shim: {error}");
            return EXIT_NOT_FOUND;
        }
    };
    let (program, program_args) = args.command.split_first().expect("clap requires PROGRAM");
    let mut command = Command::new(program);
    command.args(program_args).env("LD_PRELOAD", preload);
    if let Some(trace) = &args.trace {
        // A directory named with '/' is made here: the library writes into
        // an existing directory only, and would warn once per process.
        if trace.as_os_str().as_encoded_bytes().ends_with(b"/")
            && let Err(error) = std::fs::create_dir_all(trace)
        {
            eprintln!("npu-alloc-shim: --trace {}: cannot create the directory: {error}", trace.display());
            return EXIT_CANNOT_CREATE;
        }
        command.env(TRACE_VAR, preload_env::trace_target(trace));
    }
    let error = command.exec();
    eprintln!("npu-alloc-shim: cannot run {}: {error}", program.to_string_lossy());
    if error.kind() == std::io::ErrorKind::PermissionDenied { EXIT_NOT_EXECUTABLE } else { EXIT_NOT_FOUND }
}
