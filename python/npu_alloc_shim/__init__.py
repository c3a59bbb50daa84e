"""The preloaded npu-alloc-shim library, seen from the Python process it is in.

    import npu_alloc_shim
    npu_alloc_shim.totals()          # {'alloc_calls': ..., 'live_bytes': ..., ...}
    npu_alloc_shim.mark("step 12")   # a phase mark in the recording

Only a library that is already loaded is used (opened with RTLD_NOLOAD: it
was preloaded with LD_PRELOAD): loading it now would install its hooks halfway through a run,
after allocations it never saw. Where it is not loaded, every function raises
NotLoaded with how to preload it. The functions are the C API of
include/npu_alloc_shim.h, through ctypes, returning plain values.
"""

from __future__ import annotations

import ctypes
import os
from typing import Dict, Optional

__all__ = ["NotLoaded", "version", "is_recording", "totals", "mark", "dump", "reset_peaks"]

_FIELDS = (
    "alloc_calls",
    "failed_calls",
    "free_calls",
    "untracked_frees",
    "alloc_bytes",
    "freed_bytes",
    "live_bytes",
    "peak_live_bytes",
)
_POOLS = {"device": 0, "host": 1}
_SONAME = "libnpu_alloc_shim.so"


class NotLoaded(RuntimeError):
    """The library is not in this process (not preloaded)."""


class _Totals(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in _FIELDS]


def _api() -> ctypes.CDLL:
    # RTLD_NOLOAD: the library already in the process (by its soname, from
    # whatever path it was preloaded), or nothing; never a fresh load.
    try:
        library = ctypes.CDLL(_SONAME, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    except OSError:
        raise NotLoaded(
            f"{_SONAME} is not loaded in this process: start it with "
            "LD_PRELOAD=$(npu-alloc-shim lib) or `npu-alloc-shim run -- <command>`"
        ) from None
    library.npu_alloc_shim_version.restype = ctypes.c_char_p
    library.npu_alloc_shim_get_totals.argtypes = [ctypes.c_int, ctypes.POINTER(_Totals)]
    library.npu_alloc_shim_mark.argtypes = [ctypes.c_char_p]
    library.npu_alloc_shim_dump.argtypes = [ctypes.c_char_p]
    return library


def version() -> str:
    """The loaded library's version."""
    return _api().npu_alloc_shim_version().decode()


def is_recording() -> bool:
    """Whether this process records (NPU_ALLOC_SHIM_TRACE or NPU_ALLOC_SHIM_METRICS set)."""
    return bool(_api().npu_alloc_shim_is_recording())


def totals(pool: str = "device") -> Dict[str, int]:
    """The counters of `pool` ("device" or "host"), zero when not recording."""
    if pool not in _POOLS:
        raise ValueError(f"pool must be 'device' or 'host', not {pool!r}")
    out = _Totals()
    if _api().npu_alloc_shim_get_totals(_POOLS[pool], ctypes.byref(out)) != 0:
        raise RuntimeError("npu_alloc_shim_get_totals refused its arguments")
    return {name: int(getattr(out, name)) for name in _FIELDS}


def mark(name: str) -> None:
    """Records a phase mark (at most 64 bytes of `name` are kept)."""
    if _api().npu_alloc_shim_mark(name.encode()) != 0:
        raise RuntimeError("no mark recorded: recording is off (set NPU_ALLOC_SHIM_TRACE)")


def dump(path: Optional[str] = None) -> None:
    """Writes a recording now, to `path` or the NPU_ALLOC_SHIM_TRACE path."""
    if _api().npu_alloc_shim_dump(None if path is None else path.encode()) != 0:
        raise OSError("the recording could not be written (the library said why on stderr)")


def reset_peaks() -> None:
    """Sets every peak to the current live bytes."""
    _api().npu_alloc_shim_reset_peaks()
