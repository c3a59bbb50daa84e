#!/usr/bin/env bash
# Creates (or reuses) a cached virtual environment with the real torch and
# torch_npu wheels, for the tests and examples that run torch_npu's own
# caching allocator on the simulated Ascend runtime (crates/cli/assets/sim_runtime/).
#
#   scripts/torch-npu-venv.sh 2.10   # torch 2.10.0 + torch-npu 2.10.0.post4 (what vllm-ascend pins)
#   scripts/torch-npu-venv.sh 2.5    # torch 2.5.1  + torch-npu 2.5.1 (older deployments)
#   scripts/torch-npu-venv.sh 2.14   # torch 2.14.0 + torch-npu 2.14.0 (the newest), on a CPU-only torch
#   scripts/torch-npu-venv.sh 2.7    # any other line: its newest release with a wheel for
#                                    # this Python (from crates/common/data/torch-npu-lines.json)
#                                    # and the torch it pins (CPU-only from 2.11 on)
#                                    # (scripts/torch-npu-matrix.sh runs every line)
#
# torch-npu 2.11 and newer abort at load next to PyPI's torch, a CUDA build
# ("Duplicated key 'pinned_reserve_segment_size_mb' ..."), where real Ascend
# hosts run a CPU build that PyPI does not serve. So line 2.14 installs torch
# without its nvidia-* wheels and makes it CPU-only with
# scripts/lib/cpu-only-torch.py (stub CUDA libraries, a .pth import hook);
# torch_npu itself is untouched.
#
# Prints the environment's path on stdout (pip's output goes to stderr).
# Where: ${NPU_ALLOC_SHIM_VENV_CACHE:-$HOME/.cache/npu-alloc-shim}/venv-LINE.
# Which Python: $NPU_ALLOC_SHIM_PYTHON, else python3.11/3.10/3.9 when installed, else
# python3 (torch-npu 2.5.1 has wheels for CPython 3.9-3.11 only, 2.14.0 for 3.10-3.14).
# Idempotent: a marker file naming the pinned versions is written last, so an
# interrupted install is redone from scratch and a finished one is reused.
set -euo pipefail

line=${1:-}
# The Python the environment is made with (torch-npu 2.5.1 has wheels for
# CPython 3.9-3.11 only, 2.14.0 for 3.10-3.14).
if [[ -n ${NPU_ALLOC_SHIM_PYTHON:-} ]]; then
    python=$NPU_ALLOC_SHIM_PYTHON
else
    python=python3
    for candidate in python3.11 python3.10 python3.9; do
        if command -v "$candidate" >/dev/null; then
            python=$candidate
            break
        fi
    done
fi
# cpu_only: PyPI's torch without its CUDA wheels, made CPU-only (see above).
cpu_only=1
case "$line" in
    2.10) torch=2.10.0 npu=2.10.0.post4 cpu_only= ;;
    2.5 | 2.5.1) line=2.5 torch=2.5.1 npu=2.5.1 cpu_only= ;;
    2.14) torch=2.14.0 npu=2.14.0 ;;
    2.[0-9] | 2.[0-9][0-9])
        # The line's newest release with a wheel for this Python, from the
        # survey of the wheels, and the torch its metadata pins.
        if ! read -r npu torch < <("$python" - "$line" "$(dirname "$0")/../crates/common/data/torch-npu-lines.json" <<'PY'
import json, re, sys
line, survey = sys.argv[1], json.load(open(sys.argv[2]))
tag = "cp%d%d" % sys.version_info[:2]
found = [v for v in survey["versions"]
         if v["line"] == line and not v["prerelease"] and tag in v["pypi_python_tags"] and v.get("requires_torch")]
if found:
    newest = found[-1]
    torch = re.search(r"(\d+\.\d+\.\d+)", newest["requires_torch"]).group(1)
    print(newest["version"], torch)
PY
        ); then
            echo "torch-npu-venv: line $line has no release with a wheel for $("$python" -V 2>&1)" \
                "(crates/common/data/torch-npu-lines.json)" >&2
            exit 1
        fi
        # Up to 2.10 torch_npu loads next to PyPI's CUDA torch, as 2.5 and 2.10
        # do here (the CPU-only stubs are made for the newer torch: 2.7.1's
        # libtorch_python asks for symbols they lack).
        if ((${line#2.} <= 10)); then
            cpu_only=
        fi
        ;;
    *)
        echo "usage: $0 2.10|2.5|2.14|2.N" >&2
        exit 2
        ;;
esac

cache=${NPU_ALLOC_SHIM_VENV_CACHE:-${HOME:-/root}/.cache/npu-alloc-shim}
venv=$cache/venv-$line
marker=$venv/.npu-alloc-shim-complete
want="torch==$torch torch-npu==$npu"

complete() { [[ -f $marker && "$(cat "$marker")" == "$want" ]]; }

if complete; then
    echo "$venv"
    exit 0
fi

mkdir -p "$cache"
# Tests of both binaries may ask at once: one installs, the others wait.
exec 9>"$cache/venv-$line.lock"
flock 9
if complete; then
    echo "$venv"
    exit 0
fi

# torch-npu 2.5.1 has wheels for CPython 3.9-3.11 only, 2.10.0.post4 for 3.9-3.13,
# 2.14.0 (and torch 2.14.0) for 3.10-3.14; another line was picked for this Python.
min_minor=9 max_minor=14
case "$line" in
    2.5) max_minor=11 ;;
    2.10) max_minor=13 ;;
    2.14) min_minor=10 ;;
