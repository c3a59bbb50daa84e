#!/usr/bin/env bash
# Runs every real-client check of tests/real_clients/torch_npu.rs on every
# torch_npu line PyPI has, one line after the other, and writes the results
# table of docs/torch-npu-lines.md (data: docs/torch-npu-matrix.json).
#
#   scripts/torch-npu-matrix.sh            # every line of the survey (2.1 ... 2.14)
#   scripts/torch-npu-matrix.sh 2.7 2.8    # these lines only (the others' rows stay)
#
# Per line: scripts/torch-npu-venv.sh installs the line's newest release with
# a wheel for this Python and the torch it pins (PyPI's CUDA build with its
# nvidia wheels up to 2.10, about 6 GB; made CPU-only from 2.11 on, about
# 1.1 GB), in a scratch cache that is deleted when the line is done;
# the lines CI keeps (2.5, 2.10, 2.14) use the usual cache and are kept. Then
# the `line_matrix` tests run on it (NPU_ALLOC_SHIM_TORCH_NPU_LINE): the
# workload runs out of memory without the library and completes with it, the
# recording equals the simulated runtime's counters, conflicting, sleep-mode
# and refused values are left as they are, report/diff show the difference,
# and what the library writes for 240 key/value shapes keeps the line's own
# parser's verdict. A line that cannot be installed or loaded here is listed
# with the reason. About 3-5 minutes a line; not part of CI (which runs the
# pinned lines' checks), run it by hand after a change to the decision.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'torch-npu-matrix: %s\n' "$*" >&2; }

results=docs/torch-npu-matrix.json
# Every verdict of every line's parser, which crates/common's tests hold the
# value rules to (crates/common/tests/probed_values.rs).
values=crates/common/data/torch-npu-values.json
table=docs/torch-npu-lines.md
survey=crates/common/data/torch-npu-lines.json
python=${NPU_ALLOC_SHIM_PYTHON:-$(command -v python3.11 || command -v python3)}
if (($#)); then
    lines=("$@")
else
    mapfile -t lines < <("$python" -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['lines']))" "$survey")
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/torch-npu-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT
fixtures=$(cargo metadata --format-version 1 --no-deps | "$python" -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")/release/test-fixtures

log "building the tests"
cargo test --release --test real_clients --no-run >&2

for line in "${lines[@]}"; do
    case "$line" in
        2.5 | 2.10 | 2.14) cache=${NPU_ALLOC_SHIM_VENV_CACHE:-${HOME:-/root}/.cache/npu-alloc-shim} keep=1 ;;
        *) cache=$work/cache keep= ;;
    esac
    started=$(date +%s)
    log "line $line: installing"
    rm -f "$fixtures/value-rules-$line.json"
    if ! venv=$(NPU_ALLOC_SHIM_VENV_CACHE=$cache scripts/torch-npu-venv.sh "$line" 2>"$work/venv.log"); then
        log "line $line: not hosted: $(tail -n 1 "$work/venv.log")"
        "$python" scripts/lib/torch_npu_matrix.py record "$results" "$line" not-hostable $(($(date +%s) - started)) \
            "" "" "$work/venv.log" "" "" "$values"
        continue
    fi
    read -r npu torch < <("$venv/bin/python" -c \
        "import importlib.metadata as m; print(m.version('torch_npu'), m.version('torch'))")
    log "line $line: torch_npu $npu (torch $torch): running the checks"
    NPU_ALLOC_SHIM_VENV_CACHE=$cache NPU_ALLOC_SHIM_TORCH_NPU_LINE=$line \
        cargo test --release --test real_clients line_matrix -- --nocapture >"$work/test.log" 2>&1 || true
    grep -E "^test torch_npu::line_matrix" "$work/test.log" >&2 || log "line $line: no test ran (see below)"
    status=ran
    if grep -q "sim_runtime/build.sh\|torch-npu-venv.sh $line:" "$work/test.log" &&
        ! grep -q "line_matrix::.* \.\.\. ok" "$work/test.log"; then
        # Installed, but the simulated runtime or torch_npu itself would not load.
        status=not-hostable
        grep -E "panicked|build.sh|Error|error" "$work/test.log" | tail -n 1 >"$work/venv.log"
    fi
    "$python" scripts/lib/torch_npu_matrix.py record "$results" "$line" "$status" $(($(date +%s) - started)) \
        "$work/test.log" "$fixtures/value-rules-$line.json" "$work/venv.log" "$npu" "$torch" "$values"
    mkdir -p target/torch-npu-matrix && cp "$work/test.log" "target/torch-npu-matrix/test-$line.log"
    if [[ -z $keep ]]; then
        rm -rf "$cache/venv-$line" "$fixtures/sim-runtime-$line"
    fi
    "$python" scripts/lib/torch_npu_matrix.py render "$results" "$table"
    log "line $line: done in $(($(date +%s) - started)) s"
done
"$python" scripts/lib/torch_npu_matrix.py render "$results" "$table"
log "wrote $results and the table in $table"
