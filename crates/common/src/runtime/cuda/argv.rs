//! Command lines on CUDA where expandable segments are known to break
//! beyond the memory-pool flags: vLLM with tensor parallelism above 1 and
//! its custom all-reduce on (cudaIpcGetMemHandle fails on expandable memory,
//! vllm#42609).

/// Why this command line keeps its configuration, if it does.
pub fn breakage(argv: &[Vec<u8>]) -> Option<String> {
    let custom_all_reduce_off = argv.iter().any(|arg| arg.as_slice() == b"--disable-custom-all-reduce");
    let size = tensor_parallel_size(argv)?;
    (size > 1 && !custom_all_reduce_off).then(|| {
        format!(
            "tensor parallelism {size} with vLLM's custom all-reduce, which cannot share expandable memory \
             (cudaIpcGetMemHandle fails; add --disable-custom-all-reduce to use them)"
        )
    })
}

/// The value of `--tensor-parallel-size`/`-tp` (separate or after `=`).
fn tensor_parallel_size(argv: &[Vec<u8>]) -> Option<u64> {
    const NAMES: [&[u8]; 3] = [b"--tensor-parallel-size", b"--tensor_parallel_size", b"-tp"];
    let mut found = None;
    for (i, arg) in argv.iter().enumerate() {
        let (name, inline) = match arg.iter().position(|&b| b == b'=') {
            Some(eq) => (&arg[..eq], Some(&arg[eq + 1..])),
            None => (&arg[..], None),
        };
        if !NAMES.contains(&name) {
            continue;
        }
        let value = inline.or_else(|| argv.get(i + 1).map(Vec::as_slice))?;
        found = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).or(found);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::breakage;

    fn argv(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn tensor_parallelism_above_one_with_custom_all_reduce() {
        assert!(breakage(&argv(&["vllm", "serve", "m", "--tensor-parallel-size", "4"])).unwrap().contains("4"));
        assert!(breakage(&argv(&["vllm", "serve", "m", "-tp=2"])).is_some());
        assert!(breakage(&argv(&["vllm", "serve", "m", "-tp", "1"])).is_none());
        assert!(breakage(&argv(&["vllm", "serve", "m", "-tp", "8", "--disable-custom-all-reduce"])).is_none());
        assert!(breakage(&argv(&["vllm", "serve", "m", "--tensor-parallel-size"])).is_none());
        assert!(breakage(&argv(&["python", "train.py"])).is_none());
    }
}
