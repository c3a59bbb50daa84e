/*
 * A simulated Ascend runtime that hosts the REAL torch_npu wheels (2.10.0.post4
 * and 2.5.1) without an NPU. Built as libascendcl.so by build.sh, together with
 * generated stubs (gen_stubs.py) for every other name torch_npu needs: those
 * are weak and return 0, so a real definition here wins at link time.
 *
 * What behaves for real (everything else is a stub):
 *   - device info: aclrtGetDeviceCount, aclrtGetSocName, aclGetRecentErrMsg,
 *     aclGetCompileoptSize/aclGetCompileopt, aclrtSet/GetDevice, aclrtGetRunMode
 *   - creators that must hand out non-null handles (streams, events, contexts)
 *     and queries whose out-parameter torch_npu reads (event/stream status)
 *   - device memory: aclrtMalloc, aclrtMallocAlign32, aclrtMallocCached,
 *     aclrtMallocWithCfg, aclrtFree, with a capacity per device and the OOM
 *     code 207001 (ACL_ERROR_RT_MEMORY_ALLOCATION)
 *   - VMM: aclrtReserveMemAddress/aclrtReleaseMemAddress (address space only,
 *     not counted against capacity), aclrtMallocPhysical/aclrtFreePhysical
 *     (counted like device memory), aclrtMapMem/aclrtUnmapMem
 *   - host memory: aclrtMallocHost(WithCfg)/aclrtFreeHost are real malloc,
 *     since callers write to pinned host memory
 *   - aclrtGetMemInfo: free = capacity - live bytes of the current device -
 *     what the runtime keeps for itself there
 *   - the runtime's own memory (workspaces, as CANN keeps them): taken from
 *     a device's capacity at its first use by any call, never handed out
 *   - aclrtGetMemUsageInfo (memory per CANN module, which torch_npu 2.10
 *     writes to device_<N>_memUsageInfo_<time>.csv): two modules, "APP"
 *     (what the application holds through ACL: live and peak bytes of the
 *     device) and "RUNTIME" (the runtime's own), largest first. The names
 *     are the simulator's: which modules real CANN reports is not public.
 *
 * Environment, read once at load:
 *   SIM_ACL_DEVICE_BYTES  capacity of each device (default 32 GiB)
 *   SIM_ACL_DEVICE_COUNT  number of devices (default 1, at most 16)
 *   SIM_ACL_SOC_NAME      aclrtGetSocName's answer (default Ascend910B1)
 *   SIM_ACL_RUNTIME_BYTES the runtime's own memory per device (default 0)
 *   SIM_ACL_STATS         write the counters below as JSON to this path at exit
 *   SIM_ACL_LOG=1         one stderr line per memory call; =2 also every stub hit
 *
 * Device pointers are fake addresses (never dereferenced by allocation alone),
 * handed out by a bump pointer and never reused, so a stale free is detected.
 * The counters are exact and use the same meanings as the preloaded library's
 * recording (docs/recording-format.md): the tests compare the two for equality.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_counters.h"

typedef int aclError;

#define ACL_SUCCESS 0
#define ACL_ERROR_INVALID_PARAM 100000
#define ACL_ERROR_RT_PARAM_INVALID 107000
#define ACL_ERROR_RT_INVALID_DEVICEID 107001
#define ACL_ERROR_RT_MEMORY_ALLOCATION 207001

#define MAX_DEVICES 16
#define DEVICE_BASE 0x100000000000ULL /* device d's pointers start at BASE + d * SPAN */
#define DEVICE_SPAN (1ULL << 40)
#define RESERVE_BASE 0x200000000000ULL /* reserved VMM ranges, all devices */
#define HANDLE_BASE 0x300000000000ULL  /* physical handles are opaque */
#define DEVICE_ALIGN 512ULL

/* ---- counters, with the recording's meanings ---- */


enum api {
    MALLOC, MALLOC_ALIGN32, MALLOC_CACHED, MALLOC_WITH_CFG, FREE,
    RESERVE, RELEASE, MALLOC_PHYSICAL, FREE_PHYSICAL, MAP, UNMAP,
    MALLOC_HOST, MALLOC_HOST_WITH_CFG, FREE_HOST, GET_MEM_INFO, SET_DEVICE,
    N_API
};

