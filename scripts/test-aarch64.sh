#!/usr/bin/env bash
# Builds the crate and its tests for aarch64-unknown-linux-gnu on an x86_64
# Debian 12 machine and runs the test suite under qemu-user. Called by .ci/run;
# runs as root; installs what it needs (idempotent).
#
#   scripts/test-aarch64.sh            # install, build, run every test
#   scripts/test-aarch64.sh reliability  # only these test targets (tests/<room>/)
#
# How aarch64 processes run here:
# - Rust: Debian's rustc-web (it ships the aarch64 std; rustup's toolchain has
#   none), linked by aarch64-linux-gnu-gcc. The test binaries run under
#   qemu-aarch64-static (never with -L: threaded programs hang with it); the
#   aarch64 loader and libc come from Debian's multiarch libc6:arm64.
# - Every aarch64 process a test starts (the CLI, the C fixtures built with
#   aarch64-linux-gnu-gcc through NPU_ALLOC_SHIM_TEST_CC) runs through
#   binfmt_misc: qemu is registered for aarch64 ELF with the flags F (the
#   interpreter is opened once, at registration), P (argv[0] preserved) and C
#   (credentials from the binary, so a set-user-ID aarch64 program is secure,
#   AT_SECURE=1, as the secure-execution test needs).
# - The tests start /bin/sh, /bin/true and python3 with the aarch64 library in
#   LD_PRELOAD. An x86_64 program ignores an aarch64 preload, so the tests run
#   in a private mount namespace (unshare) where Debian's arm64 dash and
#   coreutils `true` are bind-mounted over /usr/bin/dash (/bin/sh) and
#   /usr/bin/true, and an arm64 CPython comes first in PATH. Those programs are
#   unpacked from the arm64 .debs (apt-get download + dpkg-deb -x) into
#   $CARGO_TARGET_DIR/aarch64-clients; nothing of the host is replaced.
#
# Skipped on aarch64, each with its reason printed when the script runs (and
# listed in docs/aarch64-and-old-glibc.md): see SKIP_TESTS (a test name, or a module of tests with its `::`). A
# new test file is included automatically; one that cannot run under qemu-user
# goes on one of these lists, with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

TRIPLE=aarch64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/aarch64-cross}
CLIENTS=$CARGO_TARGET_DIR/aarch64-clients
# Debian's toolchain for both the host pieces (build script, proc macros) and
# the aarch64 crate, so that one rustc builds everything here.
CARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export NPU_ALLOC_SHIM_TEST_CC=aarch64-linux-gnu-gcc
export NPU_ALLOC_SHIM_TEST_TARGET=$TRIPLE

# Test functions that cannot run under qemu-user, with the reason.
SKIP_TESTS=(
    "tools::|valgrind cannot run under qemu-user, and the sanitizer runtimes (libasan, libubsan, libtsan) installed here are x86_64; ThreadSanitizer's shadow memory layout does not work under qemu-user either"
    "torch_npu::|needs torch and torch_npu wheels in a virtual environment (x86_64, see scripts/torch-npu-venv.sh); an aarch64 torch under qemu does not fit the CI time"
    "the_c_api_works_from_gdb|gdb cannot ptrace a program that qemu-user runs (it would trace qemu itself); the C API is tested from C and ctypes"
    "rule_1_a_set_user_id_process_loads_the_library_and_changes_nothing|qemu-user-static is itself a static glibc program: started set-user-ID (AT_SECURE) its libc removes LD_PRELOAD from the environment before the aarch64 program starts, so the library is never offered"
    "a_set_user_id_process_records_nothing|the same: qemu-user-static running set-user-ID drops LD_PRELOAD, so the library is never loaded into the secure aarch64 process"
    "a_main_thread_that_calls_pthread_exit_lets_the_process_end|qemu-user keeps the host thread that ran the guest's main thread after the guest calls pthread_exit, so the library cannot tell that its flush thread is the last guest thread (natively the main thread is a zombie and the library ends the process with exit(0))"
    "ordinary_programs_behave_exactly_as_without_the_library|apart from dash, true and python3 (arm64 here), the ordinary programs it compares (coreutils, git, perl, tar, cc) are x86_64 on this machine and ignore an aarch64 preload, so the comparison would not exercise the library; the other tests of tests/normalization/quiet.rs check the quiet rule on aarch64"
    "the_live_view_refreshes_sorts_and_quits_under_tmux|the aarch64 CLI under qemu-user cannot set up the terminal: crossterm's raw-mode setup fails with ENOSYS (os error 38, a call qemu-user does not implement), so top exits 74 with that message; the live view is tested natively, and the plain table and the error tests of tests/reports_and_cli/top.rs run on aarch64"
    "loading_the_library_costs_a_few_page_faults_more_than_an_empty_object|under qemu-user the page faults a process takes are qemu's own (its code cache and the guest's memory as qemu maps it), not the aarch64 loader's; the start-up ratio under qemu is in the benchmark table instead"
    "python3_from_path_is_the_default_and_a_missing_python_is_no_failure|under qemu-user a program that cannot be found is reported as exit status 127, not as the spawn error the test expects (qemu runs glibc's posix_spawn child, a CLONE_VFORK, as a fork, so the exec error never reaches the parent)"
)

