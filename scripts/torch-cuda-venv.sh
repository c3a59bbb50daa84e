#!/usr/bin/env bash
# Creates (or reuses) a cached virtual environment with PyPI's CUDA build of
# torch, hosted on the fake CUDA runtime of tests/fake_cuda/ (no GPU, no
# nvidia-* wheels: their libraries are replaced by generated stubs), for the
# tests that run PyTorch's own CUDA caching allocator.
#
#   scripts/torch-cuda-venv.sh            # torch 2.10.0
#   scripts/torch-cuda-venv.sh 2.11.0     # any version with a cp wheel for this Python
#   TORCH_WHEEL=/path/torch-...whl scripts/torch-cuda-venv.sh 2.10.0   # a wheel already downloaded
#
# Prints the environment's path on stdout (pip's output goes to stderr).
# Where: ${NPU_ALLOC_SHIM_VENV_CACHE:-$HOME/.cache/npu-alloc-shim}/venv-cuda-VERSION.
# Which Python: $NPU_ALLOC_SHIM_PYTHON, else python3.11/3.12/3.10 when installed, else python3.
#
# The environment gets fake-cuda/ (tests/fake_cuda/build.sh: libcudart.so.N
# for the wheel's CUDA major, libcuda.so.1, stubs/) and two descriptions of how
# to run torch on it:
#   env.sh    to source: LD_PRELOAD gains the fake libcudart.so.N (appended, so
#             that a library preloaded before it keeps priority),
#             LD_LIBRARY_PATH gains fake-cuda and fake-cuda/stubs,
#             TORCH_DEVICE_BACKEND_AUTOLOAD=0, the venv's bin/ first on PATH;
#             and TORCH_CUDA_VENV, TORCH_CUDA_PYTHON, FAKE_CUDA_DIR,
#             FAKE_CUDA_RUNTIME.
#   env.list  the same as KEY=VALUE lines without the inherited parts, for
#             programs that set variables themselves (Rust tests): prepend
#             the library to preload to FAKE_CUDA_RUNTIME in LD_PRELOAD.
# The device is 3 GiB unless FAKE_CUDA_DEVICE_BYTES says otherwise.
#
# Idempotent: a marker file naming the version is written last, so an
# interrupted install is redone from scratch and a finished one is reused; the
# fake is rebuilt only when its sources changed (build.sh's stamp).
set -euo pipefail

version=${1:-2.10.0}
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "usage: $0 [VERSION]   (a torch release such as 2.10.0)" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${NPU_ALLOC_SHIM_VENV_CACHE:-${HOME:-/root}/.cache/npu-alloc-shim}
venv=$cache/venv-cuda-$version
marker=$venv/.npu-alloc-shim-complete
want="torch==$version (CUDA build from PyPI, --no-deps)"

complete() { [[ -f $marker && "$(cat "$marker")" == "$want" ]]; }

