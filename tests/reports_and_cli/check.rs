//! `npu-alloc-shim check`: exit statuses, the JSON report, agreement with
//! what the preloaded library really does, and the installed-version report
//! (fake site-packages and driver version files).

use serde_json::Value;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::probes;

/// The CLI with a clean environment, a real Python and no driver file.
fn check() -> Command {
    let mut command = support::clean_command(support::cli());
    command
        .arg("check")
        .arg("--python")
        .arg(probes::python())
        .args(["--driver-version-file", "/nonexistent/version.info"]);
    command
}

fn run(command: &mut Command) -> Output {
    support::run_with_timeout(command, support::LIMIT)
}

/// `check --json`: the report and the exit status, which must agree.
fn json(command: &mut Command) -> (Value, i32) {
    let out = run(command.arg("--json"));
    let code = out.status.code().expect("exit status");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(report["exit_status"], code, "{report}");
    (report, code)
}

#[test]
fn exit_statuses_tell_would_change_unchanged_and_refused() {
    let cases = [
        ("page_size:1g", 0, "append"),
        ("", 1, "set-empty"),
        ("expandable_segments:True", 1, "has-key"),
        ("expandable_segments:False", 1, "has-key"),
        ("max_split_size_mb:256", 2, "conflict"),
        ("bogus:1", 2, "invalid"),
    ];
    for (value, code, rule) in cases {
        let out = run(check().arg(value));
        assert_eq!(out.status.code(), Some(code), "{value}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("rule:    {rule}\n")), "{text}");
        assert!(text.contains(&format!("(exit status {code})")), "{text}");
        let (report, _) = json(check().arg(value));
        assert_eq!(report["rule"], rule);
    }
}

#[test]
fn usage_errors_exit_64_and_help_documents_the_statuses() {
    for args in [&["--bogus"][..], &["a", "b"], &["--python"]] {
        let out = run(support::clean_command(support::cli()).arg("check").args(args));
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
    let out = run(support::clean_command(support::cli()).args(["check", "--help"]));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        "Exit status:",
        "0   the library would change",
        "1   it would leave",
        "2   it would refuse",
        "64  the command line",
    ] {
        assert!(help.contains(text), "{text:?} in {help}");
    }
}

/// Environment pairs, the exit status and the rule they lead to.
type EnvCase = (&'static [(&'static str, &'static str)], i32, &'static str);

#[test]
fn without_a_value_the_environment_is_read_as_the_library_reads_it() {
    const OPP: (&str, &str) = ("ASCEND_OPP_PATH", "/usr/local/Ascend/ascend-toolkit/latest/opp");
    let cases: [EnvCase; 10] = [
        (&[], 0, "unset"),
        (&[("PYTORCH_NPU_ALLOC_CONF", "page_size:1g")], 0, "append"),
        (&[("PYTORCH_ALLOC_CONF", "page_size:1g"), OPP], 0, "append"),
        // Outside an Ascend deployment the generic variable may be a CUDA process's.
        (&[("PYTORCH_ALLOC_CONF", "page_size:1g")], 1, "generic-outside-runtime"),
        (&[("PYTORCH_NPU_ALLOC_CONF", ""), ("PYTORCH_ALLOC_CONF", "")], 2, "both-set"),
        (&[("NPU_ALLOC_SHIM_DISABLE", "yes")], 1, "disabled"),
        (&[("NPU_ALLOC_SHIM_NORMALIZE", "off")], 1, "normalize-off"),
        (&[("NPU_ALLOC_SHIM_NORMALIZE", "")], 1, "normalize-off"),
        (&[("NPU_ALLOC_SHIM_DECISION", "kept")], 1, "inherited-kept"),
        (&[("NPU_ALLOC_SHIM_DISABLE", "maybe")], 0, "unset"),
    ];
    for (env, code, rule) in cases {
        let mut command = check();
        command.envs(env.iter().copied());
        let (report, status) = json(&mut command);
        assert_eq!((status, report["rule"].as_str().unwrap()), (code, rule), "{env:?}: {report}");
        assert_eq!(report["source"], "environment");
    }
    // The generic variable alone is the one reported and changed.
    let mut command = check();
    command.env("PYTORCH_ALLOC_CONF", "page_size:1g").env(OPP.0, OPP.1);
    let (report, _) = json(&mut command);
    assert_eq!(report["variable"]["name"], "PYTORCH_ALLOC_CONF");
    assert_eq!(report["result"]["name"], "PYTORCH_ALLOC_CONF");
    assert_eq!(report["result"]["value"], "page_size:1g,expandable_segments:True");
    // An unrecognised switch is noted, as the library warns about it.
    let mut command = check();
    command.env("NPU_ALLOC_SHIM_DISABLE", "maybe");
    let (report, _) = json(&mut command);
    assert!(report["notes"][0].as_str().unwrap().contains("NPU_ALLOC_SHIM_DISABLE"), "{report}");
}

#[test]
fn a_value_is_judged_alone_and_a_command_after_dashes_is_the_sleep_mode_argv() {
    let mut command = check();
    command
        .arg("page_size:1g")
        .env("NPU_ALLOC_SHIM_DISABLE", "1")
        .env("PYTORCH_ALLOC_CONF", "x")
        .env("NPU_ALLOC_SHIM_DECISION", "kept");
    let (report, code) = json(&mut command);
    assert_eq!((code, report["rule"].as_str().unwrap()), (0, "append"), "{report}");
    assert_eq!(report["source"], "argument");
    assert_eq!(report["other"], Value::Null);

    for args in [
        &["vllm", "serve", "--enable-sleep-mode"][..],
        &["python", "-m", "verl", "actor_rollout_ref.rollout.enable_sleep_mode=true"],
    ] {
        let out = run(check().arg("page_size:1g").arg("--").args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("rule:    memory-pool"));
    }
}

#[test]
fn check_predicts_exactly_what_the_library_does() {
    let values: [&[u8]; 14] = [
        b"",
        b"  ",
        b"page_size:1g",
        b"page_size:1g,",
        b"page_size:1g, ",
        b"expandable_segments:False",
        b" expandable_segments : True",
        b"pin_memory_expandable_segments:True",
        b"max_split_size_mb:256",
        b"garbage_collection_threshold:0.6",
        b"bogus:1",
        b"page_size:\t1g",
        b"segment_size_mb:64",
        b"page_size:1g\xff",
    ];
    for value in values {
        let mut command = check();
        command.arg(OsStr::from_bytes(value));
        let (report, _) = json(&mut command);
        let mut probe = probes::Probe::C.command(true, &[]);
        probes::env_bytes(&mut probe, probes::SPECIFIC, value);
        let seen = probes::run(&mut probe);
        let actual = seen.view().specific.clone().expect("set");
        let predicted = match &report["result"] {
            Value::Null => value.to_vec(),
            result => result["value"].as_str().unwrap().as_bytes().to_vec(),
        };
        assert_eq!(actual, predicted, "{}: {report}", value.escape_ascii());
        // And the message is the library's line.
        let line = seen.lines().first().map(|l| l.to_string());
        let message = report["message"].as_str().unwrap();
        if let Some(line) = line {
            assert!(line.ends_with(message), "{line} vs {message}");
        }
    }
}

#[test]
fn json_reports_both_parses_with_the_lines_that_accept_each_key() {
    let mut command = check();
    command.arg("page_size:\t1g");
    let (report, code) = json(&mut command);
    assert_eq!(code, 0);
    let parses = report["parses"].as_array().unwrap();
    assert_eq!(parses.len(), 2);
    assert_eq!(parses[0]["dialect"], "strict");
    assert!(parses[0]["error"].as_str().unwrap().contains("page_size only accepts"), "{report}");
    assert_eq!(parses[1]["dialect"], "lenient");
    assert_eq!(parses[1]["error"], Value::Null);
    assert_eq!(parses[1]["entries"][0]["key"], "page_size");
    // Which releases know it: from the survey of the wheels (crates/common/data).
    assert!(
        parses[1]["entries"][0]["accepted_by"]
            .as_str()
            .unwrap()
            .ends_with("torch_npu releases, 2.1.0.post12 to 2.14.0")
    );
    assert!(report["message"].as_str().unwrap().contains("older torch_npu rejects this value already"));

    let mut command = check();
    command.arg("segment_size_mb:64,release_lock_on_npumalloc:True");
    let (report, _) = json(&mut command);
    let entries = &report["parses"][1]["entries"];
    assert!(entries[0]["accepted_by"].as_str().unwrap().ends_with("torch_npu releases, 2.6.0.post5 to 2.14.0"));
    assert!(entries[1]["accepted_by"].as_str().unwrap().ends_with("torch_npu releases, 2.7.1.post11 to 2.14.0"));
    assert_eq!(report["marker"].as_str().map(|m| m.starts_with("set:PYTORCH_NPU_ALLOC_CONF:")), Some(true));
}

#[test]
fn non_utf8_values_are_quoted_in_text_and_json() {
    let mut command = check();
    command.arg(OsStr::from_bytes(b"page_size:1g\xff"));
    let (report, code) = json(&mut command);
    assert_eq!(code, 2);
    assert_eq!(report["variable"]["quoted"], "\"page_size:1g\\xff\"");
    let out = run(check().arg(OsStr::from_bytes(b"page_size:1g\xff")));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("PYTORCH_NPU_ALLOC_CONF=\"page_size:1g\\xff\" (from the argument)")
    );
}

