#!/usr/bin/env bash
# Builds the simulated Ascend runtime for one installed torch_npu:
#
#   crates/cli/assets/sim_runtime/build.sh OUTDIR SITE_PACKAGES
#
# OUTDIR gets libascendcl.so (sim_acl.c + the stubs gen_stubs.py generates
# from SITE_PACKAGES/torch_npu) and every other CANN library name torch_npu
# links or opens, each a tiny library with DT_NEEDED on libascendcl.so: a
# lookup through any of their handles reaches the one copy that keeps the
# state. Run torch_npu with LD_LIBRARY_PATH=OUTDIR.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OUTDIR SITE_PACKAGES" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
site=$2
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

python3 "$here/gen_stubs.py" "$site" "$tmp/stubs.c"
cc -shared -fPIC -O1 -g -Wall -Werror -o "$tmp/libascendcl.so" -Wl,-soname,libascendcl.so \
    "$here/sim_acl.c" "$tmp/stubs.c" -lpthread

# Linked by torch_npu's libraries (readelf -d), and opened by name by its
# FunctionLoader; libopapi (the aclnn operators) because torch_npu 2.6 raises
# at import without it ("libopapi.so: cannot open shared object file", from
# _get_silent_check_version), as every CANN install has it.
others=(libhccl libacl_op_compiler libge_runner libgraph libacl_tdt_channel libopapi)
echo '/* a name only: every symbol comes from libascendcl.so */' >"$tmp/empty.c"
for lib in "${others[@]}"; do
    # --no-as-needed: the dependency is the whole point, keep it.
    cc -shared -fPIC -o "$tmp/$lib.so" -Wl,-soname,"$lib.so" "$tmp/empty.c" \
        -Wl,--no-as-needed -L"$tmp" -lascendcl -Wl,-rpath,'$ORIGIN'
done
cp "$tmp/stubs.c" "$tmp"/*.so "$out/"
echo "sim_runtime: built $out" >&2
