//! What torch and NVIDIA driver versions mean for the CUDA allocator
//! configuration (`npu-alloc-shim check`). Thresholds from
//! shared/notes/cuda.md and docs/cuda-variables.md (measured on the wheels).

use crate::runtime::keys::{Acceptance, Since};
use crate::version::{Version, known};

/// First torch release whose CUDA allocator knows `expandable_segments`.
pub const TORCH_EXPANDABLE_SINCE: &str = "2.1.0";
/// The line checked to accept every key of the table (`Since::Newer` included).
pub const TORCH_CHECKED_LINE: (u64, u64) = (2, 10);
/// First line that reads `PYTORCH_ALLOC_CONF` on CUDA (2.5.1, 2.8.0 and
/// 2.9.1 ignore it; measured, docs/cuda-variables.md).
pub const TORCH_GENERIC_VARIABLE_SINCE: (u64, u64) = (2, 10);

/// The driver version from `/proc/driver/nvidia/version`
/// (`NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar …`).
pub fn driver_version(text: &str) -> Option<Version> {
    let line = text.lines().find(|line| line.starts_with("NVRM version:"))?;
    let after = line.split("Kernel Module").nth(1)?;
    Version::parse(after.split_whitespace().next()?)
}

/// What torch of this version does with a key accepted since `since`: the
/// 2.10 line was checked against the table; older lines may lack newer keys.
pub fn acceptance(torch: &Version, since: Since) -> Acceptance {
    match since {
        Since::Legacy => Acceptance::Accepted,
        _ if torch.line() >= TORCH_CHECKED_LINE => Acceptance::Accepted,
        _ => Acceptance::MayBeRejected,
    }
}

/// Whether this torch reads `PYTORCH_ALLOC_CONF` for its CUDA allocator.
pub fn torch_reads_generic_variable(torch: &Version) -> bool {
    torch.line() >= TORCH_GENERIC_VARIABLE_SINCE
}

/// Warnings about an installed torch and the keys of a value.
pub fn torch_warnings(torch: &Version, keys: &[(&str, Since)]) -> Vec<String> {
    let v = torch.as_str();
    let mut warnings = Vec::new();
    if *torch < known(TORCH_EXPANDABLE_SINCE) {
        warnings.push(format!(
            "torch {v} does not know expandable_segments (added in {TORCH_EXPANDABLE_SINCE}): \
             it refuses the key; upgrade torch or leave NPU_ALLOC_SHIM_CUDA_NORMALIZE unset"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for &(key, since) in keys {
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if acceptance(torch, since) == Acceptance::MayBeRejected {
            warnings.push(format!(
                "torch {v} may reject {key} (not verified; torch {}.{} accepts it)",
                TORCH_CHECKED_LINE.0, TORCH_CHECKED_LINE.1
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn reads_the_kernel_module_version() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n\
                    GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(driver_version(text), Some(v("550.54.15")));
        assert_eq!(driver_version("GCC version: 12\n"), None);
    }

    #[test]
    fn newer_keys_are_checked_on_2_10_only() {
        assert_eq!(acceptance(&v("2.5.1"), Since::Legacy), Acceptance::Accepted);
        assert_eq!(acceptance(&v("2.5.1"), Since::Newer), Acceptance::MayBeRejected);
        assert_eq!(acceptance(&v("2.10.0"), Since::Newer), Acceptance::Accepted);
        let warnings = torch_warnings(&v("2.8.0"), &[("per_process_memory_fraction", Since::Newer)]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(torch_warnings(&v("2.0.1"), &[])[0].contains("does not know expandable_segments"));
        assert!(torch_warnings(&v("2.10.0"), &[("per_process_memory_fraction", Since::Newer)]).is_empty());
    }

    #[test]
    fn the_generic_variable_from_2_10() {
        assert!(!torch_reads_generic_variable(&v("2.9.1")));
        assert!(torch_reads_generic_variable(&v("2.10.0")));
        assert!(torch_reads_generic_variable(&v("2.11.0+cu130")));
    }
}
