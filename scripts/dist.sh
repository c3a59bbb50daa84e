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
# rustc-web (it ships std for both targets), binutils, and ziglang +
# cargo-zigbuild from PyPI in a virtual environment under
# ${NPU_ALLOC_SHIM_TOOLS:-$HOME/.cache/npu-alloc-shim/dist-tools}. Elsewhere
# install those yourself (any rustc >= 1.88 with both targets, zig and
# cargo-zigbuild on PATH, objdump) and set CARGO/RUSTC if needed.
#
# Environment: CARGO_TARGET_DIR (default target/dist-build), DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

GLIBC_MAX=2.17
ZIGLANG=ziglang==0.17.1
ZIGBUILD=cargo-zigbuild==0.24.1
TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/dist-build}
DIST=${DIST:-$PWD/dist}
TOOLS=${NPU_ALLOC_SHIM_TOOLS:-${HOME:-/root}/.cache/npu-alloc-shim/dist-tools}

log() { printf 'dist: %s\n' "$*"; }
die() {
    printf 'dist: error: %s\n' "$*" >&2
    exit 1
}

install_tools() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        local packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 binutils python3-venv)
        local missing=() fresh=0
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            dpkg --add-architecture arm64
            fresh=1
        fi
        for p in "${packages[@]}"; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        if ((${#missing[@]} || fresh)); then
            log "installing ${missing[*]:-(arm64 indexes)}"
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        fi
        : "${CARGO:=/usr/bin/cargo}" "${RUSTC:=/usr/bin/rustc}"
        export CARGO RUSTC
    fi
    if ! command -v cargo-zigbuild >/dev/null || ! { command -v zig >/dev/null || python3 -c 'import ziglang' 2>/dev/null; }; then
        if [[ ! -x $TOOLS/bin/cargo-zigbuild ]] || ! "$TOOLS/bin/python3" -c 'import ziglang' 2>/dev/null; then
            log "installing $ZIGLANG $ZIGBUILD into $TOOLS"
            local python=/usr/bin/python3
            [[ -x $python ]] || python=python3
            rm -rf "$TOOLS"
            "$python" -m venv "$TOOLS"
            "$TOOLS/bin/pip" install -q --disable-pip-version-check "$ZIGLANG" "$ZIGBUILD"
        fi
        # cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH.
        export PATH="$TOOLS/bin:$PATH"
    fi
    : "${CARGO:=cargo}"
    export CARGO
}

# Highest GLIBC_x.y a file's dynamic symbols need (objdump -T), or "none".
glibc_needed() {
    local dump
    dump=$(objdump -T "$1" 2>/dev/null || true)
    if [[ -z $dump ]] && command -v aarch64-linux-gnu-objdump >/dev/null; then
        dump=$(aarch64-linux-gnu-objdump -T "$1")
    fi
    [[ -n $dump ]] || die "objdump -T cannot read $1"
    grep -o 'GLIBC_[0-9][0-9.]*' <<<"$dump" | sed 's/GLIBC_//' | sort -Vu | tail -n1 | grep . || echo none
}

check_glibc() {
    local file=$1 needed
    needed=$(glibc_needed "$file")
    if [[ $needed != none ]] && [[ $(printf '%s\n%s\n' "$needed" "$GLIBC_MAX" | sort -V | tail -n1) != "$GLIBC_MAX" ]]; then
        objdump -T "$file" 2>/dev/null | grep -E "GLIBC_$needed" >&2 || true
        die "$file needs GLIBC_$needed (more than GLIBC_$GLIBC_MAX)"
    fi
    log "$(basename "$file") ($2): highest glibc symbol version GLIBC_$needed (limit $GLIBC_MAX)"
}

# The real dlsym must be reachable at the architecture's base version on a
# glibc without GLIBC_2.34: the library imports dlvsym at that version (from
# libdl.so.2, which it must name as needed) and never dlsym itself.
check_dlsym_versions() {
    local file=$1 base=$2 dump
    dump=$(objdump -T "$file" 2>/dev/null || aarch64-linux-gnu-objdump -T "$file")
    grep -Eq "\\(GLIBC_$base\\)[[:space:]]+dlvsym$" <<<"$dump" || die "$file: dlvsym is not imported at GLIBC_$base"
    if grep -Eq '\*UND\*.*[[:space:]]dlsym$' <<<"$dump"; then
        die "$file imports dlsym (it must reach glibc's only through dlvsym)"
    fi
    readelf -d "$file" | grep -q 'Shared library: \[libdl.so.2\]' || die "$file does not need libdl.so.2 (where dlsym lives before glibc 2.34)"
}

# What a library exports. tests/hooks_and_recording/exports.rs checks the native build against
# the header and the runtimes' hook lists; here every architecture must export
# the same, and nothing of Rust's.
exports_of() {
    nm -D --defined-only "$1" 2>/dev/null | awk '{print $3}' | sort
}

check_exports() {
    local file=$1 wanted=$2 exported
    exported=$(exports_of "$file")
    [[ $exported == "$wanted" ]] || die "$file exports $(tr '\n' ' ' <<<"$exported"), not $(tr '\n' ' ' <<<"$wanted")"
    if grep -Eq '^_(ZN|R)' <<<"$exported"; then die "$file exports Rust symbols"; fi
}

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

# Loads the built library into the built CLI (natively or under qemu) and
# expects its normalization message (at debug: the CLI never uses the
# runtime, where the library speaks at the default level).
smoke() {
    local lib=$1 cli=$2 arch=$3 runner=() out
    if [[ $arch != "$(uname -m)" ]]; then
        if ! command -v "qemu-$arch-static" >/dev/null || [[ ! -e /lib/ld-linux-aarch64.so.1 ]]; then
            log "not loading the $arch build here (no qemu-$arch-static or $arch libc): checked statically only"
            return
        fi
        runner=("qemu-$arch-static")
    fi
    out=$(env -i PATH=/usr/bin:/bin LD_PRELOAD="$lib" NPU_ALLOC_SHIM_LOG=debug "${runner[@]}" "$cli" --version 2>&1) ||
        die "$cli --version failed with the library preloaded: $out"
    grep -q 'expandable_segments:True' <<<"$out" || die "the $arch library did not load into its CLI: $out"
    log "$arch: the library loads and decides ($(grep -m1 'npu-alloc-shim:' <<<"$out"))"
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
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
    [[ -n $version ]] || die "no version in Cargo.toml"
    log "npu-alloc-shim $version with $("${RUSTC:-rustc}" --version), $(cargo-zigbuild --version)"
    rm -rf "$DIST"
    mkdir -p "$DIST"
    local wanted=
    for triple in "${TARGETS[@]}"; do
        local arch=${triple%%-*} base out stage
        case $arch in
            x86_64) base=2.2.5 ;;
            aarch64) base=2.17 ;;
        esac
        log "building $triple against glibc $GLIBC_MAX"
        # No debug info in the artifacts; symbols stay.
        CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
            "$CARGO" zigbuild --release --locked --target "$triple.$GLIBC_MAX" \
            -p npu-alloc-shim -p npu-alloc-shim-cli --lib --bins
        out=$CARGO_TARGET_DIR/$triple/release
        for file in "$out/libnpu_alloc_shim.so" "$out/npu-alloc-shim"; do
            [[ -f $file ]] || die "$file was not built"
            check_glibc "$file" "$arch"
        done
        check_dlsym_versions "$out/libnpu_alloc_shim.so" "$base"
        [[ -n $wanted ]] || wanted=$(exports_of "$out/libnpu_alloc_shim.so")
        check_exports "$out/libnpu_alloc_shim.so" "$wanted"
        smoke "$out/libnpu_alloc_shim.so" "$out/npu-alloc-shim" "$arch"

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
    (cd "$DIST" && sha256sum -- *.tar.gz >SHA256SUMS)
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