# The fake and the env files: (re)made on every call, cheap when up to date.
finish() {
    local site lib major runtime
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    lib=$site/torch/lib
    if [[ ! -f $lib/libc10_cuda.so ]]; then
        echo "torch-cuda-venv: $lib/libc10_cuda.so is missing: torch $version is not a CUDA build here" >&2
        exit 1
    fi
    bash "$repo/tests/fake_cuda/build.sh" "$venv/fake-cuda" "$lib" >&2
    runtime=$(ls "$venv/fake-cuda"/libcudart.so.[0-9]* | head -n1)
    major=${runtime##*.}
    cat >"$venv/env.list.tmp" <<EOF
TORCH_CUDA_VENV=$venv
TORCH_CUDA_PYTHON=$venv/bin/python
TORCH_CUDA_VERSION=$version
FAKE_CUDA_DIR=$venv/fake-cuda
FAKE_CUDA_RUNTIME=$runtime
FAKE_CUDA_RUNTIME_MAJOR=$major
LD_PRELOAD=$runtime
LD_LIBRARY_PATH=$venv/fake-cuda:$venv/fake-cuda/stubs
TORCH_DEVICE_BACKEND_AUTOLOAD=0
EOF
    cat >"$venv/env.sh.tmp" <<EOF
# Written by scripts/torch-cuda-venv.sh: torch $version on the fake CUDA runtime.
# Source it; the fake runtime is appended to LD_PRELOAD, so a library preloaded
# before (the shim) keeps priority over it.
export TORCH_CUDA_VENV='$venv'
export TORCH_CUDA_PYTHON='$venv/bin/python'
export TORCH_CUDA_VERSION='$version'
export FAKE_CUDA_DIR='$venv/fake-cuda'
export FAKE_CUDA_RUNTIME='$runtime'
export FAKE_CUDA_RUNTIME_MAJOR='$major'
export LD_PRELOAD="\${LD_PRELOAD:+\$LD_PRELOAD:}$runtime"
export LD_LIBRARY_PATH="$venv/fake-cuda:$venv/fake-cuda/stubs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export TORCH_DEVICE_BACKEND_AUTOLOAD=0
export PATH="$venv/bin:\$PATH"
EOF
    mv "$venv/env.list.tmp" "$venv/env.list"
    mv "$venv/env.sh.tmp" "$venv/env.sh"
}

if complete; then
    finish
    echo "$venv"
    exit 0
fi

mkdir -p "$cache"
# Tests may ask at once: one installs, the others wait.
exec 9>"$cache/venv-cuda-$version.lock"
flock 9
if complete; then
    finish
    echo "$venv"
    exit 0
fi

if [[ -n ${NPU_ALLOC_SHIM_PYTHON:-} ]]; then
    python=$NPU_ALLOC_SHIM_PYTHON
else
    python=python3
    for candidate in python3.11 python3.12 python3.10; do
        if command -v "$candidate" >/dev/null; then
            python=$candidate
            break
        fi
    done
fi
source_desc="torch==$version from PyPI"
if [[ -n ${TORCH_WHEEL:-} ]]; then
    if [[ ! -f $TORCH_WHEEL ]]; then
        echo "torch-cuda-venv: TORCH_WHEEL=$TORCH_WHEEL does not exist" >&2
        exit 1
    fi
    source_desc=$TORCH_WHEEL
fi
echo "torch-cuda-venv: installing $source_desc (no nvidia-* wheels) into $venv with $python" \
    "(about 2 GB; a minute or two)" >&2
rm -rf "$venv"
if ! "$python" -m venv "$venv"; then
    echo "torch-cuda-venv: $python -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi
pip() { "$venv/bin/python" -m pip --disable-pip-version-check --no-input "$@" >&2; }
# --no-deps: torch's metadata pulls the nvidia-* CUDA wheels (gigabytes, never
# used on the fake) and triton; the fake's stubs stand in for their libraries.
if ! pip install --quiet --no-deps "${TORCH_WHEEL:-torch==$version}"; then
    echo "torch-cuda-venv: could not install $source_desc for $("$python" -V 2>&1)" >&2
    exit 1
fi
# What `import torch` needs: its own pure-Python requirements (with its pins,
# e.g. sympy==1.13.1 on 2.5.1), without the CUDA wheels and triton; numpy is
# optional but commonly imported.
mapfile -t deps < <("$venv/bin/python" - <<'PY'
import importlib.metadata as m
for req in m.requires("torch") or []:
    name = req.split(";")[0].strip()
    low = name.lower()
    if low.startswith(("nvidia-", "triton", "cuda-", "pytorch-triton")) or "extra ==" in req:
        continue
    print(req)
PY
)
pip install --quiet "${deps[@]}" typing_extensions filelock sympy networkx jinja2 fsspec mpmath MarkupSafe numpy
"$venv/bin/python" - "$version" >&2 <<'PY'
import sys, importlib.metadata as m
got = m.version("torch")
assert got.split("+")[0] == sys.argv[1], (got, sys.argv[1])
PY
finish
echo "$want" >"$marker"
echo "$venv"
