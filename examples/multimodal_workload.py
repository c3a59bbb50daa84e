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
import math
import os
import random
import sys

import torch
import torch_npu  # noqa: F401  (registers the "npu" device)

EXIT_OOM = 3
BF16 = torch.bfloat16
MiB = 1 << 20


class Vision:
    """Qwen2.5-VL's counting of vision patches (qwen-vl-utils, transformers'
    Qwen2VLImageProcessor). Qwen3-VL uses 16 px patches (32 px units)."""

    def __init__(self, patch=14):
        self.patch = patch
        self.merge = 2  # 2x2 patches become one LLM token
        self.factor = patch * self.merge  # 28 px
        self.temporal_patch = 2  # an image counts as 2 identical frames
        self.min_pixels = 4 * self.factor**2  # 56x56 for 14 px patches
        self.max_pixels = 1280 * self.factor**2  # qwen-vl-utils' MAX_PIXELS
        self.video_min_pixels = 128 * self.factor**2
        self.video_max_pixels = 768 * self.factor**2
        # Per-video budget: 8192 tokens, lowered from qwen-vl-utils' default as
        # a deployment does to bound the memory one video takes.
        self.video_total_pixels = 8192 * self.factor**2
        self.fps = 2.0

    def smart_resize(self, height, width, min_pixels, max_pixels):
        """Both sides multiples of `factor`, area within [min, max], aspect kept."""
        f = self.factor
        h = max(f, round(height / f) * f)
        w = max(f, round(width / f) * f)
        if h * w > max_pixels:
            beta = math.sqrt(height * width / max_pixels)
            h = max(f, math.floor(height / beta / f) * f)
            w = max(f, math.floor(width / beta / f) * f)
        elif h * w < min_pixels:
            beta = math.sqrt(min_pixels / (height * width))
            h = math.ceil(height * beta / f) * f
            w = math.ceil(width * beta / f) * f
        return h, w

    def image_grid(self, height, width):
        """(t, h, w) in patches for one image."""
        h, w = self.smart_resize(height, width, self.min_pixels, self.max_pixels)
        return 1, h // self.patch, w // self.patch

    def video_grid(self, height, width, seconds):
        """(t, h, w) in patches for a video sampled at `fps`."""
        frames = round(seconds * self.fps / self.temporal_patch) * self.temporal_patch
        frames = min(max(frames, 4), 768)
        per_frame = max(
            min(self.video_max_pixels, self.video_total_pixels / frames * self.temporal_patch),
            int(self.video_min_pixels * 1.05),
        )
        h, w = self.smart_resize(height, width, self.video_min_pixels, per_frame)
        return frames // self.temporal_patch, h // self.patch, w // self.patch

    def tokens(self, grid):
        """(patches seen by the vision encoder, tokens given to the LLM)."""
        t, h, w = grid
        return t * h * w, t * h * w // (self.merge**2)


class Model:
    """Shapes of Qwen2.5-VL-3B (bf16): its ViT (1280 wide, MLP 3420) and its
    language model (36 layers, 2048 wide, MLP 11008, 2 KV heads of 128). Cut
    down to fit a small simulated device: 4 ViT layers instead of 32 (the
    pattern of one layer repeats) and 864 MiB standing for the weights."""

    vit_hidden, vit_mlp, vit_layers = 1280, 3420, 4
    hidden, mlp, layers = 2048, 11008, 36
    kv_heads, head_dim = 2, 128
    weight_bytes = 864 * MiB


def npu(numel):
    return torch.empty(int(numel), dtype=BF16, device="npu")


def random_request(rng, vision):
    """One request of the mix: mostly images of camera/screen/document sizes,
    some videos, a few multi-image prompts."""
    kind = rng.choices(["image", "video", "multi"], weights=[6, 3, 1])[0]
    sizes = [(480, 640), (720, 1280), (1080, 1920), (1024, 1024), (1536, 2048),
             (2480, 3508), (375, 500), (900, 1600), (3024, 4032)]
    grids = []
    if kind == "video":
        h, w = rng.choice([(360, 640), (480, 854), (720, 1280), (1080, 1920)])
        grids.append(vision.video_grid(h, w, rng.uniform(4, 40)))
    else:
        for _ in range(rng.randint(2, 4) if kind == "multi" else 1):
            h, w = rng.choice(sizes)
            if rng.random() < 0.5:
                h, w = w, h
            grids.append(vision.image_grid(h, w))
    text = rng.randint(30, 600)
    return {"kind": kind, "grids": grids, "text": text, "output": rng.randint(16, 384)}


def encode_vision(model, vision, patches):
    """The ViT over all patches: pixel values, then per layer qkv, attention
    output and MLP, the hidden state replaced layer after layer."""
    pixels = npu(patches * 3 * vision.temporal_patch * vision.patch**2)  # (t*h*w, C*T*P*P)
    hidden = npu(patches * model.vit_hidden)
    del pixels
    for _ in range(model.vit_layers):
        qkv = npu(patches * 3 * model.vit_hidden)
        attn = npu(patches * model.vit_hidden)
        del qkv
        up = npu(patches * model.vit_mlp)
        out = npu(patches * model.vit_hidden)
        del up, attn
        hidden, out = out, None
    merged = npu(patches // 4 * model.hidden)  # the 2x2 merger's output
    del hidden
    return merged


def prefill(model, tokens, kv):
    """The language model over the prompt; fills one K and one V per layer."""
    embeds = npu(tokens * model.hidden)
    kv_width = model.kv_heads * model.head_dim
    for _ in range(model.layers):
        qkv = npu(tokens * (model.hidden + 2 * kv_width))
        kv.append([npu(tokens * kv_width), npu(tokens * kv_width)])
        attn = npu(tokens * model.hidden)
        del qkv
        gate_up = npu(tokens * 2 * model.mlp)
        act = npu(tokens * model.mlp)
        del gate_up
        out = npu(tokens * model.hidden)
        del act, attn
        embeds, out = out, None
    logits = npu(152064)  # last position only
    del embeds, logits


def decode(model, request, chunk):
    """`chunk` decoding steps of one request: each layer's K and V grow by
    `chunk` tokens (a new tensor, then the old one is freed)."""
    kv_width = model.kv_heads * model.head_dim
    request["length"] += chunk
    for layer in request["kv"]:
        for i in range(2):
            grown = npu(request["length"] * kv_width)
            layer[i] = grown
    request["left"] -= chunk


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
