# Shared by scripts/dist.sh (tarballs) and scripts/wheel.sh (pip wheels):
# the build tools, the glibc 2.17 ceiling and the checks every released
# binary passes. Sourced, not run; the caller sets RELEASE_TOOL (its name,
# for messages) and `cd`s to the checkout first.

# shellcheck source=scripts/lib/debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

GLIBC_MAX=2.17
# Pinned build tools from PyPI, installed together into one cached venv.
RELEASE_PIP_TOOLS=(ziglang==0.17.1 cargo-zigbuild==0.24.1 maturin==1.16.0 auditwheel==6.8.2)
TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/dist-build}
DIST=${DIST:-$PWD/dist}
TOOLS=${NPU_ALLOC_SHIM_TOOLS:-${HOME:-/root}/.cache/npu-alloc-shim/dist-tools}

# On stderr: stdout carries what a function returns.
log() { printf '%s: %s\n' "$RELEASE_TOOL" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$RELEASE_TOOL" "$*" >&2
    exit 1
}

# Debian's rustc-web (std for both targets) when root on Debian, and the
# pinned PyPI tools in $TOOLS (a marker naming them is written last, so an
# interrupted install is redone). Elsewhere: any rustc >= 1.88 with both
# targets, zig, cargo-zigbuild, maturin and auditwheel on PATH, CARGO/RUSTC set.
install_tools() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        install_debian_packages rustc-web cargo-web libstd-rust-web-dev:arm64 binutils python3-venv
        : "${CARGO:=/usr/bin/cargo}" "${RUSTC:=/usr/bin/rustc}"
        export CARGO RUSTC
    fi
    local marker=$TOOLS/.npu-alloc-shim-tools
    if [[ ${NPU_ALLOC_SHIM_TOOLS_FROM_PATH:-0} != 1 ]] && [[ "$(cat "$marker" 2>/dev/null)" != "${RELEASE_PIP_TOOLS[*]}" ]]; then
        log "installing ${RELEASE_PIP_TOOLS[*]} into $TOOLS"
        local python=/usr/bin/python3
        [[ -x $python ]] || python=python3
        rm -rf "$TOOLS"
        "$python" -m venv "$TOOLS"
        "$TOOLS/bin/pip" install -q --disable-pip-version-check "${RELEASE_PIP_TOOLS[@]}"
        echo "${RELEASE_PIP_TOOLS[*]}" >"$marker"
    fi
    # cargo-zigbuild and maturin run `python3 -m ziglang` when no zig is on PATH.
    [[ -d $TOOLS/bin ]] && export PATH="$TOOLS/bin:$PATH"
    : "${CARGO:=cargo}"
    export CARGO
}

# The version every artifact carries: the root package's.
release_version() {
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
    [[ -n $version ]] || die "no version in Cargo.toml"
    echo "$version"
}

# The glibc symbol-version base of an architecture (what dlvsym is imported at).
glibc_base() {
    case $1 in
        x86_64) echo 2.2.5 ;;
        aarch64) echo 2.17 ;;
        *) die "no glibc base version known for $1" ;;
    esac
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

# Builds the preload library (and, with --bins, the CLI) of one target triple
# against glibc $GLIBC_MAX, without debug info (symbols stay), and checks the
# library: glibc ceiling, dlsym reached through dlvsym at the base version.
# Prints nothing on stdout; the files are in $CARGO_TARGET_DIR/<triple>/release.
build_release() {
    local triple=$1 arch=${1%%-*}
    shift
    log "building $triple against glibc $GLIBC_MAX"
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        "$CARGO" zigbuild --release --locked --target "$triple.$GLIBC_MAX" -p npu-alloc-shim "$@" >&2
    local lib=$CARGO_TARGET_DIR/$triple/release/libnpu_alloc_shim.so
    [[ -f $lib ]] || die "$lib was not built"
    check_glibc "$lib" "$arch"
    check_dlsym_versions "$lib" "$(glibc_base "$arch")"
}

# Loads the built library into the built CLI (natively or under qemu) and
# expects its normalization message (at debug: the CLI never uses the
# runtime, where the library speaks at the default level).
check_loads() {
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
