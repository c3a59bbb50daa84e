//! The `dlsym` interposer answers what glibc would, apart from handing out
//! hooks for hooked functions that exist: no hook for a runtime that is not
//! there, the program's own definition when it has one, NULL for a missing
//! name on a handle.

use serde_json::Value;

fn answers(program: &std::path::Path, mode: &str, preload: bool) -> Value {
    let mut command = if preload { support::preloaded(program) } else { support::clean_command(program) };
    command.arg(mode).env("NPU_ALLOC_SHIM_LOG", "off");
    let output = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(output.status.success(), "{mode}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn fixtures() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = support::fixture_dir().display().to_string();
    support::compile_c(
        "libascendcl.so",
        &["tests/fake_runtime/fake_ascendcl.c"],
        &["-Itests/fake_runtime", "-shared", "-fPIC", "-Wl,-soname,libascendcl.so", "-pthread"],
    );
    let plain = support::compile_c(
        "dlsym_answers",
        &["tests/fixtures/dlsym_answers.c"],
        &[&format!("-Wl,-rpath,{dir}"), "-ldl"],
    );
    let own = support::compile_c(
        "dlsym_answers_own",
        &["tests/fixtures/dlsym_answers.c"],
        &["-DDEFINE_OWN", "-rdynamic", "-ldl"],
    );
    (plain, own)
}

#[test]
fn no_runtime_means_no_function_as_without_the_library() {
    let (plain, _) = fixtures();
    for preload in [false, true] {
        assert_eq!(answers(&plain, "none", preload)["found"], false, "preload {preload}");
    }
}

#[test]
fn a_program_defining_the_function_gets_its_own() {
    let (_, own) = fixtures();
    for preload in [false, true] {
        let value = answers(&own, "own", preload);
        assert_eq!((value["found"].clone(), value["own"].clone()), (Value::Bool(true), Value::Bool(true)), "{preload}");
    }
}

#[test]
fn a_handle_answers_existing_and_missing_names_as_before() {
    let (plain, _) = fixtures();
    for preload in [false, true] {
        let value = answers(&plain, "handle", preload);
        assert_eq!((value["found"].clone(), value["missing"].clone()), (Value::Bool(true), Value::Bool(false)));
    }
}
