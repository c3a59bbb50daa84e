"""npu-alloc-shim for Ray workers (RL trainers and rollouts) through runtime_env.

Ray starts each worker process itself, with the job's or the actor's
runtime_env `env_vars` in its environment, so LD_PRELOAD set there preloads the
library into exactly those workers: no change to the training code, the
cluster's `ray start`, or the image. (Exporting LD_PRELOAD before `ray start`
on every node also works, for every worker of every job.)

Ray expands `${LD_PRELOAD}` in the value (it supports this for PATH,
LD_LIBRARY_PATH and LD_PRELOAD), so a preload the cluster already sets is kept.

Rollout workers that use vLLM's sleep mode (verl, OpenRLHF, ...) free and
re-map device memory themselves, which expandable segments break; their
command line (a Ray worker's) does not show --enable-sleep-mode, so turn
normalization off for them with NPU_ALLOC_SHIM_NORMALIZE=0 (the recording
still runs). NPU_ALLOC_SHIM_DISABLE=1 turns the library off entirely.

    python examples/deploy/ray_runtime_env.py --self-test [--lib PATH]

starts a local Ray, runs one trainer and one rollout actor with these
runtime_envs, and checks what each saw.
"""

import argparse
import json
import os
import sys

LIB = "/opt/npu-alloc-shim/lib/libnpu_alloc_shim.so"


def runtime_envs(lib=LIB, trace_dir="/var/log/npu-alloc/"):
    """The two runtime_envs: trainer (normalized) and rollout (left alone)."""
    shim = {
        "LD_PRELOAD": lib + ":${LD_PRELOAD}",
        "NPU_ALLOC_SHIM_TRACE": trace_dir,
    }
    trainer = {"env_vars": dict(shim)}
    rollout = {"env_vars": dict(shim, NPU_ALLOC_SHIM_NORMALIZE="0")}
    return trainer, rollout


# How an RL job uses them:
#
#   trainer_env, rollout_env = runtime_envs()
#   ray.init(runtime_env=trainer_env)                  # every worker of the job
#   Rollout = ray.remote(RolloutWorker).options(runtime_env=rollout_env)
#   Trainer = ray.remote(resources={"NPU": 1})(TrainerWorker)


def self_test(lib):
    import ray

    @ray.remote
    class Probe:
        def seen(self):
            with open("/proc/self/maps") as maps:
                loaded = any(line.rstrip().endswith("/libnpu_alloc_shim.so") for line in maps)
            return {
                "pid": os.getpid(),
                "loaded": loaded,
                "PYTORCH_NPU_ALLOC_CONF": os.environ.get("PYTORCH_NPU_ALLOC_CONF"),
                "NPU_ALLOC_SHIM_DECISION": os.environ.get("NPU_ALLOC_SHIM_DECISION"),
                "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
            }

    trainer_env, rollout_env = runtime_envs(lib, trace_dir="/tmp/npu-alloc-ray/")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        trainer = Probe.options(runtime_env=trainer_env).remote()
        rollout = Probe.options(runtime_env=rollout_env).remote()
        seen = {"trainer": ray.get(trainer.seen.remote()), "rollout": ray.get(rollout.seen.remote())}
    finally:
        ray.shutdown()
    print(json.dumps(seen, indent=1))
    assert seen["trainer"]["loaded"] and seen["rollout"]["loaded"], "the library is not loaded in the workers"
    assert seen["trainer"]["PYTORCH_NPU_ALLOC_CONF"] == "expandable_segments:True", seen["trainer"]
    assert seen["rollout"]["PYTORCH_NPU_ALLOC_CONF"] is None, seen["rollout"]
    print("ray runtime_env: trainer normalized, rollout left alone")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--lib", default=os.environ.get("NPU_ALLOC_SHIM_LIB", LIB))
    args = parser.parse_args()
    if args.self_test:
        self_test(os.path.abspath(args.lib))
    else:
        trainer_env, rollout_env = runtime_envs(args.lib)
        print(json.dumps({"trainer": trainer_env, "rollout": rollout_env}, indent=1))
    sys.exit(0)
