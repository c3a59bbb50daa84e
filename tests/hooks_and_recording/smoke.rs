#[test]
fn library_loads_into_sh() {
    let out = support::run_with_timeout(
        support::preloaded("/bin/sh").args(["-c", "echo \"$PYTORCH_NPU_ALLOC_CONF\""]),
        support::LIMIT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "expandable_segments:True\n");
}
