//! Running the replayer: one Python process per configuration, in the
//! torch_npu virtual environment, on the simulated Ascend runtime.
//!
//! The library is not preloaded: each process gets exactly the
//! configuration under test in PYTORCH_NPU_ALLOC_CONF (or none, for the
//! default), so what is measured is torch_npu's own allocator.

use super::sim_sources;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The replayer, compiled in so the installed CLI needs no source tree.
const REPLAYER: &str = include_str!("../../assets/whatif_replay.py");

pub struct Environment {
    pub python: PathBuf,
    pub sim_runtime: PathBuf,
}

/// The runtime the simulated one stands in for: the replays are torch_npu's.
fn spec() -> &'static common::runtime::RuntimeSpec {
    &common::runtime::npu::SPEC
}

/// The file the simulated runtime is built as (`libascendcl.so`).
fn runtime_library() -> &'static str {
    spec().runtime_libraries[0]
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("NPU_ALLOC_SHIM_VENV_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/npu-alloc-shim"),
    }
}

/// The venv's Python and the simulated runtime for `line`, building the
/// runtime (from the sources in `sim_sources`, seconds) into the cache when absent.
pub fn environment(line: &str, python: Option<PathBuf>, sim: Option<PathBuf>) -> Result<Environment, String> {
    let python = match python {
        Some(python) => python,
        None => {
            let venv = cache_dir().join(format!("venv-{line}"));
            if !venv.join(".npu-alloc-shim-complete").exists() {
                return Err(format!(
                    "no torch_npu {line} environment at {} (create it with {} {line}, or pass --python)",
                    venv.display(),
                    sim_sources::venv_script()
                ));
            }
            venv.join("bin/python")
        }
    };
    let sim_runtime = match sim {
        Some(dir) => dir,
        None => {
            let dir = cache_dir().join(format!("sim-runtime-{line}"));
            if !dir.join(runtime_library()).exists() {
                build_sim(&python, &dir)?;
            }
            dir
        }
    };
    if !sim_runtime.join(runtime_library()).exists() {
        return Err(format!("no simulated runtime ({}) in {}", runtime_library(), sim_runtime.display()));
    }
    Ok(Environment { python, sim_runtime })
}

fn build_sim(python: &Path, dir: &Path) -> Result<(), String> {
    // The sources come from the CLI itself, written next to the cache entry.
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let name = dir.file_name().map_or_else(|| "sim-runtime".into(), |n| n.to_string_lossy().into_owned());
    let sources = parent.join(format!(".{name}.src.{}", std::process::id()));
    let built = sim_sources::write(&sources)
        .map_err(|e| format!("{}: {e}", sources.display()))
        .and_then(|script| run_build(&script, python, dir));
    let _ = std::fs::remove_dir_all(&sources);
    built
}

fn run_build(script: &Path, python: &Path, dir: &Path) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let site = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = Command::new(script).arg(dir).arg(&site).output().map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("building the simulated runtime failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// A bar over all events of all runs, on a terminal only.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(total: u64) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} replaying [{bar:30}] {pos}/{len} events {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar(Some(bar))
    }

    fn message(&self, text: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(text.to_owned());
        }
    }

    fn position(&self, position: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub struct Runner<'a> {
    pub env: &'a Environment,
    pub device_bytes: u64,
    pub devices: usize,
    pub workdir: &'a Path,
}

impl Runner<'_> {
    /// Replays `plan_path` under `config` ("" = torch_npu's default: the
    /// variable unset). The bar starts at `offset` events.
    pub fn run(&self, config: &str, plan_path: &Path, bar: &Bar, offset: u64) -> Result<Value, String> {
        let script = self.workdir.join("whatif_replay.py");
        if !script.exists() {
            std::fs::write(&script, REPLAYER).map_err(|e| format!("{}: {e}", script.display()))?;
        }
        let mut command = Command::new(&self.env.python);
        command
            .arg(&script)
            .arg(plan_path)
            .current_dir(self.workdir)
            .env("LD_LIBRARY_PATH", &self.env.sim_runtime)
            .env("SIM_ACL_DEVICE_BYTES", self.device_bytes.to_string())
            .env("SIM_ACL_DEVICE_COUNT", self.devices.max(1).to_string())
            // Neither the library nor the caller's own allocator settings may
            // change what is measured.
            .env_remove("LD_PRELOAD")
            .env_remove(spec().generic_conf_var)
            .env_remove(spec().conf_var)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !config.is_empty() {
            command.env(spec().conf_var, config);
        }
        bar.message(&super::label(config));
        let mut child = command.spawn().map_err(|e| format!("{}: {e}", self.env.python.display()))?;
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut out) = stdout {
                let _ = std::io::Read::read_to_string(&mut out, &mut text);
            }
            text
        });
        // Keep the end of stderr for the error message; progress lines move the bar.
        let mut tail: Vec<String> = Vec::new();
        if let Some(err) = child.stderr.take() {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(done) = line.strip_prefix("progress ").and_then(|n| n.trim().parse::<u64>().ok()) {
                    bar.position(offset + done);
                } else if !line.contains("Warning") {
                    tail.push(line);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let stdout = reader.join().unwrap_or_default();
        let last = stdout.lines().last().unwrap_or_default();
        match serde_json::from_str::<Value>(last) {
            Ok(result) if status.success() => Ok(result),
            _ => Err(format!("replay under {} failed ({status}):\n{}", super::label(config), tail.join("\n"))),
        }
    }
}
