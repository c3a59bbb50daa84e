//! The normalization decision: given what a process sees (its switches, its
//! command line, the inherited marker, the allocator variables), what the
//! library does. Pure: the constructor applies the result, `check` prints it.

use super::marker::{Marker, fingerprint};
use super::parse::{ParseError, Parsed, key_words, parse};
use super::quote::{MESSAGE_LIMIT, quote};
use super::sleep::memory_pool_flag;
use super::tokenizer::Dialect;
use crate::runtime::RuntimeSpec;
use crate::runtime::keys::Conflict;

/// What the process looks like to the constructor.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// `NPU_ALLOC_SHIM_DISABLE=1`.
    pub disabled: bool,
    /// `NPU_ALLOC_SHIM_NORMALIZE=0`.
    pub normalize_off: bool,
    /// The kernel set AT_SECURE (setuid/setgid/capabilities).
    pub secure: bool,
    pub argv: Vec<Vec<u8>>,
    /// The inherited marker variable.
    pub marker: Option<Vec<u8>>,
    /// The runtime-specific variable (`PYTORCH_NPU_ALLOC_CONF`).
    pub specific: Option<Vec<u8>>,
    /// The generic variable (`PYTORCH_ALLOC_CONF`).
    pub generic: Option<Vec<u8>>,
    /// One of the runtime's `environment_markers` is set: the process is
    /// one of this runtime's deployment (needed before the generic variable,
    /// which other backends read too, is changed).
    pub runtime_environment: bool,
    /// The process is another runtime's deployment (its framework and the
    /// marker that is set): `RuntimeSpec::other_deployment`.
    pub other_deployment: Option<(&'static str, &'static str)>,
    /// The runtime's opt-in switch (`RuntimeSpec::opt_in_var`) is `1`; only
    /// read for a runtime that has one.
    pub opted_in: bool,
}

/// Which rule decided (numbered as in README's normalization table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Disabled,
    NormalizeOff,
    Secure,
    MemoryPool,
    InheritedKept,
    InheritedApplied,
    InheritedChanged,
    Unset,
    SetEmpty,
    HasKey,
    Conflict,
    Invalid,
    Append,
    BothSet,
    GenericOutsideRuntime,
    OtherDeployment,
    Undone,
    NotOptedIn,
    KnownBreakage,
}

impl Rule {
    /// Stable name used in recordings and `check --json`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Disabled => "disabled",
            Rule::NormalizeOff => "normalize-off",
            Rule::Secure => "secure",
            Rule::MemoryPool => "memory-pool",
            Rule::InheritedKept => "inherited-kept",
            Rule::InheritedApplied => "inherited-applied",
            Rule::InheritedChanged => "inherited-changed",
            Rule::Unset => "unset",
            Rule::SetEmpty => "set-empty",
            Rule::HasKey => "has-key",
            Rule::Conflict => "conflict",
            Rule::Invalid => "invalid",
            Rule::Append => "append",
            Rule::BothSet => "both-set",
            Rule::GenericOutsideRuntime => "generic-outside-runtime",
            Rule::OtherDeployment => "other-deployment",
            Rule::Undone => "undone",
            Rule::NotOptedIn => "not-opted-in",
            Rule::KnownBreakage => "known-breakage",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warn,
    Info,
    Debug,
}

