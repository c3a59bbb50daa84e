//! The fake CUDA runtime (tests/fake_cuda: `libcudart.so.12` and
//! `libcuda.so.1`, built by its `build.sh`) and the C client built on it.

use std::path::PathBuf;
use std::process::Command;

/// The folder holding the fake `libcudart.so.12` and `libcuda.so.1`.
pub fn libraries() -> PathBuf {
    let out = crate::fixture_dir().join("fake_cuda");
    let _guard = crate::FileLock::acquire(&crate::fixture_dir().join("fake_cuda.lock"));
    let script = crate::repo().join("tests/fake_cuda/build.sh");
    // The fixtures' compiler (a cross compiler for an aarch64 test run).
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env("CC", crate::c_compiler())
        .output()
        .expect("run tests/fake_cuda/build.sh");
    assert!(output.status.success(), "{script:?}: {}", String::from_utf8_lossy(&output.stderr));
    out
}

/// tests/fixtures/cuda_workload.c, linked with the fake runtime and driver.
pub fn workload() -> PathBuf {
    let dir = libraries().display().to_string();
    let include = format!("-I{}", crate::repo().join("tests/fake_cuda").display());
    crate::compile_c(
        "cuda_workload",
        &["tests/fixtures/cuda_workload.c"],
        &[&include, &format!("-L{dir}"), "-l:libcudart.so.12", "-l:libcuda.so.1", &format!("-Wl,-rpath,{dir}"), "-ldl"],
    )
}
