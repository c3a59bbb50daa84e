"""The device-memory pattern of a Qwen2.5-VL-like model serving image and
video requests with continuous batching, shared by the torch_npu workload
(examples/multimodal_workload.py) and its CUDA twin
(tests/fixtures/cuda_multimodal.py): vision tokens counted the way
Qwen2.5-VL's processor counts them, activations that follow them, KV caches
that grow in chunks. Only torch.empty/del: no kernels run.

The importer sets DEVICE ("npu" or "cuda") before allocating.
"""

import math

import torch

BF16 = torch.bfloat16
MiB = 1 << 20
# Where tensor() allocates; set by the workload that imports this module.
DEVICE = "cpu"


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
    down to fit a small simulated (or fake) device: 4 ViT layers instead of 32 (the
    pattern of one layer repeats) and 864 MiB standing for the weights."""

    vit_hidden, vit_mlp, vit_layers = 1280, 3420, 4
    hidden, mlp, layers = 2048, 11008, 36
    kv_heads, head_dim = 2, 128
    weight_bytes = 864 * MiB


def tensor(numel):
    """An uninitialised bf16 tensor of `numel` elements on DEVICE."""
    return torch.empty(int(numel), dtype=BF16, device=DEVICE)


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
    pixels = tensor(patches * 3 * vision.temporal_patch * vision.patch**2)  # (t*h*w, C*T*P*P)
    hidden = tensor(patches * model.vit_hidden)
    del pixels
    for _ in range(model.vit_layers):
        qkv = tensor(patches * 3 * model.vit_hidden)
        attn = tensor(patches * model.vit_hidden)
        del qkv
        up = tensor(patches * model.vit_mlp)
        out = tensor(patches * model.vit_hidden)
        del up, attn
        hidden, out = out, None
    merged = tensor(patches // 4 * model.hidden)  # the 2x2 merger's output
    del hidden
    return merged


def prefill(model, tokens, kv):
    """The language model over the prompt; fills one K and one V per layer."""
    embeds = tensor(tokens * model.hidden)
    kv_width = model.kv_heads * model.head_dim
    for _ in range(model.layers):
        qkv = tensor(tokens * (model.hidden + 2 * kv_width))
        kv.append([tensor(tokens * kv_width), tensor(tokens * kv_width)])
        attn = tensor(tokens * model.hidden)
        del qkv
        gate_up = tensor(tokens * 2 * model.mlp)
        act = tensor(tokens * model.mlp)
        del gate_up
        out = tensor(tokens * model.hidden)
        del act, attn
        embeds, out = out, None
    logits = tensor(152064)  # last position only
    del embeds, logits


def decode(model, request, chunk):
    """`chunk` decoding steps of one request: each layer's K and V grow by
    `chunk` tokens (a new tensor, then the old one is freed)."""
    kv_width = model.kv_heads * model.head_dim
    request["length"] += chunk
    for layer in request["kv"]:
        for i in range(2):
            grown = tensor(request["length"] * kv_width)
            layer[i] = grown
    request["left"] -= chunk
