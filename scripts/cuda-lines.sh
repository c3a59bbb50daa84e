#!/usr/bin/env bash
# Measures, per PyTorch line, which allocator variable its CUDA caching
# allocator honours, on the fake CUDA runtime (tests/fake_cuda/), and prints
# the table of docs/cuda-variables.md.
#
#   scripts/cuda-lines.sh                    # 2.5.1 2.8.0 2.9.1 2.10.0 2.11.0 and PyPI's newest
#   scripts/cuda-lines.sh 2.10.0 2.11.0      # only these
#
# Each line gets its venv from scripts/torch-cuda-venv.sh (a wheel found in
# $TORCH_WHEEL_DIR, named torch-VERSION-*.whl, is used instead of downloading).
# CUDA_LINES_DELETE=1 deletes each venv after its line (about 2 GB each).
# Per line, a probe allocates 10 tensors of 4 MiB under each configuration
# below and reads the fake's own counters: cuMemCreate calls mean expandable
# segments took effect, cudaMalloc calls the classic segments. Every line
# torch wrote to stderr is recorded (warnings, errors).
#
# Sequential by design (one torch at a time on a small machine). Prints the
# Markdown table on stdout, progress and the raw results (JSON lines, also
# kept in ${CUDA_LINES_OUT:-/tmp/cuda-lines}) on stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${CUDA_LINES_OUT:-/tmp/cuda-lines}
mkdir -p "$out"
if [[ $# -gt 0 ]]; then
    versions=("$@")
else
    newest=$(python3 -m pip index versions torch 2>/dev/null | sed -n 's/^torch (\([0-9.]*\)).*/\1/p' | head -n1)
    versions=(2.5.1 2.8.0 2.9.1 2.10.0 2.11.0)
    if [[ -n $newest && ! " ${versions[*]} " =~ " $newest " ]]; then
        versions+=("$newest")
    fi
fi

# name|PYTORCH_CUDA_ALLOC_CONF|PYTORCH_ALLOC_CONF ("-": unset)
configs=(
    "none|-|-"
    "cuda|expandable_segments:True|-"
    "alloc|-|expandable_segments:True"
    "both_cuda_true|expandable_segments:True|expandable_segments:False"
    "both_alloc_true|expandable_segments:False|expandable_segments:True"
    "both_merge|max_split_size_mb:128|expandable_segments:True"
    "split_cuda|max_split_size_mb:128,expandable_segments:True|-"
    "split_alloc|-|max_split_size_mb:128,expandable_segments:True"
    "unknown_cuda|bogus_key:1|-"
    "unknown_alloc|-|bogus_key:1"
)

probe=$(cat <<'PY'
import ctypes, json, sys
result = {"import": "ok"}
try:
    import torch
    result["torch"] = torch.__version__
    try:
        result["stage"] = "is_available"
        result["available"] = torch.cuda.is_available()
        result["stage"] = "allocation"
        xs = [torch.empty(1 << 20, device="cuda") for _ in range(10)]
        result["stage"] = "done"
        result["reserved"] = torch.cuda.memory_reserved()
        del xs
    except Exception as e:  # the allocator's config errors land here
        result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
except Exception as e:
    result["import"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
try:
    buf = ctypes.create_string_buffer(1 << 16)
    ctypes.CDLL("libcuda.so.1").fake_cuda_stats_json(buf, len(buf))
    api = json.loads(buf.value)["by_api"]
    result["calls"] = {k: v["calls"] for k, v in api.items() if v["calls"]}
except OSError as e:
    result["calls"] = f"no fake: {e}"
print("PROBE " + json.dumps(result), flush=True)
PY
)

results=$out/results.jsonl
: >"$results"
for version in "${versions[@]}"; do
    echo "cuda-lines: torch $version" >&2
    wheel=""
    if [[ -n ${TORCH_WHEEL_DIR:-} ]]; then
        wheel=$(ls "$TORCH_WHEEL_DIR"/torch-"$version"-*.whl 2>/dev/null | head -n1 || true)
    fi
    if ! venv=$(TORCH_WHEEL=$wheel bash "$repo/scripts/torch-cuda-venv.sh" "$version" 2>"$out/venv-$version.log"); then
        reason=$(grep -v '^\s*$' "$out/venv-$version.log" | tail -n1)
        python3 -c 'import json,sys; print(json.dumps({"version": sys.argv[1], "hosted": False, "reason": sys.argv[2]}))' \
            "$version" "$reason" >>"$results"
        echo "cuda-lines: torch $version cannot be hosted: $reason" >&2
        continue
    fi
    for config in "${configs[@]}"; do
        IFS='|' read -r name cuda_conf alloc_conf <<<"$config"
        (
            # shellcheck disable=SC1091
            source "$venv/env.sh"
            unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF PYTORCH_HIP_ALLOC_CONF FAKE_CUDA_STATS_FILE
            [[ $cuda_conf != - ]] && export PYTORCH_CUDA_ALLOC_CONF=$cuda_conf
            [[ $alloc_conf != - ]] && export PYTORCH_ALLOC_CONF=$alloc_conf
            cd "$out"
            rc=0
            timeout 300 "$TORCH_CUDA_PYTHON" -W default -c "$probe" >"$out/$version-$name.out" \
                2>"$out/$version-$name.err" || rc=$?
            echo "$rc" >"$out/$version-$name.rc"
        ) || true
        python3 - "$version" "$name" "$cuda_conf" "$alloc_conf" "$out/$version-$name" >>"$results" <<'PY'
import json, sys
version, name, cuda_conf, alloc_conf, base = sys.argv[1:]
probe = {}
for line in open(base + ".out", errors="replace"):
    if line.startswith("PROBE "):
        probe = json.loads(line[6:])
stderr = [l.rstrip() for l in open(base + ".err", errors="replace") if l.strip()]
print(json.dumps({"version": version, "hosted": True, "config": name, "PYTORCH_CUDA_ALLOC_CONF": cuda_conf,
                  "PYTORCH_ALLOC_CONF": alloc_conf, "rc": int(open(base + ".rc").read() or -1),
                  "probe": probe, "stderr": stderr}))
PY
    done
    if [[ ${CUDA_LINES_DELETE:-0} == 1 ]]; then
        rm -rf "$venv"
    fi
done
cat "$results" >&2

python3 - "$results" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
lines = []
for r in rows:
    if r["version"] not in lines:
        lines.append(r["version"])

def verdict(r):
    p = r["probe"]
    if p.get("import", "ok") != "ok":
        return f"import fails: {p['import']}"
    if "error" in p:
        return f"error at {p.get('stage', '?')}: `{p['error'][:160]}`"
    calls = p.get("calls", {})
    if not isinstance(calls, dict):
        return str(calls)
    if calls.get("cuMemCreate"):
        return "expandable"
    if calls.get("cudaMalloc"):
        return "native"
    return f"no allocation (rc {r['rc']})"

def warnings(rs):
    seen = []
    for r in rs:
        for l in r["stderr"]:
            # Python's warning lines carry the file; keep the message.
            m = re.search(r"(\w*Warning: .*)", l)
            text = m.group(1) if m else l
            if re.match(r"^\s*(Traceback|File |\^|  )", l) or text in seen:
                continue
            seen.append(text)
    return "<br>".join(f"`{s[:200]}`" for s in seen) or "none"

cols = [("cuda", "`PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` alone"),
        ("alloc", "`PYTORCH_ALLOC_CONF=expandable_segments:True` alone"),
        ("both_cuda_true", "both: CUDA=True, ALLOC=False"),
        ("both_alloc_true", "both: CUDA=False, ALLOC=True"),
        ("both_merge", "both: CUDA=`max_split_size_mb:128`, ALLOC=True"),
        ("split_cuda", "`max_split_size_mb:128,expandable_segments:True` (CUDA var)"),
        ("split_alloc", "same (ALLOC var)"),
        ("unknown_cuda", "`bogus_key:1` (CUDA var)"),
        ("unknown_alloc", "`bogus_key:1` (ALLOC var)")]
print("| torch | default | " + " | ".join(c[1] for c in cols) + " | stderr (all configurations) |")
print("|" + "---|" * (len(cols) + 3))
for v in lines:
    rs = [r for r in rows if r["version"] == v]
    if not rs[0]["hosted"]:
        print(f"| {v} | not hosted: {rs[0]['reason']} |" + " |" * (len(cols) + 1))
        continue
    by = {r["config"]: r for r in rs}
    name = by["none"]["probe"].get("torch", v)
    cells = [verdict(by[c]) if c in by else "?" for c, _ in cols]
    print(f"| {name} | {verdict(by['none'])} | " + " | ".join(cells) + f" | {warnings(rs)} |")
PY
