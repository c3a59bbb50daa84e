//! Best-effort discovery of the installed torch_npu and Ascend driver
//! versions for `check`. Nothing here fails the command: each lookup returns
//! what it found or why it found nothing.

use common::runtime::RuntimeSpec;
use common::version::Version;
use serde::Serialize;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the Python lookup may take (a cold interpreter on a busy node).
const PYTHON_LIMIT: Duration = Duration::from_secs(20);

/// Finds the package's version without importing it: importing torch_npu
/// loads the whole runtime and can take a device. `find_spec` of a top-level
/// package locates it without running its `__init__`.
const LOOKUP: &str = r#"
import sys
name = sys.argv[1]
try:
    from importlib.metadata import version
    print("metadata", version(name))
    sys.exit(0)
except Exception:
    pass
try:
    import importlib.util, os, re
    spec = importlib.util.find_spec(name)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "version.py")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if found:
            print("file", found.group(1), path)
            sys.exit(0)
    print("none")
except Exception as e:
    print("error", type(e).__name__, e)
"#;

/// A version found somewhere.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    pub version: String,
    /// Where it came from (`importlib.metadata`, a file path).
    pub source: String,
    #[serde(skip)]
    pub parsed: Option<Version>,
}

impl Found {
    fn new(version: &str, source: String) -> Found {
        Found { version: version.to_owned(), parsed: Version::parse(version), source }
    }
}

/// The installed version of a Python package (the framework: torch_npu,
/// torch) as `python` sees it.
pub fn package_version(python: &OsStr, package: &str) -> Result<Found, String> {
    let shown = python.to_string_lossy();
    let mut child = Command::new(python)
        .args(["-c", LOOKUP, package])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < PYTHON_LIMIT => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not answer within {PYTHON_LIMIT:?}"));
            }
        }
    };
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    if !status.success() {
        return Err(format!("{shown} failed ({status})"));
    }
    let line = output.lines().last().unwrap_or_default();
    let mut words = line.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some("metadata"), Some(version), _) => Ok(Found::new(version, "importlib.metadata".to_owned())),
        (Some("file"), Some(version), Some(path)) => Ok(Found::new(version, path.to_owned())),
        (Some("none"), ..) => Err(format!("{package} is not installed for {shown}")),
        _ => Err(format!("{shown}: unexpected answer {line:?}")),
    }
}

/// The driver version from `explicit`, else the first of the runtime's
/// version files that exists.
pub fn driver(explicit: Option<&Path>, spec: &RuntimeSpec) -> Result<Found, String> {
    let defaults = spec.driver_version_files;
    let path = match explicit {
        Some(path) => path,
        None => defaults
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or_else(|| format!("not found (looked at {})", defaults.join(", ")))?,
    };
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let version =
        (spec.versions.driver_version)(&text).ok_or_else(|| format!("{}: no Version= line", path.display()))?;
    Ok(Found { version: version.as_str().to_owned(), source: path.display().to_string(), parsed: Some(version) })
}
