#!/usr/bin/env bash
# Runs the benchmark suite and prints its summary table (Markdown), with the
# machine it ran on. Every figure is a ratio against the same work without
# the library. Takes a few minutes; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench overhead >/dev/null
cat target/release/bench-summary.md
