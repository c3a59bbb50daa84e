#!/usr/bin/env bash
# Builds the release artifacts for x86_64 and aarch64 Linux into dist/:
#
#   scripts/dist.sh
#
#   dist/npu-alloc-shim-<version>-x86_64.tar.gz
#   dist/npu-alloc-shim-<version>-aarch64.tar.gz
#   dist/SHA256SUMS
#
# Each tarball holds npu-alloc-shim-<version>-<arch>/ with lib/libnpu_alloc_shim.so,
# bin/npu-alloc-shim (which finds ../lib/ by itself; it carries the simulated
# runtime's sources for `whatif`), include/npu_alloc_shim.h,
# share/npu-alloc-shim/torch-npu-venv.sh (the environment `whatif` replays in),
# README.md and docs/recording-format.md.
#
#   scripts/dist.sh stage BUILD_DIR STAGE_DIR
#
# only lays out the built files of BUILD_DIR as a tarball holds them (the
# tests run `whatif` from such a tree). Both files need at most GLIBC_2.17,
# so they load on every glibc distribution Ascend servers run (openEuler 20.03
# and Kylin V10: 2.28; CentOS 7: 2.17): they are linked by cargo-zigbuild
# against glibc 2.17's symbol list, and `objdump -T` is checked below; the
# build fails if any symbol needs a newer version.
#
# On Debian 12 as root it installs what it needs (idempotent): Debian's
# rustc-web (it ships std for both targets), binutils, and the pinned PyPI
# tools (ziglang, cargo-zigbuild, ...) in a virtual environment under
# ${NPU_ALLOC_SHIM_TOOLS:-$HOME/.cache/npu-alloc-shim/dist-tools}
# (scripts/lib/release.sh, shared with scripts/wheel.sh). Elsewhere install
# those yourself (any rustc >= 1.88 with both targets, zig and cargo-zigbuild
# on PATH, objdump), set CARGO/RUSTC and NPU_ALLOC_SHIM_TOOLS_FROM_PATH=1.
#
# Environment: CARGO_TARGET_DIR (default target/dist-build), DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

RELEASE_TOOL=dist
# shellcheck source=scripts/lib/release.sh
source scripts/lib/release.sh

# The release layout of the files built into $1, in $2.
stage() {
    local out=$1 stage=$2
    rm -rf "$stage"
    install -D -m 0755 "$out/libnpu_alloc_shim.so" "$stage/lib/libnpu_alloc_shim.so"
    install -D -m 0755 "$out/npu-alloc-shim" "$stage/bin/npu-alloc-shim"
    install -D -m 0644 include/npu_alloc_shim.h "$stage/include/npu_alloc_shim.h"
    install -D -m 0755 scripts/torch-npu-venv.sh "$stage/share/npu-alloc-shim/torch-npu-venv.sh"
    install -D -m 0644 README.md "$stage/README.md"
    install -D -m 0644 docs/recording-format.md "$stage/docs/recording-format.md"
}

# Unpacks the native tarball and runs `whatif` from it on a small snapshot,
# outside the checkout and with an empty cache: the simulated runtime must be
# built from the sources the CLI carries. Needs a torch_npu 2.10 environment
# (scripts/torch-npu-venv.sh 2.10, which CI creates); without one it says so.
whatif_from_tarball() {
    local tarball=$1 cache=${NPU_ALLOC_SHIM_VENV_CACHE:-${HOME:-/root}/.cache/npu-alloc-shim}
    local python=$cache/venv-2.10/bin/python scratch out
    if [[ ! -f $cache/venv-2.10/.npu-alloc-shim-complete ]]; then
        log "not running whatif from $tarball: no torch_npu 2.10 environment in $cache"
        return
    fi
    scratch=$(mktemp -d)
    tar -xzf "$tarball" -C "$scratch"
    "$python" -c "import pickle,sys
M=1<<20
e=lambda a,ad,s:{'action':a,'addr':ad,'size':s,'stream':0,'frames':[]}
pickle.dump({'segments':[],'device_traces':[[e('alloc',1,8*M),e('alloc',2,24*M)]]},open(sys.argv[1],'wb'),protocol=4)" \
        "$scratch/small.pickle"
    out=$(cd "$scratch" && NPU_ALLOC_SHIM_VENV_CACHE="$scratch/cache" ./*/bin/npu-alloc-shim whatif small.pickle \
        --config "" --json --device-gb 1 --python "$python" 2>&1) || die "whatif from $tarball failed: $out"
    grep -Eq '"outcome": ?"completed"' <<<"$out" || die "whatif from $tarball did not complete: $out"
    rm -rf "$scratch"
    log "whatif runs from $(basename "$tarball") outside the checkout (simulated runtime built from the CLI's sources)"
}

main() {
    install_tools
    local version
    version=$(release_version)
    log "npu-alloc-shim $version with $("${RUSTC:-rustc}" --version), $(cargo-zigbuild --version)"
    # Only this script's own files: dist/ also holds scripts/wheel.sh's wheels.
    mkdir -p "$DIST"
    rm -f "$DIST"/npu-alloc-shim-*.tar.gz "$DIST/SHA256SUMS"
    local wanted=
    for triple in "${TARGETS[@]}"; do
        local arch=${triple%%-*} out stage
        build_release "$triple" -p npu-alloc-shim-cli --lib --bins
        out=$CARGO_TARGET_DIR/$triple/release
        [[ -f $out/npu-alloc-shim ]] || die "$out/npu-alloc-shim was not built"
        check_glibc "$out/npu-alloc-shim" "$arch"
        [[ -n $wanted ]] || wanted=$(exports_of "$out/libnpu_alloc_shim.so")
        check_exports "$out/libnpu_alloc_shim.so" "$wanted"
        check_loads "$out/libnpu_alloc_shim.so" "$out/npu-alloc-shim" "$arch"

        local name=npu-alloc-shim-$version-$arch
        stage=$CARGO_TARGET_DIR/stage/$name
        stage "$out" "$stage"
        # Reproducible: fixed order, owner and times (the last commit's).
        local epoch
        epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
            -C "$CARGO_TARGET_DIR/stage" -cf - "$name" | gzip -9n >"$DIST/$name.tar.gz"
        log "wrote $DIST/$name.tar.gz"
    done
    (cd "$DIST" && sha256sum -- npu-alloc-shim-*.tar.gz >SHA256SUMS)
    log "wrote $DIST/SHA256SUMS"
    whatif_from_tarball "$DIST/npu-alloc-shim-$version-$(uname -m).tar.gz"
    cat "$DIST/SHA256SUMS"
}

if [[ ${1:-} == stage ]]; then
    [[ $# -eq 3 ]] || die "usage: $0 stage BUILD_DIR STAGE_DIR"
    stage "$2" "$3"
else
    main "$@"
fi
