//! The built library exports exactly its C API, the runtime hooks and
//! `dlsym`: no Rust symbol leaks, and the header, the hook lists of the
//! runtimes (`common::runtime`) and the binary agree.

use std::collections::BTreeSet;
use std::process::Command;

fn exported() -> BTreeSet<String> {
    let output = Command::new("nm").args(["-D", "--defined-only"]).arg(support::library()).output().expect("run nm");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// What the library must export: the C API of the header, every exported
/// hook of every runtime's list, and the `dlsym` interposer.
fn expected() -> BTreeSet<String> {
    let hooks = common::runtime::all_hooks().filter(|(_, _, hook)| hook.exported).map(|(_, _, hook)| hook.name());
    header_functions().into_iter().chain(hooks.map(str::to_owned)).chain(["dlsym".to_owned()]).collect()
}

fn header_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(support::repo().join("include/npu_alloc_shim.h")).unwrap();
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("npu_alloc_shim_") && *word != "npu_alloc_shim_totals")
        .map(str::to_owned)
        .collect()
}

#[test]
fn exports_exactly_the_c_api_the_hook_lists_and_dlsym() {
    assert_eq!(exported(), expected());
}

#[test]
fn every_c_api_function_is_in_the_header() {
    let api: BTreeSet<String> = exported().into_iter().filter(|s| s.starts_with("npu_alloc_shim_")).collect();
    assert_eq!(api, header_functions());
}

#[test]
fn the_soname_is_fixed() {
    let output = Command::new("readelf").arg("-d").arg(support::library()).output().expect("run readelf");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Library soname: [libnpu_alloc_shim.so]"), "{text}");
    assert!(text.contains("NODELETE"), "{text}");
    // Its own references to its hooks bind to itself (tests/hooks_and_recording/dlsym_answers.rs).
    assert!(text.contains("SYMBOLIC"), "{text}");
}

#[test]
fn the_header_compiles_as_c_and_cpp() {
    for (compiler, language) in [("cc", "c"), ("c++", "c++")] {
        let status = Command::new(compiler)
            .args(["-fsyntax-only", "-Wall", "-Werror", "-x", language, "-include"])
            .arg(support::repo().join("include/npu_alloc_shim.h"))
            .arg("/dev/null")
            .status()
            .expect("run compiler");
        assert!(status.success(), "{compiler}");
    }
}

/// Issue 13: the library never asks the loader for memory it would read
/// later (a name `dladdr` returns can be freed by a concurrent `dlclose`);
/// calling libraries are named from `/proc/self/maps` instead.
#[test]
fn imports_nothing_that_hands_out_loader_memory() {
    let output = Command::new("nm").args(["-D", "--undefined-only"]).arg(support::library()).output().expect("run nm");
    assert!(output.status.success());
    let imports = String::from_utf8(output.stdout).unwrap();
    let names: BTreeSet<&str> =
        imports.lines().filter_map(|l| l.split_whitespace().last()).map(|s| s.split('@').next().unwrap()).collect();
    assert!(names.contains("dlsym") || names.contains("dlvsym"), "the check reads the imports: {names:?}");
    // (dl_iterate_phdr is imported by std's unwinder, which reads loader
    // data only inside its callback, under the loader's lock.)
    for forbidden in ["dladdr", "dladdr1", "dlinfo"] {
        assert!(!names.contains(forbidden), "imports {forbidden}");
    }
}
