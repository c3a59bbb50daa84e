//! Detects, from a command line, programs whose allocator pools device memory
//! itself (RL sleep mode, memory savers). Those must keep their configuration:
//! vllm-ascend's `CaMemAllocator` refuses expandable segments. Which flags
//! say so is a runtime fact (`RuntimeSpec::memory_pool_flags`).

/// Returns the argument that shows a memory-pooling mode, if any: one of
/// `flags` (compared after lowercasing and mapping `_` to `-`, alone or
/// `=true`), or a Hydra override `…enable_sleep_mode=true`.
pub fn memory_pool_flag(argv: &[Vec<u8>], flags: &[&str]) -> Option<String> {
    argv.iter().find(|arg| enables_memory_pool(arg, flags)).map(|arg| String::from_utf8_lossy(arg).into_owned())
}

fn enables_memory_pool(arg: &[u8], flags: &[&str]) -> bool {
    let lowered: Vec<u8> = arg.iter().map(u8::to_ascii_lowercase).collect();
    let (name, value) = match lowered.iter().position(|&b| b == b'=') {
        Some(eq) => (&lowered[..eq], Some(&lowered[eq + 1..])),
        None => (&lowered[..], None),
    };
    // A Hydra override: `actor_rollout_ref.rollout.enable_sleep_mode=true`, maybe `+`-prefixed.
    if let Some(value) = value
        && !name.starts_with(b"--")
        && name.ends_with(b"enable_sleep_mode")
    {
        return is_true(value);
    }
    let dashed: Vec<u8> = name.iter().map(|&b| if b == b'_' { b'-' } else { b }).collect();
    flags.iter().any(|flag| flag.as_bytes() == dashed.as_slice()) && value.is_none_or(is_true)
}

fn is_true(value: &[u8]) -> bool {
    matches!(value, b"true" | b"1" | b"yes" | b"on")
}

#[cfg(test)]
mod tests {
    use super::memory_pool_flag;

    fn detect(args: &[&str]) -> Option<String> {
        let argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        memory_pool_flag(&argv, crate::runtime::npu::SPEC.memory_pool_flags)
    }

    #[test]
    fn detects_every_documented_form_in_any_case() {
        for flag in [
            "--enable-sleep-mode",
            "--ENABLE-SLEEP-MODE",
            "--enable_sleep_mode",
            "--enable-sleep-mode=true",
            "--vllm.enable_sleep",
            "--vllm_enable_sleep",
            "--vllm_enable_sleep_mode",
            "--vllm_enable_sleep_mode=true",
            "actor_rollout_ref.rollout.enable_sleep_mode=true",
            "+actor_rollout_ref.rollout.enable_sleep_mode=True",
            "enable_sleep_mode=TRUE",
            "--enable-memory-saver",
            "--enable_memory_saver",
        ] {
            assert_eq!(detect(&["python", "-m", "x", flag]).as_deref(), Some(flag), "{flag}");
        }
    }

    #[test]
    fn ignores_false_values_and_lookalikes() {
        for flag in [
            "--enable-sleep-mode=false",
            "actor_rollout_ref.rollout.enable_sleep_mode=false",
            "--enable-sleep-mode-x",
            "--no-enable-sleep-mode",
            "enable-sleep-mode",
            "--enable-memory-saver=0",
            "--vllm.enable_sleep_level=1",
            "sleep_mode=true",
        ] {
            assert_eq!(detect(&["vllm", "serve", flag]), None, "{flag}");
        }
    }
}
