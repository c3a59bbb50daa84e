//! Issue 16, the seed system: vllm-ascend 0.23.0 still appends
//! `,expandable_segments:True` itself (tests/fixtures/vllm_ascend_step.py, a
//! cited extraction of its platform.py). After the library, its step must
//! change nothing for every value the library writes: no doubled key, no
//! leading comma.

use serde_json::Value;
use support::fixtures as common;

/// The value after the library, and after vllm-ascend's step on top of it.
fn both(value: Option<&str>) -> (Option<String>, String) {
    let mut command = support::preloaded("python3");
    command.arg(support::repo().join("tests/fixtures/vllm_ascend_step.py"));
    if let Some(value) = value {
        command.env("PYTORCH_NPU_ALLOC_CONF", value);
    }
    let output = common::ok(&mut command);
    let line: Value = common::json_lines(&output).pop().expect("the step's JSON line");
    (line["after_library"].as_str().map(str::to_owned), line["after_vllm_ascend"].as_str().unwrap().to_owned())
}

#[test]
fn vllm_ascends_own_step_changes_nothing_the_library_wrote() {
    // Values the library appends to or sets, in both tokenizer dialects.
    let written = [
        None,
        Some("page_size:1g"),
        Some("page_size:1g,"),
        Some(" page_size : 1g "),
        Some("segment_size_mb:64,pinned_mem_register:True"),
        Some("roundup_power2_divisions:[256:1,512:2]"),
        Some("base_addr_aligned_kb:16"),
    ];
    for value in written {
        let (library, vllm_ascend) = both(value);
        let library = library.unwrap_or_else(|| panic!("the library wrote nothing for {value:?}"));
        assert!(library.ends_with("expandable_segments:True"), "{value:?} -> {library:?}");
        assert_eq!(library.matches("expandable_segments").count(), 1, "{value:?} -> {library:?}");
        assert_eq!(vllm_ascend, library, "vllm-ascend changed what the library wrote for {value:?}");
    }
}

#[test]
fn without_the_library_vllm_ascends_step_has_the_bugs_the_library_avoids() {
    // The extraction is vllm-ascend's, bugs included: what the library
    // writes instead is in the test above.
    let step = |value: &str| {
        let mut command = support::clean_command("python3");
        command.arg(support::repo().join("tests/fixtures/vllm_ascend_step.py")).env("PYTORCH_NPU_ALLOC_CONF", value);
        let output = common::ok(&mut command);
        common::json_lines(&output).pop().expect("JSON")["after_vllm_ascend"].as_str().unwrap().to_owned()
    };
    // Empty: torch_npu refuses the leading comma ("Unrecognized CachingAllocator option: ,").
    assert_eq!(step(""), ",expandable_segments:True");
    // A trailing comma doubles it.
    assert_eq!(step("page_size:1g,"), "page_size:1g,,expandable_segments:True");
}
