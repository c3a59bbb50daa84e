//! What `check` found, as one value printed either as text or as JSON
//! (`--json`), so both forms always carry the same facts.

use super::installed::Found;
use serde::Serialize;
use std::fmt::Write as _;

/// A variable and its value; values are shown lossily decoded and quoted
/// (escapes for control and non-UTF-8 bytes).
#[derive(Serialize)]
pub struct Variable {
    pub name: &'static str,
    pub value: Option<String>,
    pub quoted: Option<String>,
}

/// One key of a parsed value.
#[derive(Serialize)]
pub struct EntryReport {
    pub key: String,
    pub value: String,
    /// Which lines of the framework accept the key.
    pub accepted_by: String,
    /// What the installed framework does with it, when its version is known.
    pub installed: Option<&'static str>,
}

/// The value under one tokenizer dialect.
#[derive(Serialize)]
pub struct DialectParse {
    pub dialect: &'static str,
    pub description: &'static str,
    pub entries: Vec<EntryReport>,
    pub ends_with_comma: bool,
    pub error: Option<String>,
}

/// A version lookup: what was found, or why nothing was.
#[derive(Serialize)]
pub struct Lookup {
    pub found: Option<Found>,
    pub error: Option<String>,
}

/// The framework whose parser reads the variable, as installed.
#[derive(Serialize)]
pub struct Framework {
    /// Its Python package (`torch_npu`, `torch`).
    pub package: &'static str,
    #[serde(flatten)]
    pub lookup: Lookup,
}

impl From<Result<Found, String>> for Lookup {
    fn from(result: Result<Found, String>) -> Self {
        match result {
            Ok(found) => Lookup { found: Some(found), error: None },
            Err(error) => Lookup { found: None, error: Some(error) },
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    /// The runtime decided for (`npu`, `cuda`).
    pub runtime: &'static str,
    /// "argument" (VALUE given) or "environment".
    pub source: &'static str,
    /// The variable the decision is about.
    pub variable: Variable,
    /// The other allocator variable, when it is set.
    pub other: Option<Variable>,
    pub rule: &'static str,
    pub level: &'static str,
    /// "would-change", "unchanged" or "refused".
    pub verdict: &'static str,
    pub exit_status: i32,
    /// The new value, when the library would write one.
    pub result: Option<Variable>,
    /// The marker children would inherit (NPU_ALLOC_SHIM_DECISION).
    pub marker: Option<String>,
    pub message: String,
    pub parses: Vec<DialectParse>,
    pub framework: Framework,
    pub driver: Lookup,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// How the text names the framework and the driver (the runtime's words).
    #[serde(skip)]
    pub names: Names,
}

/// The runtime's names for what `check` looks up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Names {
    pub framework: &'static str,
    pub driver: &'static str,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let show = |v: &Variable| format!("{}={}", v.name, v.quoted.as_deref().unwrap_or("(unset)"));
        let _ = writeln!(out, "{} (from the {})", show(&self.variable), self.source);
        if let Some(other) = &self.other {
            let _ = writeln!(out, "also set: {}", show(other));
        }
        let _ = writeln!(out, "rule:    {}", self.rule);
        let result = self.result.as_ref().map_or_else(|| "unchanged".to_owned(), show);
        let _ = writeln!(out, "result:  {result}");
        let _ = writeln!(out, "message: {}", self.message);
        for parse in &self.parses {
            let _ = writeln!(out, "parse by the {}:", parse.description);
            if let Some(error) = &parse.error {
                let _ = writeln!(out, "  error: {error}");
            } else if parse.entries.is_empty() {
                let _ = writeln!(out, "  (no entries)");
            }
            for entry in &parse.entries {
                let framework = self.names.framework;
                let installed = entry.installed.map(|i| format!("; installed {framework}: {i}")).unwrap_or_default();
                let _ =
                    writeln!(out, "  {}:{}  (accepted by {}{installed})", entry.key, entry.value, entry.accepted_by);
            }
        }
        let _ = writeln!(out, "{}: {}", self.names.framework, describe(&self.framework.lookup));
        let _ = writeln!(out, "{}: {}", self.names.driver, describe(&self.driver));
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "verdict: {} (exit status {})", self.verdict.replace('-', " "), self.exit_status);
        out
    }
}

fn describe(lookup: &Lookup) -> String {
    match (&lookup.found, &lookup.error) {
        (Some(found), _) => format!("{} (from {})", found.version, found.source),
        (None, Some(error)) => format!("unknown: {error}"),
        (None, None) => "unknown".to_owned(),
    }
}
