//! `npu-alloc-shim whatif`: replay a PyTorch memory snapshot through the real
//! torch_npu caching allocator (on the simulated Ascend runtime) under other
//! configurations, and say which one to deploy.
//!
//! pickle decodes the snapshot without Python's loader, snapshot turns it
//! into a replay plan, replay runs one Python process per configuration,
//! outcome reads their results, text and html show them side by side.

mod html;
mod outcome;
mod pickle;
mod replay;
mod sim_sources;
mod snapshot;
mod text;

use clap::Args;
use common::allocconf::decide::{Action, Facts, decide};
use outcome::Run;
use std::path::PathBuf;

const EXIT_DATA: i32 = 65;
const EXIT_NO_INPUT: i32 = 66;
const EXIT_UNAVAILABLE: i32 = 69;
const EXIT_SOFTWARE: i32 = 70;
const EXIT_CANT_CREATE: i32 = 73;

const EXIT_HELP: &str = "\
Exit status:
  0   done (whatever the replays found)
  64  the command line does not parse
  65  the file is not a plain memory snapshot (refused opcodes included), or is
      one of this tool's own recordings, which hold no event sequence
  66  the snapshot cannot be read
  69  no torch_npu environment or simulated runtime
  70  a replay process failed
  73  --html cannot be written";

/// Replays a memory snapshot (torch_npu.npu.memory._dump_snapshot) through
/// torch_npu's own allocator under each configuration, on a simulated NPU,
/// and compares peak reserved memory, fragmentation and OOMs side by side.
#[derive(Args)]
#[command(after_help = EXIT_HELP)]
pub struct WhatifArgs {
    /// The snapshot pickle. It is decoded by a restricted reader that accepts
    /// only plain data; nothing in it is executed.
    snapshot: PathBuf,
    /// A PYTORCH_NPU_ALLOC_CONF value to try (repeatable; "" = torch_npu's
    /// default). Without any: the snapshot's own, the library's normalization
    /// of it, and alternatives the installed line accepts.
    #[arg(long = "config", value_name = "VALUE")]
    configs: Vec<String>,
    /// Simulated device memory per device, in GiB.
    #[arg(long, value_name = "N", default_value_t = 64.0)]
    device_gb: f64,
    /// Also write an HTML page with the runs on shared axes.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The torch_npu line to replay on.
    #[arg(long, value_name = "LINE", default_value = "2.10", value_parser = ["2.10", "2.5"])]
    line: String,
    /// The Python of a torch_npu environment (default: the cached one of
    /// scripts/torch-npu-venv.sh LINE).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// A directory with the simulated runtime (default: built into the cache
    /// from the sources this program carries; needs a C compiler).
    #[arg(long, value_name = "DIR")]
    sim_runtime: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Samples of reserved/allocated memory per device and run.
    #[arg(long, value_name = "N", default_value_t = 400)]
    samples: usize,
}

/// How a configuration is shown: the empty value is the default.
pub fn label(config: &str) -> String {
    if config.is_empty() { "(default)".into() } else { config.to_owned() }
}

/// The configurations tried when none is given: the snapshot's own, what
/// the library would make of it, and alternatives this line's parser knows
/// (2.5.1 has only expandable_segments, max_split_size_mb and
/// garbage_collection_threshold; 2.10 adds page_size and segment_size_mb).
fn default_configs(own: &str, own_known: bool, line: &str) -> Vec<(String, String)> {
    let spec = common::runtime::primary();
    let facts = Facts { specific: (!own.is_empty()).then(|| own.as_bytes().to_vec()), ..Facts::default() };
    let normalized = match decide(spec, &facts).action {
        Action::Set { value, .. } => String::from_utf8_lossy(&value).into_owned(),
        _ => own.to_owned(),
    };
    let own_role =
        if own_known { "the snapshot's own" } else { "the snapshot's own (not recorded in it: taken as the default)" };
    let mut configs = vec![
        (own.to_owned(), own_role.to_owned()),
        (normalized, "what npu-alloc-shim's normalization makes of it".to_owned()),
        ("max_split_size_mb:256".to_owned(), "what torch_npu's OOM message suggests".to_owned()),
    ];
    if line == "2.10" {
        configs
            .push(("expandable_segments:True,page_size:1g".to_owned(), "expandable segments with 1 GiB pages".into()));
        configs.push(("segment_size_mb:64".to_owned(), "larger classic segments".into()));
    }
    // The first role wins when two coincide (an own value the library keeps).
    let mut seen = std::collections::HashSet::new();
    configs.retain(|(c, _)| seen.insert(c.clone()));
    configs
}

