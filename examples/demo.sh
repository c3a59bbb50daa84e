#!/usr/bin/env bash
# Builds the project and shows the main job on real processes:
#   1. what the library decides for typical PYTORCH_NPU_ALLOC_CONF values,
#   2. a Python process started under the library,
#   3. a recorded workload on the project's fake Ascend runtime, through the
#      binding path older torch_npu uses (dlsym on its own libascendcl handle),
#      summarized by `npu-alloc-shim report` (docs/reports.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cli=target/release/npu-alloc-shim
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1. decisions (npu-alloc-shim check VALUE; exit 0 change / 1 unchanged / 2 refused)"
for value in "" "page_size:1g" "expandable_segments:False" "max_split_size_mb:256" "expandable_segments:true"; do
    printf '%-28s -> ' "'$value'"
    set +e
    "$cli" check --json "$value" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-12s %-9s %s" % (r["verdict"], r["rule"], (r["result"] or {}).get("quoted", "")))'
    set -e
done

echo
echo "== 2. a Python process under the library (it never uses the runtime: the library says nothing)"
"$cli" run -- python3 -c 'import os; print("PYTORCH_NPU_ALLOC_CONF =", os.environ["PYTORCH_NPU_ALLOC_CONF"])'

echo
echo "== 3. a recorded workload (fake Ascend runtime, 4 threads, one OOM): its one line on stderr"
cc -O1 -shared -fPIC -Wl,-soname,libascendcl.so -pthread -Itests/fake_runtime \
    -o "$work/libascendcl.so" tests/fake_runtime/fake_ascendcl.c
cc -O1 -Itests/fake_runtime -o "$work/acl_workload" tests/fixtures/acl_workload.c \
    -Wl,-rpath,"$work" -ldl -pthread
FAKE_ACL_DEVICE_BYTES=$((2 * 1024 * 1024 * 1024)) \
    "$cli" run --trace "$work/" -- "$work/acl_workload" --bind handle --threads 4 --iters 8 --oom --vmm --host >/dev/null
# The report: terminal summary here, the charts and a Perfetto trace kept.
mkdir -p target/demo
"$cli" report "$work" --top 5 --html target/demo/report.html --trace-event target/demo/trace.json
echo
echo "charts: target/demo/report.html (open in a browser); trace: target/demo/trace.json (ui.perfetto.dev)"