log() { printf 'test-aarch64: %s\n' "$*"; }

# ---- packages ----
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    qemu-user-static libc6:arm64 zlib1g:arm64 libexpat1:arm64 libffi8:arm64 binutils util-linux)
# shellcheck source=scripts/lib/debian.sh
source scripts/lib/debian.sh
install_packages() {
    install_debian_packages "${PACKAGES[@]}"
}

# ---- aarch64 programs for the real-process tests ----
unpack_clients() {
    local stamp=$CLIENTS/.complete
    [[ -f $stamp ]] && return
    local py
    py=$(apt-cache depends python3-minimal:arm64 | sed -n 's/.*Depends: \(python3\.[0-9]*\)-minimal.*/\1/p' | head -n1)
    [[ -n $py ]] || { log "cannot tell the arm64 python3 version"; exit 1; }
    rm -rf "$CLIENTS"
    mkdir -p "$CLIENTS/debs"
    log "unpacking arm64 dash, coreutils and $py"
    (cd "$CLIENTS/debs" && apt-get download -qq dash:arm64 coreutils:arm64 "$py-minimal:arm64" \
        "lib$py-minimal:arm64" "lib$py-stdlib:arm64" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
    for deb in "$CLIENTS"/debs/*.deb; do dpkg-deb -x "$deb" "$CLIENTS/root"; done
    mkdir -p "$CLIENTS/bin"
    # python3 found by PATH; CPython finds its library from its own location
    # (root/usr/lib/pythonX.Y), shared libraries from the multiarch libc6:arm64,
    # zlib1g, libexpat1 and libffi8 installed above.
    ln -sf "$CLIENTS/root/usr/bin/$py" "$CLIENTS/bin/python3"
    # (bookworm's dash and coreutils still install to /bin.)
    for tool in dash true; do
        for dir in bin usr/bin; do
            if [[ -x $CLIENTS/root/$dir/$tool ]]; then ln -sf "$CLIENTS/root/$dir/$tool" "$CLIENTS/$tool"; fi
        done
        [[ -e $CLIENTS/$tool ]] || { log "no $tool in the arm64 packages"; exit 1; }
    done
    touch "$stamp"
}

# ---- binfmt_misc ----
register_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    [[ -f $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir"
    # Debian's entry, with the credentials flag added.
    local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    local interpreter=/usr/libexec/qemu-binfmt/aarch64-binfmt-P
    if [[ -f $entry ]]; then
        if grep -qx enabled "$entry" && grep -qx "interpreter $interpreter" "$entry" &&
            grep -q '^flags: .*P' "$entry" && grep -q '^flags: .*C' "$entry" && grep -q '^flags: .*F' "$entry"; then
            return
        fi
        echo -1 >"$entry"
    fi
    echo ":qemu-aarch64:M::$magic:$mask:$interpreter:POCF" >"$dir/register"
    log "registered $(tr '\n' ' ' <"$entry")"
}

# ---- test targets ----
# One binary per room (tests/<room>/main.rs) and the shared crate's own tests.
targets() {
    local file
    for file in tests/*/main.rs; do basename "$(dirname "$file")"; done
    for file in crates/*/tests/*.rs; do basename "$file" .rs; done
}

main() {
    local start=$SECONDS
    if [[ $(id -u) -ne 0 ]]; then
        log "needs root (apt-get, binfmt_misc, a mount namespace)"
        exit 1
    fi
    install_packages
    unpack_clients
    register_binfmt

    local selected=("$@")
    ((${#selected[@]})) || mapfile -t selected < <(targets)
    local args=() skips=()
    for name in "${selected[@]}"; do args+=(--test "$name"); done
    args+=(--lib)
    for entry in "${SKIP_TESTS[@]}"; do
        log "skipped on aarch64: ${entry%%|*}: ${entry#*|}"
        skips+=(--skip "${entry%%|*}")
    done

    log "building for $TRIPLE in $CARGO_TARGET_DIR"
    "$CARGO" build --release --target "$TRIPLE" --lib --bins
    "$CARGO" test --release --target "$TRIPLE" --no-run "${args[@]}"
    log "build done after $((SECONDS - start)) s"

    # A quick check that binfmt runs aarch64 programs before the suite does.
    "$CARGO_TARGET_DIR/$TRIPLE/release/npu-alloc-shim" --version >/dev/null

    # The suite, in a mount namespace where /bin/sh and /bin/true are aarch64.
    unshare --mount --propagation private -- env CLIENTS="$CLIENTS" CARGO="$CARGO" TRIPLE="$TRIPLE" bash -euo pipefail -c '
        mount --bind "$(readlink -f "$CLIENTS/dash")" "$(readlink -f /bin/sh)"
        mount --bind "$(readlink -f "$CLIENTS/true")" "$(readlink -f /bin/true)"
        export PATH="$CLIENTS/bin:$PATH"
        exec "$CARGO" test --release --target "$TRIPLE" --no-fail-fast "$@"
    ' bash "${args[@]}" -- "${skips[@]}"
    log "done after $((SECONDS - start)) s"
}

main "$@"
