/*
 * npu_alloc_shim.h: the C API of libnpu_alloc_shim.so.
 *
 * The library is meant to be preloaded (LD_PRELOAD); these functions let a
 * program, a Python script (ctypes) or a debugger (gdb, with `set language c`:
 * `print ((int (*)(const char *)) npu_alloc_shim_dump)("/tmp/x.json")`) look at what it recorded. Every
 * function is safe to call at any time, from any thread, also when recording
 * is off (counters are then zero). Resolve them with dlsym(RTLD_DEFAULT, ...)
 * to stay independent of whether the library is loaded.
 */
#ifndef NPU_ALLOC_SHIM_H
#define NPU_ALLOC_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device or host memory counters; see docs/recording-format.md. */
struct npu_alloc_shim_totals {
    uint64_t alloc_calls;     /* successful allocations */
    uint64_t failed_calls;    /* allocation calls that returned non-zero */
    uint64_t free_calls;      /* frees that returned 0 */
    uint64_t untracked_frees; /* successful frees of pointers never seen allocated */
    uint64_t alloc_bytes;     /* sum of successful allocation sizes */
    uint64_t freed_bytes;     /* bytes released by frees of known pointers */
    uint64_t live_bytes;      /* allocated minus freed, now */
    uint64_t peak_live_bytes; /* highest live_bytes since start or the last reset */
};

#define NPU_ALLOC_SHIM_DEVICE 0
#define NPU_ALLOC_SHIM_HOST 1

/* Library version, a static NUL-terminated string. */
const char *npu_alloc_shim_version(void);

/* 1 when this process records allocations (NPU_ALLOC_SHIM_TRACE or
 * NPU_ALLOC_SHIM_METRICS set), else 0. */
int npu_alloc_shim_is_recording(void);

/* Writes a recording now, atomically, to `path` (%p, %h, %t expanded), or to
 * the NPU_ALLOC_SHIM_TRACE path when `path` is NULL. Returns 0, or -1 when it
 * could not be written (the reason is logged once on stderr). */
int npu_alloc_shim_dump(const char *path);

/* Copies the device (NPU_ALLOC_SHIM_DEVICE) or host (NPU_ALLOC_SHIM_HOST)
 * totals into `out`. Returns 0, or -1 for a bad argument. */
int npu_alloc_shim_get_totals(int which, struct npu_alloc_shim_totals *out);

/* Sets every peak (device, per device, host) to the current live bytes. */
void npu_alloc_shim_reset_peaks(void);

/* Records a phase mark (a training step, an RL sleep or wake) named `name`;
 * at most 64 bytes of it are kept, and the first 256 marks. The recording
 * keeps what each calling library held at each mark; `npu-alloc-shim report`
 * shows it and what was left from one mark to the next. Returns 0, or -1
 * when `name` is NULL or recording is off. From Python:
 *   ctypes.CDLL(None).npu_alloc_shim_mark(b"step 1") */
int npu_alloc_shim_mark(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* NPU_ALLOC_SHIM_H */