static const char *const api_names[N_API] = {
    "aclrtMalloc", "aclrtMallocAlign32", "aclrtMallocCached", "aclrtMallocWithCfg", "aclrtFree",
    "aclrtReserveMemAddress", "aclrtReleaseMemAddress", "aclrtMallocPhysical",
    "aclrtFreePhysical", "aclrtMapMem", "aclrtUnmapMem", "aclrtMallocHost",
    "aclrtMallocHostWithCfg", "aclrtFreeHost", "aclrtGetMemInfo", "aclrtSetDevice",
};


enum kind { K_DEVICE, K_PHYSICAL, K_HOST, K_RESERVE };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct device_counters device, host;
    struct device_counters per_device[MAX_DEVICES];
    struct api_counters api[N_API];
    uint64_t reserved_bytes, peak_reserved_bytes, mapped_calls_live;
} st;

static uint64_t capacity;
static uint64_t runtime_bytes;             /* SIM_ACL_RUNTIME_BYTES */
static uint64_t runtime_held[MAX_DEVICES]; /* taken at a device's first use (held_by_runtime) */
static int device_count;
static const char *soc_name;
static const char *stats_path;
static int log_level;
static pid_t init_pid; /* a forked child must not overwrite the parent's file */
static uint64_t next_device[MAX_DEVICES], next_reserve, next_handle;
static int process_device; /* last aclrtSetDevice of any thread */
static __thread int thread_device = -1;

static int current_device(void) { return thread_device >= 0 ? thread_device : process_device; }

/* ---- live things: open addressing on the address, linear probing ---- */

struct slot {
    uintptr_t addr; /* 0: empty */
    uint64_t size;
    int kind, device;
};
static struct slot *table;
static size_t table_cap, table_len;

/* splitmix64's finalizer: addresses and handles differ only in a few bits. */
static size_t slot_of(uintptr_t addr)
{
    uint64_t x = addr;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return (size_t)(x ^ (x >> 31)) & (table_cap - 1);
}

static int table_put(uintptr_t addr, uint64_t size, int kind, int device);

static int table_grow(void)
{
    struct slot *old = table;
    size_t old_cap = table_cap;
    table_cap = old_cap ? old_cap * 2 : 4096;
    table = calloc(table_cap, sizeof *table);
    if (table == NULL) {
        table = old;
        table_cap = old_cap;
        return -1;
    }
    table_len = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].addr)
            table_put(old[i].addr, old[i].size, old[i].kind, old[i].device);
    free(old);
    return 0;
}

static int table_put(uintptr_t addr, uint64_t size, int kind, int device)
{
    if ((table_len + 1) * 2 > table_cap && table_grow() != 0)
        return -1;
    size_t i = slot_of(addr);
    while (table[i].addr)
        i = (i + 1) & (table_cap - 1);
    table[i] = (struct slot){addr, size, kind, device};
    table_len++;
    return 0;
}

/* Removes and returns the entry for addr of that kind; false if unknown. */
static int table_take(uintptr_t addr, int kind, struct slot *out)
{
    if (table_cap == 0 || addr == 0)
        return 0;
    size_t i = slot_of(addr);
    while (table[i].addr && table[i].addr != addr)
        i = (i + 1) & (table_cap - 1);
    if (table[i].addr != addr || table[i].kind != kind)
        return 0;
    *out = table[i];
    table[i].addr = 0;
    table_len--;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    for (size_t j = (i + 1) & (table_cap - 1); table[j].addr; j = (j + 1) & (table_cap - 1)) {
        size_t home = slot_of(table[j].addr);
        if (((j - home) & (table_cap - 1)) >= ((j - i) & (table_cap - 1))) {
            table[i] = table[j];
            table[j].addr = 0;
            i = j;
        }
    }
    return 1;
}

/* ---- accounting (lock held) ---- */

static void note(enum api api, aclError rc, uint64_t bytes)
{
    counters_call(&st.api[api], rc == ACL_SUCCESS, bytes);
}

static void log_call(enum api api, aclError rc, uint64_t size, uintptr_t addr)
{
    if (log_level >= 1)
        fprintf(stderr, "sim-acl: %s size=%" PRIu64 " -> %d %#" PRIxPTR " live=%" PRIu64 "\n",
                api_names[api], size, rc, addr, st.device.live_bytes);
}

/* One device allocation (memory or physical) of `size` on the current device. */
/* The runtime's own memory on `dev`, taken at the device's first use by any
 * call (a thread may allocate or ask before any aclrtSetDevice of the
 * process has run). Called with the lock held. */
static uint64_t held_by_runtime(int dev)
{
    if (runtime_held[dev] == 0)
        runtime_held[dev] = runtime_bytes;
    return runtime_held[dev];
}

