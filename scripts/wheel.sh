#!/usr/bin/env bash
# Builds the pip wheels for x86_64 and aarch64 Linux into dist/:
#
#   scripts/wheel.sh          # both architectures
#   scripts/wheel.sh native   # this machine's only (what the tests install)
#
#   dist/npu_alloc_shim-<version>-py3-none-manylinux2014_<arch>.manylinux_2_17_<arch>.whl
#   dist/SHA256SUMS.wheels
#
# A wheel holds the CLI (installed as `npu-alloc-shim` on the environment's
# PATH), the preload library inside the package
# (site-packages/npu_alloc_shim/libnpu_alloc_shim.so, where `npu-alloc-shim
# lib` and `run` find it) and the Python module (python/npu_alloc_shim: the
# C API through ctypes, `python -m npu_alloc_shim`). Nothing in it depends on
# the Python version (tag py3-none); both binaries need at most GLIBC_2.17,
# hence manylinux_2_17 (manylinux2014), which `auditwheel show` confirms below.
#
# maturin (`bin` bindings, python/pyproject.toml) builds the CLI and writes
# the wheel; it cannot build a second crate, so the library is built first by
# cargo-zigbuild, exactly as for the tarballs, checked, and copied into the
# package for maturin to include. Both use zig against glibc 2.17's symbols.
# Tools: as scripts/dist.sh (scripts/lib/release.sh), plus maturin and
# auditwheel in the same cached venv.
#
# Environment: CARGO_TARGET_DIR (default target/dist-build, shared with
# dist.sh), DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

RELEASE_TOOL=wheel
# shellcheck source=scripts/lib/release.sh
source scripts/lib/release.sh

PACKAGE=python/npu_alloc_shim
COPIED_LIBRARY=$PACKAGE/libnpu_alloc_shim.so
# What every wheel must hold besides its dist-info.
WANTED_FILES=(npu_alloc_shim/__init__.py npu_alloc_shim/__main__.py npu_alloc_shim/py.typed
    npu_alloc_shim/libnpu_alloc_shim.so)

# The wheel of one target triple, in $DIST; prints its path.
build_wheel() {
    local triple=$1 arch=${1%%-*} version=$2 scratch
    build_release "$triple" --lib
    install -m 0755 "$CARGO_TARGET_DIR/$triple/release/libnpu_alloc_shim.so" "$COPIED_LIBRARY"
    scratch=$(mktemp -d)
    log "packaging $triple with $(maturin --version)"
    # maturin runs `cargo` from PATH (the one with both targets' std) and
    # `python3 -m ziglang` (the venv's). A target directory of its own: its
    # build flags differ from cargo-zigbuild's, and sharing one rebuilds both.
    (cd python && PATH="$TOOLS/bin:$(dirname "$(command -v "$CARGO")"):$PATH" \
        CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        CARGO_TARGET_DIR="$CARGO_TARGET_DIR/maturin" maturin build --release --locked --zig --target "$triple" --compatibility manylinux2014 \
        --out "$scratch" >&2)
    local built=("$scratch"/*.whl)
    [[ ${#built[@]} -eq 1 && -f ${built[0]} ]] || die "maturin wrote ${built[*]}"
    check_wheel "${built[0]}" "$arch" "$version" "$CARGO_TARGET_DIR/$triple/release/libnpu_alloc_shim.so"
    mv "${built[0]}" "$DIST/"
    rm -rf "$scratch"
    echo "$DIST/$(basename "${built[0]}")"
}

# The tag, the files, the binaries' glibc ceiling and auditwheel's verdict.
check_wheel() {
    local wheel=$1 arch=$2 version=$3 library=$4 name listing unpacked verdict
    name=$(basename "$wheel")
    [[ $name == "npu_alloc_shim-$version-py3-none-manylinux2014_$arch.manylinux_2_17_$arch.whl" ]] ||
        die "unexpected wheel name $name (wanted py3-none and manylinux_2_17_$arch)"
    listing=$(python3 -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}')
    for file in "${WANTED_FILES[@]}" "npu_alloc_shim-$version.data/scripts/npu-alloc-shim"; do
        grep -qx "$file" <<<"$listing" || die "$name lacks $file"
    done
    unpacked=$(mktemp -d)
    python3 -m zipfile -e "$wheel" "$unpacked"
    # The library in the wheel is the one built and checked above, byte for byte.
    cmp -s "$unpacked/npu_alloc_shim/libnpu_alloc_shim.so" "$library" || die "$name holds another library than $library"
    local cli=$unpacked/npu_alloc_shim-$version.data/scripts/npu-alloc-shim
    check_glibc "$cli" "$arch"
    chmod +x "$cli"
    check_loads "$unpacked/npu_alloc_shim/libnpu_alloc_shim.so" "$cli" "$arch"
    rm -rf "$unpacked"
    # auditwheel reads the ELF files of any architecture; "consistent with"
    # names the most compatible tag the symbols allow.
    verdict=$(auditwheel show "$wheel" 2>&1) || die "auditwheel show $name: $verdict"
    grep -q "consistent with the following platform tag: \"manylinux_2_17_$arch\"" <<<"${verdict//$'\n'/ }" ||
        die "auditwheel does not find $name consistent with manylinux_2_17_$arch: $verdict"
    log "$name: manylinux_2_17_$arch by auditwheel show, library and CLI at most GLIBC_$GLIBC_MAX"
}

# Installs the native wheel into a fresh venv and asks its CLI where the
# library is and its module what the CLI says.
smoke() {
    local wheel=$1 venv found
    venv=$(mktemp -d)
    /usr/bin/env python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-index "$wheel"
    found=$(env -i PATH=/usr/bin:/bin "$venv/bin/npu-alloc-shim" lib)
    [[ $found == "$venv"/lib/python3*/site-packages/npu_alloc_shim/libnpu_alloc_shim.so ]] ||
        die "the installed CLI finds $found, not the package's library"
    env -i PATH="$venv/bin:/usr/bin:/bin" "$venv/bin/python" -m npu_alloc_shim --version >/dev/null ||
        die "python -m npu_alloc_shim --version failed"
    rm -rf "$venv"
    log "$(basename "$wheel") installs into a fresh venv; its CLI finds the package's library"
}

main() {
    local targets=("${TARGETS[@]}") version wheels=()
    case ${1:-} in
        "") ;;
        native) targets=("$(uname -m)-unknown-linux-gnu") ;;
        *) die "usage: $0 [native]" ;;
    esac
    install_tools
    version=$(release_version)
    mkdir -p "$DIST"
    rm -f "$DIST"/npu_alloc_shim-*.whl "$DIST/SHA256SUMS.wheels"
    trap 'rm -f "$COPIED_LIBRARY"' EXIT
    for triple in "${targets[@]}"; do
        wheels+=("$(build_wheel "$triple" "$version")")
    done
    for wheel in "${wheels[@]}"; do
        [[ $wheel == *"_$(uname -m).whl" ]] && smoke "$wheel"
    done
    (cd "$DIST" && sha256sum -- npu_alloc_shim-*.whl >SHA256SUMS.wheels)
    cat "$DIST/SHA256SUMS.wheels"
}

main "$@"
