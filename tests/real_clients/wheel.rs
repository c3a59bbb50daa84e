//! The pip wheel (scripts/wheel.sh native), installed by pip into a fresh
//! virtual environment: the README's example run from it as written, and a
//! recorded workload on the fake runtime through the wheel's CLI and library
//! alone (nothing of the checkout on PATH or in LD_PRELOAD).
//!
//! Building the wheel needs the release tools (zig, maturin, auditwheel from
//! PyPI; Debian's rustc-web as root). Where their cached environment is
//! absent the test prints SKIPPED and passes, unless
//! NPU_ALLOC_SHIM_TEST_WHEEL=1 (CI), where wheel.sh installs them.

use super::lines::text;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::fixtures::{MIB, n};

/// Building both binaries with zig on a 2-core machine takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(1800);

fn tools_marker() -> PathBuf {
    let tools = match std::env::var_os("NPU_ALLOC_SHIM_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/npu-alloc-shim/dist-tools"),
    };
    tools.join(".npu-alloc-shim-tools")
}

/// The native wheel, freshly built into `dist`; `None` when skipped.
fn build_wheel(dist: &Path) -> Option<PathBuf> {
    if let Some(triple) = support::cross_target() {
        println!("SKIPPED: wheel test: tests built for {triple} (the wheel is this machine's)");
        return None;
    }
    let required = std::env::var("NPU_ALLOC_SHIM_TEST_WHEEL").as_deref() == Ok("1");
    if !tools_marker().exists() && !required {
        println!(
            "SKIPPED: wheel test: no release tools at {} (run scripts/wheel.sh once, or set \
             NPU_ALLOC_SHIM_TEST_WHEEL=1 to install them and run)",
            tools_marker().display()
        );
        return None;
    }
    let _ = std::fs::remove_dir_all(dist);
    let out = support::run_with_timeout(
        Command::new(support::repo().join("scripts/wheel.sh")).arg("native").env("DIST", dist),
        BUILD_LIMIT,
    );
    assert!(out.status.success(), "wheel.sh native: {}", text(&out.stderr));
    let wheels: Vec<PathBuf> = std::fs::read_dir(dist)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let name = wheels[0].file_name().unwrap().to_string_lossy().into_owned();
    let arch = std::env::consts::ARCH;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(name, format!("npu_alloc_shim-{version}-py3-none-manylinux2014_{arch}.manylinux_2_17_{arch}.whl"));
    Some(wheels[0].clone())
}

/// The README's pip block (the fenced block after its `wheel-example` marker).
fn readme_example() -> String {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let after = readme.split("<!-- wheel-example:").nth(1).expect("README has the wheel-example marker");
    let block = after.split("```sh\n").nth(1).expect("a sh block after the marker");
    block.split("\n```").next().unwrap().to_owned()
}

/// A command with only the venv's bin/ and the system's on PATH, pip kept
/// off the network (the wheel has no dependencies).
fn in_venv(venv: &Path, program: &str) -> Command {
    let mut command = support::clean_command(program);
    command
        .env("PATH", format!("{}:/usr/bin:/bin", venv.join("bin").display()))
        .env("VIRTUAL_ENV", venv)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    command
}