pub fn whatif(args: WhatifArgs) -> i32 {
    if !(args.device_gb > 0.0 && args.device_gb <= 1e6) {
        eprintln!("npu-alloc-shim whatif: --device-gb must be a positive number of GiB");
        return crate::EXIT_USAGE;
    }
    let data = match std::fs::read(&args.snapshot) {
        Ok(data) => data,
        Err(error) => {
            // torch_npu's _dump_snapshot creates the file with mode 0200.
            let hint = if error.kind() == std::io::ErrorKind::PermissionDenied {
                " (torch_npu's _dump_snapshot creates the file write-only: `chmod u+r` it)"
            } else {
                ""
            };
            eprintln!("npu-alloc-shim whatif: {}: {error}{hint}", args.snapshot.display());
            return EXIT_NO_INPUT;
        }
    };
    if let Some(message) = own_recording(&data) {
        eprintln!("npu-alloc-shim whatif: {}: {message}", args.snapshot.display());
        return EXIT_DATA;
    }
    let plan = match pickle::decode(&data).map_err(|e| e.to_string()).and_then(|p| snapshot::plan(&p)) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("npu-alloc-shim whatif: {}: {error}", args.snapshot.display());
            return EXIT_DATA;
        }
    };
    drop(data);
    let device_bytes = (args.device_gb * (1u64 << 30) as f64) as u64;
    let own = plan.settings.clone().unwrap_or_default();
    let configs = if args.configs.is_empty() {
        default_configs(&own, plan.settings.is_some(), &args.line)
    } else {
        args.configs.iter().map(|c| (c.clone(), String::new())).collect()
    };

    let env = match replay::environment(&args.line, args.python.clone(), args.sim_runtime.clone()) {
        Ok(env) => env,
        Err(error) => {
            eprintln!("npu-alloc-shim whatif: {error}");
            return EXIT_UNAVAILABLE;
        }
    };
    let workdir = match tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("npu-alloc-shim whatif: temporary directory: {error}");
            return EXIT_CANT_CREATE;
        }
    };
    let result = replay_all(&args, &plan, &configs, &env, device_bytes, &workdir);
    let _ = std::fs::remove_dir_all(&workdir);
    let runs = match result {
        Ok(runs) => runs,
        Err(error) => {
            eprintln!("npu-alloc-shim whatif: {error}");
            return EXIT_SOFTWARE;
        }
    };
    let name = args.snapshot.display().to_string();
    let report =
        outcome::Report { snapshot: name, plan: &plan, runs, device_bytes, own_known: plan.settings.is_some() };
    if args.json {
        println!("{}", outcome::to_json(&report));
    } else {
        print!("{}", text::render(&report));
    }
    if let Some(path) = &args.html
        && let Err(error) = std::fs::write(path, html::render(&report))
    {
        eprintln!("npu-alloc-shim whatif: {}: {error}", path.display());
        return EXIT_CANT_CREATE;
    }
    0
}

fn replay_all(
    args: &WhatifArgs,
    plan: &snapshot::Plan,
    configs: &[(String, String)],
    env: &replay::Environment,
    device_bytes: u64,
    workdir: &std::path::Path,
) -> Result<Vec<Run>, String> {
    let steps: usize = plan.devices.iter().map(|d| d.steps.len()).sum();
    let sample_every = (steps / args.samples.max(1)).max(1);
    let plan_path = workdir.join("plan.json");
    let json = serde_json::to_vec(&snapshot::plan_json(plan, sample_every)).map_err(|e| e.to_string())?;
    std::fs::write(&plan_path, json).map_err(|e| format!("{}: {e}", plan_path.display()))?;
    let devices = plan.devices.iter().map(|d| d.device + 1).max().unwrap_or(1);
    let runner = replay::Runner { env, device_bytes, devices, workdir };
    let bar = replay::Bar::new((steps * configs.len()) as u64);
    let mut runs = Vec::new();
    for (i, (config, role)) in configs.iter().enumerate() {
        let value = runner.run(config, &plan_path, &bar, (steps * i) as u64);
        match value {
            Ok(value) => runs.push(Run { role: role.clone(), ..Run::from_json(config, &value) }),
            Err(error) => {
                bar.finish();
                return Err(error);
            }
        }
    }
    bar.finish();
    Ok(runs)
}

fn tempdir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let dir = base.join(format!("npu-alloc-shim-whatif.{}.{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}

/// This tool's own recordings (JSON, schema npu-alloc-shim/1) are not
/// snapshots: they hold what the runtime was asked for (a size histogram, a
/// live-bytes timeline, per-API totals), aggregated, with no order of
/// allocations and frees and no tensor sizes. The allocator's behaviour
/// under another configuration depends on exactly that order, so no replay
/// can be honest from them; say so instead of guessing.
fn own_recording(data: &[u8]) -> Option<String> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace())?;
    if data[start] != b'{' {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let schema = value.get("schema")?.as_str()?;
    if !schema.starts_with("npu-alloc-shim/") {
        return None;
    }
    let peak = value.pointer("/totals/peak_live_bytes").and_then(serde_json::Value::as_u64);
    let after = value.pointer("/config/after").and_then(serde_json::Value::as_str).unwrap_or("(default)");
    Some(format!(
        "this is an npu-alloc-shim recording ({schema}), not a memory snapshot. It holds runtime-level totals \
         (segment sizes as a histogram, live bytes over time), not the sequence of tensor allocations and frees, \
         so replaying it under another configuration is not possible: any answer would be a guess. What it does \
         tell: under {after:?} the runtime's peak was {}. For a what-if, record a snapshot: \
         torch_npu.npu.memory._record_memory_history() at start, \
         torch_npu.npu.memory._dump_snapshot(\"snap.pickle\") at the end or on OOM (docs/whatif.md).",
        peak.map_or("unknown".into(), |p| format!("{:.3} GiB", p as f64 / (1u64 << 30) as f64))
    ))
}
