#!/usr/bin/env bash
# The before/after on the real torch_npu allocator, in one command:
#
#   examples/before_after.sh [--line 2.10|2.5|2.14] [--trace DIR] [--device-gb N] [--runtime-mb M] [--cuda]
#
# Installs the real torch + torch_npu wheels into a cached virtual environment
# (scripts/torch-npu-venv.sh), builds the library (cargo build --release) and
# the simulated Ascend runtime (crates/cli/assets/sim_runtime/build.sh), then runs
# examples/multimodal_workload.py as users run it today (default allocator
# configuration) and with LD_PRELOAD of the library, nothing else changed:
#
# - on a simulated NPU of N GiB (default 3) for the process, beside M MiB
#   (default 192) the simulated runtime keeps for itself, as CANN keeps
#   workspaces (the "non-torch memory" of vLLM's profile): without the library
#   the workload runs out of memory, with it it completes;
# - on an unconstrained 64 GiB NPU: the peak reserved memory each way, and
#   their ratio (on the small device both runs fill it, so the peaks there say
#   little).
#
# --trace DIR also writes the two recordings of the N GiB runs, DIR/before.json
# and DIR/after.json, for `npu-alloc-shim report`/`diff`. The "before" run then
# has the library preloaded with NPU_ALLOC_SHIM_NORMALIZE=0: it records and
# leaves the configuration alone, so the allocator behaves as without it.
#
# --cuda adds the CUDA line: PyPI's torch 2.10.0 (a CUDA build) on the fake
# CUDA runtime of tests/fake_cuda (scripts/torch-cuda-venv.sh, a 3 GiB device),
# tests/fixtures/cuda_multimodal.py with the library preloaded, without and
# with NPU_ALLOC_SHIM_CUDA_NORMALIZE=1 (CUDA normalization is opt-in).
set -euo pipefail

line=2.10 trace="" device_gb=3 runtime_mb=192 cuda=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --line) line=$2; shift 2 ;;
        --trace) trace=$2; shift 2 ;;
        --device-gb) device_gb=$2; shift 2 ;;
        --runtime-mb) runtime_mb=$2; shift 2 ;;
        --cuda) cuda=1; shift ;;
        -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "before_after: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=$(scripts/torch-npu-venv.sh "$line")
python=$venv/bin/python
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

target=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release --quiet
library=$target/release/libnpu_alloc_shim.so
sim=$target/sim-runtime-$line
crates/cli/assets/sim_runtime/build.sh "$sim" "$site"

runtime_bytes=$((runtime_mb << 20))
# The device holds what the process may use plus what the runtime keeps.
gib_bytes() { "$python" -c "print(int(float('$1') * 2**30) + $runtime_bytes)"; }
# Only what the simulated runtime needs; the allocator variables are unset so
# that the "before" runs have torch_npu's default configuration.
base=(env -u PYTORCH_NPU_ALLOC_CONF -u PYTORCH_ALLOC_CONF -u LD_PRELOAD LD_LIBRARY_PATH="$sim")
before=("${base[@]}")
after=("${base[@]}" LD_PRELOAD="$library")
before_traced=("${before[@]}")
after_traced=("${after[@]}")
if [[ -n $trace ]]; then
    mkdir -p "$trace"
    trace=$(cd "$trace" && pwd)
    before_traced=("${base[@]}" LD_PRELOAD="$library" NPU_ALLOC_SHIM_NORMALIZE=0
        NPU_ALLOC_SHIM_TRACE="$trace/before.json")
    after_traced=("${after[@]}" NPU_ALLOC_SHIM_TRACE="$trace/after.json")
fi

