#!/usr/bin/env python3
"""Replays an allocation/free sequence through torch_npu's own caching
allocator, for `npu-alloc-shim whatif` (docs/whatif.md).

Input (argv[1]): a JSON file written by the Rust side, never a pickle: the
snapshot is decoded there with a restricted decoder, so nothing from the
snapshot file can run code here. Shape:

  {"sample_every": N,
   "devices": [{"device": 0,
                "initial": [[addr, size, stream], ...],    # live before the trace began
                "events": [[index, op, addr, size, stream], ...]}]}

op 0 = alloc (torch.empty(size, uint8) kept under addr), 1 = free (drop it).
The allocator configuration comes from PYTORCH_NPU_ALLOC_CONF, set by the
caller: one process per configuration, so each parses its own value.

Streams: the stream of a device's first event is replayed on the current
(default) stream, every other distinct stream id on a torch.npu.Stream of its
own, so blocks stay in per-stream pools as they did in the original run.

stderr: "progress DONE" lines (the Rust side draws the bar). stdout: one
JSON object. Exit 0 whenever a result was printed (OOM included).
"""

import json
import os
import sys
import time

import torch
import torch_npu  # noqa: F401  (registers the "npu" device)


def is_oom(error):
    text = str(error)
    return isinstance(error, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in text.lower()


def first_line(error):
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:400]


def replay_device(spec, sample_every, progress):
    device = spec["device"]
    dev = torch.device("npu", device)
    result = {"device": device, "outcome": "completed", "events": len(spec["events"])}
    # The configuration is parsed when the device is initialised (or, on some
    # lines, at the first allocation): a value this torch_npu refuses fails
    # here, and is reported as refused rather than as an OOM or a crash.
    try:
        torch.npu.set_device(device)
        probe = torch.empty(1, dtype=torch.uint8, device=dev)
        del probe
        torch.npu.empty_cache()
    except RuntimeError as error:
        if is_oom(error):
            raise
        result.update(outcome="rejected", error=first_line(error))
        return result
    torch.npu.reset_peak_memory_stats(dev)

    streams = {}
    default_stream = None

    def stream_for(sid):
        nonlocal default_stream
        if default_stream is None:
            default_stream = sid
        if sid == default_stream:
            return None
        if sid not in streams:
            streams[sid] = torch.npu.Stream(device=dev)
        return streams[sid]

    def alloc(size, sid):
        stream = stream_for(sid)
        if stream is None:
            return torch.empty(size, dtype=torch.uint8, device=dev)
        with torch.npu.stream(stream):
            return torch.empty(size, dtype=torch.uint8, device=dev)

    live = {}
    current = 0
    samples = []
    unmatched_frees = 0
    try:
        # Live before the trace began: kept under their address, so a later
        # free in the trace releases them.
        for addr, size, sid in spec.get("initial", []):
            live[addr] = alloc(size, sid)
        for n, (index, op, addr, size, sid) in enumerate(spec["events"]):
            if op == 0:
                current = index
                live[addr] = alloc(size, sid)
            elif live.pop(addr, None) is None:
                unmatched_frees += 1
            if n % sample_every == 0:
                samples.append([index, torch.npu.memory_reserved(dev), torch.npu.memory_allocated(dev)])
                progress(1)
    except RuntimeError as error:
        if not is_oom(error):
            raise
        result.update(outcome="oom", oom_event=current, oom_size=size, error=first_line(error))
    stats = torch.npu.memory_stats(dev)
    # The last sample is where the run stopped: the end, or the failed event.
    last = result.get("oom_event", spec["events"][-1][0] if spec["events"] else 0)
    samples.append([last, torch.npu.memory_reserved(dev), torch.npu.memory_allocated(dev)])
    result.update(
        max_reserved=torch.npu.max_memory_reserved(dev),
        max_allocated=torch.npu.max_memory_allocated(dev),
        segments_peak=stats.get("segment.all.peak", 0),
        segments_end=stats.get("segment.all.current", 0),
        alloc_retries=stats.get("num_alloc_retries", 0),
        unmatched_frees=unmatched_frees,
        streams=1 + len(streams),
        samples=samples,
    )
    del live
    return result


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        plan = json.load(f)
    sample_every = max(1, int(plan.get("sample_every", 1000)))
    done = [0]

    def progress(steps):
        done[0] += steps * sample_every
        print(f"progress {done[0]}", file=sys.stderr, flush=True)

    started = time.monotonic()
    devices = []
    for spec in plan["devices"]:
        if devices and devices[0]["outcome"] == "rejected":
            # The configuration is process-wide: refused once, refused for all
            # (and touching torch_npu again after a failed init can crash it).
            devices.append(dict(devices[0], device=spec["device"], events=len(spec["events"])))
            continue
        devices.append(replay_device(spec, sample_every, progress))
    print(json.dumps({
        "torch_npu": torch_npu.__version__,
        "alloc_conf": os.environ.get("PYTORCH_NPU_ALLOC_CONF"),
        "seconds": round(time.monotonic() - started, 3),
        "devices": devices,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