#[test]
fn the_wheel_installs_into_a_fresh_venv_and_runs_the_readme_example() {
    let scratch = support::fixture_dir().join("wheel");
    let Some(wheel) = build_wheel(&scratch.join("dist")) else { return };
    let venv = scratch.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    support::run_ok(Command::new("/usr/bin/python3").args(["-m", "venv"]).arg(&venv));

    // The README's commands, as written, from a directory holding dist/.
    let example = readme_example();
    let out = support::run_with_timeout(
        in_venv(&venv, "bash").args(["-euo", "pipefail", "-c", &example]).current_dir(&scratch),
        Duration::from_secs(300),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "README example:\n{example}\nstdout: {stdout}\nstderr: {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("Processing ") && !l.contains("nstall")).collect();
    // `lib`: the library inside the installed package.
    let library = lines.iter().find(|l| l.ends_with("libnpu_alloc_shim.so")).expect("lib printed a path");
    let site = std::fs::canonicalize(&venv).unwrap();
    assert!(
        library.starts_with(&*site.to_string_lossy())
            && library.ends_with("/site-packages/npu_alloc_shim/libnpu_alloc_shim.so"),
        "{library}"
    );
    let packaged = std::fs::read(library).unwrap();
    let in_wheel = unzip(&wheel, "npu_alloc_shim/libnpu_alloc_shim.so");
    assert!(packaged == in_wheel, "the installed library is not the wheel's");
    // `run`: the variable set for a process started by the wheel's CLI.
    assert!(lines.contains(&"expandable_segments:True"), "{stdout}");
    // The module, in a process preloaded with the wheel's library.
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{version} {{'alloc_calls': 0,")) && l.contains("'live_bytes': 0")),
        "{stdout}"
    );
    // `python -m npu_alloc_shim check`: the CLI's decision, exit status 0.
    assert!(
        stdout.contains(
            r#"result:  PYTORCH_NPU_ALLOC_CONF="pin_memory_expandable_segments:True,expandable_segments:True""#
        ),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: would change (exit status 0)"), "{stdout}");

    // `python -m` finds the CLI pip installed beside it, in an unactivated
    // venv with nothing of it on PATH.
    let mut unactivated = support::clean_command(venv.join("bin/python"));
    unactivated.args(["-m", "npu_alloc_shim", "lib"]).env("PATH", "/usr/bin:/bin");
    assert_eq!(text(&support::run_ok(&mut unactivated).stdout).trim(), *library);

    recorded_workload_through_the_wheel(&venv, &scratch);
}

/// `npu-alloc-shim run --trace` from the venv on the fake runtime: the
/// recording the wheel's library writes matches what the workload made.
fn recorded_workload_through_the_wheel(venv: &Path, scratch: &Path) {
    let workload = support::fixtures::workload();
    // `run` makes the directory.
    let traces = scratch.join("traces");
    let _ = std::fs::remove_dir_all(&traces);
    let mut run = in_venv(venv, "npu-alloc-shim");
    run.arg("run").arg("--trace").arg(format!("{}/", traces.display())).arg("--").arg(&workload);
    run.args(["--bind", "handle", "--threads", "2", "--iters", "4", "--oom"]);
    let out = support::run_ok(&mut run);
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let pid = n(&line, "/pid");
    let recording = support::fixtures::read_json(&traces.join(format!("npu-alloc-shim.{pid}.json")));
    assert_eq!(recording["library_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(n(&recording, "/by_api/aclrtMalloc/calls"), n(&line, "/made/aclrtMalloc/calls"));
    assert_eq!(n(&recording, "/totals/failed_calls"), 2, "the two OOMs");
    assert_eq!(n(&recording, "/totals/failed_calls"), n(&line, "/fake/device/failed_calls"));
    assert_eq!(n(&recording, "/totals/peak_live_bytes"), n(&line, "/fake/device/peak_live_bytes"));
    assert!(n(&recording, "/totals/peak_live_bytes") >= MIB);
    // And the wheel's CLI reads it.
    let merged = scratch.join("report.json");
    let out = support::run_with_timeout(
        in_venv(venv, "npu-alloc-shim").arg("report").arg(&traces).arg("--json").arg(&merged),
        support::LIMIT,
    );
    assert!(merged.exists(), "report --json: {}", text(&out.stderr));
    let report = support::fixtures::read_json(&merged);
    assert_eq!(n(&report, "/totals/failed_calls"), 2, "{report}");
}

fn unzip(wheel: &Path, member: &str) -> Vec<u8> {
    let script = "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    let out = support::run_ok(Command::new("/usr/bin/python3").args(["-c", script]).arg(wheel).arg(member));
    out.stdout
}
