#!/usr/bin/env bash
# Runs the benchmark suite and writes its table, with the date and the
# machine, into README.md (between the `bench.sh` markers of the Benchmarks
# section), and prints it. Every figure is a ratio against the same work
# without the library, and each row says whether it meets its goal. Takes
# about ten minutes; run it on a quiet machine.
#
#   scripts/bench.sh             # measure, print, update README.md
#   scripts/bench.sh --no-readme # measure and print only
#
# The aarch64 start-up rows need Debian's rustc with the arm64 std,
# aarch64-linux-gnu-gcc and qemu-user-static (scripts/test-aarch64.sh
# installs them); without them those rows are left out, and it says so.
set -euo pipefail
cd "$(dirname "$0")/.."

update_readme=1
[[ ${1:-} == --no-readme ]] && update_readme=0

# The aarch64 library, built as scripts/test-aarch64.sh builds it.
if [[ -x /usr/bin/rustc && -x /usr/bin/cargo ]] && command -v aarch64-linux-gnu-gcc >/dev/null &&
    command -v qemu-aarch64-static >/dev/null && [[ -e /lib/ld-linux-aarch64.so.1 ]]; then
    target_dir=$PWD/target/aarch64-bench
    RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=$target_dir \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        /usr/bin/cargo build --quiet --release --target aarch64-unknown-linux-gnu -p npu-alloc-shim
    export NPU_ALLOC_SHIM_BENCH_AARCH64_LIB=$target_dir/aarch64-unknown-linux-gnu/release/libnpu_alloc_shim.so
else
    echo "bench.sh: no aarch64 toolchain or qemu-aarch64-static here: the aarch64 start-up rows are left out" >&2
fi

cargo bench --quiet --bench overhead >/dev/null
summary=target/release/bench-summary.md
section=$(printf 'Measured on %s with `scripts/bench.sh`. %s\n\n%s\n' "$(date -u +%Y-%m-%d)" \
    "$(head -n 1 "$summary")" "$(tail -n +3 "$summary")")
printf '%s\n' "$section"

if [[ $update_readme == 1 ]]; then
    begin='<!-- bench.sh: begin -->' end='<!-- bench.sh: end -->'
    grep -qF "$begin" README.md && grep -qF "$end" README.md || {
        echo "bench.sh: README.md has no '$begin' ... '$end' section" >&2
        exit 1
    }
    tmp=$(mktemp README.md.XXXXXX)
    SECTION=$section awk -v begin="$begin" -v end="$end" '
        $0 == begin { print; print ENVIRON["SECTION"]; skipping = 1; next }
        $0 == end { skipping = 0 }
        !skipping { print }' README.md >"$tmp"
    chmod --reference=README.md "$tmp"
    mv "$tmp" README.md
    echo "bench.sh: README.md updated" >&2
fi
