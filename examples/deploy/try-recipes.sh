#!/usr/bin/env bash
# Tries the rollout recipes of examples/deploy/ on this machine, as far as one
# machine without Docker, Kubernetes or an NPU allows, with the artifact that
# scripts/dist.sh built for this machine's architecture:
#
#   scripts/dist.sh && examples/deploy/try-recipes.sh [DIST_DIR]
#
# 1. the two-command install (checksum, unpack under a scratch /opt);
# 2. the container image: the Dockerfile's ENV LD_PRELOAD line, expanded with
#    and without an LD_PRELOAD from the base image, into sh, python3 and a
#    `RUN`-like /bin/sh -c step;
# 3. the pod spec: the init container's copy into a volume, and the
#    application container's environment from pod.yaml;
# 4. Ray runtime_env (when python3 can import ray): a local Ray, a trainer and
#    a rollout actor;
# 5. `vllm serve` under `npu-alloc-shim run`, with a stand-in `vllm` that
#    starts a spawned worker process, as vLLM's engine does;
# 6. turning it off per process.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dist=$(cd "${1:-$repo/dist}" && pwd)
arch=$(uname -m)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
tarball=npu-alloc-shim-$version-$arch.tar.gz
[[ -f $dist/$tarball ]] || { echo "no $dist/$tarball: run scripts/dist.sh" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
# A clean environment, as a container or a pod starts with.
clean() { env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root "$@"; }

# 1. Install: the README's two commands, with /opt under the scratch directory.
opt=$scratch/opt
mkdir -p "$opt"
(cd "$dist" && sha256sum -c --ignore-missing --quiet SHA256SUMS)
tar -xzf "$dist/$tarball" -C "$opt" && ln -sfn "$opt/npu-alloc-shim-$version-$arch" "$opt/npu-alloc-shim"
lib=$opt/npu-alloc-shim/lib/libnpu_alloc_shim.so
cli=$opt/npu-alloc-shim/bin/npu-alloc-shim
"$cli" --version >/dev/null
out=$(clean "$cli" run -- /bin/sh -c 'printf %s "$PYTORCH_NPU_ALLOC_CONF"' 2>/dev/null)
[[ $out == expandable_segments:True ]] || fail "install: run gave '$out'"
ok "install: $tarball unpacked, the CLI finds ../lib by itself"

# 2. Container image: ENV LD_PRELOAD=<lib>${LD_PRELOAD:+:${LD_PRELOAD}}
line=$(grep '^ENV LD_PRELOAD=' "$here/Dockerfile")
# A base image's preload (jemalloc, say): any other loadable library will do.
stand_in=
for dir in "/lib/$arch-linux-gnu" /usr/lib64 /lib64; do
    [[ -e $dir/libz.so.1 ]] && stand_in=$dir/libz.so.1 && break
done
for base_preload in "" ${stand_in:+"$stand_in"}; do
    expr=${line#ENV LD_PRELOAD=}
    value=$(BASE=$base_preload sh -c "printf '%s' \"${expr//LD_PRELOAD/BASE}\"" | sed "s#/opt/npu-alloc-shim#$opt/npu-alloc-shim#")
    want=$lib${base_preload:+:$base_preload}
    [[ $value == "$want" ]] || fail "container: LD_PRELOAD expands to '$value', not '$want'"
    echo "   LD_PRELOAD=$value"
    out=$(clean LD_PRELOAD="$value" /bin/sh -c 'printf %s "$PYTORCH_NPU_ALLOC_CONF"' 2>/dev/null)
    [[ $out == expandable_segments:True ]] || fail "container: sh saw '$out'"
    if command -v python3 >/dev/null; then
        out=$(clean LD_PRELOAD="$value" "$(command -v python3)" -c 'import os; print(os.environ["PYTORCH_NPU_ALLOC_CONF"], end="")' 2>/dev/null)
        [[ $out == expandable_segments:True ]] || fail "container: python3 saw '$out'"
    fi
    # A later RUN step, and a user value the image must not override.
    out=$(clean LD_PRELOAD="$value" PYTORCH_NPU_ALLOC_CONF=page_size:1g /bin/sh -c 'printf %s "$PYTORCH_NPU_ALLOC_CONF"' 2>/dev/null)
    [[ $out == page_size:1g,expandable_segments:True ]] || fail "container: a user value became '$out'"
done
ok "container: ENV LD_PRELOAD keeps the base image's preload; sh, python3 and RUN steps are normalized"

# 3. Pod: the init container copies lib/ and bin/ into the volume, the
# application container preloads from its mount of it.
volume=$scratch/volume
mkdir -p "$volume"
cp -a "$opt/npu-alloc-shim/lib" "$opt/npu-alloc-shim/bin" "$volume/"
pod_preload=$(sed -n '/name: LD_PRELOAD/{n;s/.*value: //p}' "$here/pod.yaml")
mount_path=$(grep -B2 'readOnly: true' "$here/pod.yaml" | sed -n 's/.*mountPath: //p')
[[ $pod_preload == "$mount_path"/lib/libnpu_alloc_shim.so ]] || fail "pod: LD_PRELOAD $pod_preload is not under the volume mount $mount_path"
if python3 -c 'import yaml' 2>/dev/null; then
    python3 -c 'import sys, yaml; pod = yaml.safe_load(open(sys.argv[1])); assert pod["kind"] == "Pod"' "$here/pod.yaml"
fi
trace=$scratch/npu-alloc
mkdir -p "$trace"
out=$(clean LD_PRELOAD="$volume/lib/libnpu_alloc_shim.so" NPU_ALLOC_SHIM_TRACE="$trace/" NPU_ALLOC_SHIM_LOG=warn \
    /bin/sh -c 'printf %s "$PYTORCH_NPU_ALLOC_CONF"' 2>&1)
[[ $out == expandable_segments:True ]] || fail "pod: the container saw '$out'"
ok "pod: the init container's copy preloads from the volume ($pod_preload)"

# 4. Ray.
if python3 -c 'import ray' 2>/dev/null; then
    python3 "$here/ray_runtime_env.py" --self-test --lib "$lib" | tail -n1
    ok "ray: runtime_env env_vars reach the workers"
else
    echo "skipped: ray: python3 cannot import ray (pip install ray to try it)"
fi

# 5. vllm serve under npu-alloc-shim run, with a stand-in vllm.
bin=$scratch/bin
mkdir -p "$bin"
cat >"$bin/vllm" <<'PY'
#!/usr/bin/env python3
# Stand-in for `vllm serve`: the API server process and one engine process
# started with the spawn method, each printing what it sees.
import multiprocessing as mp, os, sys
def show(who):
    print(who, os.environ.get("PYTORCH_NPU_ALLOC_CONF"), os.environ.get("NPU_ALLOC_SHIM_DECISION", "")[:4], flush=True)
if __name__ == "__main__":
    show("api")
    mp.set_start_method("spawn")
    p = mp.Process(target=show, args=("engine",)); p.start(); p.join()
    sys.exit(p.exitcode)
PY
chmod +x "$bin/vllm"
out=$(clean PATH="$bin:/usr/local/bin:/usr/bin:/bin" "$cli" run --trace "$trace/" -- vllm serve Qwen/Qwen3-VL-8B-Instruct 2>/dev/null)
[[ $out == $'api expandable_segments:True set:\nengine expandable_segments:True set:' ]] || fail "vllm: $out"
out=$(clean PATH="$bin:/usr/local/bin:/usr/bin:/bin" "$cli" run -- vllm serve Qwen/Qwen3-VL-8B-Instruct --enable-sleep-mode 2>/dev/null)
[[ $out == $'api None kept\nengine None kept' ]] || fail "vllm --enable-sleep-mode: $out"
ok "vllm serve: the server and its spawned engine run with expandable segments; --enable-sleep-mode is left alone"

# 6. Off per process.
out=$(clean LD_PRELOAD="$lib" NPU_ALLOC_SHIM_DISABLE=1 /bin/sh -c 'printf %s "${PYTORCH_NPU_ALLOC_CONF-unset}"' 2>&1)
[[ $out == unset ]] || fail "NPU_ALLOC_SHIM_DISABLE=1: $out"
out=$(clean LD_PRELOAD="$lib" NPU_ALLOC_SHIM_NORMALIZE=0 /bin/sh -c 'printf %s "${PYTORCH_NPU_ALLOC_CONF-unset}"' 2>&1)
[[ $out == unset ]] || fail "NPU_ALLOC_SHIM_NORMALIZE=0: $out"
ok "off per process: NPU_ALLOC_SHIM_DISABLE=1 and NPU_ALLOC_SHIM_NORMALIZE=0 leave the environment alone"
