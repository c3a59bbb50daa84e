//! The simulated Ascend runtime's sources, compiled into the CLI: `whatif`
//! builds the runtime wherever it runs (from a release tarball as from a
//! checkout), needing only a C compiler and Python. The files are
//! `crates/cli/assets/sim_runtime/`, which the tests build from directly.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Name, contents and mode of each source file.
const FILES: [(&str, &str, u32); 4] = [
    ("build.sh", include_str!("../../assets/sim_runtime/build.sh"), 0o755),
    ("gen_stubs.py", include_str!("../../assets/sim_runtime/gen_stubs.py"), 0o755),
    ("sim_acl.c", include_str!("../../assets/sim_runtime/sim_acl.c"), 0o644),
    ("device_counters.h", include_str!("../../assets/sim_runtime/device_counters.h"), 0o644),
];

/// Writes the sources into the new directory `dir` and returns its build script.
pub fn write(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir(dir)?;
    for (name, text, mode) in FILES {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(dir.join("build.sh"))
}

/// Where the script that creates a torch_npu environment is: shipped in a
/// release as `share/npu-alloc-shim/torch-npu-venv.sh` beside `bin/`, and
/// `scripts/torch-npu-venv.sh` in a checkout.
pub fn venv_script() -> String {
    let shipped = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share/npu-alloc-shim/torch-npu-venv.sh")));
    match shipped {
        Some(path) if path.is_file() => path.display().to_string(),
        _ => "scripts/torch-npu-venv.sh (in the source tree)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_every_source_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nas-sim-sources-{}", std::process::id()));
        let script = super::write(&dir).unwrap();
        assert_eq!(script, dir.join("build.sh"));
        assert_eq!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(std::fs::read_to_string(dir.join("sim_acl.c")).unwrap().contains("aclrtMalloc"));
        assert!(super::write(&dir).is_err(), "an existing directory is not reused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
