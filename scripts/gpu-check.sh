#!/usr/bin/env bash
# The CUDA before/after on a machine with an NVIDIA GPU and real torch, with
# the built library (no Rust toolchain needed there: carry the .so):
#
#   scripts/gpu-check.sh [--lib PATH] [--python PY] [--device-gib N]
#
# Runs tests/fixtures/cuda_multimodal.py with the caching allocator capped at
# N GiB (default 3, torch.cuda.set_per_process_memory_fraction) twice, the
# library preloaded both times and recording: without the CUDA switch (the
# configuration untouched) and with NPU_ALLOC_SHIM_CUDA_NORMALIZE=1. It checks
# each recording against torch's own torch.cuda.memory_stats() (peak device
# memory recorded = peak reserved; with the switch, expandable segments
# through cuMemCreate), and NVML's view of the process where pynvml is
# installed, then prints one line of results. Exit status 0 when every check
# holds, 1 otherwise. Under 2 minutes on a GPU; tested on the fake CUDA
# runtime (tests/real_clients/torch_cuda.rs: source the env.sh of
# scripts/torch-cuda-venv.sh first, as that test does).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
lib=$repo/target/release/libnpu_alloc_shim.so python=python3 device_gib=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lib) lib=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --device-gib) device_gib=$2; shift 2 ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ ! -f $lib ]]; then
    echo "gpu-check: no library at $lib (cargo build --release, or --lib PATH)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # NAME ENV... : the workload with the library in front of LD_PRELOAD
    local name=$1 status=0
    shift
    env -u PYTORCH_CUDA_ALLOC_CONF -u PYTORCH_ALLOC_CONF "$@" \
        LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" NPU_ALLOC_SHIM_TRACE="$tmp/$name.rec.json" \
        NPU_ALLOC_SHIM_FLUSH_MS=0 "$python" "$repo/tests/fixtures/cuda_multimodal.py" --device-gib "$device_gib" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || status=$?
    if ! tail -1 "$tmp/$name.out" | grep -q '"outcome"'; then
        echo "gpu-check: the $name run failed (exit $status):" >&2
        tail -20 "$tmp/$name.err" >&2
        exit 1
    fi
    tail -1 "$tmp/$name.out" >"$tmp/$name.json"
}
run before NPU_ALLOC_SHIM_CUDA_NORMALIZE=0
run after NPU_ALLOC_SHIM_CUDA_NORMALIZE=1

"$python" - "$tmp" <<'PY'
import json, sys

tmp = sys.argv[1]
gib = lambda n: f"{n / 2**30:.3f} GiB"
failed = []
parts = []
for name in ("before", "after"):
    torch_figures = json.load(open(f"{tmp}/{name}.json"))
    recording = json.load(open(f"{tmp}/{name}.rec.json"))
    recorded_peak = recording["totals"]["peak_live_bytes"]
    reserved_peak = torch_figures["reserved_bytes_peak"]
    creates = recording["by_api"].get("cuMemCreate", {}).get("calls", 0)
    if recording["runtime"] != "cuda":
        failed.append(f"{name}: recording runtime {recording['runtime']!r}")
    if recorded_peak != reserved_peak:
        failed.append(f"{name}: recorded peak {recorded_peak} != torch's peak reserved {reserved_peak}")
    if name == "after" and (torch_figures["outcome"] != "completed" or creates == 0):
        failed.append(f"after: {torch_figures['outcome']} with {creates} cuMemCreate calls")
    nvml = torch_figures.get("nvml_process_bytes")
    parts.append(
        f"{name}: {torch_figures['outcome']} {torch_figures['completed_requests']}/{torch_figures['requests']}, "
        f"recorded peak {gib(recorded_peak)} = torch peak reserved {gib(reserved_peak)}, {creates} cuMemCreate"
        + (f", NVML {gib(nvml)} at the end" if nvml is not None else "")
    )
first = json.load(open(f"{tmp}/before.json"))
device = f"{first.get('device_name', '?')} ({gib(first['total_memory'])}, capped at {first['device_gib']} GiB)"
verdict = "OK" if not failed else "FAILED: " + "; ".join(failed)
print(f"gpu-check: torch {first['torch']} on {device}: " + "; ".join(parts) + f" -> {verdict}")
sys.exit(0 if not failed else 1)
PY
