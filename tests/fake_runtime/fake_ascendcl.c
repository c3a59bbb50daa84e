/*
 * A fake Ascend runtime, built by the tests as libascendcl.so (soname
 * libascendcl.so). It implements the memory, VMM and device calls of
 * acl/acl_rt.h with the same C signatures, keeps exact accounts of every call
 * (fake_acl_stats), and links only libc and pthread.
 *
 * Behaviour (environment read once at load):
 *   FAKE_ACL_DEVICE_BYTES   capacity of each device (default 1 GiB)
 *   FAKE_ACL_DEVICE_COUNT   number of devices (default 8, at most 64)
 *   FAKE_ACL_HOST_BYTES     host (pinned) capacity (default 1 GiB)
 *   FAKE_ACL_OOM_CODE       code of a failed allocation (default 207001)
 *   FAKE_ACL_RUNTIME_BYTES  memory the runtime keeps for itself on each device
 *                           (workspaces, as CANN does): used in aclrtGetMemInfo
 *                           and unavailable to allocations (default 0)
 *   FAKE_ACL_FAIL_EVERY=N   every Nth device allocation attempt fails with it
 *   FAKE_ACL_NULL_ON_SUCCESS=1  device allocations return 0 but set the
 *                           out-parameter to NULL (nothing is allocated or
 *                           accounted apart from the call's success)
 *
 * Device pointers are fake addresses, never dereferenced: device d's live at
 * DEVICE_BASE + d * DEVICE_SPAN. Host allocations are real malloc'd memory
 * because callers write to pinned host memory. Physical handles are opaque
 * non-null values that count against their device's capacity; reserved
 * address ranges do not. The device of an allocation (physical ones too) is
 * the calling thread's current device, as set by aclrtSetDevice (default 0).
 * Freeing a pointer or handle the fake did not hand out returns 107000 and
 * changes nothing. One mutex guards all state.
 */
#define _GNU_SOURCE
#include "fake_acl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_BASE 0x100000000000ULL
#define DEVICE_SPAN (1ULL << 40) /* 1 TiB of fake addresses per device */
#define RESERVE_BASE 0x500000000000ULL
#define RESERVE_SPAN (1ULL << 44)
#define HANDLE_BASE 0x600000000000ULL
#define DEVICE_ALIGN 512ULL

enum kind { K_DEVICE, K_PHYSICAL, K_HOST, K_RESERVE, K_MAPPING };

/* Something live: `size` is what the caller asked for (the accounted bytes),
 * `span` the length of its address range. */
