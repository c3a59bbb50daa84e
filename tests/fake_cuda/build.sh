#!/usr/bin/env bash
# Builds the fake CUDA runtime and driver (tests/fake_cuda/README.md):
#
#   tests/fake_cuda/build.sh OUTDIR [TORCH_LIB_DIR]
#
# OUTDIR gets libcudart.so.12 (fake_cudart.c; soname and version node
# libcudart.so.12), libcuda.so.1 (fake_cuda_driver.c) and a libcuda.so link.
# With TORCH_LIB_DIR (an installed torch/lib), OUTDIR/stubs/ also gets a stub
# of every NVIDIA library those torch libraries link but nobody provides
# (gen_cuda_stubs.py), and the fakes gain weak stubs for any name that line
# imports from them and they lack.
#
# The runtime's major version comes from FAKE_CUDA_RUNTIME_MAJOR (12 or 13),
# else from the libcudart.so.N that TORCH_LIB_DIR/libc10_cuda.so links, else
# 12: a CUDA 13 wheel (torch 2.11's default) gets libcudart.so.13 with version
# node libcudart.so.13, and a driver that reports 13000.
#
# Idempotent and fast: nothing is rebuilt while the sources, the major
# version and TORCH_LIB_DIR's files are unchanged (OUTDIR/.stamp).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 OUTDIR [TORCH_LIB_DIR]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
torch_lib=${2:-}
if [[ -n $torch_lib && ! -f $torch_lib/libc10_cuda.so ]]; then
    echo "fake_cuda: $torch_lib has no libc10_cuda.so (not a CUDA build of torch?)" >&2
    exit 1
fi

major=${FAKE_CUDA_RUNTIME_MAJOR:-}
if [[ -z $major && -n $torch_lib ]]; then
    major=$(readelf -d "$torch_lib/libc10_cuda.so" | sed -n 's/.*Shared library: \[libcudart\.so\.\([0-9]*\)\].*/\1/p' | head -n1)
fi
major=${major:-12}
case "$major" in
    12) driver_version=12080 ;;
    13) driver_version=13000 ;;
    *)
        echo "fake_cuda: unsupported CUDA runtime major version '$major' (12 or 13)" >&2
        exit 1
        ;;
esac
cudart=libcudart.so.$major

mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp_text() {
    echo "cc=${CC:-cc} major=$major torch_lib=${torch_lib:+$(cd "$torch_lib" && pwd)}"
    cat "$here/build.sh" "$here/fake_cuda.h" "$here/fake_cudart.c" "$here/fake_cuda_driver.c" \
        "$here/fake_nvml.c" "$here/libcudart.map" "$here/gen_cuda_stubs.py" "$here/../../crates/cli/assets/sim_runtime/device_counters.h" |
        sha256sum
    if [[ -n $torch_lib ]]; then
        (cd "$torch_lib" && stat -L -c '%n %s %Y' ./*.so* ../_C*.so 2>/dev/null || true)
    fi
}
want=$(stamp_text)
if [[ -f $out/.stamp && "$(cat "$out/.stamp")" == "$want" && -f $out/$cudart && -f $out/libcuda.so.1 && -f $out/libnvidia-ml.so.1 ]] &&
    [[ -z $torch_lib || -f $out/stubs/libs.txt ]]; then
    echo "fake_cuda: $out is up to date" >&2
    exit 0
fi

tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cflags=(-shared -fPIC -O1 -g -Wall -Werror -I"$here")
sed "s/^libcudart\.so\.12 {/$cudart {/" "$here/libcudart.map" >"$tmp/libcudart.map"

# The driver first: the runtime links it (its private account functions).
build_fakes() { # [driver extra .c] [runtime extra .c] [NVML extra .c]
    "${CC:-cc}" "${cflags[@]}" -DFAKE_CUDA_DEFAULT_DRIVER_VERSION="$driver_version" -o "$tmp/libcuda.so.1" \
        -Wl,-soname,libcuda.so.1 "$here/fake_cuda_driver.c" ${1:+"$1"} -lpthread -ldl
    ln -sf libcuda.so.1 "$tmp/libcuda.so"
    "${CC:-cc}" "${cflags[@]}" -DFAKE_CUDART_MAJOR="$major" -o "$tmp/$cudart" -Wl,-soname,"$cudart" \
        -Wl,--version-script="$tmp/libcudart.map" "$here/fake_cudart.c" ${2:+"$2"} \
        -Wl,--no-as-needed -L"$tmp" -lcuda -Wl,-rpath,'$ORIGIN' -lpthread
    "${CC:-cc}" "${cflags[@]}" -o "$tmp/libnvidia-ml.so.1" -Wl,-soname,libnvidia-ml.so.1 "$here/fake_nvml.c" ${3:+"$3"} \
        -Wl,--no-as-needed -L"$tmp" -lcuda -Wl,-rpath,'$ORIGIN'
}
build_fakes

if [[ -n $torch_lib ]]; then
    mkdir -p "$tmp/stubs"
    python3 "$here/gen_cuda_stubs.py" "$torch_lib" "$tmp/stubs" "$tmp/$cudart" "$tmp/libcuda.so.1" \
        "$tmp/libnvidia-ml.so.1"
    if grep -q '__asm__' "$tmp/stubs"/*_extra.c; then
        build_fakes "$tmp/stubs/driver_extra.c" "$tmp/stubs/cudart_extra.c" "$tmp/stubs/nvml_extra.c"
    fi
    while read -r soname source map; do
        "${CC:-cc}" -shared -fPIC -O0 -w -o "$tmp/stubs/$soname" -Wl,-soname,"$soname" \
            ${map:+-Wl,--version-script="$tmp/stubs/$map"} "$tmp/stubs/$source"
    done <"$tmp/stubs/libs.txt"
fi

# Move into place: the libraries first, the stamp last.
rm -rf "$out/stubs"
[[ -d $tmp/stubs ]] && mv "$tmp/stubs" "$out/stubs"
for lib in "$cudart" libcuda.so.1 libnvidia-ml.so.1; do
    mv -f "$tmp/$lib" "$out/$lib"
done
ln -sfn libcuda.so.1 "$out/libcuda.so"
ln -sfn "$cudart" "$out/libcudart.so" # for -lcudart
echo "$want" >"$out/.stamp"
echo "fake_cuda: built $out ($cudart, libcuda.so.1, libnvidia-ml.so.1${torch_lib:+, stubs/ for $torch_lib})" >&2
