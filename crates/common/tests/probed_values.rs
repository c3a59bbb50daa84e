//! The NPU value rules held to the real parsers (issue 16). Every verdict of
//! every hosted torch_npu line's own parser on every key x 12 value shapes
//! (`scripts/torch-npu-matrix.sh` -> `data/torch-npu-values.json`, probed by
//! tests/fixtures/value_probe.py on the simulated runtime) is data here, so a
//! change to a key's rule that stops matching what the lines accept fails
//! without any wheel installed. (That what the library writes keeps each
//! line's verdict is checked on the real parsers themselves, in
//! tests/real_clients/torch_npu.rs.)

use common::allocconf::decide::{self, Action, Facts};
use common::runtime::npu::{KEYS, SPEC};
use serde_json::Value;
use std::collections::BTreeSet;

const DATA: &str = include_str!("../data/torch-npu-values.json");

/// Whether the library leaves `key`'s accepted values alone on purpose: it
/// conflicts with expandable segments, or sets it.
fn left_alone(key: &str) -> bool {
    key == SPEC.enable_key || SPEC.conflicts.iter().any(|conflict| conflict.key == key)
}

/// (line, torch_npu version, config, verdict) for every probe.
fn verdicts() -> Vec<(String, String, String, String)> {
    let data: Value = serde_json::from_str(DATA).expect("data/torch-npu-values.json is JSON");
    let lines = data["lines"].as_object().expect("a \"lines\" object");
    let mut all = Vec::new();
    for (line, entry) in lines {
        let version = entry["torch_npu"].as_str().expect("torch_npu version").to_owned();
        for (config, verdict) in entry["verdicts"].as_object().expect("verdicts") {
            all.push((line.clone(), version.clone(), config.clone(), verdict.as_str().expect("a string").to_owned()));
        }
    }
    all
}

fn appends(config: &str) -> bool {
    let facts = Facts { specific: Some(config.as_bytes().to_vec()), ..Facts::default() };
    matches!(decide::decide(&SPEC, &facts).action, Action::Set { .. })
}

#[test]
fn every_value_a_line_accepts_gets_expandable_segments_unless_it_conflicts() {
    let all = verdicts();
    let mut wrong = Vec::new();
    let mut accepted = 0;
    for (line, version, config, verdict) in &all {
        let key = config.split(':').next().unwrap_or_default();
        if verdict != "accepted" || left_alone(key) {
            continue;
        }
        accepted += 1;
        if !appends(config) {
            wrong.push(format!("{line} ({version}) accepts {config:?}; the library leaves it alone"));
        }
    }
    println!("{} verdicts, {accepted} accepted values of keys that take expandable segments", all.len());
    assert!(accepted > 0, "the data holds no accepted value: the check would be empty");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_data_covers_the_lines_ci_runs_and_every_known_key() {
    let all = verdicts();
    let lines: BTreeSet<&str> = all.iter().map(|(line, ..)| line.as_str()).collect();
    for pinned in ["2.5", "2.10", "2.14"] {
        assert!(lines.contains(pinned), "no verdicts of line {pinned}: run scripts/torch-npu-matrix.sh {pinned}");
    }
    // A key the survey adds is probed before its rule is trusted.
    for line in &lines {
        let probed: BTreeSet<&str> = all
            .iter()
            .filter(|(l, ..)| l == line)
            .map(|(_, _, config, _)| config.split(':').next().unwrap_or_default())
            .collect();
        for key in KEYS.iter().map(|k| k.name) {
            assert!(probed.contains(key), "line {line}: {key} not probed: run scripts/torch-npu-matrix.sh {line}");
        }
    }
}
