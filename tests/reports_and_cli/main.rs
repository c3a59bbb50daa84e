//! Reports and the CLI: report and diff on hand-made and real recordings, their outputs and refusals, check and run.
//!
//! One test binary per room; each module was a test file of its own.

mod bad_input;
mod check;
mod diff;
mod fake_runtime;
mod findings;
mod large;
mod mem_usage;
mod outputs;
mod run;
mod runtimes;
mod top;
