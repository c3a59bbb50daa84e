# Shared by scripts/lib/release.sh and scripts/test-aarch64.sh. Sourced; the
# caller defines `log`.

# install_debian_packages PACKAGE...: installs those not installed yet, with
# the arm64 architecture added first (its indexes are fetched then too).
# Idempotent; needs root on Debian.
install_debian_packages() {
    local missing=() fresh=0 p
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
        fresh=1
    fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]} || fresh)); then
        log "installing ${missing[*]:-(arm64 indexes)}"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}
