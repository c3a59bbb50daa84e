/*
 * The fake Ascend runtime used by the tests: the few ACL types and functions it
 * implements (same C signatures as CANN's acl/acl_rt.h) and its own exact
 * accounting, `fake_acl_stats`, which the tests compare with what the preloaded
 * library recorded.
 *
 * Only libc and pthread: nothing here may need the real CANN headers.
 */
#ifndef FAKE_ACL_H
#define FAKE_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- ACL types (ABI-compatible with CANN: enums are C int) ---- */
typedef int aclError;
typedef int aclrtMemMallocPolicy; /* ACL_MEM_MALLOC_HUGE_FIRST = 0, ... */
typedef int aclrtMemAttr;
typedef void *aclrtDrvMemHandle;

typedef struct aclrtMallocConfig {
    void *attrs;
    size_t numAttrs;
} aclrtMallocConfig;

typedef struct aclrtMemLocation {
    uint32_t id;
    int type;
} aclrtMemLocation;

typedef struct aclrtPhysicalMemProp {
    int handleType;
    int allocationType;
    aclrtMemAttr memAttr;
    aclrtMemLocation location;
    uint64_t reserve;
} aclrtPhysicalMemProp;

/* Return codes the fake uses (values from CANN). */
#define ACL_SUCCESS 0
#define ACL_ERROR_INVALID_PARAM 100000
#define ACL_ERROR_RT_PARAM_INVALID 107000 /* unknown pointer or handle */
#define ACL_ERROR_RT_INVALID_DEVICEID 107001
#define ACL_ERROR_RT_MEMORY_ALLOCATION 207001 /* default OOM code */
#define ACL_ERROR_RT_DEVICE_OOM 207018

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocAlign32(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocCached(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
aclError aclrtMallocWithCfg(void **devPtr, size_t size, aclrtMemMallocPolicy policy,
                            aclrtMallocConfig *cfg);
aclError aclrtFree(void *devPtr);
aclError aclrtMallocHost(void **hostPtr, size_t size);
aclError aclrtMallocHostWithCfg(void **ptr, uint64_t size, aclrtMallocConfig *cfg);
aclError aclrtFreeHost(void *hostPtr);
aclError aclrtReserveMemAddress(void **virPtr, size_t size, size_t alignment, void *expectPtr,
                                uint64_t flags);
aclError aclrtReleaseMemAddress(void *virPtr);
aclError aclrtMallocPhysical(aclrtDrvMemHandle *handle, size_t size,
                             const aclrtPhysicalMemProp *prop, uint64_t flags);
aclError aclrtFreePhysical(aclrtDrvMemHandle handle);
aclError aclrtMapMem(void *virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle,
                     uint64_t flags);
aclError aclrtUnmapMem(void *virPtr);
aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t *free, size_t *total);
aclError aclrtSetDevice(int32_t deviceId);
aclError aclrtGetDevice(int32_t *deviceId);
aclError aclrtGetDeviceCount(uint32_t *count);
aclError aclrtResetDevice(int32_t deviceId);

/* ---- Self-accounting ---- */

/* Every implemented function, once: X(name). Gives the enum and the names. */
#define FAKE_ACL_APIS(X)                                                                           \
    X(aclrtMalloc)                                                                                 \
    X(aclrtMallocAlign32)                                                                          \
    X(aclrtMallocCached)                                                                           \
    X(aclrtMallocWithCfg)                                                                          \
    X(aclrtFree)                                                                                   \
    X(aclrtMallocHost)                                                                             \
    X(aclrtMallocHostWithCfg)                                                                      \
    X(aclrtFreeHost)                                                                               \
    X(aclrtReserveMemAddress)                                                                      \
    X(aclrtReleaseMemAddress)                                                                      \
    X(aclrtMallocPhysical)                                                                         \
    X(aclrtFreePhysical)                                                                           \
    X(aclrtMapMem)                                                                                 \
    X(aclrtUnmapMem)                                                                               \
    X(aclrtGetMemInfo)                                                                             \
    X(aclrtSetDevice)                                                                              \
    X(aclrtGetDevice)                                                                              \
    X(aclrtGetDeviceCount)                                                                         \
    X(aclrtResetDevice)

#define FAKE_ACL_ENUM_ENTRY(name) FAKE_API_##name,
enum fake_acl_api { FAKE_ACL_APIS(FAKE_ACL_ENUM_ENTRY) FAKE_API_COUNT };
#undef FAKE_ACL_ENUM_ENTRY

static inline const char *fake_acl_api_name(int api)
{
#define FAKE_ACL_NAME_ENTRY(name) #name,
    static const char *const names[] = {FAKE_ACL_APIS(FAKE_ACL_NAME_ENTRY)};
#undef FAKE_ACL_NAME_ENTRY
    return api >= 0 && api < FAKE_API_COUNT ? names[api] : "?";
}

#define FAKE_ACL_MAX_DEVICES 64
#define FAKE_ACL_MAX_SIZES 256
#define FAKE_ACL_MAX_FAILURES 64

/* Per function: every call (outermost: aclrtMallocAlign32's inner aclrtMalloc
 * is not a call of its own), those that returned 0 / non-zero, and bytes of
 * successful allocations, or bytes released by successful frees. VMM: reserve,
 * release, map and unmap count the bytes of their range. */
/* The accounting core shared with the simulated runtime. */
#include "../../crates/cli/assets/sim_runtime/device_counters.h"


/* `device` counts Malloc, Align32, Cached, WithCfg, MallocPhysical and their
 * frees; `host` MallocHost, MallocHostWithCfg and FreeHost. */

struct fake_acl_device_stats {
    uint64_t live_bytes, peak_live_bytes, alloc_calls, alloc_bytes;
};

/* Distinct sizes of successful device allocations, for exact histograms. */
struct fake_acl_size_count {
    uint64_t size, count;
};

/* A failed allocation (device or host), in order. */
struct fake_acl_failure {
    int32_t api, code, device, pad_;
    uint64_t size;
    uint64_t device_live_bytes; /* that device's live bytes at the failure */
    uint64_t total_live_bytes;  /* all device live bytes at the failure */
};

struct fake_acl_stats {
    uint64_t device_capacity, host_capacity; /* bytes per device, host bytes */
    int32_t device_count, oom_code, n_sizes, n_failures;
    uint64_t sizes_dropped, failures_dropped; /* beyond the arrays below */
    struct api_counters api[FAKE_API_COUNT];
    struct device_counters device, host;
    struct fake_acl_device_stats devices[FAKE_ACL_MAX_DEVICES];
    struct fake_acl_size_count sizes[FAKE_ACL_MAX_SIZES];
    struct fake_acl_failure failures[FAKE_ACL_MAX_FAILURES];
};

/* Copies the counters (0; -1 when out is NULL). */
int fake_acl_stats(struct fake_acl_stats *out);
/* Zeroes the counters; what is live stays live (peaks restart at it). */
void fake_acl_reset_stats(void);
/* The counters as one JSON object (see fake_acl_write_stats_json), for
 * callers that cannot read the struct (Python): writes at most len bytes
 * including the NUL and returns the full length, like snprintf. */
int fake_acl_stats_json(char *buf, size_t len);

typedef int (*fake_acl_stats_fn)(struct fake_acl_stats *out);

/* ---- JSON, shared by the fake and the test programs ---- */

static inline void fake_acl_write_counters_json(FILE *f, const struct device_counters *c)
{
    fprintf(f,
            "{\"alloc_calls\":%llu,\"failed_calls\":%llu,\"free_calls\":%llu,"
            "\"alloc_bytes\":%llu,\"freed_bytes\":%llu,\"live_bytes\":%llu,"
            "\"peak_live_bytes\":%llu}",
            (unsigned long long)c->alloc_calls, (unsigned long long)c->failed_calls,
            (unsigned long long)c->free_calls, (unsigned long long)c->alloc_bytes,
            (unsigned long long)c->freed_bytes, (unsigned long long)c->live_bytes,
            (unsigned long long)c->peak_live_bytes);
}

/* {"device_capacity","host_capacity","device_count","oom_code","device":{counters},
 *  "host":{counters},"by_api":{name:{calls,successes,failures,bytes}} (every function),
 *  "devices":[{device,live_bytes,peak_live_bytes,alloc_calls,alloc_bytes}] (every device),
 *  "sizes":[{size,count}],"sizes_dropped",
 *  "failures":[{api,size,code,device,device_live_bytes,total_live_bytes}],"failures_dropped"} */
static inline void fake_acl_write_stats_json(FILE *f, const struct fake_acl_stats *s)
{
    fprintf(f, "{\"device_capacity\":%llu,\"host_capacity\":%llu,\"device_count\":%d,\"oom_code\":%d",
            (unsigned long long)s->device_capacity, (unsigned long long)s->host_capacity,
            s->device_count, s->oom_code);
    fputs(",\"device\":", f);
    fake_acl_write_counters_json(f, &s->device);
    fputs(",\"host\":", f);
    fake_acl_write_counters_json(f, &s->host);
    fputs(",\"by_api\":{", f);
    for (int i = 0; i < FAKE_API_COUNT; i++) {
        const struct api_counters *a = &s->api[i];
        fprintf(f, "%s\"%s\":{\"calls\":%llu,\"successes\":%llu,\"failures\":%llu,\"bytes\":%llu}",
                i ? "," : "", fake_acl_api_name(i), (unsigned long long)a->calls,
                (unsigned long long)a->successes, (unsigned long long)a->failures,
                (unsigned long long)a->bytes);
    }
    fputs("},\"devices\":[", f);
    for (int d = 0; d < s->device_count && d < FAKE_ACL_MAX_DEVICES; d++) {
        const struct fake_acl_device_stats *v = &s->devices[d];
        fprintf(f,
                "%s{\"device\":%d,\"live_bytes\":%llu,\"peak_live_bytes\":%llu,"
                "\"alloc_calls\":%llu,\"alloc_bytes\":%llu}",
                d ? "," : "", d, (unsigned long long)v->live_bytes,
                (unsigned long long)v->peak_live_bytes, (unsigned long long)v->alloc_calls,
                (unsigned long long)v->alloc_bytes);
    }
    fputs("],\"sizes\":[", f);
    for (int i = 0; i < s->n_sizes; i++)
        fprintf(f, "%s{\"size\":%llu,\"count\":%llu}", i ? "," : "",
                (unsigned long long)s->sizes[i].size, (unsigned long long)s->sizes[i].count);
    fprintf(f, "],\"sizes_dropped\":%llu,\"failures\":[", (unsigned long long)s->sizes_dropped);
    for (int i = 0; i < s->n_failures; i++) {
        const struct fake_acl_failure *x = &s->failures[i];
        fprintf(f,
                "%s{\"api\":\"%s\",\"size\":%llu,\"code\":%d,\"device\":%d,"
                "\"device_live_bytes\":%llu,\"total_live_bytes\":%llu}",
                i ? "," : "", fake_acl_api_name(x->api), (unsigned long long)x->size, x->code,
                x->device, (unsigned long long)x->device_live_bytes,
                (unsigned long long)x->total_live_bytes);
    }
    fprintf(f, "],\"failures_dropped\":%llu}", (unsigned long long)s->failures_dropped);
}

#endif