/// What to do to the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `value` into `var`.
    Set { var: &'static str, value: Vec<u8> },
    /// Leave the variables alone and tell children to do the same.
    Keep,
    /// Touch nothing, not even the marker.
    Nothing,
    /// Put back what a parent's write replaced (`None`: unset it), and tell
    /// children to leave the variables alone.
    Undo { var: &'static str, value: Option<Vec<u8>> },
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub rule: Rule,
    pub action: Action,
    pub level: Level,
    /// One line, without the `npu-alloc-shim:` prefix.
    pub message: String,
}

impl Decision {
    fn new(rule: Rule, action: Action, level: Level, message: String) -> Self {
        Decision { rule, action, level, message }
    }

    /// The marker children should inherit, if this decision sets one.
    pub fn marker(&self) -> Option<Marker> {
        match &self.action {
            Action::Set { var, value } => Some(Marker::Set { var: (*var).to_owned(), hash: fingerprint(value) }),
            Action::Keep | Action::Undo { .. } => Some(Marker::Kept),
            Action::Nothing => None,
        }
    }

    /// Said by `check` only, never by the library: a runtime the operator
    /// did not opt into stays out of every process's log, even at debug.
    pub fn is_silent(&self) -> bool {
        self.rule == Rule::NotOptedIn
    }

    /// The class `check` reports through its exit status.
    pub fn verdict(&self) -> Verdict {
        match (&self.action, self.level) {
            (Action::Set { .. } | Action::Undo { .. }, _) => Verdict::WouldChange,
            (_, Level::Warn) => Verdict::Refused,
            _ => Verdict::Unchanged,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    WouldChange,
    Unchanged,
    Refused,
}

pub fn decide(spec: &RuntimeSpec, facts: &Facts) -> Decision {
    use Action::{Keep, Nothing};
    if facts.disabled {
        return Decision::new(Rule::Disabled, Nothing, Level::Debug, "disabled by NPU_ALLOC_SHIM_DISABLE=1".into());
    }
    if facts.secure {
        return Decision::new(Rule::Secure, Nothing, Level::Debug, "secure-execution process: inert".into());
    }
    if facts.normalize_off
        && let Some(undo) = undo_parent_write(spec, facts, "NPU_ALLOC_SHIM_NORMALIZE=0")
    {
        return undo;
    }
    if let Some(switch) = spec.opt_in_var
        && !facts.opted_in
    {
        let message = format!("{} left alone: changing it is opt-in ({switch}=1)", spec.conf_var);
        return Decision::new(Rule::NotOptedIn, Nothing, Level::Debug, message);
    }
    if facts.normalize_off {
        let message = format!("{} left alone: NPU_ALLOC_SHIM_NORMALIZE=0", spec.conf_var);
        return Decision::new(Rule::NormalizeOff, Nothing, Level::Debug, message);
    }
    // Where expandable segments must stay off, a parent's write is undone
    // rather than kept (`undo_parent_write`).
    let left_alone = |rule, why: &str, message: String| {
        undo_parent_write(spec, facts, why).unwrap_or_else(|| Decision::new(rule, Keep, Level::Info, message))
    };
    if let Some(flag) = memory_pool_flag(&facts.argv, spec.memory_pool_flags) {
        let flag = quote(flag.as_bytes(), MESSAGE_LIMIT);
        let message =
            format!("{} left alone: {flag} pools device memory itself and refuses expandable segments", spec.conf_var);
        return left_alone(Rule::MemoryPool, &flag, message);
    }
    if let Some(why) = (spec.argv_breakage)(&facts.argv) {
        return left_alone(Rule::KnownBreakage, &why, format!("{} left alone: {why}", spec.conf_var));
    }
    if let Some((framework, marker)) = facts.other_deployment {
        let why = format!("a {framework} deployment ({marker} is set)");
        let message = format!(
            "{} left alone: this is {why}, and {framework} reads PyTorch's allocator variables too",
            spec.conf_var
        );
        return left_alone(Rule::OtherDeployment, &why, message);
    }
    if let Some(decision) = follow_parent(spec, facts) {
        return decision;
    }
    decide_variables(spec, facts)
}

/// The runtime's conflicts that `value` sets: a key-only conflict when its
/// key appears (in either dialect, even if the value does not parse), a
/// value conflict when the value parses and gives the key one of its values.
pub fn conflicts_in(spec: &RuntimeSpec, value: &[u8]) -> Vec<&'static Conflict> {
    let keys: Vec<Vec<u8>> = Dialect::ALL.iter().flat_map(|&d| key_words(value, d)).collect();
    let parsed = parse(value, Dialect::Lenient, spec.keys).ok();
    spec.conflicts
        .iter()
        .filter(|conflict| {
            if conflict.values.is_empty() {
                keys.iter().any(|k| k == conflict.key.as_bytes())
            } else {
                parsed.as_ref().is_some_and(|p| {
                    p.entries.iter().any(|e| e.key == conflict.key && conflict.values.contains(&e.value.as_str()))
                })
            }
        })
        .collect()
}

/// Rules 4 to 9: what the values of the allocator variables call for.
fn decide_variables(spec: &RuntimeSpec, facts: &Facts) -> Decision {
    use Action::Keep;
    match (&facts.specific, &facts.generic) {
        (Some(value), Some(_)) if spec.specific_wins => decide_value(spec, spec.conf_var, Some(value)),
        (Some(_), Some(_)) => {
            let message = format!(
                "both {} and {} are set ({}): left alone, set only one of them",
                spec.conf_var, spec.generic_conf_var, spec.both_set_note
            );
            Decision::new(Rule::BothSet, Keep, Level::Warn, message)
        }
        (Some(value), None) => decide_value(spec, spec.conf_var, Some(value)),
        (None, Some(_)) if !facts.runtime_environment && !spec.environment_markers.is_empty() => {
            let message = format!(
                "{} alone is left alone outside a {} deployment (none of {} is set): PyTorch's other backends \
                 (CUDA) read it too",
                spec.generic_conf_var,
                spec.framework,
                spec.environment_markers.join(", ")
            );
            Decision::new(Rule::GenericOutsideRuntime, Keep, Level::Info, message)
        }
        (None, Some(value)) => decide_value(spec, spec.generic_conf_var, Some(value)),
        (None, None) => decide_value(spec, spec.conf_var, None),
    }
}

/// A process that must not have expandable segments (the switch off, a
/// memory pool on its command line, ...) but inherited them from a parent
/// whose library wrote them (a Ray worker started by a preloaded raylet,
/// with `NPU_ALLOC_SHIM_NORMALIZE=0` in its runtime_env): the write is
/// undone, if the value is still exactly what the parent wrote. What was
/// there before is what remains without the appended pair (unset when
/// nothing remains).
fn undo_parent_write(spec: &RuntimeSpec, facts: &Facts, why: &str) -> Option<Decision> {
    let Marker::Set { var, hash } = Marker::parse(facts.marker.as_deref()?)? else { return None };
    let (var, current) = marked_variable(spec, facts, &var)?;
    let current = current?;
    if fingerprint(current) != hash {
        return None;
    }
    let pair = enable_pair(spec);
    let before = current.strip_suffix(pair.as_bytes())?;
    let before = before.strip_suffix(b",").filter(|rest| !rest.is_empty() && !rest.ends_with(b",")).unwrap_or(before);
    let (value, was) = if before.is_empty() {
        (None, "unset".to_owned())
    } else {
        (Some(before.to_vec()), quote(before, MESSAGE_LIMIT))
    };
    let message = format!("{var} back to {was} ({why}): a parent process had appended {pair}");
    Some(Decision::new(Rule::Undone, Action::Undo { var, value }, Level::Info, message))
}

/// The variable a marker names, as this runtime spells it, and its value
/// now; `None` for a name that is not one of the runtime's variables.
fn marked_variable<'a>(spec: &RuntimeSpec, facts: &'a Facts, var: &str) -> Option<(&'static str, Option<&'a [u8]>)> {
    if var == spec.conf_var {
        Some((spec.conf_var, facts.specific.as_deref()))
    } else if var == spec.generic_conf_var {
        Some((spec.generic_conf_var, facts.generic.as_deref()))
    } else {
        None
    }
}

/// `expandable_segments:True`, as the library writes it.
fn enable_pair(spec: &RuntimeSpec) -> String {
    format!("{}:{}", spec.enable_key, spec.enable_value)
}

/// Rule 3: children follow the decision their parent recorded. A child says
/// what it inherited at the level the parent would have (the library speaks
/// only in processes that use the runtime, which are often the children).
fn follow_parent(spec: &RuntimeSpec, facts: &Facts) -> Option<Decision> {
    let marker = Marker::parse(facts.marker.as_deref()?)?;
    let decision = match marker {
        Marker::Kept => {
            // A value-based keep (conflict, unparsable, ...) is said as the
            // parent said it; otherwise the parent's command line decided.
            let own = decide_variables(spec, facts);
            let (level, message) = match own.action {
                Action::Keep => (own.level, own.message),
                _ => (Level::Info, format!("{} left alone: a parent process decided so", spec.conf_var)),
            };
            Decision::new(Rule::InheritedKept, Action::Nothing, level, message)
        }
        Marker::Set { var, hash } => {
            let (var, current) = marked_variable(spec, facts, &var)?;
            match current {
                Some(value) if fingerprint(value) == hash => {
                    let message = format!(
                        "{var}={} (already applied by npu-alloc-shim); {}",
                        quote(value, MESSAGE_LIMIT),
                        spec.wording.sleep_mode_switch
                    );
                    Decision::new(Rule::InheritedApplied, Action::Nothing, Level::Info, message)
                }
                _ => {
                    let message = format!("{var} was changed after a parent process set it: left as changed");
                    Decision::new(Rule::InheritedChanged, Action::Nothing, Level::Debug, message)
                }
            }
        }
    };
    Some(decision)
}

/// Linux's MAX_ARG_STRLEN: the longest single "NAME=value" string (with its
/// NUL) that execve accepts.
pub const MAX_ENV_STRING: usize = 131_072;

fn is_blank(value: &[u8]) -> bool {
    value.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
}

/// Rules 4 to 8 for the one variable the backend will read.
fn decide_value(spec: &RuntimeSpec, var: &'static str, value: Option<&Vec<u8>>) -> Decision {
    let pair = enable_pair(spec);
    let value = match value {
        Some(value) if !is_blank(value) => value,
        // Set to nothing on purpose: ROLL clears it for its vLLM workers,
        // whose sleep mode refuses expandable segments (docs/sleep-mode-markers.md).
        Some(value) => {
            let message = format!(
                "{var}={} is set but empty: left alone, as set on purpose (ROLL clears it for its vLLM workers in \
                 sleep mode); unset it to get {pair}",
                quote(value, MESSAGE_LIMIT)
            );
            return Decision::new(Rule::SetEmpty, Action::Keep, Level::Info, message);
        }
        None => {
            let message = format!("{var}={pair} (was unset); {}", spec.wording.sleep_mode_switch);
            let action = Action::Set { var, value: pair.into_bytes() };
            return Decision::new(Rule::Unset, action, Level::Info, message);
        }
    };
    let shown = quote(value, MESSAGE_LIMIT);
    let keys: Vec<Vec<u8>> = Dialect::ALL.iter().flat_map(|&d| key_words(value, d)).collect();
    if keys.iter().any(|k| k == spec.enable_key.as_bytes()) {
        // The user's choice stands; but say so when torch_npu will reject it.
        return match parse(value, Dialect::Lenient, spec.keys) {
            Ok(parsed) => {
                // Set by hand beside a key the framework refuses it with.
                let turned_on = parsed.value_of(spec.enable_key) == Some(spec.enable_value);
                match conflicts_in(spec, value).first().filter(|_| turned_on) {
                    Some(conflict) => {
                        let why = conflict.reason.map_or_else(
                            || {
                                format!(
                                    "{} refuses the two together ({})",
                                    spec.framework, spec.wording.conflict_effect
                                )
                            },
                            str::to_owned,
                        );
                        let message = format!(
                            "{var}={shown} sets {pair} together with {}: {why}. Left alone; remove {} to use \
                             expandable segments",
                            conflict.key, conflict.key
                        );
                        Decision::new(Rule::HasKey, Action::Keep, Level::Warn, message)
                    }
                    None => {
                        let message = format!("{var}={shown} already names {}: left alone", spec.enable_key);
                        Decision::new(Rule::HasKey, Action::Keep, Level::Debug, message)
                    }
                }
            }
            Err(error) => {
                let message =
                    format!("{var}={shown} names {} but does not parse ({error}): left alone", spec.enable_key);
                Decision::new(Rule::HasKey, Action::Keep, Level::Warn, message)
            }
        };
    }
    if let Some(Conflict { key, reason: Some(reason), .. }) = conflicts_in(spec, value).first() {
        let message = format!("{var}={shown} sets {key}: {reason}: left alone");
        return Decision::new(Rule::Conflict, Action::Keep, Level::Warn, message);
    }
    if let Some(conflict) = conflicts_in(spec, value).first().map(|c| c.key) {
        let message = format!(
            "{var}={shown} sets {conflict}, which {framework} refuses together with {pair}: left alone. \
             Expandable segments avoid the fragmentation {conflict} works around; to use them, remove {conflict} \
             (or set NPU_ALLOC_SHIM_NORMALIZE=0 to silence this)",
            framework = spec.framework
        );
        return Decision::new(Rule::Conflict, Action::Keep, Level::Warn, message);
    }
    let parsed: Result<Parsed, ParseError> = parse(value, Dialect::Lenient, spec.keys);
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let message = format!("{var}={shown} does not parse ({error}): left alone");
            return Decision::new(Rule::Invalid, Action::Keep, Level::Warn, message);
        }
    };
    let separator = if parsed.ends_with_comma { "" } else { "," };
    let mut new_value = value.clone();
    new_value.extend_from_slice(separator.as_bytes());
    new_value.extend_from_slice(pair.as_bytes());
    // Only a value that could be passed on before must still be afterwards
    // (one already too long was set in-process and fails exec either way).
    let env_string = |value: &[u8]| var.len() + 1 + value.len() + 1;
    if env_string(value) <= MAX_ENV_STRING && env_string(&new_value) > MAX_ENV_STRING {
        let message = format!(
            "{var}={shown} is {} bytes: with {pair} appended, \"{var}=value\" would exceed the {MAX_ENV_STRING}-byte \
             limit execve puts on one environment string, and every later exec of this process would fail: left alone",
            value.len()
        );
        return Decision::new(Rule::Invalid, Action::Keep, Level::Warn, message);
    }
    let mut message = format!("{var}={} (was {shown})", quote(&new_value, MESSAGE_LIMIT + pair.len() + 1));
    if let Err(error) = parse(value, Dialect::Strict, spec.keys) {
        message.push_str(&format!("; note: older {} rejects this value already ({error})", spec.framework));
    }
    message.push_str("; ");
    message.push_str(spec.wording.sleep_mode_switch);
    Decision::new(Rule::Append, Action::Set { var, value: new_value }, Level::Info, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::npu::SPEC;

    fn facts(specific: Option<&str>) -> Facts {
        Facts { specific: specific.map(|s| s.as_bytes().to_vec()), ..Facts::default() }
    }

    fn set_value(decision: &Decision) -> Option<(&'static str, String)> {
        match &decision.action {
            Action::Set { var, value } => Some((*var, String::from_utf8_lossy(value).into_owned())),
            _ => None,
        }
    }

    #[test]
    fn unset_becomes_the_pair_and_set_but_empty_is_left_alone() {
        let d = decide(&SPEC, &facts(None));
        assert_eq!(d.rule, Rule::Unset);
        assert_eq!(set_value(&d), Some(("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True".into())));
        for value in ["", "  ", "\t\n"] {
            let d = decide(&SPEC, &facts(Some(value)));
            assert_eq!((d.rule, &d.action, d.level), (Rule::SetEmpty, &Action::Keep, Level::Info), "{value:?}");
            assert!(d.message.contains("unset it to get expandable_segments:True"), "{}", d.message);
        }
    }

    #[test]
    fn an_existing_key_is_respected_in_any_spelling() {
        for value in
            ["expandable_segments:False", " expandable_segments : True ", "page_size:1g,expandable_segments:true"]
        {
            let d = decide(&SPEC, &facts(Some(value)));
            assert_eq!((d.rule, &d.action), (Rule::HasKey, &Action::Keep), "{value}");
        }
    }

    #[test]
    fn an_existing_key_with_a_bad_value_is_kept_with_a_warning() {
        let d = decide(&SPEC, &facts(Some("expandable_segments:true")));
        assert_eq!((d.rule, &d.action, d.level), (Rule::HasKey, &Action::Keep, Level::Warn));
        assert!(d.message.contains("Expected a single True/False argument for expandable_segments"), "{}", d.message);
    }

    #[test]
    fn the_pinned_key_is_another_key() {
        let d = decide(&SPEC, &facts(Some("pin_memory_expandable_segments:True")));
        assert_eq!(
            set_value(&d),
            Some(("PYTORCH_NPU_ALLOC_CONF", "pin_memory_expandable_segments:True,expandable_segments:True".into()))
        );
    }

    #[test]
    fn a_conflict_can_hang_on_a_value() {
        use crate::runtime::keys::{Conflict, KeySpec, Since, ValueRule};
        static KEYS: [KeySpec; 2] = [
            KeySpec::new("expandable_segments", ValueRule::Bool, Since::Legacy),
            KeySpec::new("backend", ValueRule::OneOf(&["native", "cudaMallocAsync"]), Since::Legacy),
        ];
        static CONFLICTS: [Conflict; 1] = [Conflict::values("backend", &["cudaMallocAsync"], Since::Legacy)];
        let spec = RuntimeSpec { keys: &KEYS, conflicts: &CONFLICTS, ..SPEC };
        assert_eq!(decide(&spec, &facts(Some("backend:cudaMallocAsync"))).rule, Rule::Conflict);
        let native = decide(&spec, &facts(Some("backend:native")));
        assert_eq!(native.rule, Rule::Append);
        assert_eq!(
            set_value(&native),
            Some(("PYTORCH_NPU_ALLOC_CONF", "backend:native,expandable_segments:True".into()))
        );
        assert_eq!(decide(&spec, &facts(Some("backend:other"))).rule, Rule::Invalid);
    }

    #[test]
    fn conflicts_are_refused_with_advice() {
        for value in ["max_split_size_mb:256", "garbage_collection_threshold:0.6,page_size:1g"] {
            let d = decide(&SPEC, &facts(Some(value)));
            assert_eq!((d.rule, d.level, d.verdict()), (Rule::Conflict, Level::Warn, Verdict::Refused));
            assert!(d.message.contains("remove"), "{}", d.message);
        }
    }

    #[test]
    fn invalid_values_are_refused_quoting_the_problem() {
        let d = decide(&SPEC, &facts(Some("bogus:1")));
        assert_eq!(d.rule, Rule::Invalid);
        assert!(d.message.contains("Unrecognized CachingAllocator option: bogus"), "{}", d.message);
        let d = decide(&SPEC, &facts(Some("page_size:2m")));
        assert_eq!(d.rule, Rule::Invalid);
    }

    #[test]
    fn valid_values_get_the_pair_appended() {
        let d = decide(&SPEC, &facts(Some("page_size:1g")));
        assert_eq!(set_value(&d), Some(("PYTORCH_NPU_ALLOC_CONF", "page_size:1g,expandable_segments:True".into())));
        let d = decide(&SPEC, &facts(Some("page_size:1g, ")));
        assert_eq!(set_value(&d), Some(("PYTORCH_NPU_ALLOC_CONF", "page_size:1g, expandable_segments:True".into())));
    }

    #[test]
    fn the_generic_variable_is_used_when_alone_and_never_both() {
        let generic = Facts { generic: Some(b"page_size:1g".to_vec()), runtime_environment: true, ..Facts::default() };
        assert_eq!(
            set_value(&decide(&SPEC, &generic)),
            Some(("PYTORCH_ALLOC_CONF", "page_size:1g,expandable_segments:True".into()))
        );
        // Outside an Ascend deployment (a CUDA process) it is not ours to change.
        let elsewhere = decide(&SPEC, &Facts { runtime_environment: false, ..generic.clone() });
        assert_eq!((elsewhere.rule, elsewhere.action), (Rule::GenericOutsideRuntime, Action::Keep));
        assert!(elsewhere.message.contains("ASCEND_OPP_PATH"), "{}", elsewhere.message);
        let both = Facts { generic: Some(b"".to_vec()), specific: Some(b"".to_vec()), ..Facts::default() };
        let d = decide(&SPEC, &both);
        assert_eq!((d.rule, d.action), (Rule::BothSet, Action::Keep));
    }

    #[test]
    fn switches_come_first() {
        let base = Facts { argv: vec![b"--enable-sleep-mode".to_vec()], ..Facts::default() };
        let cases = [
            (Facts { disabled: true, ..base.clone() }, Rule::Disabled),
            (Facts { secure: true, ..base.clone() }, Rule::Secure),
            (Facts { normalize_off: true, ..base.clone() }, Rule::NormalizeOff),
            (base.clone(), Rule::MemoryPool),
        ];
        for (facts, rule) in cases {
            assert_eq!(decide(&SPEC, &facts).rule, rule);
        }
    }

    #[test]
    fn children_follow_the_marker() {
        let applied = decide(&SPEC, &facts(None));
        let marker = applied.marker().unwrap().render().into_bytes();
        let same = Facts { marker: Some(marker.clone()), ..facts(Some("expandable_segments:True")) };
        assert_eq!(decide(&SPEC, &same).rule, Rule::InheritedApplied);
        let removed = Facts { marker: Some(marker.clone()), ..facts(None) };
        assert_eq!(decide(&SPEC, &removed).rule, Rule::InheritedChanged);
        let kept = Facts { marker: Some(b"kept".to_vec()), ..facts(None) };
        assert_eq!(decide(&SPEC, &kept).rule, Rule::InheritedKept);
        let garbage = Facts { marker: Some(b"zzz".to_vec()), ..facts(None) };
        assert_eq!(decide(&SPEC, &garbage).rule, Rule::Unset);
    }

    #[test]
    fn children_say_what_they_inherited() {
        let applied = decide(&SPEC, &facts(None));
        let marker = applied.marker().unwrap().render().into_bytes();
        let same = decide(&SPEC, &Facts { marker: Some(marker.clone()), ..facts(Some("expandable_segments:True")) });
        assert_eq!(
            (same.level, same.message.as_str()),
            (
                Level::Info,
                "PYTORCH_NPU_ALLOC_CONF=\"expandable_segments:True\" (already applied by npu-alloc-shim); sleep mode started from Python (vLLM's CaMemAllocator) needs NPU_ALLOC_SHIM_NORMALIZE=0"
            )
        );
        let removed = decide(&SPEC, &Facts { marker: Some(marker), ..facts(None) });
        assert_eq!(removed.level, Level::Debug);
        // A conflict kept by the parent is the same warning in the child.
        let conflict = facts(Some("max_split_size_mb:256"));
        let parent = decide(&SPEC, &conflict);
        let child = decide(&SPEC, &Facts { marker: Some(b"kept".to_vec()), ..conflict });
        assert_eq!((child.rule, child.action, child.level), (Rule::InheritedKept, Action::Nothing, Level::Warn));
        assert_eq!(child.message, parent.message);
        // Kept for a reason of the parent's command line.
        let child = decide(&SPEC, &Facts { marker: Some(b"kept".to_vec()), ..facts(None) });
        assert_eq!(child.level, Level::Info);
        assert!(child.message.contains("a parent process decided so"), "{}", child.message);
    }

    #[test]
    fn appending_never_pushes_a_value_past_the_exec_limit() {
        let pair = ",expandable_segments:True".len();
        let room = MAX_ENV_STRING - "PYTORCH_NPU_ALLOC_CONF=".len() - 1 - pair;
        let fits = [b"page_size:1g".to_vec(), vec![b' '; room - 12]].concat();
        assert_eq!(decide(&SPEC, &Facts { specific: Some(fits.clone()), ..Facts::default() }).rule, Rule::Append);
        let too_long = [fits, vec![b' ']].concat();
        let d = decide(&SPEC, &Facts { specific: Some(too_long), ..Facts::default() });
        assert_eq!((d.rule, d.level, d.action), (Rule::Invalid, Level::Warn, Action::Keep));
        assert!(d.message.contains("execve"), "{}", d.message);
    }

    #[test]
    fn non_utf8_and_long_values_survive_whole() {
        let mut value = b"page_size:1g".to_vec();
        let d = decide(&SPEC, &Facts { specific: Some([value.clone(), vec![0xff]].concat()), ..Facts::default() });
        assert_eq!(d.rule, Rule::Invalid);
        value.extend(std::iter::repeat_n(b' ', 1 << 20));
        let d = decide(&SPEC, &Facts { specific: Some(value.clone()), ..Facts::default() });
        let Action::Set { value: new, .. } = d.action else { panic!("{:?}", d.rule) };
        assert_eq!(new.len(), value.len() + ",expandable_segments:True".len());
        assert!(d.message.len() < 1000);
    }

    /// CUDA's variables (opted in unless a test says otherwise).
    fn cuda(specific: Option<&str>, generic: Option<&str>) -> Facts {
        Facts {
            specific: specific.map(|s| s.as_bytes().to_vec()),
            generic: generic.map(|s| s.as_bytes().to_vec()),
            opted_in: true,
            ..Facts::default()
        }
    }

    #[test]
    fn cuda_changes_nothing_unless_opted_in() {
        use crate::runtime::cuda::SPEC as CUDA;
        for (specific, generic) in [(None, None), (Some("roundup_power2_divisions:4"), None), (None, Some("x:1"))] {
            let d = decide(&CUDA, &Facts { opted_in: false, ..cuda(specific, generic) });
            assert_eq!((d.rule, &d.action, d.marker()), (Rule::NotOptedIn, &Action::Nothing, None));
            assert!(d.message.contains("NPU_ALLOC_SHIM_CUDA_NORMALIZE=1"), "{}", d.message);
        }
        // The NPU has no such switch.
        assert_eq!(decide(&SPEC, &facts(None)).rule, Rule::Unset);
    }

    #[test]
    fn cuda_writes_its_own_variable_and_appends_to_the_generic_one_alone() {
        use crate::runtime::cuda::SPEC as CUDA;
        let d = decide(&CUDA, &cuda(None, None));
        assert_eq!(set_value(&d), Some(("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True".into())));
        let d = decide(&CUDA, &cuda(Some("max_split_size_mb:128"), None));
        assert_eq!(
            set_value(&d),
            Some(("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128,expandable_segments:True".into()))
        );
        // No deployment marker is needed on CUDA: the operator opted in.
        let d = decide(&CUDA, &cuda(None, Some("roundup_power2_divisions:4")));
        assert_eq!(
            set_value(&d),
            Some(("PYTORCH_ALLOC_CONF", "roundup_power2_divisions:4,expandable_segments:True".into()))
        );
        // Both set: every line reads PYTORCH_CUDA_ALLOC_CONF alone (measured).
        let d = decide(&CUDA, &cuda(Some("max_split_size_mb:128"), Some("roundup_power2_divisions:4")));
        assert_eq!(
            set_value(&d),
            Some(("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128,expandable_segments:True".into()))
        );
    }

    #[test]
    fn the_key_set_by_hand_beside_a_conflicting_key_is_left_alone_with_a_warning() {
        let d = decide(&SPEC, &facts(Some("max_split_size_mb:256,expandable_segments:True")));
        assert_eq!((d.rule, d.level, &d.action), (Rule::HasKey, Level::Warn, &Action::Keep));
        assert!(d.message.contains("together with max_split_size_mb"), "{}", d.message);
        assert!(d.message.contains("fail at the first NPU allocation"), "{}", d.message);
        // Turned off by hand, or on without a conflict: nothing to say.
        for value in ["max_split_size_mb:256,expandable_segments:False", "page_size:1g,expandable_segments:True"] {
            assert_eq!(decide(&SPEC, &facts(Some(value))).level, Level::Debug, "{value}");
        }
        use crate::runtime::cuda::SPEC as CUDA;
        let d = decide(&CUDA, &cuda(Some("backend:cudaMallocAsync,expandable_segments:True"), None));
        assert_eq!((d.rule, d.level), (Rule::HasKey, Level::Warn));
        assert!(d.message.contains("has no expandable segments"), "{}", d.message);
    }

    #[test]
    fn an_inherited_write_is_undone_where_the_process_must_not_have_it() {
        let inherited = |value: &str| {
            let written = decide(&SPEC, &facts(Some(value).filter(|v| !v.is_empty())));
            let Action::Set { value: new, .. } = &written.action else { panic!("{value:?}") };
            Facts {
                specific: Some(new.clone()),
                marker: written.marker().map(|m| m.render().into_bytes()),
                normalize_off: true,
                ..Facts::default()
            }
        };
        for (value, back) in
            [("", None), ("page_size:1g", Some("page_size:1g")), ("page_size:1g,", Some("page_size:1g"))]
        {
            let d = decide(&SPEC, &inherited(value));
            assert_eq!(d.rule, Rule::Undone, "{value:?}: {}", d.message);
            let Action::Undo { var, value: got } = &d.action else { panic!("{:?}", d.action) };
            assert_eq!((*var, got.as_deref()), ("PYTORCH_NPU_ALLOC_CONF", back.map(str::as_bytes)), "{value:?}");
            assert_eq!(d.marker(), Some(Marker::Kept));
        }
        // A sleep-mode flag undoes it too; changed since, or no marker: not ours.
        let flagged = Facts { normalize_off: false, argv: vec![b"--enable-sleep-mode".to_vec()], ..inherited("") };
        assert_eq!(decide(&SPEC, &flagged).rule, Rule::Undone);
        let changed = Facts { specific: Some(b"page_size:1g".to_vec()), ..inherited("") };
        assert_eq!(decide(&SPEC, &changed).rule, Rule::NormalizeOff);
        let unmarked = Facts { marker: None, ..inherited("") };
        assert_eq!(decide(&SPEC, &unmarked).rule, Rule::NormalizeOff);
    }

    #[test]
    fn cuda_changes_nothing_in_an_ascend_deployment() {
        use crate::runtime::cuda::SPEC as CUDA;
        let ascend = CUDA.other_deployment(|name| name == "ASCEND_OPP_PATH");
        assert_eq!(ascend, Some(("torch_npu", "ASCEND_OPP_PATH")));
        assert_eq!(CUDA.other_deployment(|_| false), None);
        assert_eq!(SPEC.other_deployment(|_| true), None, "CUDA has no deployment markers");
        for (specific, generic) in [(None, None), (None, Some("max_split_size_mb:256")), (Some("page_size:1g"), None)] {
            let d = decide(&CUDA, &Facts { other_deployment: ascend, ..cuda(specific, generic) });
            assert_eq!((d.rule, &d.action), (Rule::OtherDeployment, &Action::Keep), "{specific:?} {generic:?}");
            assert!(d.message.contains("torch_npu deployment (ASCEND_OPP_PATH is set)"), "{}", d.message);
        }
    }

    #[test]
    fn cuda_leaves_the_async_backend_sleep_mode_and_an_explicit_choice_alone() {
        use crate::runtime::cuda::SPEC as CUDA;
        let d = decide(&CUDA, &cuda(Some("backend:cudaMallocAsync"), None));
        assert_eq!((d.rule, &d.action), (Rule::Conflict, &Action::Keep));
        assert_eq!(decide(&CUDA, &cuda(Some("backend:native"), None)).rule, Rule::Append);
        let d = decide(&CUDA, &cuda(Some("expandable_segments:False"), None));
        assert_eq!((d.rule, &d.action), (Rule::HasKey, &Action::Keep));
        for flag in ["--enable-sleep-mode", "--enable-memory-saver", "--kv-transfer-config"] {
            let argv = vec![b"vllm".to_vec(), b"serve".to_vec(), flag.as_bytes().to_vec()];
            let d = decide(&CUDA, &Facts { argv, ..cuda(None, None) });
            assert_eq!((d.rule, &d.action), (Rule::MemoryPool, &Action::Keep), "{flag}");
        }
        let argv = ["vllm", "serve", "m", "-tp", "2"].map(|a| a.as_bytes().to_vec()).to_vec();
        let d = decide(&CUDA, &Facts { argv, ..cuda(None, None) });
        assert_eq!((d.rule, &d.action), (Rule::KnownBreakage, &Action::Keep));
        assert!(d.message.contains("--disable-custom-all-reduce"), "{}", d.message);
        let d = decide(&CUDA, &cuda(Some("Unknown_key:1"), None));
        assert_eq!((d.rule, d.level), (Rule::Invalid, Level::Warn));
    }
}
