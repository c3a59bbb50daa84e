//! README is a contract: its environment-variable table names exactly the
//! variables the code reads, and the commands it gives exist.

use std::collections::BTreeSet;

fn variables_in_code() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // The product's code: the library and the crates it shares with the CLI.
    let mut stack: Vec<_> = ["src", "crates/common/src", "crates/cli/src"].map(|dir| support::repo().join(dir)).into();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("NPU_ALLOC_SHIM_") && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    {
                        found.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    found
}

fn variables_in_readme_table() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `NPU_ALLOC_SHIM_"))
        .map(|rest| format!("NPU_ALLOC_SHIM_{}", rest.split('`').next().unwrap()))
        .collect()
}

#[test]
fn the_variable_table_matches_the_code() {
    assert_eq!(variables_in_readme_table(), variables_in_code());
}

#[test]
fn the_readme_commands_exist() {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    assert!(readme.contains("./examples/demo.sh"));
    assert!(support::repo().join("examples/demo.sh").exists());
    let ci = std::fs::read_to_string(support::repo().join(".ci/run")).unwrap();
    assert!(readme.contains("cargo test --release") && ci.contains("cargo test --release"));
}