workload() { # NAME GIB ENV... : runs the workload, keeps its final JSON line
    local name=$1 gib=$2
    shift 2
    local start=$SECONDS status=0
    echo "== $name: torch_npu $line on a $gib GiB simulated NPU" >&2
    # Run from the scratch directory: torch_npu drops a memory-usage CSV into
    # its working directory when it runs out of memory.
    (cd "$tmp" && "$@" SIM_ACL_DEVICE_BYTES="$(gib_bytes "$gib")" SIM_ACL_RUNTIME_BYTES=$runtime_bytes "$python" "$repo/examples/multimodal_workload.py" \
        >"$tmp/$name.out" 2>"$tmp/$name.err") || status=$?
    if [[ $status -ne 0 && $status -ne 3 ]]; then
        echo "before_after: the $name run failed (exit $status):" >&2
        tail -20 "$tmp/$name.err" >&2
        exit 1
    fi
    grep '^npu-alloc-shim:' "$tmp/$name.err" >&2 || true
    echo "   exit $status after $((SECONDS - start)) s" >&2
    tail -1 "$tmp/$name.out" >"$tmp/$name.json"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
workload before "$device_gb" "${before_traced[@]}"
workload after "$device_gb" "${after_traced[@]}"
workload before-64 64 "${before[@]}"
workload after-64 64 "${after[@]}"

"$python" - "$device_gb" "$tmp" <<'PY'
import json, sys
device, tmp = sys.argv[1], sys.argv[2]
runs = {name: json.load(open(f"{tmp}/{name}.json")) for name in ("before", "after", "before-64", "after-64")}
gib = lambda n: f"{n / 2**30:.3f} GiB"
print(f"torch_npu {runs['before']['torch_npu']}, examples/multimodal_workload.py")
print(f"on a {device} GiB NPU:")
for label, r in (("without the library", runs["before"]), ("with the library", runs["after"])):
    print(f"  {label:>19}: {r['outcome']:9} ({r['completed_requests']}/{r['requests']} requests)"
          f"  peak reserved {gib(r['max_memory_reserved'])}"
          f"  peak allocated {gib(r['max_memory_allocated'])}"
          f"  PYTORCH_NPU_ALLOC_CONF={r['alloc_conf']!r}")
    if r["outcome"] == "oom":
        print(f"  {'':>21}{r['error'][:200]}")
print("on an unconstrained 64 GiB NPU:")
for label, r in (("without the library", runs["before-64"]), ("with the library", runs["after-64"])):
    print(f"  {label:>19}: {r['outcome']:9}  peak reserved {gib(r['max_memory_reserved'])}"
          f"  peak allocated {gib(r['max_memory_allocated'])}")
ratio = runs["before-64"]["max_memory_reserved"] / runs["after-64"]["max_memory_reserved"]
print(f"peak reserved without / with the library: {ratio:.3f}")
PY
if [[ -n $trace ]]; then
    echo "recordings: $trace/before.json $trace/after.json" \
        "(npu-alloc-shim diff $trace/before.json $trace/after.json)"
fi

if [[ $cuda -eq 1 ]]; then
    cuda_venv=$(scripts/torch-cuda-venv.sh 2.10.0)
    cuda_run() { # NAME ENV... : the CUDA workload with the library preloaded
        local name=$1 status=0
        shift
        echo "== $name: torch 2.10.0 on a 3 GiB fake CUDA device" >&2
        (
            # env.sh appends the fake runtime after what LD_PRELOAD holds.
            export LD_PRELOAD=$library
            # shellcheck disable=SC1091
            source "$cuda_venv/env.sh"
            cd "$tmp" && env -u PYTORCH_CUDA_ALLOC_CONF -u PYTORCH_ALLOC_CONF "$@" \
                "$cuda_venv/bin/python" "$repo/tests/fixtures/cuda_multimodal.py" >"$tmp/$name.out" 2>"$tmp/$name.err"
        ) || status=$?
        if [[ $status -ne 0 && $status -ne 1 ]] || ! tail -1 "$tmp/$name.out" | grep -q '"outcome"'; then
            echo "before_after: the $name run failed (exit $status):" >&2
            tail -20 "$tmp/$name.err" >&2
            exit 1
        fi
        grep '^npu-alloc-shim:' "$tmp/$name.err" >&2 || true
        tail -1 "$tmp/$name.out" >"$tmp/$name.json"
    }
    cuda_run cuda-before NPU_ALLOC_SHIM_CUDA_NORMALIZE=0
    cuda_run cuda-after NPU_ALLOC_SHIM_CUDA_NORMALIZE=1
    "$python" - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
print("CUDA: torch 2.10.0 (PyPI's CUDA build, real caching allocator) on a 3 GiB fake device, library preloaded:")
for label, name in (("without the switch", "cuda-before"), ("NPU_ALLOC_SHIM_CUDA_NORMALIZE=1", "cuda-after")):
    r = json.load(open(f"{tmp}/{name}.json"))
    print(f"  {label:>31}: {r['outcome']:9} ({r['completed_requests']}/{r['requests']} requests)"
          f"  peak reserved {r['reserved_bytes_peak'] / 2**30:.3f} GiB"
          f"  PYTORCH_CUDA_ALLOC_CONF={r['PYTORCH_CUDA_ALLOC_CONF']!r}")
PY
fi
