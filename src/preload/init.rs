//! The constructor: runs when the library is loaded (before `main` under
//! `LD_PRELOAD`), reads the switches and applies the normalization decision.

use super::opts::Opts;
use super::process;
use super::record::origin::{self, ConfigRecord};
use super::{hooks, log, record};
use common::allocconf::decide::{self, Action, Decision, Facts, Level, Rule};
use common::runtime::{RUNTIMES, RuntimeSpec};

#[cfg(not(test))]
#[ctor::ctor(unsafe)]
fn on_load() {
    // A panic must not unwind out of a constructor: it would abort the host.
    if std::panic::catch_unwind(load).is_err() {
        log::emit(Level::Warn, "internal error while loading; the library stays inactive");
    }
}

#[cfg_attr(test, allow(dead_code))]
fn load() {
    let opts = &Opts::from_env();
    let secure = process::is_secure();
    if opts.disabled || secure {
        // Inert: the dlsym interposer only forwards, hooks only forward.
        hooks::dlsym::PASS_THROUGH.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if opts.disabled {
        return;
    }
    let argv = process::argv();
    // Each runtime decides on its own variables.
    for spec in RUNTIMES {
        normalize(spec, opts, secure, &argv);
    }
    origin::set_argv(argv);
    if (opts.trace.is_some() || opts.metrics.is_some()) && !secure {
        if let Some(dir) = &opts.metrics {
            record::metrics_file::start(dir.clone(), opts.keep_metrics, opts.ranks.clone());
        }
        record::used::set_enabled(opts.device_readings);
        record::lifecycle::start(opts.trace.clone(), opts.flush_ms);
    }
}

/// Decides and applies one runtime's allocator variable, and keeps what was
/// seen and done for the recordings.
#[cfg_attr(test, allow(dead_code))]
fn normalize(spec: &'static RuntimeSpec, opts: &Opts, secure: bool, argv: &[Vec<u8>]) {
    let opted_in = spec.opted_in(process::getenv);
    // NPU_ALLOC_SHIM_NORMALIZE=0 may have to undo a parent's write, which
    // needs the marker and the variables.
    if !opted_in && opts.normalize {
        // Every process of an image-wide preload pays for this: a runtime
        // nobody opted into reads its variable (for the recording) and no more.
        let facts = Facts { disabled: opts.disabled, normalize_off: !opts.normalize, secure, ..Facts::default() };
        let decision = decide::decide(spec, &facts);
        let applied = apply(spec, &decision);
        let before = process::getenv(spec.conf_var);
        origin::set_config(
            spec,
            ConfigRecord { var: spec.conf_var, after: before.clone(), before, rule: decision.rule.name(), applied },
        );
        return;
    }
    let facts = Facts {
        disabled: opts.disabled,
        normalize_off: !opts.normalize,
        secure,
        argv: argv.to_vec(),
        marker: process::getenv(spec.marker_var),
        specific: process::getenv(spec.conf_var),
        generic: process::getenv(spec.generic_conf_var),
        runtime_environment: spec.in_deployment(|name| process::getenv(name).is_some()),
        other_deployment: spec.other_deployment(|name| process::getenv(name).is_some()),
        opted_in,
    };
    let decision = decide::decide(spec, &facts);
    let applied = apply(spec, &decision);
    if (applied && matches!(decision.action, Action::Set { .. })) || decision.rule == Rule::InheritedApplied {
        hooks::pooling::note_written(spec);
    }
    let (var, before) = match &decision.action {
        Action::Set { var, .. } | Action::Undo { var, .. } => {
            (*var, if *var == spec.conf_var { facts.specific } else { facts.generic })
        }
        _ => (spec.conf_var, facts.specific),
    };
    let after = if applied { process::getenv(var) } else { before.clone() };
    origin::set_config(spec, ConfigRecord { var, before, after, rule: decision.rule.name(), applied });
}

/// Carries out a decision; returns whether the environment was changed.
#[cfg_attr(test, allow(dead_code))]
fn apply(spec: &RuntimeSpec, decision: &Decision) -> bool {
    let marker = decision.marker();
    if decision.is_silent() {
        return false;
    }
    if marker.is_none() || decision.rule == Rule::Secure {
        log::hold_for(spec, decision.level, &decision.message);
        return false;
    }
    // setenv is not thread-safe: only a process with one thread may change its
    // environment (true before `main`; not after a late `dlopen`).
    match process::thread_count() {
        Some(1) => {}
        count => {
            let why = count.map_or_else(|| "the thread count is unknown".to_owned(), |n| format!("{n} threads run"));
            let message =
                format!("not changing the environment: {why} (loaded late?); would have: {}", decision.message);
            // Said at once: a library loaded late was loaded on purpose.
            log::emit(Level::Warn, &message);
            return false;
        }
    }
    let written = match &decision.action {
        Action::Set { var, value } | Action::Undo { var, value: Some(value) } => process::setenv(var, value),
        Action::Undo { var, value: None } => process::unsetenv(var),
        Action::Keep | Action::Nothing => Ok(()),
    };
    if let Err(error) = written {
        log::hold_for(spec, Level::Warn, &format!("{error}; left unchanged"));
        return false;
    }
    if let Some(marker) = marker
        && let Err(error) = process::setenv(spec.marker_var, marker.render().as_bytes())
    {
        log::hold_for(spec, Level::Warn, &error);
    }
    log::hold_for(spec, decision.level, &decision.message);
    matches!(decision.action, Action::Set { .. } | Action::Undo { .. })
}
