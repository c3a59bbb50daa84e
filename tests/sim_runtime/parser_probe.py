"""Asks the real torch_npu what it makes of the allocator configuration in the
environment: prints one JSON line with the variables as this process sees
them (after any preloaded constructor ran) and torch_npu's verdict, either
"accepted" or the text of the error its parser raised when the caching
allocator was first used."""

import json
import os

seen = {name: os.environ.get(name) for name in ("PYTORCH_NPU_ALLOC_CONF", "PYTORCH_ALLOC_CONF")}

import torch  # noqa: E402
import torch_npu  # noqa: E402,F401

try:
    torch.npu.set_device(0)
    torch.empty(1, device="npu")
    verdict = "accepted"
except RuntimeError as error:
    # The first line is the parser's own message; the rest is a C++ trace.
    verdict = str(error).strip().splitlines()[0]
print(json.dumps({"env": seen, "verdict": verdict}))