/// A site-packages folder with an installed torch_npu of this version, as a
/// wheel leaves it (dist-info) or as a source tree does (version.py only).
fn fake_site(dir: &Path, version: &str, dist_info: bool) -> PathBuf {
    let site = dir.join(format!("site-{version}-{dist_info}"));
    let package = site.join("torch_npu");
    std::fs::create_dir_all(&package).unwrap();
    // check must find the version without importing the package.
    std::fs::write(package.join("__init__.py"), "raise RuntimeError('torch_npu was imported')\n").unwrap();
    std::fs::write(package.join("version.py"), format!("__version__ = '{version}'\ngit_version = 'abc'\n")).unwrap();
    if dist_info {
        let info = site.join(format!("torch_npu-{version}.dist-info"));
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("METADATA"), format!("Metadata-Version: 2.1\nName: torch_npu\nVersion: {version}\n"))
            .unwrap();
    }
    site
}

fn with_site(site: &Path, value: &str) -> (Value, i32) {
    let mut command = check();
    command.arg(value).env("PYTHONPATH", site);
    json(&mut command)
}

fn warnings(report: &Value) -> Vec<String> {
    report["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

#[test]
fn an_installed_2_5_1_is_found_and_rejects_newer_keys() {
    let scratch = tempfile::tempdir().unwrap();
    let site = fake_site(scratch.path(), "2.5.1", true);
    let (report, code) = with_site(&site, "segment_size_mb:64,page_size:1g");
    assert_eq!(code, 0, "the version report never changes the status");
    assert_eq!(report["framework"]["found"]["version"], "2.5.1", "{report}");
    assert_eq!(report["framework"]["found"]["source"], "importlib.metadata");
    assert_eq!((report["runtime"].as_str(), report["framework"]["package"].as_str()), (Some("npu"), Some("torch_npu")));
    let warnings = warnings(&report);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("torch_npu 2.5.1 rejects segment_size_mb (its parser does not know it"));
    let entries = &report["parses"][1]["entries"];
    assert_eq!(entries[0]["installed"], "rejected");
    assert_eq!(entries[1]["installed"], "accepted");
    // The text form says the same.
    let mut command = check();
    command.arg("segment_size_mb:64").env("PYTHONPATH", &site);
    let text = String::from_utf8_lossy(&run(&mut command).stdout).into_owned();
    assert!(text.contains("torch_npu: 2.5.1 (from importlib.metadata)"), "{text}");
    assert!(text.contains("warning: torch_npu 2.5.1 rejects segment_size_mb"), "{text}");
}

#[test]
fn the_generic_variable_is_flagged_where_torch_npu_ignores_it() {
    let scratch = tempfile::tempdir().unwrap();
    let site = fake_site(scratch.path(), "2.10.0.post4", true);
    let mut command = check();
    command
        .env("PYTHONPATH", &site)
        .env("PYTORCH_ALLOC_CONF", "page_size:1g")
        .env("ASCEND_HOME_PATH", "/usr/local/Ascend");
    let (report, code) = json(&mut command);
    assert_eq!(code, 0);
    assert_eq!(
        warnings(&report),
        ["torch_npu 2.10.0.post4 reads only PYTORCH_NPU_ALLOC_CONF: PYTORCH_ALLOC_CONF has no effect there, \
          with or without the library; set PYTORCH_NPU_ALLOC_CONF instead"]
    );
}

#[test]
fn version_py_is_read_without_importing_torch_npu() {
    let scratch = tempfile::tempdir().unwrap();
    let site = fake_site(scratch.path(), "2.1.0", false);
    let (report, _) = with_site(&site, "");
    let found = &report["framework"]["found"];
    assert_eq!(found["version"], "2.1.0", "{report}");
    assert!(found["source"].as_str().unwrap().ends_with("torch_npu/version.py"));
    assert!(
        warnings(&report)[0].starts_with("torch_npu 2.1.0 rejects expandable_segments (accepted from 2.1.0.post3"),
        "{report}"
    );
}

#[test]
fn every_surveyed_version_is_answered_exactly_and_others_by_their_line() {
    let scratch = tempfile::tempdir().unwrap();
    // 2.7.1 itself lacks segment_size_mb (2.7.1.post2 on has it): the survey knows.
    let (report, _) = with_site(&fake_site(scratch.path(), "2.7.1", true), "segment_size_mb:64");
    assert!(warnings(&report)[0].starts_with("torch_npu 2.7.1 rejects segment_size_mb"), "{report}");
    // An unsurveyed 2.7.1 release: its line's releases differ.
    let (report, _) = with_site(&fake_site(scratch.path(), "2.7.1.post99", true), "segment_size_mb:64");
    assert!(warnings(&report)[0].contains("may reject segment_size_mb"), "{report}");
    // The newest line knows the keys that newer lines added; 2.10.0.post4 does not.
    let value = "pinned_max_cached_size_mb:64,release_lock_on_npumalloc:True";
    let (report, code) = with_site(&fake_site(scratch.path(), "2.14.0", true), value);
    assert_eq!((code, warnings(&report).len()), (0, 0), "{report}");
    let (report, _) = with_site(&fake_site(scratch.path(), "2.10.0.post4", true), value);
    let warnings = warnings(&report);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("rejects")), "{warnings:?}");
}