esac
if ! "$python" -c "import sys; sys.exit(not (3, $min_minor) <= sys.version_info[:2] <= (3, $max_minor))"; then
    echo "torch-npu-venv: torch-npu $npu needs CPython 3.$min_minor-3.$max_minor; $python is" \
        "$("$python" -V 2>&1). Set NPU_ALLOC_SHIM_PYTHON to one that fits." >&2
    exit 1
fi
size=$([[ -n $cpu_only ]] && echo "about 1.1 GB" || echo "about 7 GB")
echo "torch-npu-venv: installing $want into $venv with $python ($size, a few minutes)" >&2
rm -rf "$venv"
if ! "$python" -m venv "$venv"; then
    echo "torch-npu-venv: $python -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi
pip() { "$venv/bin/python" -m pip --disable-pip-version-check --no-input "$@" >&2; }
if [[ -n $cpu_only ]]; then
    # PyPI's torch without the CUDA wheels it asks for (nvidia-*, cuda-*,
    # triton: about 3 GB), then its other requirements as its metadata states
    # them, then made CPU-only so that torch_npu loads next to it.
    pip install --quiet --no-deps "torch==$torch" "torch-npu==$npu"
    mapfile -t deps < <("$venv/bin/python" - <<'PY'
import importlib.metadata as m, re
for req in m.requires("torch") or []:
    if "extra ==" not in req and not re.match(r"(nvidia|cuda|triton)\b", req, re.I):
        print(req)
PY
    )
    ((${#deps[@]})) || { echo "torch-npu-venv: no requirements read from torch's metadata" >&2; exit 1; }
    pip install --quiet --no-warn-conflicts "${deps[@]}" pyyaml numpy
    site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    "$venv/bin/python" "$(dirname "$0")/lib/cpu-only-torch.py" "$site" >&2
    # torch alone (torch_npu, which it would load as a backend, needs an Ascend runtime).
    TORCH_DEVICE_BACKEND_AUTOLOAD=0 "$venv/bin/python" -c \
        "import torch; assert not torch._C._has_cuda and torch.ones(2).sum() == 2" >&2
else
    # PyPI's torch (it pulls the CUDA runtime wheels: loaded at import, never used).
    # torch_npu's metadata pins the "+cpu" local build that only PyTorch's own
    # index serves, so it goes in with --no-deps; its ABI is the same.
    # torch before 2.3 was built against NumPy 1.x ("A module that was compiled
    # using NumPy 1.x cannot be run in NumPy 2"), measured on 2.1.0.
    numpy=numpy
    if (($(cut -d. -f2 <<<"$torch") < 3)); then
        numpy="numpy<2"
    fi
    pip install --quiet "torch==$torch" pyyaml "$numpy"
    pip install --quiet --no-deps "torch-npu==$npu"
fi
# A cheap check that both are there; importing torch_npu needs an Ascend
# runtime (real or simulated), so only the metadata is read here.
"$venv/bin/python" - "$torch" "$npu" >&2 <<'PY'
import sys, importlib.metadata as m
got = (m.version("torch"), m.version("torch_npu"))
assert got[0].split("+")[0] == sys.argv[1] and got[1] == sys.argv[2], got
PY
echo "$want" >"$marker"
echo "$venv"
