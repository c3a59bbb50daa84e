//! `npu-alloc-shim report` and `npu-alloc-shim diff`: read recordings one at
//! a time (load), fold them into one bounded view of the job (summary, merge,
//! findings) and show it (text, html + svg, trace_event, diff).

mod diff;
mod findings;
mod html;
mod html_evidence;
pub(crate) mod load;
mod mem_usage;
mod merge;
pub(crate) mod progress;
mod summary;
pub(crate) mod svg;
pub(crate) mod text;
mod trace_event;
pub mod units;

use clap::Args;
use load::{DEFAULT_LIMIT_MIB, Kind, LoadError};
use merge::{Merged, Merger};
use progress::Progress;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// An output file cannot be written (sysexits' EX_CANTCREAT).
const EXIT_CANT_CREATE: i32 = 73;

const EXIT_HELP: &str = "\
Exit status:
  0   done (findings and failures in the recordings do not change it)
  64  the command line does not parse
  65  a file is not a recording this version reads: not JSON, truncated, another
      schema, or larger than --max-file-size
  66  an input is missing or unreadable, not a regular file, or a directory
      holds no *.json file (or, with --skip-invalid, no file was a recording)
  73  an output file cannot be written
  74  a read failed half-way (I/O error)
Errors are one line on stderr: `npu-alloc-shim: FILE: problem`.";

#[derive(Args)]
pub struct InputArgs {
    /// Skip files that are not recordings, with a warning each, instead of
    /// stopping at the first one
    #[arg(long)]
    skip_invalid: bool,
    /// Refuse a single file larger than MIB mebibytes (the library writes a
    /// few at most)
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_LIMIT_MIB)]
    max_file_size: u64,
    /// Rows in the "top" tables (sizes, libraries)
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// No summary on stdout (only the files asked for)
    #[arg(long, short)]
    quiet: bool,
}

/// Summarize recordings (one per process; a multi-rank job gives several):
/// totals, sizes, devices, calling libraries, failures and findings
#[derive(Args)]
#[command(after_help = EXIT_HELP)]
pub struct ReportArgs {
    /// Recordings, or directories searched for *.json recordings
    #[arg(value_name = "TRACE", required = true)]
    traces: Vec<PathBuf>,
    /// Also write one self-contained HTML page with charts
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also write the merged data as JSON (schema npu-alloc-shim-report/1)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a Chrome trace-event file (opens in Perfetto)
    #[arg(long = "trace-event", value_name = "FILE")]
    trace_event: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
}

/// Compare two runs (typically without and with expandable segments): peak,
/// growth, failures, sizes, devices and libraries side by side
#[derive(Args)]
#[command(after_help = EXIT_HELP)]
pub struct DiffArgs {
    /// The first run: a recording or a directory of them
    #[arg(value_name = "BEFORE")]
    before: PathBuf,
    /// The second run
    #[arg(value_name = "AFTER")]
    after: PathBuf,
    /// Also write one HTML page with both runs' charts on shared scales
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also write both merged runs and the changes as JSON
    /// (schema npu-alloc-shim-diff/1)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
}

/// The runtime a recording names (its `runtime` field), which decides OOM
/// codes, variables and wording; an unknown name is read as the first runtime.
pub fn runtime_of(recording: &common::format::Recording) -> &'static common::runtime::RuntimeSpec {
    common::runtime::by_name(&recording.runtime).unwrap_or_else(common::runtime::primary)
}

fn fail(error: &LoadError) -> i32 {
    eprintln!("npu-alloc-shim: {}", units::terminal_safe(&error.to_string(), 2000));
    error.kind.exit_code()
}

