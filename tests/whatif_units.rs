//! The pure modules of `whatif`, compiled here from their own files (the CLI
//! binary has no unit-test target): the restricted pickle decoder (plain data
//! accepted, code refused, no panic on garbage), the snapshot-to-plan
//! conversion and the verdict. Their `#[cfg(test)]` modules run here.

#[allow(dead_code)]
#[path = "../src/cli/whatif/outcome.rs"]
mod outcome;
#[allow(dead_code)]
#[path = "../src/cli/whatif/pickle.rs"]
mod pickle;
#[allow(dead_code)]
#[path = "../src/cli/whatif/snapshot.rs"]
mod snapshot;

/// The CLI's own `whatif::label`, which outcome uses.
pub fn label(config: &str) -> String {
    if config.is_empty() { "(default)".into() } else { config.to_owned() }
}
