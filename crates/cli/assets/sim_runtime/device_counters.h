/* Memory accounting with the recording's meanings, the one C core of both
 * runtimes the project builds: the simulated Ascend runtime (sim_acl.c, which
 * `whatif` builds) and the tests' fake runtime
 * (tests/fake_runtime/fake_ascendcl.c). Both count exactly like the library's
 * recording, so tests compare the two field by field. Header-only; callers
 * hold their own lock. */
#ifndef DEVICE_COUNTERS_H
#define DEVICE_COUNTERS_H

#include <stdint.h>

/* Device memory, or host memory, or one device. */
struct device_counters {
    uint64_t alloc_calls;  /* successful allocations */
    uint64_t failed_calls; /* allocation calls that returned non-zero */
    uint64_t free_calls;   /* successful frees */
    uint64_t alloc_bytes, freed_bytes, live_bytes, peak_live_bytes;
};

/* One API: calls made, successes, failures, and bytes of the successful
 * ones (allocated, or released by a free). */
struct api_counters {
    uint64_t calls, successes, failures, bytes;
};

static inline void counters_alloc(struct device_counters *c, uint64_t size)
{
    c->alloc_calls++;
    c->alloc_bytes += size;
    c->live_bytes += size;
    if (c->live_bytes > c->peak_live_bytes)
        c->peak_live_bytes = c->live_bytes;
}

static inline void counters_free(struct device_counters *c, uint64_t size)
{
    c->free_calls++;
    c->freed_bytes += size;
    c->live_bytes -= size;
}

static inline void counters_call(struct api_counters *a, int succeeded, uint64_t bytes)
{
    a->calls++;
    if (succeeded) {
        a->successes++;
        a->bytes += bytes;
    } else {
        a->failures++;
    }
}

#endif