static aclError device_alloc(enum api api, void **out, uint64_t size, int kind)
{
    pthread_mutex_lock(&lock);
    int dev = current_device();
    aclError rc = ACL_SUCCESS;
    uintptr_t addr = 0;
    if (out == NULL || size == 0) {
        rc = ACL_ERROR_INVALID_PARAM;
    } else if (st.per_device[dev].live_bytes + held_by_runtime(dev) + size > capacity) {
        rc = ACL_ERROR_RT_MEMORY_ALLOCATION;
    } else {
        if (kind == K_DEVICE) {
            addr = DEVICE_BASE + dev * DEVICE_SPAN + next_device[dev];
            next_device[dev] += (size + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
        } else {
            addr = HANDLE_BASE + 16 * ++next_handle;
        }
        if (table_put(addr, size, kind, dev) != 0)
            rc = ACL_ERROR_RT_MEMORY_ALLOCATION;
    }
    if (rc == ACL_SUCCESS) {
        counters_alloc(&st.device, size);
        counters_alloc(&st.per_device[dev], size);
        *out = (void *)addr;
    } else {
        st.device.failed_calls++;
    }
    note(api, rc, size);
    log_call(api, rc, size, addr);
    pthread_mutex_unlock(&lock);
    return rc;
}

static aclError device_free(enum api api, void *ptr, int kind)
{
    pthread_mutex_lock(&lock);
    struct slot s;
    aclError rc = table_take((uintptr_t)ptr, kind, &s) ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    if (rc == ACL_SUCCESS) {
        counters_free(&st.device, s.size);
        counters_free(&st.per_device[s.device], s.size);
    }
    note(api, rc, rc == ACL_SUCCESS ? s.size : 0);
    log_call(api, rc, rc == ACL_SUCCESS ? s.size : 0, (uintptr_t)ptr);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtMalloc(void **devPtr, size_t size, int policy)
{
    (void)policy;
    return device_alloc(MALLOC, devPtr, size, K_DEVICE);
}

aclError aclrtMallocAlign32(void **devPtr, size_t size, int policy)
{
    (void)policy;
    return device_alloc(MALLOC_ALIGN32, devPtr, size, K_DEVICE);
}

aclError aclrtMallocCached(void **devPtr, size_t size, int policy)
{
    (void)policy;
    return device_alloc(MALLOC_CACHED, devPtr, size, K_DEVICE);
}

aclError aclrtMallocWithCfg(void **devPtr, size_t size, int policy, void *cfg)
{
    (void)policy;
    (void)cfg;
    return device_alloc(MALLOC_WITH_CFG, devPtr, size, K_DEVICE);
}

aclError aclrtFree(void *devPtr) { return device_free(FREE, devPtr, K_DEVICE); }

aclError aclrtMallocPhysical(void **handle, size_t size, const void *prop, uint64_t flags)
{
    (void)prop;
    (void)flags;
    return device_alloc(MALLOC_PHYSICAL, handle, size, K_PHYSICAL);
}

aclError aclrtFreePhysical(void *handle) { return device_free(FREE_PHYSICAL, handle, K_PHYSICAL); }

aclError aclrtReserveMemAddress(void **virPtr, size_t size, size_t alignment, void *expectPtr, uint64_t flags)
{
    (void)expectPtr;
    (void)flags;
    if (virPtr == NULL || size == 0)
        return ACL_ERROR_INVALID_PARAM;
    uint64_t align = alignment > (2ULL << 20) ? alignment : (2ULL << 20);
    pthread_mutex_lock(&lock);
    uint64_t off = (next_reserve + align - 1) / align * align;
    uintptr_t addr = RESERVE_BASE + off;
    next_reserve = off + size;
    aclError rc = table_put(addr, size, K_RESERVE, current_device()) == 0 ? ACL_SUCCESS
                                                                          : ACL_ERROR_RT_MEMORY_ALLOCATION;
    if (rc == ACL_SUCCESS) {
        *virPtr = (void *)addr;
        st.reserved_bytes += size;
        if (st.reserved_bytes > st.peak_reserved_bytes)
            st.peak_reserved_bytes = st.reserved_bytes;
    }
    note(RESERVE, rc, size);
    log_call(RESERVE, rc, size, addr);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtReleaseMemAddress(void *virPtr)
{
    pthread_mutex_lock(&lock);
    struct slot s;
    aclError rc = table_take((uintptr_t)virPtr, K_RESERVE, &s) ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    if (rc == ACL_SUCCESS)
        st.reserved_bytes -= s.size;
    /* 0 bytes, as in the recording: a release frees no device memory (the
     * physical handles mapped into the range do, when they are freed). */
    note(RELEASE, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Mapping moves no bytes of capacity (the physical handle already holds
 * them): count the calls only. */
aclError aclrtMapMem(void *virPtr, size_t size, size_t offset, void *handle, uint64_t flags)
{
    (void)offset;
    (void)flags;
    aclError rc = virPtr && handle ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
    pthread_mutex_lock(&lock);
    note(MAP, rc, size);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtUnmapMem(void *virPtr)
{
    aclError rc = virPtr ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
    pthread_mutex_lock(&lock);
    note(UNMAP, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- host memory: real memory, since callers write to it ---- */

static aclError host_alloc(enum api api, void **out, uint64_t size)
{
    void *p = out && size ? malloc(size) : NULL;
    pthread_mutex_lock(&lock);
    aclError rc = p && table_put((uintptr_t)p, size, K_HOST, 0) == 0 ? ACL_SUCCESS
                                                                    : ACL_ERROR_RT_MEMORY_ALLOCATION;
    if (rc == ACL_SUCCESS) {
        counters_alloc(&st.host, size);
        *out = p;
    } else {
        st.host.failed_calls++;
    }
    note(api, rc, size);
    pthread_mutex_unlock(&lock);
    if (rc != ACL_SUCCESS)
        free(p);
    return rc;
}

aclError aclrtMallocHost(void **hostPtr, size_t size) { return host_alloc(MALLOC_HOST, hostPtr, size); }

aclError aclrtMallocHostWithCfg(void **ptr, uint64_t size, void *cfg)
{
    (void)cfg;
    return host_alloc(MALLOC_HOST_WITH_CFG, ptr, size);
}

aclError aclrtFreeHost(void *hostPtr)
{
    pthread_mutex_lock(&lock);
    struct slot s;
    aclError rc = table_take((uintptr_t)hostPtr, K_HOST, &s) ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    if (rc == ACL_SUCCESS)
        counters_free(&st.host, s.size);
    note(FREE_HOST, rc, rc == ACL_SUCCESS ? s.size : 0);
    pthread_mutex_unlock(&lock);
    if (rc == ACL_SUCCESS)
        free(hostPtr);
    return rc;
}

aclError aclrtGetMemInfo(int attr, size_t *freeBytes, size_t *totalBytes)
{
    (void)attr;
    pthread_mutex_lock(&lock);
    int dev = current_device();
    uint64_t used = st.per_device[dev].live_bytes + held_by_runtime(dev);
    if (freeBytes)
        *freeBytes = used < capacity ? capacity - used : 0;
    if (totalBytes)
        *totalBytes = capacity;
    note(GET_MEM_INFO, ACL_SUCCESS, 0);
    pthread_mutex_unlock(&lock);
    return ACL_SUCCESS;
}

/* CANN's acl_rt.h (hicann/runtime v8.5.0, include/external/acl/acl_rt.h). */
typedef struct aclrtMemUsageInfo {
    char name[32];
    uint64_t curMemSize;
    uint64_t memPeakSize;
    size_t reserved[8];
} aclrtMemUsageInfo;

aclError aclrtGetMemUsageInfo(int32_t deviceId, aclrtMemUsageInfo *memUsageInfo, size_t inputNum,
                              size_t *outputNum)
{
    if (deviceId < 0 || deviceId >= device_count || outputNum == NULL || (memUsageInfo == NULL && inputNum > 0))
        return ACL_ERROR_INVALID_PARAM;
    aclrtMemUsageInfo rows[2];
    memset(rows, 0, sizeof rows);
    pthread_mutex_lock(&lock);
    strcpy(rows[0].name, "APP");
    rows[0].curMemSize = st.per_device[deviceId].live_bytes;
    rows[0].memPeakSize = st.per_device[deviceId].peak_live_bytes;
    strcpy(rows[1].name, "RUNTIME");
    rows[1].curMemSize = rows[1].memPeakSize = runtime_held[deviceId];
    pthread_mutex_unlock(&lock);
    int swap = rows[1].curMemSize > rows[0].curMemSize;
    size_t n = inputNum < 2 ? inputNum : 2;
    for (size_t i = 0; i < n; i++)
        memUsageInfo[i] = rows[swap ? 1 - i : i];
    *outputNum = n;
    return ACL_SUCCESS;
}

/* ---- devices ---- */

aclError aclrtGetDeviceCount(uint32_t *count)
{
    if (count)
        *count = (uint32_t)device_count;
    return ACL_SUCCESS;
}

aclError aclrtSetDevice(int32_t deviceId)
{
    aclError rc = deviceId >= 0 && deviceId < device_count ? ACL_SUCCESS : ACL_ERROR_RT_INVALID_DEVICEID;
    pthread_mutex_lock(&lock);
    if (rc == ACL_SUCCESS) {
        thread_device = process_device = deviceId;
        held_by_runtime(deviceId);
    }
    note(SET_DEVICE, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtGetDevice(int32_t *deviceId)
{
    if (deviceId)
        *deviceId = current_device();
    return ACL_SUCCESS;
}

aclError aclrtGetRunMode(int *runMode)
{
    if (runMode)
        *runMode = 1; /* ACL_HOST: the program runs on the host, as on a server */
    return ACL_SUCCESS;
}

const char *aclrtGetSocName(void) { return soc_name; }

const char *aclGetRecentErrMsg(void) { return "sim-acl: no error message"; }

/* torch_npu reads compile options (ACL_OP_JIT_COMPILE, ...) at device init and
 * refuses a zero size. */
size_t aclGetCompileoptSize(int opt)
{
    (void)opt;
    return 64;
}

aclError aclGetCompileopt(int opt, char *value, size_t length)
{
    (void)opt;
    if (value && length)
        snprintf(value, length, "%s", "disable");
    return ACL_SUCCESS;
}

/* ---- creators: torch_npu checks the handles for NULL ---- */

static aclError new_handle(void **out)
{
    if (out == NULL)
        return ACL_ERROR_INVALID_PARAM;
    *out = calloc(1, 64); /* never freed: handles are few, and a stale use stays valid */
    return *out ? ACL_SUCCESS : ACL_ERROR_RT_MEMORY_ALLOCATION;
}

aclError aclrtCreateStream(void **stream) { return new_handle(stream); }
aclError aclrtCreateStreamWithConfig(void **stream, uint32_t priority, uint32_t flag)
{
    (void)priority;
    (void)flag;
    return new_handle(stream);
}
aclError aclrtCreateEvent(void **event) { return new_handle(event); }
aclError aclrtCreateEventWithFlag(void **event, uint32_t flag)
{
    (void)flag;
    return new_handle(event);
}
aclError aclrtCreateEventExWithFlag(void **event, uint32_t flag)
{
    (void)flag;
    return new_handle(event);
}
aclError aclrtCreateContext(void **context, int32_t deviceId)
{
    (void)deviceId;
    return new_handle(context);
}

static void *the_context;
aclError aclrtGetCurrentContext(void **context)
{
    if (context == NULL)
        return ACL_ERROR_INVALID_PARAM;
    pthread_mutex_lock(&lock);
    if (the_context == NULL)
        new_handle(&the_context);
    *context = the_context;
    pthread_mutex_unlock(&lock);
    return ACL_SUCCESS;
}

/* Queries whose out-parameter torch_npu acts on: everything is complete. */
aclError aclrtQueryEventStatus(void *event, int *status)
{
    (void)event;
    if (status)
        *status = 1; /* ACL_EVENT_RECORDED_STATUS_COMPLETE */
    return ACL_SUCCESS;
}

aclError aclrtQueryEventWaitStatus(void *event, int *status)
{
    (void)event;
    if (status)
        *status = 0; /* ACL_EVENT_WAIT_STATUS_COMPLETE */
    return ACL_SUCCESS;
}

aclError aclrtStreamQuery(void *stream, int *status)
{
    (void)stream;
    if (status)
        *status = 0; /* ACL_STREAM_STATUS_COMPLETE */
    return ACL_SUCCESS;
}

aclError aclrtEventElapsedTime(float *ms, void *start, void *end)
{
    (void)start;
    (void)end;
    if (ms)
        *ms = 0.0f;
    return ACL_SUCCESS;
}

aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId, int32_t peerDeviceId)
{
    (void)deviceId;
    (void)peerDeviceId;
    if (canAccessPeer)
        *canAccessPeer = 0;
    return ACL_SUCCESS;
}

/* ---- stub hits (called by the generated stubs) ---- */

extern const char *const sim_stub_names[];
extern const int sim_stub_count;
static uint64_t *stub_hits;

void sim_stub_hit(int index)
{
    if (stub_hits)
        __atomic_fetch_add(&stub_hits[index], 1, __ATOMIC_RELAXED);
    if (log_level >= 2)
        fprintf(stderr, "sim-acl: stub %s\n", sim_stub_names[index]);
}

/* ---- the counters as JSON ---- */

static void write_counters(FILE *f, const struct device_counters *c)
{
    fprintf(f,
            "{\"alloc_calls\": %" PRIu64 ", \"failed_calls\": %" PRIu64 ", \"free_calls\": %" PRIu64
            ", \"alloc_bytes\": %" PRIu64 ", \"freed_bytes\": %" PRIu64 ", \"live_bytes\": %" PRIu64
            ", \"peak_live_bytes\": %" PRIu64 "}",
            c->alloc_calls, c->failed_calls, c->free_calls, c->alloc_bytes, c->freed_bytes, c->live_bytes,
            c->peak_live_bytes);
}

/* Writes the counters to `path` (also callable from ctypes); 0 on success. */
int sim_acl_write_stats(const char *path)
{
    char tmp[4096];
    if (path == NULL || snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    pthread_mutex_lock(&lock);
    fprintf(f, "{\"schema\": \"sim-acl/1\", \"device_bytes\": %" PRIu64 ", \"device_count\": %d,\n",
            capacity, device_count);
    fprintf(f, " \"totals\": ");
    write_counters(f, &st.device);
    fprintf(f, ",\n \"host\": ");
    write_counters(f, &st.host);
    fprintf(f, ",\n \"runtime_bytes\": %" PRIu64 ",", runtime_bytes);
    fprintf(f, "\n \"reserved_bytes\": %" PRIu64 ", \"peak_reserved_bytes\": %" PRIu64 ",\n",
            st.reserved_bytes, st.peak_reserved_bytes);
    fprintf(f, " \"by_api\": {");
    for (int i = 0; i < N_API; i++)
        fprintf(f, "%s\n  \"%s\": {\"calls\": %" PRIu64 ", \"failures\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                i ? "," : "", api_names[i], st.api[i].calls, st.api[i].failures, st.api[i].bytes);
    fprintf(f, "},\n \"devices\": [");
    for (int d = 0; d < device_count; d++) {
        fprintf(f, "%s{\"device\": %d, \"counters\": ", d ? ", " : "", d);
        write_counters(f, &st.per_device[d]);
        fprintf(f, "}");
    }
    fprintf(f, "],\n \"stub_calls\": {");
    int first = 1;
    for (int i = 0; stub_hits && i < sim_stub_count; i++)
        if (stub_hits[i]) {
            fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", sim_stub_names[i], stub_hits[i]);
            first = 0;
        }
    fprintf(f, "}}\n");
    pthread_mutex_unlock(&lock);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

static void write_stats_at_exit(void)
{
    if (getpid() != init_pid)
        return;
    if (sim_acl_write_stats(stats_path) != 0)
        fprintf(stderr, "sim-acl: could not write %s\n", stats_path);
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *text = getenv(name);
    char *end;
    if (text == NULL || *text == '\0')
        return fallback;
    unsigned long long value = strtoull(text, &end, 0);
    return *end == '\0' ? value : fallback;
}

static void lock_for_fork(void) { pthread_mutex_lock(&lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&lock); }

__attribute__((constructor)) static void sim_acl_init(void)
{
    capacity = env_u64("SIM_ACL_DEVICE_BYTES", 32ULL << 30);
    runtime_bytes = env_u64("SIM_ACL_RUNTIME_BYTES", 0);
    if (runtime_bytes > capacity)
        runtime_bytes = capacity;
    uint64_t count = env_u64("SIM_ACL_DEVICE_COUNT", 1);
    device_count = count < 1 ? 1 : count > MAX_DEVICES ? MAX_DEVICES : (int)count;
    soc_name = getenv("SIM_ACL_SOC_NAME") && *getenv("SIM_ACL_SOC_NAME") ? getenv("SIM_ACL_SOC_NAME")
                                                                          : "Ascend910B1";
    log_level = (int)env_u64("SIM_ACL_LOG", 0);
    stub_hits = calloc((size_t)sim_stub_count, sizeof *stub_hits);
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
    init_pid = getpid();
    stats_path = getenv("SIM_ACL_STATS");
    if (stats_path && *stats_path)
        atexit(write_stats_at_exit);
}
