#!/usr/bin/env python3
"""A vision-language serving workload for torch_npu's caching allocator.

It replays the device-memory pattern of a Qwen2.5-VL-like model serving a
seeded mix of image and video requests with continuous batching, using only
torch.empty/del (no kernels run: on the simulated runtime of crates/cli/assets/sim_runtime
device memory is never touched, only allocated):

- vision tokens are counted the way Qwen2.5-VL's processor counts them:
  14 px patches merged 2x2 (so images are resized to multiples of 28 px
  within min/max pixels), video frames sampled at 2 fps in pairs (temporal
  patch 2) with a per-frame pixel budget from the total video budget;
- the vision encoder's activations follow the number of patches, the
  language model's prefill activations the prompt length;
- each request keeps a KV cache per layer that grows in chunks while it
  decodes (torch.cat-style: a new, larger tensor, then the old one is freed)
  and lives until the request finishes: long-lived tensors of varying size
  interleaved with short-lived ones, the pattern that fragments the
  block-splitting allocator.

On a 3 GiB simulated device (SIM_ACL_DEVICE_BYTES=3221225472) the default
configuration ends in torch_npu's own "NPU out of memory"; with
PYTORCH_NPU_ALLOC_CONF=expandable_segments:True (what the preloaded library
sets) the same run completes (docs/real-torch-npu.md has the numbers).

The last line of stdout is one JSON object with the peaks
(torch.npu.max_memory_reserved / max_memory_allocated). Exit status: 0 the
workload completed, 3 torch_npu ran out of device memory, anything else an
error. `--enable-sleep-mode` does nothing here: it is accepted so that the
command line looks like vLLM's RL sleep mode, which the library must leave
alone.
"""

import argparse
import json
import os
import random
import sys

import torch
import torch_npu  # noqa: F401  (registers the "npu" device)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vl_memory_pattern as pattern  # noqa: E402
from vl_memory_pattern import Model, Vision, decode, encode_vision, prefill, random_request  # noqa: E402

pattern.DEVICE = "npu"
npu = pattern.tensor

EXIT_OOM = 3



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--seed", type=int, default=20251125)
    parser.add_argument("--max-batch", type=int, default=6, help="requests decoding at once")
    parser.add_argument("--chunk", type=int, default=32, help="tokens per decoding step")
    parser.add_argument("--encoder-cache-tokens", type=int, default=65536,
                        help="budget of the vision-embedding cache, in LLM tokens")
    parser.add_argument("--model", choices=["qwen2.5-vl", "qwen3-vl"], default="qwen2.5-vl")
    parser.add_argument("--memory-snapshot", metavar="PATH",
                        help="record the allocator's history and dump a memory snapshot (pickle) to PATH at "
                             "the end, OOM or not: the input of `npu-alloc-shim whatif`")
    parser.add_argument("--enable-sleep-mode", action="store_true",
                        help="accepted, no effect (looks like vLLM's RL sleep mode)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    vision = Vision(patch=16 if args.model == "qwen3-vl" else 14)
    model = Model()
    torch.npu.set_device(0)
    result = {
        "torch_npu": torch_npu.__version__,
        "alloc_conf": os.environ.get("PYTORCH_NPU_ALLOC_CONF"),
        "requests": args.requests,
        "completed_requests": 0,
        "vision_tokens": 0,
    }
    if args.memory_snapshot:
        # What an operator does in production: the full history with Python
        # stacks (C++ stacks cannot be unwound through the simulated runtime).
        torch_npu.npu.memory._record_memory_history(max_entries=10_000_000, stacks="python")
    weights = [npu(model.weight_bytes // 2 // 8) for _ in range(8)]
    running, waiting = [], [random_request(rng, vision) for _ in range(args.requests)]
    encoder_cache = []  # (tokens, merged vision embeddings), oldest first
    try:
        while waiting or running:
            # Admit one request when a batch slot is free: vision encoder,
            # then prefill of text + vision tokens.
            if waiting and len(running) < args.max_batch:
                request = waiting.pop(0)
                tokens = request["text"]
                for grid in request["grids"]:
                    patches, llm_tokens = vision.tokens(grid)
                    encoder_cache.append((llm_tokens, encode_vision(model, vision, patches)))
                    tokens += llm_tokens
                    result["vision_tokens"] += llm_tokens
                request.update(kv=[], length=tokens, left=request["output"])
                prefill(model, tokens, request["kv"])
                # Evict the oldest embeddings once over budget; the newest
                # entry stays even when it alone exceeds the budget.
                while sum(n for n, _ in encoder_cache) > args.encoder_cache_tokens and len(encoder_cache) > 1:
                    encoder_cache.pop(0)
                running.append(request)
            for request in list(running):
                decode(model, request, args.chunk)
                if request["left"] <= 0:
                    running.remove(request)  # its KV cache is freed
                    result["completed_requests"] += 1
        outcome, status = "completed", 0
    except RuntimeError as error:  # torch.OutOfMemoryError is one
        message = str(error)
        if "NPU out of memory" not in message:
            raise
        outcome, status = "oom", EXIT_OOM
        result["error"] = message.strip().splitlines()[0][:400]
        print(message, file=sys.stderr)
    if args.memory_snapshot:
        try:
            torch_npu.npu.memory._dump_snapshot(args.memory_snapshot)
        except RuntimeError:
            # torch_npu 2.5.1's _dump_snapshot writes the pickle, then starts
            # the Ascend profiler (libmsprofiler.so), which the simulated
            # runtime does not provide. Write the same dictionary ourselves.
            import pickle
            with open(args.memory_snapshot, "wb") as f:
                pickle.dump(torch_npu.npu.memory._snapshot(), f)
    del weights
    result.update(
        outcome=outcome,
        max_memory_reserved=torch.npu.max_memory_reserved(),
        max_memory_allocated=torch.npu.max_memory_allocated(),
        memory_reserved=torch.npu.memory_reserved(),
        segments_peak=torch.npu.memory_stats().get("segment.all.peak", 0),
    )
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
