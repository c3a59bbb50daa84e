//! `npu-alloc-shim check`: what the library would do, and why. The decision
//! is `allocconf::decide::decide` itself, fed with the facts the constructor
//! would read, so the answer cannot drift from the library's behaviour.

use super::check_report::{DialectParse, EntryReport, Framework, Lookup, Names, Report, Variable};
use super::installed;
use clap::Args;
use common::allocconf::decide::{self, Action, Decision, Facts, Level, Verdict};
use common::allocconf::parse::{key_words, parse};
use common::allocconf::quote::quote;
use common::allocconf::switches::{self, parse_switch};
use common::allocconf::tokenizer::Dialect;
use common::runtime::keys::{self as key_table, Since};
use common::runtime::{self, RuntimeSpec};
use common::version::Version;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Values are shown whole in `check`: it is the place to see them.
const SHOW_LIMIT: usize = 4096;

const EXIT_HELP: &str = "\
Exit status:
  0   the library would change the environment
  1   it would leave it unchanged (already set, switched off, sleep mode, ...)
  2   it would refuse with a warning (conflicting keys, a value that does not
      parse or names an unknown key, both variables set)
  64  the command line does not parse
The version report never changes the exit status.";

/// Show what the library would do to PYTORCH_NPU_ALLOC_CONF, and why
#[derive(Args)]
#[command(after_help = EXIT_HELP)]
pub struct CheckArgs {
    /// Evaluate VALUE as PYTORCH_NPU_ALLOC_CONF on its own (no switches, no
    /// PYTORCH_ALLOC_CONF, no inherited decision) [default: the current
    /// environment, as the library would read it]
    #[arg(value_name = "VALUE")]
    value: Option<OsString>,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Python interpreter used to find the installed framework (torch_npu,
    /// or torch with --runtime cuda; it is not imported)
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    python: OsString,
    /// Ascend driver version file [default:
    /// /usr/local/Ascend/driver/version.info]
    #[arg(long, value_name = "FILE")]
    driver_version_file: Option<PathBuf>,
    /// The runtime whose variables are checked: npu (torch_npu's) or cuda
    /// (PyTorch's CUDA allocator; changed only with
    /// NPU_ALLOC_SHIM_CUDA_NORMALIZE=1, and shown as with it)
    #[arg(long, value_name = "RUNTIME", default_value = "npu", value_parser = ["npu", "cuda"])]
    runtime: String,
    /// The command line the library would see, for sleep-mode detection
    /// (default: none)
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn check(args: CheckArgs) -> i32 {
    let spec = runtime::by_name(&args.runtime).unwrap_or_else(runtime::primary);
    let mut notes = Vec::new();
    let argv: Vec<Vec<u8>> = args.command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let (source, mut facts) = match &args.value {
        Some(value) => ("argument", Facts { argv, specific: Some(value.as_bytes().to_vec()), ..Facts::default() }),
        None => ("environment", environment_facts(spec, argv, &mut notes)),
    };
    // An opt-in runtime is shown as with its switch on, and said so: what
    // the operator wants to know is what the switch would do.
    let switched_off = match spec.opt_in_var {
        Some(switch) if !facts.opted_in && source == "environment" => {
            notes.push(format!(
                "{switch} is not 1: the library leaves {} alone; shown is what it would do with {switch}=1",
                spec.conf_var
            ));
            true
        }
        _ => false,
    };
    facts.opted_in = true;
    let decision = decide::decide(spec, &facts);
    let framework = Framework {
        package: spec.python_package,
        lookup: installed::package_version(&args.python, spec.python_package).into(),
    };
    let driver: Lookup = installed::driver(args.driver_version_file.as_deref(), spec).into();
    let mut report = build(spec, source, &facts, &decision, framework, driver, notes);
    if switched_off && report.exit_status == 0 {
        report.exit_status = 1;
        report.verdict = "unchanged";
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    report.exit_status
}

/// The facts the constructor would read from this environment. AT_SECURE is
/// about the checked program, not this one: taken as off.
fn environment_facts(spec: &RuntimeSpec, argv: Vec<Vec<u8>>, notes: &mut Vec<String>) -> Facts {
    let env = |name: &str| std::env::var_os(name).map(OsStringExt::into_vec);
    let mut switch = |name: &str, unset: bool| {
        let Some(value) = env(name) else {
            return unset;
        };
        parse_switch(&value).unwrap_or_else(|| {
            notes.push(format!("{name}={}: unrecognised value, the library ignores it", quote(&value, SHOW_LIMIT)));
            unset
        })
    };
    let disabled = switch(switches::DISABLE, false);
    let normalize_off = !switch(switches::NORMALIZE, true);
    if library_loaded_here() {
        notes.push(
            "the library is preloaded into this check process: the environment shown is \
             after its own normalization"
                .to_owned(),
        );
    }
    Facts {
        disabled,
        normalize_off,
        secure: false,
        argv,
        marker: env(spec.marker_var),
        specific: env(spec.conf_var),
        generic: env(spec.generic_conf_var),
        runtime_environment: spec.in_deployment(|name| env(name).is_some()),
        other_deployment: spec.other_deployment(|name| env(name).is_some()),
        opted_in: spec.opted_in(env),
    }
}

/// Whether `LD_PRELOAD` put the library into this very process.
fn library_loaded_here() -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a
    // symbol up; the result is compared with null, never called.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"npu_alloc_shim_version".as_ptr()) };
    !symbol.is_null()
}

fn variable(name: &'static str, value: Option<&[u8]>) -> Variable {
    Variable {
        name,
        value: value.map(|v| String::from_utf8_lossy(v).into_owned()),
        quoted: value.map(|v| quote(v, SHOW_LIMIT)),
    }
}

fn build(
    spec: &RuntimeSpec,
    source: &'static str,
    facts: &Facts,
    decision: &Decision,
    framework: Framework,
    driver: Lookup,
    notes: Vec<String>,
) -> Report {
    // The variable the decision is about: the one it writes, else the one
    // the backend reads (the specific one wins, as in the library).
    let (name, other_name) = match &decision.action {
        Action::Set { var, .. } if *var == spec.generic_conf_var => (spec.generic_conf_var, spec.conf_var),
        _ if facts.specific.is_none() && facts.generic.is_some() => (spec.generic_conf_var, spec.conf_var),
        _ => (spec.conf_var, spec.generic_conf_var),
    };
    let value_of = |var: &str| {
        if var == spec.conf_var { facts.specific.as_deref() } else { facts.generic.as_deref() }
    };
    let value = value_of(name);
    let installed = framework.lookup.found.as_ref().and_then(|f| f.parsed.as_ref());
    let parses = Dialect::ALL
        .iter()
        .filter(|&&d| spec.wording.dialects[d as usize].is_some())
        .map(|&d| parse_report(spec, value, d, installed))
        .collect();
    let mut warnings = Vec::new();
    if let Some(version) = installed {
        let keys = known_keys(spec, value.unwrap_or_default());
        warnings.extend((spec.versions.framework_warnings)(version, &keys));
        if facts.specific.is_some() && facts.generic.is_some() && (spec.versions.both_set_error)(version) {
            warnings.push(format!(
                "{} {} refuses {} and {} set together: it fails at its first allocation (\"Both ... have been \
                 set\"); unset one of them",
                spec.framework,
                version.as_str(),
                spec.conf_var,
                spec.generic_conf_var
            ));
        }
        if name == spec.generic_conf_var && !(spec.versions.reads_generic_variable)(version) {
            warnings.push(format!(
                "{} {} reads only {}: {name} has no effect there, with or without the library; \
                 set {} instead",
                spec.framework,
                version.as_str(),
                spec.conf_var,
                spec.conf_var
            ));
        }
    }
    if let Some(version) = driver.found.as_ref().and_then(|f| f.parsed.as_ref()) {
        warnings.extend((spec.versions.driver_warnings)(version));
    }
    let verdict = decision.verdict();
    Report {
        runtime: spec.name,
        source,
        variable: variable(name, value),
        other: value_of(other_name).map(|v| variable(other_name, Some(v))),
        rule: decision.rule.name(),
        level: match decision.level {
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        },
        verdict: match verdict {
            Verdict::WouldChange => "would-change",
            Verdict::Unchanged => "unchanged",
            Verdict::Refused => "refused",
        },
        exit_status: match verdict {
            Verdict::WouldChange => 0,
            Verdict::Unchanged => 1,
            Verdict::Refused => 2,
        },
        result: match &decision.action {
            Action::Set { var, value } => Some(variable(var, Some(value))),
            _ => None,
        },
        marker: decision.marker().map(|m| m.render()),
        message: decision.message.clone(),
        parses,
        framework,
        driver,
        warnings,
        notes,
        names: Names { framework: spec.framework, driver: spec.driver_name },
    }
}

/// The value under one dialect, each key with the lines that accept it.
fn parse_report(
    spec: &RuntimeSpec,
    value: Option<&[u8]>,
    dialect: Dialect,
    installed: Option<&Version>,
) -> DialectParse {
    let (entries, ends_with_comma, error) = match parse(value.unwrap_or_default(), dialect, spec.keys) {
        Ok(parsed) => (parsed.entries, parsed.ends_with_comma, None),
        Err(error) => (Vec::new(), false, Some(error.to_string())),
    };
    let entries = entries
        .into_iter()
        .map(|entry| {
            let since = key_table::find(spec.keys, entry.key.as_bytes()).map(|k| k.since);
            EntryReport {
                accepted_by: since.map_or_else(
                    || spec.wording.no_line.to_owned(),
                    |since| (spec.versions.describe_key)(&entry.key, since),
                ),
                installed: since
                    .zip(installed)
                    .map(|(since, version)| (spec.versions.acceptance)(version, &entry.key, since).name()),
                key: entry.key,
                value: entry.value,
            }
        })
        .collect();
    DialectParse {
        dialect: match dialect {
            Dialect::Strict => "strict",
            Dialect::Lenient => "lenient",
        },
        description: spec.wording.dialects[dialect as usize].unwrap_or(""),
        entries,
        ends_with_comma,
        error,
    }
}

/// The known keys named in a value, found even where the value is broken.
fn known_keys<'a>(spec: &'a RuntimeSpec, value: &[u8]) -> Vec<(&'a str, Since)> {
    Dialect::ALL
        .iter()
        .flat_map(|&d| key_words(value, d))
        .filter_map(|word| key_table::find(spec.keys, &word).map(|k| (k.name, k.since)))
        .collect()
}