#[test]
fn both_variables_set_are_a_hard_error_on_the_lines_that_say_so() {
    let scratch = tempfile::tempdir().unwrap();
    let both = |version: &str| {
        let site = fake_site(scratch.path(), version, true);
        let mut command = check();
        command
            .env("PYTHONPATH", &site)
            .env("PYTORCH_NPU_ALLOC_CONF", "page_size:1g")
            .env("PYTORCH_ALLOC_CONF", "page_size:1g");
        json(&mut command).0
    };
    let report = both("2.14.0");
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("refuses PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF set together")),
        "{report}"
    );
    let report = both("2.10.0.post4");
    assert!(!warnings(&report).iter().any(|w| w.contains("set together")), "{report}");
}

#[test]
fn python3_from_path_is_the_default_and_a_missing_python_is_no_failure() {
    let scratch = tempfile::tempdir().unwrap();
    let site = fake_site(scratch.path(), "2.5.1", true);
    let bin = scratch.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(probes::python(), bin.join("python3")).unwrap();
    let mut command = support::clean_command(support::cli());
    command
        .args(["check", "page_size:1g"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("PYTHONPATH", &site);
    let (report, _) = json(&mut command);
    assert_eq!(report["framework"]["found"]["version"], "2.5.1", "{report}");

    let mut command = support::clean_command(support::cli());
    command.args(["check", "page_size:1g", "--python", "/nonexistent/python3"]);
    let (report, code) = json(&mut command);
    assert_eq!(code, 0);
    assert!(report["framework"]["error"].as_str().unwrap().starts_with("cannot run /nonexistent/python3"));
}

fn with_driver(text: &str) -> (Value, String) {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("version.info");
    std::fs::write(&file, text).unwrap();
    let mut command = support::clean_command(support::cli());
    command.args(["check", "page_size:1g", "--python", "/nonexistent/python3", "--driver-version-file"]).arg(&file);
    let (report, code) = json(&mut command);
    assert_eq!(code, 0, "{report}");
    (report, file.display().to_string())
}

#[test]
fn the_driver_version_file_is_read_and_old_drivers_warned_about() {
    let (report, file) = with_driver("package_name=Ascend-hdk\nVersion=22.0.0\n");
    assert_eq!(report["driver"]["found"]["version"], "22.0.0");
    assert_eq!(report["driver"]["found"]["source"], file.as_str());
    assert_eq!(warnings(&report), ["Ascend driver 22.0.0 lacks expandable segments (they need HDK 23.0.0 or later)"]);
    let (report, _) = with_driver("Version=23.0.3\n");
    assert!(warnings(&report)[0].contains("cannot use several cards"), "{report}");
    let (report, _) = with_driver("version=24.1.rc3\n");
    assert!(warnings(&report).is_empty(), "{report}");
    let (report, file) = with_driver("nothing here\n");
    assert_eq!(report["driver"]["error"], format!("{file}: no Version= line"));
    // Missing: reported, not fatal.
    let (report, _) = json(check().arg("page_size:1g"));
    assert!(report["driver"]["error"].as_str().unwrap().starts_with("/nonexistent/version.info: "));
}

#[test]
fn cuda_is_checked_as_with_its_switch_and_says_when_the_switch_is_off() {
    let (report, code) = json(check().args(["--runtime", "cuda", "max_split_size_mb:128"]));
    assert_eq!((code, report["rule"].as_str().unwrap()), (0, "append"), "{report}");
    assert_eq!(report["result"]["name"], "PYTORCH_CUDA_ALLOC_CONF");
    assert_eq!(report["result"]["value"], "max_split_size_mb:128,expandable_segments:True");
    // The framework looked up is torch's.
    assert_eq!((report["runtime"].as_str(), report["framework"]["package"].as_str()), (Some("cuda"), Some("torch")));
    // CUDA's lines have one tokenizer.
    assert_eq!(report["parses"].as_array().unwrap().len(), 1, "{report}");
    // From the environment, without the switch: what it would do, and that it will not.
    let (report, code) = json(check().args(["--runtime", "cuda"]));
    assert_eq!(
        (code, report["rule"].as_str().unwrap(), report["verdict"].as_str().unwrap()),
        (1, "unset", "unchanged")
    );
    assert!(report["notes"][0].as_str().unwrap().contains("NPU_ALLOC_SHIM_CUDA_NORMALIZE is not 1"), "{report}");
    let (report, code) = json(
        check()
            .args(["--runtime", "cuda"])
            .env("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1")
            .env("PYTORCH_ALLOC_CONF", "backend:cudaMallocAsync"),
    );
    assert_eq!((code, report["rule"].as_str().unwrap()), (2, "conflict"), "{report}");
    assert!(report["message"].as_str().unwrap().contains("has no expandable segments"), "{report}");
    let (report, code) = json(check().args(["--runtime", "cuda"]).env("NPU_ALLOC_SHIM_CUDA_NORMALIZE", "1"));
    assert_eq!((code, report["rule"].as_str().unwrap()), (0, "unset"), "{report}");
    assert!(report["notes"].as_array().unwrap().is_empty(), "{report}");
}