struct block {
    uintptr_t addr;
    uint64_t size, span;
    int kind, device;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_acl_stats st; /* the accounts, guarded by lock */
static uint64_t fail_every;      /* FAKE_ACL_FAIL_EVERY */
static uint64_t runtime_bytes;   /* FAKE_ACL_RUNTIME_BYTES */
static int null_on_success;      /* FAKE_ACL_NULL_ON_SUCCESS */
static uint64_t device_attempts; /* device allocation attempts, for fail_every */
static uint64_t next_device_offset[FAKE_ACL_MAX_DEVICES], next_reserve_offset, handle_seq;
static struct block *blocks;
static size_t n_blocks, cap_blocks;

static __thread int32_t current_device;
/* Set by aclrtMallocAlign32 around its inner aclrtMalloc (see there). */
static __thread struct {
    int active;
    size_t size;
} align32_outer;

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
static void reinit_in_child(void) { pthread_mutex_init(&lock, NULL); }

__attribute__((constructor)) static void fake_acl_init(void)
{
    uint64_t count = env_u64("FAKE_ACL_DEVICE_COUNT", 8);
    st.device_count = count < 1 ? 1 : count > FAKE_ACL_MAX_DEVICES ? FAKE_ACL_MAX_DEVICES : (int32_t)count;
    st.device_capacity = env_u64("FAKE_ACL_DEVICE_BYTES", 1ULL << 30);
    st.host_capacity = env_u64("FAKE_ACL_HOST_BYTES", 1ULL << 30);
    st.oom_code = (int32_t)env_u64("FAKE_ACL_OOM_CODE", ACL_ERROR_RT_MEMORY_ALLOCATION);
    fail_every = env_u64("FAKE_ACL_FAIL_EVERY", 0);
    runtime_bytes = env_u64("FAKE_ACL_RUNTIME_BYTES", 0);
    if (runtime_bytes > st.device_capacity)
        runtime_bytes = st.device_capacity;
    null_on_success = env_u64("FAKE_ACL_NULL_ON_SUCCESS", 0) != 0;
    /* A child forked while another thread held the lock must not inherit it held. */
    pthread_atfork(lock_for_fork, unlock_after_fork, reinit_in_child);
}

static uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

/* ---- the table of live things (linear: tests keep few alive) ---- */

static struct block *find(uintptr_t addr, int kind)
{
    for (size_t i = n_blocks; i-- > 0;)
        if (blocks[i].addr == addr && blocks[i].kind == kind)
            return &blocks[i];
    return NULL;
}

static const struct block *overlapping(uintptr_t addr, uint64_t len, int kind, int device)
{
    for (size_t i = 0; i < n_blocks; i++) {
        const struct block *b = &blocks[i];
        if (b->kind == kind && b->device == device && b->addr < addr + len && addr < b->addr + b->span)
            return b;
    }
    return NULL;
}

static int add_block(uintptr_t addr, uint64_t size, uint64_t span, int kind, int device)
{
    if (n_blocks == cap_blocks) {
        size_t cap = cap_blocks ? cap_blocks * 2 : 256;
        struct block *grown = realloc(blocks, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        blocks = grown;
        cap_blocks = cap;
    }
    blocks[n_blocks++] = (struct block){addr, size, span, kind, device};
    return 0;
}

static void remove_block(struct block *b) { *b = blocks[--n_blocks]; }

/* A free address range of `len` bytes in [base, base + region): bump
 * allocation that wraps around and skips live ranges, 0 when full. */
static uintptr_t place(uint64_t base, uint64_t region, uint64_t *next, uint64_t len, uint64_t align,
                       int kind, int device)
{
    uint64_t off = round_up(*next, align);
    int wrapped = 0;
    for (;;) {
        if (off + len > region || off + len < off) {
            if (wrapped++)
                return 0;
            off = 0;
        }
        const struct block *b = overlapping(base + off, len, kind, device);
        if (b == NULL)
            break;
        off = round_up(b->addr + b->span - base, align);
    }
    *next = off + len;
    return base + off;
}

/* ---- accounting (lock held) ---- */

static void note_call(int api, aclError rc, uint64_t bytes)
{
    counters_call(&st.api[api], rc == ACL_SUCCESS, bytes);
}

static void note_failed_alloc(int api, aclError rc, uint64_t size, int host)
{
    (host ? &st.host : &st.device)->failed_calls++;
    if (st.n_failures == FAKE_ACL_MAX_FAILURES) {
        st.failures_dropped++;
        return;
    }
    st.failures[st.n_failures++] = (struct fake_acl_failure){
        .api = api,
        .code = rc,
        .device = current_device,
        .size = size,
        .device_live_bytes = st.devices[current_device].live_bytes,
        .total_live_bytes = st.device.live_bytes,
    };
}

static void note_size(uint64_t size)
{
    for (int i = 0; i < st.n_sizes; i++)
        if (st.sizes[i].size == size) {
            st.sizes[i].count++;
            return;
        }
    if (st.n_sizes == FAKE_ACL_MAX_SIZES) {
        st.sizes_dropped++;
        return;
    }
    st.sizes[st.n_sizes++] = (struct fake_acl_size_count){size, 1};
}


/* ---- the implementations behind the exported functions ---- */

/* A device allocation (physical: a VMM handle) of `size` accounted bytes and
 * `span` bytes of address range. The out-parameter is written only on success. */
static aclError device_alloc(int api, void **out, uint64_t size, uint64_t span, int physical)
{
    pthread_mutex_lock(&lock);
    int dev = current_device;
    struct fake_acl_device_stats *d = &st.devices[dev];
    aclError rc = ACL_SUCCESS;
    uintptr_t addr = 0;
    int accounted = 0;
    if (out == NULL || size == 0) {
        rc = ACL_ERROR_INVALID_PARAM;
    } else if ((fail_every && ++device_attempts % fail_every == 0) ||
               size > st.device_capacity - runtime_bytes - d->live_bytes) {
        rc = st.oom_code;
    } else if (!null_on_success) {
        addr = physical ? HANDLE_BASE + (++handle_seq << 4)
                        : place(DEVICE_BASE + (uint64_t)dev * DEVICE_SPAN, DEVICE_SPAN,
                                &next_device_offset[dev], round_up(span, DEVICE_ALIGN), DEVICE_ALIGN,
                                K_DEVICE, dev);
        if (addr == 0 ||
            add_block(addr, size, physical ? 1 : round_up(span, DEVICE_ALIGN),
                      physical ? K_PHYSICAL : K_DEVICE, dev) != 0) {
            rc = st.oom_code;
        } else {
            accounted = 1;
            counters_alloc(&st.device, size);
            d->alloc_calls++;
            d->alloc_bytes += size;
            d->live_bytes += size;
            if (d->live_bytes > d->peak_live_bytes)
                d->peak_live_bytes = d->live_bytes;
            note_size(size);
        }
    }
    note_call(api, rc, accounted ? size : 0);
    if (rc != ACL_SUCCESS)
        note_failed_alloc(api, rc, size, 0);
    pthread_mutex_unlock(&lock);
    if (rc == ACL_SUCCESS)
        *out = (void *)addr; /* NULL under FAKE_ACL_NULL_ON_SUCCESS */
    return rc;
}

static aclError device_free(int api, uintptr_t addr, int kind)
{
    pthread_mutex_lock(&lock);
    struct block *b = find(addr, kind);
    uint64_t bytes = 0;
    if (b != NULL) {
        bytes = b->size;
        counters_free(&st.device, bytes);
        st.devices[b->device].live_bytes -= bytes;
        remove_block(b);
    }
    aclError rc = b ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    note_call(api, rc, bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}

static aclError host_alloc(int api, void **out, uint64_t size)
{
    pthread_mutex_lock(&lock);
    aclError rc = ACL_SUCCESS;
    void *p = NULL;
    if (out == NULL || size == 0 || size > SIZE_MAX)
        rc = ACL_ERROR_INVALID_PARAM;
    else if (size > st.host_capacity - st.host.live_bytes || (p = malloc(size)) == NULL)
        rc = st.oom_code;
    else if (add_block((uintptr_t)p, size, size, K_HOST, -1) != 0) {
        free(p);
        rc = st.oom_code;
    } else
        counters_alloc(&st.host, size);
    note_call(api, rc, rc == ACL_SUCCESS ? size : 0);
    if (rc != ACL_SUCCESS)
        note_failed_alloc(api, rc, size, 1);
    pthread_mutex_unlock(&lock);
    if (rc == ACL_SUCCESS)
        *out = p;
    return rc;
}

/* ---- exported: device memory ---- */

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    (void)policy;
    if (align32_outer.active) {
        /* The inner call of aclrtMallocAlign32: the same allocation. */
        align32_outer.active = 0;
        return device_alloc(FAKE_API_aclrtMallocAlign32, devPtr, align32_outer.size, size, 0);
    }
    return device_alloc(FAKE_API_aclrtMalloc, devPtr, size, size, 0);
}

aclError aclrtMallocAlign32(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    /*
     * Deliberately implemented by calling the exported aclrtMalloc, as a
     * runtime may: in a -fPIC library a call to a default-visibility function
     * goes through the PLT and may not be inlined, so under LD_PRELOAD it lands
     * in the preloaded library's aclrtMalloc hook. That hook must see it is
     * nested and not record it: the caller made ONE allocation. The
     * thread-local note makes our own accounting count it once too, as an
     * aclrtMallocAlign32 of the caller's size (the inner size is rounded up).
     * Do not make aclrtMalloc static, inline or hidden, and do not link with
     * -Bsymbolic: the tests rely on this call being interposable.
     */
    align32_outer.active = 1;
    align32_outer.size = size;
    size_t inner = size > SIZE_MAX - 31 ? size : (size_t)round_up(size, 32);
    aclError rc = aclrtMalloc(devPtr, inner, policy);
    align32_outer.active = 0;
    return rc;
}

aclError aclrtMallocCached(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    (void)policy;
    return device_alloc(FAKE_API_aclrtMallocCached, devPtr, size, size, 0);
}

aclError aclrtMallocWithCfg(void **devPtr, size_t size, aclrtMemMallocPolicy policy,
                            aclrtMallocConfig *cfg)
{
    (void)policy;
    (void)cfg;
    return device_alloc(FAKE_API_aclrtMallocWithCfg, devPtr, size, size, 0);
}

aclError aclrtFree(void *devPtr) { return device_free(FAKE_API_aclrtFree, (uintptr_t)devPtr, K_DEVICE); }

/* ---- exported: host memory ---- */

aclError aclrtMallocHost(void **hostPtr, size_t size)
{
    return host_alloc(FAKE_API_aclrtMallocHost, hostPtr, size);
}

aclError aclrtMallocHostWithCfg(void **ptr, uint64_t size, aclrtMallocConfig *cfg)
{
    (void)cfg;
    return host_alloc(FAKE_API_aclrtMallocHostWithCfg, ptr, size);
}

aclError aclrtFreeHost(void *hostPtr)
{
    pthread_mutex_lock(&lock);
    struct block *b = find((uintptr_t)hostPtr, K_HOST);
    uint64_t bytes = 0;
    if (b != NULL) {
        bytes = b->size;
        counters_free(&st.host, bytes);
        free(hostPtr);
        remove_block(b);
    }
    aclError rc = b ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    note_call(FAKE_API_aclrtFreeHost, rc, bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- exported: virtual memory management ---- */

aclError aclrtReserveMemAddress(void **virPtr, size_t size, size_t alignment, void *expectPtr,
                                uint64_t flags)
{
    (void)expectPtr; /* a hint, ignored */
    (void)flags;
    uint64_t align = alignment < DEVICE_ALIGN ? DEVICE_ALIGN : alignment;
    pthread_mutex_lock(&lock);
    aclError rc = ACL_SUCCESS;
    uintptr_t addr = 0;
    if (virPtr == NULL || size == 0 || (align & (align - 1)) != 0)
        rc = ACL_ERROR_INVALID_PARAM;
    else if ((addr = place(RESERVE_BASE, RESERVE_SPAN, &next_reserve_offset, size, align, K_RESERVE,
                           -1)) == 0 ||
             add_block(addr, size, size, K_RESERVE, -1) != 0)
        rc = st.oom_code;
    note_call(FAKE_API_aclrtReserveMemAddress, rc, rc == ACL_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    if (rc == ACL_SUCCESS)
        *virPtr = (void *)addr;
    return rc;
}

aclError aclrtReleaseMemAddress(void *virPtr)
{
    pthread_mutex_lock(&lock);
    struct block *b = find((uintptr_t)virPtr, K_RESERVE);
    uint64_t bytes = b ? b->size : 0;
    if (b != NULL)
        remove_block(b);
    aclError rc = b ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    note_call(FAKE_API_aclrtReleaseMemAddress, rc, bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtMallocPhysical(aclrtDrvMemHandle *handle, size_t size, const aclrtPhysicalMemProp *prop,
                             uint64_t flags)
{
    (void)prop; /* the device is the thread's current one, as the recording assumes */
    (void)flags;
    return device_alloc(FAKE_API_aclrtMallocPhysical, handle, size, size, 1);
}

aclError aclrtFreePhysical(aclrtDrvMemHandle handle)
{
    return device_free(FAKE_API_aclrtFreePhysical, (uintptr_t)handle, K_PHYSICAL);
}

aclError aclrtMapMem(void *virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle, uint64_t flags)
{
    (void)flags;
    uintptr_t va = (uintptr_t)virPtr;
    pthread_mutex_lock(&lock);
    const struct block *range = overlapping(va, 1, K_RESERVE, -1);
    const struct block *phys = find((uintptr_t)handle, K_PHYSICAL);
    int ok = size != 0 && range != NULL && va + size <= range->addr + range->span && phys != NULL &&
             offset <= phys->size && size <= phys->size - offset &&
             overlapping(va, size, K_MAPPING, -1) == NULL && add_block(va, size, size, K_MAPPING, -1) == 0;
    aclError rc = ok ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    note_call(FAKE_API_aclrtMapMem, rc, ok ? size : 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtUnmapMem(void *virPtr)
{
    pthread_mutex_lock(&lock);
    struct block *b = find((uintptr_t)virPtr, K_MAPPING);
    uint64_t bytes = b ? b->size : 0;
    if (b != NULL)
        remove_block(b);
    aclError rc = b ? ACL_SUCCESS : ACL_ERROR_RT_PARAM_INVALID;
    note_call(FAKE_API_aclrtUnmapMem, rc, bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- exported: devices ---- */

aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t *free, size_t *total)
{
    (void)attr; /* every attribute reports the current device's memory */
    pthread_mutex_lock(&lock);
    aclError rc = free && total ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
    if (rc == ACL_SUCCESS) {
        *free = st.device_capacity - runtime_bytes - st.devices[current_device].live_bytes;
        *total = st.device_capacity;
    }
    note_call(FAKE_API_aclrtGetMemInfo, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

static aclError device_call(int api, int32_t deviceId, int set)
{
    pthread_mutex_lock(&lock);
    aclError rc = deviceId >= 0 && deviceId < st.device_count ? ACL_SUCCESS : ACL_ERROR_RT_INVALID_DEVICEID;
    if (rc == ACL_SUCCESS && set)
        current_device = deviceId;
    note_call(api, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtSetDevice(int32_t deviceId) { return device_call(FAKE_API_aclrtSetDevice, deviceId, 1); }

aclError aclrtResetDevice(int32_t deviceId) { return device_call(FAKE_API_aclrtResetDevice, deviceId, 0); }

aclError aclrtGetDevice(int32_t *deviceId)
{
    pthread_mutex_lock(&lock);
    aclError rc = deviceId ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
    if (deviceId)
        *deviceId = current_device;
    note_call(FAKE_API_aclrtGetDevice, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

aclError aclrtGetDeviceCount(uint32_t *count)
{
    pthread_mutex_lock(&lock);
    aclError rc = count ? ACL_SUCCESS : ACL_ERROR_INVALID_PARAM;
    if (count)
        *count = (uint32_t)st.device_count;
    note_call(FAKE_API_aclrtGetDeviceCount, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- exported: the fake's own accounts ---- */

int fake_acl_stats(struct fake_acl_stats *out)
{
    if (out == NULL)
        return -1;
    pthread_mutex_lock(&lock);
    *out = st;
    pthread_mutex_unlock(&lock);
    return 0;
}

void fake_acl_reset_stats(void)
{
    pthread_mutex_lock(&lock);
    memset(st.api, 0, sizeof st.api);
    struct device_counters *counters[] = {&st.device, &st.host};
    for (int i = 0; i < 2; i++)
        *counters[i] = (struct device_counters){
            .live_bytes = counters[i]->live_bytes,
            .peak_live_bytes = counters[i]->live_bytes,
        };
    for (int d = 0; d < FAKE_ACL_MAX_DEVICES; d++)
        st.devices[d] = (struct fake_acl_device_stats){
            .live_bytes = st.devices[d].live_bytes,
            .peak_live_bytes = st.devices[d].live_bytes,
        };
    st.n_sizes = st.n_failures = 0;
    st.sizes_dropped = st.failures_dropped = 0;
    device_attempts = 0;
    pthread_mutex_unlock(&lock);
}

int fake_acl_stats_json(char *buf, size_t len)
{
    static struct fake_acl_stats copy; /* large: not on the caller's stack */
    static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
    char *text = NULL;
    size_t n = 0;
    pthread_mutex_lock(&copy_lock);
    fake_acl_stats(&copy);
    FILE *f = open_memstream(&text, &n);
    if (f != NULL) {
        fake_acl_write_stats_json(f, &copy);
        fclose(f);
    }
    pthread_mutex_unlock(&copy_lock);
    if (text == NULL)
        return -1;
    if (buf != NULL && len > 0)
        snprintf(buf, len, "%s", text);
    free(text);
    return (int)n;
}
