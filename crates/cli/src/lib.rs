//! Command-line parsing and dispatch.
//!
//! Usage errors exit with 64 (EX_USAGE), not clap's default 2: `check` uses
//! 0, 1 and 2 for its verdicts, and the codes must not clash.

mod check;
mod check_report;
mod installed;
mod lib_path;
mod locate;
mod preload_env;
pub mod report;
mod run;
mod top;
mod whatif;

use clap::{Parser, Subcommand};

/// Exit status for a command line that does not parse (sysexits' EX_USAGE).
pub const EXIT_USAGE: i32 = 64;

const AFTER_HELP: &str = "\
Exit status:
  run     the program's own status (or its signal); 127 when the library or the
          program is not found, 126 when the program cannot be executed
  lib     0 printed the library's path; 127 not found
  check   0 would change, 1 unchanged, 2 refused (see `check --help`)
  report, diff
          0 done; 65 a file is not a recording, 66 no input, 73 an output
          cannot be written, 74 a read failed (see `report --help`)
  top     0 done; 66 a path does not exist; 74 the terminal cannot be used
  whatif  0 done; 65 not a plain snapshot, 66 no input, 69 no torch_npu
          environment, 70 a replay failed, 73 --html cannot be written
  64      the command line does not parse";

/// Turns on expandable segments for torch_npu processes through LD_PRELOAD,
/// and explains what the preloaded library does.
#[derive(Parser)]
#[command(name = "npu-alloc-shim", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Check(check::CheckArgs),
    Report(report::ReportArgs),
    Diff(report::DiffArgs),
    Whatif(whatif::WhatifArgs),
    Top(top::TopArgs),
    /// Print the absolute path of the preload library, for
    /// LD_PRELOAD=$(npu-alloc-shim lib) [found as `run` finds it: $NPU_ALLOC_SHIM_LIB, else next to this program,
    /// else ../lib/]
    Lib(lib_path::LibArgs),
}

/// Runs the CLI; returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" printed to stdout: success.
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Report(args) => report::report(args),
        Command::Diff(args) => report::diff(args),
        Command::Whatif(args) => whatif::whatif(args),
        Command::Top(args) => top::top(args),
        Command::Lib(args) => lib_path::lib(args),
    }
}