/// Reads every recording behind `paths`, one at a time, into one merged view.
fn load_set(paths: &[PathBuf], input: &InputArgs) -> Result<Merged, LoadError> {
    let (dumps, files): (Vec<load::Input>, Vec<load::Input>) =
        load::discover(paths)?.into_iter().partition(|f| f.mem_usage_dump);
    let total = files.iter().map(|f| f.size).fold(0u64, u64::saturating_add);
    let progress = Progress::new(total, files.len());
    let limit = input.max_file_size.saturating_mul(1 << 20);
    let mut merger = Merger::default();
    let mut offset = 0u64;
    // torch_npu's dumps are side evidence: one that cannot be read is skipped
    // with a warning, whatever --skip-invalid says.
    let mut mem_usage = Vec::new();
    for dump in dumps.iter().take(mem_usage::MAX_DUMPS) {
        let name = dump.path.display().to_string();
        match mem_usage::read(&dump.path) {
            Ok(read) => mem_usage.push(read),
            Err(problem) => {
                progress.println(&format!(
                    "npu-alloc-shim: warning: skipped {}: {}",
                    units::terminal_safe(&name, 1000),
                    units::terminal_safe(&problem, 1000)
                ));
                merger.skip(&name, &problem);
            }
        }
    }
    for file in &files {
        let name = file.path.display().to_string();
        progress.file(&name, offset);
        offset = offset.saturating_add(file.size);
        match load::read(file, limit, &progress) {
            // The recording is dropped here: only the merged view stays.
            Ok(recording) => merger.add(&name, &recording),
            Err(error) if input.skip_invalid => {
                progress.println(&format!(
                    "npu-alloc-shim: warning: skipped {}",
                    units::terminal_safe(&error.to_string(), 2000)
                ));
                merger.skip(&name, &error.problem);
            }
            Err(error) => {
                progress.finish();
                return Err(error);
            }
        }
    }
    progress.finish();
    if merger.recordings() == 0 {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError {
            path: PathBuf::from(shown.join(", ")),
            problem: "none of the files is a recording".to_owned(),
            kind: Kind::NoInput,
        });
    }
    let mut merged = merger.finish();
    mem_usage::attach(&mut mem_usage, &merged.failures);
    merged.mem_usage_dumps = mem_usage;
    merged.mem_usage_dumps_omitted = dumps.len().saturating_sub(mem_usage::MAX_DUMPS) as u64;
    Ok(merged)
}

/// Writes one output file; on failure says so and gives the exit status.
fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), i32> {
    let result = std::fs::File::create(path).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush()
    });
    result.map_err(|error| {
        eprintln!(
            "npu-alloc-shim: {}: cannot write: {}",
            units::terminal_safe(&path.display().to_string(), 1000),
            load::io_problem(&error)
        );
        EXIT_CANT_CREATE
    })
}

fn names(paths: &[PathBuf]) -> String {
    units::truncate(&paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), 400)
}

pub fn report(args: ReportArgs) -> i32 {
    let merged = match load_set(&args.traces, &args.input) {
        Ok(merged) => merged,
        Err(error) => return fail(&error),
    };
    let outputs = (|| {
        if let Some(path) = &args.json {
            write_file(path, |out| serde_json::to_writer(&mut *out, &merged).map_err(std::io::Error::other))?;
        }
        if let Some(path) = &args.html {
            let page = html::report_page(&merged, &names(&args.traces));
            write_file(path, |out| out.write_all(page.as_bytes()))?;
        }
        if let Some(path) = &args.trace_event {
            write_file(path, |out| trace_event::write(&merged, out))?;
        }
        Ok(())
    })();
    if let Err(code) = outputs {
        return code;
    }
    if !args.input.quiet {
        print!("{}", text::render(&merged, args.input.top));
    }
    0
}

pub fn diff(args: DiffArgs) -> i32 {
    let before = match load_set(std::slice::from_ref(&args.before), &args.input) {
        Ok(merged) => merged,
        Err(error) => return fail(&error),
    };
    let after = match load_set(std::slice::from_ref(&args.after), &args.input) {
        Ok(merged) => merged,
        Err(error) => return fail(&error),
    };
    let names = (args.before.display().to_string(), args.after.display().to_string());
    let names = (names.0.as_str(), names.1.as_str());
    let changes = diff::changes(&before, &after);
    let headline = diff::headline(&before, &after, &changes);
    let outputs = (|| {
        if let Some(path) = &args.json {
            let value = diff::DiffJson {
                schema: diff::SCHEMA,
                before_inputs: vec![names.0.to_owned()],
                after_inputs: vec![names.1.to_owned()],
                changes: &changes,
                headline: &headline,
                before: &before,
                after: &after,
            };
            write_file(path, |out| serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::other))?;
        }
        if let Some(path) = &args.html {
            let page = html::diff_page(&before, &after, names, &changes, &headline);
            write_file(path, |out| out.write_all(page.as_bytes()))?;
        }
        Ok(())
    })();
    if let Err(code) = outputs {
        return code;
    }
    if !args.input.quiet {
        print!("{}", diff::render_text(&before, &after, names, args.input.top));
    }
    0
}
