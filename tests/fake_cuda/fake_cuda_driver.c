/*
 * The fake CUDA driver, built by tests/fake_cuda/build.sh as libcuda.so.1
 * (soname libcuda.so.1, unversioned symbols like NVIDIA's). It implements the
 * driver calls of fake_cuda.h with real behaviour, answers every other cu*
 * name PyTorch binds (most return CUDA_SUCCESS and write nothing), and keeps
 * the one account of device and host memory that the fake runtime
 * (fake_cudart.c, libcudart.so.12) shares through the private
 * fake_cuda_account_* functions.
 *
 * Behaviour (environment read once at load):
 *   FAKE_CUDA_DEVICE_BYTES     capacity of each device (default 3 GiB)
 *   FAKE_CUDA_DEVICE_COUNT     number of devices (default 1, at most 16)
 *   FAKE_CUDA_DRIVER_VERSION   what cuDriverGetVersion reports (default
 *                              FAKE_CUDA_DEFAULT_DRIVER_VERSION: 12080, or
 *                              13000 when built for a CUDA 13 runtime)
 *   FAKE_CUDA_STATS_FILE       at exit, the counters as JSON are written there
 *                              (fake_cuda_write_stats_json), "%p" replaced by
 *                              the process id; only by the process that loaded
 *                              the fake (not by forked children), and only if
 *                              it called anything accounted (so that helpers
 *                              exec'd with the same environment leave it alone)
 *
 * Device pointers are fake addresses, never dereferenced: device d's live at
 * DEVICE_BASE + d * DEVICE_SPAN. Host and managed allocations are real
 * malloc'd memory. cuMemCreate handles are opaque values counted against the
 * capacity of prop->location.id, or as pinned host memory when the location
 * is the host (CU_MEM_LOCATION_TYPE_HOST, CUDA 12.2+); address ranges reserved with
 * cuMemAddressReserve do not count. Everything else allocates on the calling
 * thread's current device (cudaSetDevice, cuCtxSetCurrent; default 0).
 * Freeing something the fake did not hand out returns
 * CUDA_ERROR_INVALID_VALUE and changes nothing. One mutex guards all state,
 * re-initialised in a forked child.
 *
 * No public cu* function here calls another one: a call between them would
 * go through the PLT and, under LD_PRELOAD, into the library's hooks.
 */
#define _GNU_SOURCE
#include "fake_cuda.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAKE_CUDA_DEFAULT_DRIVER_VERSION
#define FAKE_CUDA_DEFAULT_DRIVER_VERSION 12080
#endif

#define DEVICE_BASE 0x100000000000ULL
#define DEVICE_SPAN (1ULL << 40) /* 1 TiB of fake addresses per device */
#define RESERVE_BASE 0x300000000000ULL
#define RESERVE_SPAN (1ULL << 44)
#define HANDLE_BASE 0x600000000000ULL
#define CONTEXT_BASE 0x7c0000000000ULL
#define DEVICE_ALIGN 512ULL
#define GRANULARITY (2ULL << 20)

/* What the table holds beside the public kinds. */
enum { K_RESERVE = 10, K_MAPPING = 11 };

/* Something live: `size` the accounted bytes (the range of a reservation or
 * mapping), `span` the length of its address range. */
struct block {
    uint64_t addr, size, span;
    int kind, device;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_cuda_stats st; /* the accounts, guarded by lock */
static int driver_version = FAKE_CUDA_DEFAULT_DRIVER_VERSION;
static char *stats_file;
static pid_t loader_pid;
static uint64_t next_device_offset[FAKE_CUDA_MAX_DEVICES], next_reserve_offset, handle_seq;
static struct block *blocks;
static size_t n_blocks, cap_blocks;

static __thread int current_device;

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

__attribute__((constructor)) static void fake_cuda_init(void)
{
    uint64_t count = env_u64("FAKE_CUDA_DEVICE_COUNT", 1);
    st.device_count = count < 1 ? 1 : count > FAKE_CUDA_MAX_DEVICES ? FAKE_CUDA_MAX_DEVICES : (int32_t)count;
    st.device_capacity = env_u64("FAKE_CUDA_DEVICE_BYTES", 3ULL << 30);
    driver_version = (int)env_u64("FAKE_CUDA_DRIVER_VERSION", FAKE_CUDA_DEFAULT_DRIVER_VERSION);
    const char *file = getenv("FAKE_CUDA_STATS_FILE");
    if (file != NULL && *file != '\0')
        stats_file = strdup(file);
    loader_pid = getpid();
    /* A child forked while another thread held the lock must not inherit it held. */
    pthread_atfork(lock_for_fork, unlock_after_fork, reinit_in_child);
}

/* Whether this process counted anything at all. */
static int counted_anything(const struct fake_cuda_stats *s)
{
    for (int i = 0; i < FAKE_CUDA_API_COUNT; i++)
        if (s->api[i].calls)
            return 1;
    return s->device.alloc_calls || s->device.failed_calls || s->host.alloc_calls || s->host.failed_calls;
}

__attribute__((destructor)) static void fake_cuda_fini(void)
{
    /* Not from a forked child, and not from a process that never used the
     * fake (an exec'd helper inheriting LD_PRELOAD would overwrite the file). */
    if (stats_file == NULL || getpid() != loader_pid)
        return;
    static struct fake_cuda_stats copy;
    fake_cuda_stats(&copy);
    if (!counted_anything(&copy))
        return;
    /* "%p" in the name stands for the process id. */
    char path[4096];
    const char *mark = strstr(stats_file, "%p");
    if (mark != NULL)
        snprintf(path, sizeof path, "%.*s%d%s", (int)(mark - stats_file), stats_file, (int)getpid(), mark + 2);
    else
        snprintf(path, sizeof path, "%s", stats_file);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fake_cuda_write_stats_json(f, &copy);
    fputc('\n', f);
    fclose(f);
}

static uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

static int valid_device(int device) { return device >= 0 && device < st.device_count; }

/* ---- the table of live things (linear: a torch run keeps a few hundred) ---- */

static struct block *find(uint64_t addr, int kind)
{
    for (size_t i = n_blocks; i-- > 0;)
        if (blocks[i].addr == addr && blocks[i].kind == kind)
            return &blocks[i];
    return NULL;
}

/* The first live block of `kind` (device -2: any) overlapping [addr, addr + len). */
static struct block *overlapping(uint64_t addr, uint64_t len, int kind, int device)
{
    for (size_t i = 0; i < n_blocks; i++) {
        struct block *b = &blocks[i];
        if (b->kind == kind && (device == -2 || b->device == device) && b->addr < addr + len &&
            addr < b->addr + b->span)
            return b;
    }
    return NULL;
}

static int add_block(uint64_t addr, uint64_t size, uint64_t span, int kind, int device)
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
static uint64_t place(uint64_t base, uint64_t region, uint64_t *next, uint64_t len, uint64_t align, int kind,
                      int device)
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

/* ---- the account (exported to the runtime; lock taken here) ---- */

static void note_call(int api, int rc, uint64_t bytes)
{
    if (api >= 0 && api < FAKE_CUDA_API_COUNT)
        counters_call(&st.api[api], rc == CUDA_SUCCESS, bytes);
}

static int account_alloc(int api, int kind, int device, uint64_t size, uint64_t *out)
{
    int host = kind == FAKE_CUDA_KIND_HOST || (kind == FAKE_CUDA_KIND_PHYSICAL && device < 0);
    pthread_mutex_lock(&lock);
    int rc = CUDA_SUCCESS;
    uint64_t addr = 0;
    void *real = NULL;
    if (out == NULL || size == 0 || size > SIZE_MAX) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else if (!host && !valid_device(device)) {
        rc = CUDA_ERROR_INVALID_DEVICE;
    } else if (!host && size > st.device_capacity - st.devices[device].live_bytes) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        switch (kind) {
        case FAKE_CUDA_KIND_HOST:
        case FAKE_CUDA_KIND_MANAGED:
            /* Real memory: callers write to pinned and managed memory. */
            if (posix_memalign(&real, 4096, size) != 0)
                real = NULL;
            addr = (uintptr_t)real;
            break;
        case FAKE_CUDA_KIND_PHYSICAL:
            addr = HANDLE_BASE + (++handle_seq << 4);
            break;
        default:
            addr = place(DEVICE_BASE + (uint64_t)device * DEVICE_SPAN, DEVICE_SPAN, &next_device_offset[device],
                         round_up(size, DEVICE_ALIGN), DEVICE_ALIGN, FAKE_CUDA_KIND_DEVICE, device);
            break;
        }
        uint64_t span = kind == FAKE_CUDA_KIND_PHYSICAL ? 1 : round_up(size, DEVICE_ALIGN);
        if (addr == 0 || add_block(addr, size, span, kind, host ? -1 : device) != 0) {
            free(real);
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    if (rc == CUDA_SUCCESS) {
        if (host) {
            counters_alloc(&st.host, size);
        } else {
            struct fake_cuda_device_stats *d = &st.devices[device];
            counters_alloc(&st.device, size);
            d->alloc_calls++;
            d->alloc_bytes += size;
            d->live_bytes += size;
            if (d->live_bytes > d->peak_live_bytes)
                d->peak_live_bytes = d->live_bytes;
        }
    } else {
        (host ? &st.host : &st.device)->failed_calls++;
    }
    note_call(api, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    if (rc == CUDA_SUCCESS)
        *out = addr;
    return rc;
}

static int account_free(int api, int kind, uint64_t addr)
{
    pthread_mutex_lock(&lock);
    int rc = CUDA_SUCCESS;
    uint64_t bytes = 0;
    if (addr != 0) {
        struct block *b = find(addr, kind);
        if (b == NULL && kind == FAKE_CUDA_KIND_DEVICE)
            b = find(addr, FAKE_CUDA_KIND_MANAGED);
        if (b == NULL) {
            rc = CUDA_ERROR_INVALID_VALUE;
        } else {
            bytes = b->size;
            if (b->kind == FAKE_CUDA_KIND_HOST || b->device < 0) {
                counters_free(&st.host, bytes);
            } else {
                counters_free(&st.device, bytes);
                st.devices[b->device].live_bytes -= bytes;
            }
            if (b->kind == FAKE_CUDA_KIND_HOST || b->kind == FAKE_CUDA_KIND_MANAGED)
                free((void *)(uintptr_t)b->addr);
            remove_block(b);
        }
    }
    note_call(api, rc, bytes);
    pthread_mutex_unlock(&lock);
    return rc;
}

int fake_cuda_account_alloc(int api, int kind, int device, uint64_t size, uint64_t *out)
{
    return account_alloc(api, kind, device, size, out);
}

int fake_cuda_account_free(int api, int kind, uint64_t addr) { return account_free(api, kind, addr); }

void fake_cuda_account_call(int api, int rc, uint64_t bytes)
{
    pthread_mutex_lock(&lock);
    note_call(api, rc, bytes);
    pthread_mutex_unlock(&lock);
}

int fake_cuda_account_device(void) { return current_device; }

int fake_cuda_account_set_device(int api, int device)
{
    pthread_mutex_lock(&lock);
    int rc = valid_device(device) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
    if (rc == CUDA_SUCCESS)
        current_device = device;
    note_call(api, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

int fake_cuda_account_device_count(void) { return st.device_count; }

uint64_t fake_cuda_account_capacity(void) { return st.device_capacity; }

int fake_cuda_account_driver_version(void) { return driver_version; }

static int mem_info(int api, int device, size_t *free_bytes, size_t *total)
{
    pthread_mutex_lock(&lock);
    if (device < 0)
        device = current_device;
    int rc = free_bytes && total ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && !valid_device(device))
        rc = CUDA_ERROR_INVALID_DEVICE;
    if (rc == CUDA_SUCCESS) {
        *free_bytes = st.device_capacity - st.devices[device].live_bytes;
        *total = st.device_capacity;
    }
    note_call(api, rc, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

int fake_cuda_account_mem_info(int api, int device, size_t *free_bytes, size_t *total)
{
    return mem_info(api, device, free_bytes, total);
}

static int lookup(uint64_t addr, int *device, uint64_t *start, uint64_t *size)
{
    static const int kinds[] = {FAKE_CUDA_KIND_DEVICE, FAKE_CUDA_KIND_MANAGED, FAKE_CUDA_KIND_HOST, K_MAPPING};
    pthread_mutex_lock(&lock);
    int found = FAKE_CUDA_KIND_NONE;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && found == FAKE_CUDA_KIND_NONE; k++) {
        const struct block *b = overlapping(addr, 1, kinds[k], -2);
        if (b == NULL)
            continue;
        found = kinds[k] == K_MAPPING ? FAKE_CUDA_KIND_DEVICE : kinds[k];
        if (device)
            *device = b->device;
        if (start)
            *start = b->addr;
        if (size)
            *size = b->size;
    }
    if (found == FAKE_CUDA_KIND_NONE) {
        /* A mapped range of a reservation: its device is the mapping's. */
        const struct block *r = overlapping(addr, 1, K_RESERVE, -2);
        if (r != NULL) {
            found = FAKE_CUDA_KIND_DEVICE;
            if (device)
                *device = current_device;
            if (start)
                *start = r->addr;
            if (size)
                *size = r->size;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

int fake_cuda_account_lookup(uint64_t addr, int *device, uint64_t *start, uint64_t *size)
{
    return lookup(addr, device, start, size);
}

/* ---- exported: initialisation, versions, devices ---- */

CUresult cuInit(unsigned int flags) { return flags == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }

CUresult cuDriverGetVersion(int *version)
{
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *version = driver_version;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count)
{
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *count = st.device_count;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(ordinal))
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

/* An H100-like device. CUdevice_attribute and cudaDeviceAttr share their
 * values; unknown attributes read 0. */
static int device_attribute(int attr, int device)
{
    switch (attr) {
    case 1: return 1024;         /* MAX_THREADS_PER_BLOCK */
    case 2: return 1024;         /* MAX_BLOCK_DIM_X */
    case 3: return 1024;         /* MAX_BLOCK_DIM_Y */
    case 4: return 64;           /* MAX_BLOCK_DIM_Z */
    case 5: return 2147483647;   /* MAX_GRID_DIM_X */
    case 6: return 65535;        /* MAX_GRID_DIM_Y */
    case 7: return 65535;        /* MAX_GRID_DIM_Z */
    case 8: return 49152;        /* MAX_SHARED_MEMORY_PER_BLOCK */
    case 9: return 65536;        /* TOTAL_CONSTANT_MEMORY */
    case 10: return 32;          /* WARP_SIZE */
    case 11: return 2147483647;  /* MAX_PITCH */
    case 12: return 65536;       /* MAX_REGISTERS_PER_BLOCK */
    case 13: return 1980000;     /* CLOCK_RATE */
    case 14: return 512;         /* TEXTURE_ALIGNMENT */
    case 15: return 1;           /* GPU_OVERLAP */
    case 16: return 132;         /* MULTIPROCESSOR_COUNT */
    case 19: return 1;           /* CAN_MAP_HOST_MEMORY */
    case 31: return 1;           /* CONCURRENT_KERNELS */
    case 33: return device + 1;  /* PCI_BUS_ID */
    case 36: return 2619000;     /* MEMORY_CLOCK_RATE */
    case 37: return 5120;        /* GLOBAL_MEMORY_BUS_WIDTH */
    case 38: return 50 << 20;    /* L2_CACHE_SIZE */
    case 39: return 2048;        /* MAX_THREADS_PER_MULTIPROCESSOR */
    case 40: return 2;           /* ASYNC_ENGINE_COUNT */
    case 41: return 1;           /* UNIFIED_ADDRESSING */
    case 75: return 9;           /* COMPUTE_CAPABILITY_MAJOR */
    case 76: return 0;           /* COMPUTE_CAPABILITY_MINOR */
    case 78: return 1;           /* STREAM_PRIORITIES_SUPPORTED */
    case 79: return 1;           /* GLOBAL_L1_CACHE_SUPPORTED */
    case 80: return 1;           /* LOCAL_L1_CACHE_SUPPORTED */
    case 81: return 233472;      /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
    case 82: return 65536;       /* MAX_REGISTERS_PER_MULTIPROCESSOR */
    case 83: return 1;           /* MANAGED_MEMORY */
    case 89: return 1;           /* CONCURRENT_MANAGED_ACCESS */
    case 90: return 1;           /* COMPUTE_PREEMPTION_SUPPORTED */
    case 95: return 1;           /* COOPERATIVE_LAUNCH */
    case 97: return 232448;      /* MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    case 102: return 1;          /* VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED */
    case 103: return 1;          /* HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED */
    case 106: return 32;         /* MAX_BLOCKS_PER_MULTIPROCESSOR */
    case 115: return 1;          /* MEMORY_POOLS_SUPPORTED */
    case 116: return 0;          /* GPU_DIRECT_RDMA_SUPPORTED */
    default: return 0;           /* multicast, fabric handles, ... not supported */
    }
}

int fake_cuda_device_attribute(int attr, int device) { return device_attribute(attr, device); }

CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice dev)
{
    if (value == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *value = device_attribute(attrib, dev);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    if (name == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "Fake CUDA Device %d", dev);
    return CUDA_SUCCESS;
}

static CUresult device_uuid(unsigned char *uuid, CUdevice dev)
{
    if (uuid == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    memset(uuid, 0, 16);
    memcpy(uuid, "fakecuda", 8);
    uuid[15] = (unsigned char)dev;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice dev) { return device_uuid(uuid, dev); }
CUresult cuDeviceGetUuid_v2(unsigned char *uuid, CUdevice dev) { return device_uuid(uuid, dev); }

static CUresult total_mem(size_t *bytes, CUdevice dev)
{
    if (bytes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *bytes = st.device_capacity;
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev) { return total_mem(bytes, dev); }
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) { return total_mem(bytes, dev); }

CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    if (major == NULL || minor == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *major = device_attribute(75, dev);
    *minor = device_attribute(76, dev);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev)
{
    if (id == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    snprintf(id, (size_t)len, "00000000:%02X:00.0", dev + 1);
    return CUDA_SUCCESS;
}

/* ---- exported: contexts (one primary context per device, always active) ---- */

static CUcontext context_of(int device) { return (CUcontext)(uintptr_t)(CONTEXT_BASE + ((uint64_t)device << 4)); }

static int device_of_context(CUcontext ctx)
{
    uint64_t v = (uintptr_t)ctx;
    if (v < CONTEXT_BASE || (v - CONTEXT_BASE) % 16 != 0)
        return -1;
    uint64_t d = (v - CONTEXT_BASE) >> 4;
    return d < (uint64_t)st.device_count ? (int)d : -1;
}

CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    if (flags == NULL || active == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *flags = 0;
    *active = 1;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev))
        return CUDA_ERROR_INVALID_DEVICE;
    *pctx = context_of(dev);
    return CUDA_SUCCESS;
}

static CUresult valid_device_call(CUdevice dev) { return valid_device(dev) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }

CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return valid_device_call(dev); }
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) { return valid_device_call(dev); }
CUresult cuDevicePrimaryCtxReset(CUdevice dev) { return valid_device_call(dev); }
CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) { return valid_device_call(dev); }
CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
    (void)flags;
    return valid_device_call(dev);
}
CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    (void)flags;
    return valid_device_call(dev);
}

CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = context_of(current_device);
    return CUDA_SUCCESS;
}

static CUresult set_context(CUcontext ctx)
{
    if (ctx == NULL)
        return CUDA_SUCCESS;
    int dev = device_of_context(ctx);
    if (dev < 0)
        return CUDA_ERROR_INVALID_VALUE;
    current_device = dev;
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx) { return set_context(ctx); }
CUresult cuCtxPushCurrent(CUcontext ctx) { return set_context(ctx); }
CUresult cuCtxPushCurrent_v2(CUcontext ctx) { return set_context(ctx); }

static CUresult pop_context(CUcontext *pctx)
{
    if (pctx != NULL)
        *pctx = context_of(current_device);
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent(CUcontext *pctx) { return pop_context(pctx); }
CUresult cuCtxPopCurrent_v2(CUcontext *pctx) { return pop_context(pctx); }

CUresult cuCtxGetDevice(CUdevice *device)
{
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *device = current_device;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int dev = ctx == NULL ? current_device : device_of_context(ctx);
    if (dev < 0)
        return CUDA_ERROR_INVALID_VALUE;
    *device = dev;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
    (void)ctx;
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *version = 12000;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetFlags(unsigned int *flags)
{
    if (flags == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *flags = 0;
    return CUDA_SUCCESS;
}

/* ---- exported: errors ---- */

static const char *error_name(int code)
{
    switch (code) {
    case 0: return "CUDA_SUCCESS";
    case 1: return "CUDA_ERROR_INVALID_VALUE";
    case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    case 400: return "CUDA_ERROR_INVALID_HANDLE";
    case 500: return "CUDA_ERROR_NOT_FOUND";
    case 801: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return NULL;
    }
}

static const char *error_string(int code)
{
    switch (code) {
    case 0: return "no error";
    case 1: return "invalid argument";
    case 2: return "out of memory";
    case 3: return "initialization error";
    case 101: return "invalid device ordinal";
    case 400: return "invalid resource handle";
    case 500: return "named symbol not found";
    case 801: return "operation not supported";
    default: return NULL;
    }
}

CUresult cuGetErrorName(CUresult error, const char **str)
{
    if (str == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *str = error_name(error);
    return *str ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **str)
{
    if (str == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *str = error_string(error);
    return *str ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- exported: virtual memory management ---- */

CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, int option)
{
    (void)option; /* minimum and recommended are the same */
    if (granularity == NULL || prop == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *granularity = GRANULARITY;
    return CUDA_SUCCESS;
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                     unsigned long long flags)
{
    if (handle == NULL || prop == NULL || size == 0 || size % GRANULARITY != 0 || flags != 0 ||
        prop->type != 1 /* PINNED */ || (prop->location.type != 1 /* DEVICE */ && prop->location.type != 2 /* HOST */)) {
        pthread_mutex_lock(&lock);
        note_call(FAKE_CUDA_API_cuMemCreate, CUDA_ERROR_INVALID_VALUE, 0);
        st.device.failed_calls++;
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    uint64_t h = 0;
    /* Host-located physical memory (CUDA 12.2+) is pinned host memory: device -1. */
    int device = prop->location.type == 2 ? -1 : prop->location.id;
    CUresult rc = account_alloc(FAKE_CUDA_API_cuMemCreate, FAKE_CUDA_KIND_PHYSICAL, device, size, &h);
    if (rc == CUDA_SUCCESS)
        *handle = h;
    return rc;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    /* Released while still mapped is allowed: CUDA frees the memory at the
     * last unmap, the account (like the library's recording) at release. */
    return account_free(FAKE_CUDA_API_cuMemRelease, FAKE_CUDA_KIND_PHYSICAL, handle);
}

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                             unsigned long long flags)
{
    (void)addr; /* a hint, ignored */
    uint64_t align = alignment == 0 ? GRANULARITY : alignment;
    pthread_mutex_lock(&lock);
    int rc = CUDA_SUCCESS;
    uint64_t va = 0;
    if (ptr == NULL || size == 0 || size % GRANULARITY != 0 || (align & (align - 1)) != 0 || flags != 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    else if ((va = place(RESERVE_BASE, RESERVE_SPAN, &next_reserve_offset, size, align, K_RESERVE, -1)) == 0 ||
             add_block(va, size, size, K_RESERVE, -1) != 0)
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    note_call(FAKE_CUDA_API_cuMemAddressReserve, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    if (rc == CUDA_SUCCESS)
        *ptr = va;
    return rc;
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    pthread_mutex_lock(&lock);
    struct block *b = find(ptr, K_RESERVE);
    int rc = b != NULL && b->size == size && overlapping(ptr, size, K_MAPPING, -2) == NULL
                 ? CUDA_SUCCESS
                 : CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        remove_block(b);
    note_call(FAKE_CUDA_API_cuMemAddressFree, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags)
{
    pthread_mutex_lock(&lock);
    const struct block *range = overlapping(ptr, 1, K_RESERVE, -1);
    const struct block *phys = find(handle, FAKE_CUDA_KIND_PHYSICAL);
    int rc = CUDA_SUCCESS;
    if (size == 0 || flags != 0 || ptr % GRANULARITY != 0 || size % GRANULARITY != 0 || range == NULL ||
        ptr + size > range->addr + range->span || overlapping(ptr, size, K_MAPPING, -2) != NULL)
        rc = CUDA_ERROR_INVALID_VALUE;
    else if (phys == NULL)
        rc = CUDA_ERROR_INVALID_HANDLE;
    else if (offset > phys->size || size > phys->size - offset)
        rc = CUDA_ERROR_INVALID_VALUE;
    else if (add_block(ptr, size, size, K_MAPPING, phys->device) != 0) /* moves the table */
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    note_call(FAKE_CUDA_API_cuMemMap, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    /* The range must consist of whole mappings (CUDA cannot unmap part of one). */
    pthread_mutex_lock(&lock);
    int rc = size != 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    uint64_t covered = 0;
    for (size_t i = 0; rc == CUDA_SUCCESS && i < n_blocks; i++) {
        const struct block *b = &blocks[i];
        if (b->kind != K_MAPPING || b->addr >= ptr + size || ptr >= b->addr + b->span)
            continue;
        if (b->addr < ptr || b->addr + b->span > ptr + size)
            rc = CUDA_ERROR_INVALID_VALUE;
        else
            covered += b->span;
    }
    if (rc == CUDA_SUCCESS && covered != size)
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        for (size_t i = n_blocks; i-- > 0;)
            if (blocks[i].kind == K_MAPPING && blocks[i].addr >= ptr && blocks[i].addr < ptr + size)
                remove_block(&blocks[i]);
    note_call(FAKE_CUDA_API_cuMemUnmap, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    pthread_mutex_lock(&lock);
    int rc = size != 0 && desc != NULL && count != 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; rc == CUDA_SUCCESS && i < count; i++)
        if (desc[i].location.type != 1 || !valid_device(desc[i].location.id) || desc[i].flags < 0 ||
            desc[i].flags > 3)
            rc = CUDA_ERROR_INVALID_VALUE;
    /* Every byte of the range must be mapped. */
    uint64_t covered = 0;
    for (size_t i = 0; rc == CUDA_SUCCESS && i < n_blocks; i++) {
        const struct block *b = &blocks[i];
        if (b->kind != K_MAPPING || b->addr >= ptr + size || ptr >= b->addr + b->span)
            continue;
        uint64_t lo = b->addr > ptr ? b->addr : ptr;
        uint64_t hi = b->addr + b->span < ptr + size ? b->addr + b->span : ptr + size;
        covered += hi - lo;
    }
    if (rc == CUDA_SUCCESS && covered != size)
        rc = CUDA_ERROR_INVALID_VALUE;
    note_call(FAKE_CUDA_API_cuMemSetAccess, rc, rc == CUDA_SUCCESS ? size : 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle, int handleType,
                                      unsigned long long flags)
{
    (void)flags;
    if (shareableHandle == NULL || handleType != 1 /* POSIX_FILE_DESCRIPTOR */)
        return handleType == 1 ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_SUPPORTED;
    pthread_mutex_lock(&lock);
    int known = find(handle, FAKE_CUDA_KIND_PHYSICAL) != NULL;
    pthread_mutex_unlock(&lock);
    if (!known)
        return CUDA_ERROR_INVALID_VALUE;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)shareableHandle = fd;
    return CUDA_SUCCESS;
}

CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle, int shHandleType)
{
    (void)handle;
    (void)osHandle;
    (void)shHandleType;
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- exported: classic and stream-ordered device memory ---- */

static CUresult mem_alloc(int api, CUdeviceptr *dptr, size_t bytesize)
{
    uint64_t addr = 0;
    CUresult rc = account_alloc(api, FAKE_CUDA_KIND_DEVICE, current_device, bytesize, dptr ? &addr : NULL);
    if (rc == CUDA_SUCCESS)
        *dptr = addr;
    return rc;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) { return mem_alloc(FAKE_CUDA_API_cuMemAlloc_v2, dptr, bytesize); }
/* The CUDA 3.1 ABI (32-bit sizes there; the same here): counted as cuMemAlloc_v2. */
CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize) { return mem_alloc(FAKE_CUDA_API_cuMemAlloc_v2, dptr, bytesize); }

CUresult cuMemFree_v2(CUdeviceptr dptr) { return account_free(FAKE_CUDA_API_cuMemFree_v2, FAKE_CUDA_KIND_DEVICE, dptr); }
CUresult cuMemFree(CUdeviceptr dptr) { return account_free(FAKE_CUDA_API_cuMemFree_v2, FAKE_CUDA_KIND_DEVICE, dptr); }

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    (void)hStream;
    return mem_alloc(FAKE_CUDA_API_cuMemAllocAsync, dptr, bytesize);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    (void)hStream;
    return mem_alloc(FAKE_CUDA_API_cuMemAllocAsync, dptr, bytesize);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    (void)hStream;
    return account_free(FAKE_CUDA_API_cuMemFreeAsync, FAKE_CUDA_KIND_DEVICE, dptr);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    (void)hStream;
    return account_free(FAKE_CUDA_API_cuMemFreeAsync, FAKE_CUDA_KIND_DEVICE, dptr);
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    return mem_info(FAKE_CUDA_API_cuMemGetInfo_v2, -1, free_bytes, total);
}

CUresult cuMemGetInfo(size_t *free_bytes, size_t *total)
{
    return mem_info(FAKE_CUDA_API_cuMemGetInfo_v2, -1, free_bytes, total);
}

static CUresult address_range(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    uint64_t start = 0, size = 0;
    if (lookup(dptr, NULL, &start, &size) == FAKE_CUDA_KIND_NONE)
        return CUDA_ERROR_NOT_FOUND;
    if (pbase)
        *pbase = start;
    if (psize)
        *psize = size;
    return CUDA_SUCCESS;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    return address_range(pbase, psize, dptr);
}

CUresult cuMemGetAddressRange(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    return address_range(pbase, psize, dptr);
}

CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr)
{
    if (data == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int device = 0;
    uint64_t start = 0, size = 0;
    int kind = lookup(ptr, &device, &start, &size);
    if (kind == FAKE_CUDA_KIND_NONE)
        return CUDA_ERROR_INVALID_VALUE;
    switch (attribute) {
    case 1: /* CONTEXT */
        *(CUcontext *)data = context_of(device < 0 ? 0 : device);
        return CUDA_SUCCESS;
    case 2: /* MEMORY_TYPE: HOST 1, DEVICE 2, UNIFIED 4 */
        *(unsigned int *)data = kind == FAKE_CUDA_KIND_HOST ? 1 : kind == FAKE_CUDA_KIND_MANAGED ? 4 : 2;
        return CUDA_SUCCESS;
    case 3: /* DEVICE_POINTER */
        *(CUdeviceptr *)data = ptr;
        return CUDA_SUCCESS;
    case 8: /* IS_MANAGED */
        *(unsigned int *)data = kind == FAKE_CUDA_KIND_MANAGED;
        return CUDA_SUCCESS;
    case 9: /* DEVICE_ORDINAL */
        *(int *)data = device < 0 ? 0 : device;
        return CUDA_SUCCESS;
    case 11: /* RANGE_START_ADDR */
        *(CUdeviceptr *)data = start;
        return CUDA_SUCCESS;
    case 12: /* RANGE_SIZE */
        *(size_t *)data = size;
        return CUDA_SUCCESS;
    case 13: /* MAPPED */
        *(int *)data = 1;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* ---- exported: everything else PyTorch binds (success, nothing written) ---- */

/* Every cu* name found in libc10_cuda.so, libtorch_cuda.so,
 * libtorch_python.so and libcaffe2_nvrtc.so (imports and the strings that
 * DriverAPI looks up), plus their versioned variants and common neighbours.
 * The multicast calls report "not supported", like a GPU without NVSwitch. */
#define FAKE_CUDA_SUCCESS_STUBS(X)                                                                 \
    X(cuCtxFromGreenCtx) X(cuCtxSynchronize) X(cuDevResourceGenerateDesc)                          \
    X(cuDevSmResourceSplitByCount) X(cuDeviceGetDevResource) X(cuGreenCtxCreate)                   \
    X(cuGreenCtxDestroy) X(cuGreenCtxGetDevResource) X(cuFuncGetAttribute) X(cuFuncSetAttribute)   \
    X(cuFuncSetCacheConfig) X(cuLaunchCooperativeKernel) X(cuLaunchCooperativeKernel_ptsz)         \
    X(cuLaunchHostFunc) X(cuLaunchHostFunc_ptsz) X(cuLaunchKernel) X(cuLaunchKernel_ptsz)          \
    X(cuLaunchKernelEx) X(cuLaunchKernelEx_ptsz) X(cuLinkAddData) X(cuLinkAddData_v2)              \
    X(cuLinkAddFile) X(cuLinkAddFile_v2) X(cuLinkComplete) X(cuLinkCreate) X(cuLinkCreate_v2)      \
    X(cuLinkDestroy) X(cuModuleGetFunction) X(cuModuleGetGlobal) X(cuModuleGetGlobal_v2)           \
    X(cuModuleLoad) X(cuModuleLoadData) X(cuModuleLoadDataEx) X(cuModuleLoadFatBinary)             \
    X(cuModuleUnload) X(cuLibraryLoadData) X(cuLibraryGetKernel) X(cuLibraryUnload)                \
    X(cuOccupancyMaxActiveBlocksPerMultiprocessor)                                                 \
    X(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags) X(cuTensorMapEncodeTiled)              \
    X(cuTensorMapEncodeIm2col) X(cuStreamWriteValue32) X(cuStreamWriteValue32_v2)                  \
    X(cuStreamWriteValue32_ptsz) X(cuStreamWriteValue32_v2_ptsz) X(cuStreamWriteValue64)           \
    X(cuStreamWriteValue64_v2) X(cuStreamWaitValue32) X(cuStreamWaitValue32_v2)                    \
    X(cuStreamWaitValue64) X(cuStreamWaitValue64_v2) X(cuStreamBatchMemOp)                         \
    X(cuStreamBatchMemOp_v2) X(cuMemsetD32Async) X(cuMemsetD32Async_ptsz) X(cuMemsetD8Async)       \
    X(cuMemsetD8Async_ptsz) X(cuMemsetD32) X(cuMemsetD32_v2) X(cuMemsetD8) X(cuMemsetD8_v2)        \
    X(cuMemcpy) X(cuMemcpy_ptds) X(cuMemcpyAsync) X(cuMemcpyAsync_ptsz) X(cuMemcpyHtoD)            \
    X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH) X(cuMemcpyDtoH_v2) X(cuMemcpyDtoD) X(cuMemcpyDtoD_v2)       \
    X(cuMemcpyPeer) X(cuMemcpyPeerAsync) X(cuStreamSynchronize) X(cuStreamSynchronize_ptsz)        \
    X(cuStreamQuery) X(cuStreamQuery_ptsz) X(cuStreamWaitEvent) X(cuStreamWaitEvent_ptsz)          \
    X(cuEventRecord) X(cuEventRecord_ptsz) X(cuEventSynchronize) X(cuEventQuery)                   \
    X(cuEventDestroy) X(cuEventDestroy_v2) X(cuStreamDestroy) X(cuStreamDestroy_v2)                \
    X(cuMemHostRegister) X(cuMemHostRegister_v2) X(cuMemHostUnregister) X(cuIpcGetMemHandle)       \
    X(cuIpcOpenMemHandle) X(cuIpcOpenMemHandle_v2) X(cuIpcCloseMemHandle) X(cuIpcGetEventHandle)   \
    X(cuIpcOpenEventHandle) X(cuMemPoolTrimTo) X(cuMemPoolSetAttribute) X(cuMemPoolSetAccess)      \
    X(cuCtxEnablePeerAccess) X(cuCtxDisablePeerAccess) X(cuProfilerStart) X(cuProfilerStop)        \
    X(cuMemRetainAllocationHandle) X(cuMemGetAllocationPropertiesFromHandle)                       \
    X(cuMemAdvise) X(cuMemAdvise_v2) X(cuMemPrefetchAsync) X(cuMemPrefetchAsync_v2)                \
    X(cuMemPrefetchAsync_ptsz) X(cuFlushGPUDirectRDMAWrites) X(cuCoredumpSetAttribute)             \
    X(cuCoredumpGetAttribute) X(cuCtxSetLimit) X(cuCtxGetLimit) X(cuCtxResetPersistingL2Cache)     \
    X(cuUserObjectCreate) X(cuUserObjectRelease) X(cuGraphRetainUserObject)

#define FAKE_CUDA_UNSUPPORTED_STUBS(X)                                                             \
    X(cuMulticastAddDevice) X(cuMulticastBindMem) X(cuMulticastBindAddr) X(cuMulticastCreate)      \
    X(cuMulticastUnbind) X(cuMulticastGetGranularity)

#define DEFINE_SUCCESS_STUB(name)                                                                  \
    CUresult name(void);                                                                           \
    CUresult name(void) { return CUDA_SUCCESS; }
#define DEFINE_UNSUPPORTED_STUB(name)                                                              \
    CUresult name(void);                                                                           \
    CUresult name(void) { return CUDA_ERROR_NOT_SUPPORTED; }
FAKE_CUDA_SUCCESS_STUBS(DEFINE_SUCCESS_STUB)
FAKE_CUDA_UNSUPPORTED_STUBS(DEFINE_UNSUPPORTED_STUB)

/* ---- exported: lookups by name ---- */

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags, int *symbolStatus);

/* The functions implemented above (their declarations are in fake_cuda.h or
 * here), for the table of local addresses. */
#define FAKE_CUDA_IMPLEMENTED(X)                                                                   \
    X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetAttribute)     \
    X(cuDeviceGetName) X(cuDeviceGetUuid) X(cuDeviceGetUuid_v2) X(cuDeviceTotalMem)                \
    X(cuDeviceTotalMem_v2) X(cuDeviceComputeCapability) X(cuDeviceGetPCIBusId)                     \
    X(cuDevicePrimaryCtxGetState) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease)         \
    X(cuDevicePrimaryCtxRelease_v2) X(cuDevicePrimaryCtxReset) X(cuDevicePrimaryCtxReset_v2)       \
    X(cuDevicePrimaryCtxSetFlags) X(cuDevicePrimaryCtxSetFlags_v2) X(cuCtxGetCurrent)              \
    X(cuCtxSetCurrent) X(cuCtxPushCurrent) X(cuCtxPushCurrent_v2) X(cuCtxPopCurrent)               \
    X(cuCtxPopCurrent_v2) X(cuCtxGetDevice) X(cuCtxGetDevice_v2) X(cuCtxGetApiVersion)             \
    X(cuCtxGetFlags) X(cuGetErrorName) X(cuGetErrorString) X(cuMemGetAllocationGranularity)        \
    X(cuMemCreate) X(cuMemRelease) X(cuMemAddressReserve) X(cuMemAddressFree) X(cuMemMap)          \
    X(cuMemUnmap) X(cuMemSetAccess) X(cuMemExportToShareableHandle)                                \
    X(cuMemImportFromShareableHandle) X(cuMemAlloc_v2) X(cuMemAlloc) X(cuMemFree_v2) X(cuMemFree)  \
    X(cuMemAllocAsync) X(cuMemAllocAsync_ptsz) X(cuMemFreeAsync) X(cuMemFreeAsync_ptsz)            \
    X(cuMemGetInfo_v2) X(cuMemGetInfo) X(cuMemGetAddressRange_v2) X(cuMemGetAddressRange)          \
    X(cuPointerGetAttribute) X(cuGetProcAddress) X(cuGetProcAddress_v2)

CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice dev);
CUresult cuDeviceGetUuid_v2(unsigned char *uuid, CUdevice dev);
CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev);
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev);
CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev);
CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev);
CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active);
CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
CUresult cuDevicePrimaryCtxRelease(CUdevice dev);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
CUresult cuDevicePrimaryCtxReset(CUdevice dev);
CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev);
CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags);
CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags);
CUresult cuCtxGetCurrent(CUcontext *pctx);
CUresult cuCtxSetCurrent(CUcontext ctx);
CUresult cuCtxPushCurrent(CUcontext ctx);
CUresult cuCtxPushCurrent_v2(CUcontext ctx);
CUresult cuCtxPopCurrent(CUcontext *pctx);
CUresult cuCtxPopCurrent_v2(CUcontext *pctx);
CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx);
CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version);
CUresult cuCtxGetFlags(unsigned int *flags);
CUresult cuGetErrorName(CUresult error, const char **str);
CUresult cuGetErrorString(CUresult error, const char **str);
CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle, int handleType,
                                      unsigned long long flags);
CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle, int shHandleType);
CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize);
CUresult cuMemFree(CUdeviceptr dptr);
CUresult cuMemGetInfo(size_t *free_bytes, size_t *total);
CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr);
CUresult cuMemGetAddressRange(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr);
CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr);

/* Hidden aliases: the library's own definitions, whatever a preloaded
 * library interposes on the public names (a plain &name in -fPIC code would
 * give the interposed one). */
#define DEFINE_LOCAL_ALIAS(name)                                                                   \
    extern __typeof__(name) local_##name __attribute__((alias(#name), visibility("hidden")));
FAKE_CUDA_IMPLEMENTED(DEFINE_LOCAL_ALIAS)
FAKE_CUDA_SUCCESS_STUBS(DEFINE_LOCAL_ALIAS)
FAKE_CUDA_UNSUPPORTED_STUBS(DEFINE_LOCAL_ALIAS)

struct entry {
    const char *name;
    void *fn;
};

#define TABLE_ENTRY(name) {#name, (void *)local_##name},
static const struct entry table[] = {
    FAKE_CUDA_IMPLEMENTED(TABLE_ENTRY) FAKE_CUDA_SUCCESS_STUBS(TABLE_ENTRY) FAKE_CUDA_UNSUPPORTED_STUBS(TABLE_ENTRY)};

/* Stubs added at build time for one torch line (weak, in another object)
 * are not in the table: found through dlsym on this library's own handle. */
static void *self_handle;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void open_self(void)
{
    Dl_info info;
    if (dladdr((void *)local_cuInit, &info) && info.dli_fname != NULL)
        self_handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
}

static void *find_local(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return table[i].fn;
    pthread_once(&self_once, open_self);
    if (self_handle == NULL || strncmp(name, "cu", 2) != 0)
        return NULL;
    void *fn = dlsym(self_handle, name);
    Dl_info info, mine;
    /* Only this library's own definitions (dlsym also searches its dependencies). */
    if (fn == NULL || !dladdr(fn, &info) || !dladdr((void *)local_cuInit, &mine) ||
        info.dli_fbase != mine.dli_fbase)
        return NULL;
    return fn;
}

/* CUDA's versioned ABIs: the name a lookup of `base` with cudaVersion >=
 * `since` hands out. Newest first per base. */
static const struct {
    const char *base, *versioned;
    unsigned long long since;
} versioned[] = {
    {"cuMemAlloc", "cuMemAlloc_v2", 3020},
    {"cuMemFree", "cuMemFree_v2", 3020},
    {"cuMemGetInfo", "cuMemGetInfo_v2", 3020},
    {"cuMemGetAddressRange", "cuMemGetAddressRange_v2", 3020},
    {"cuDeviceTotalMem", "cuDeviceTotalMem_v2", 3020},
    {"cuModuleGetGlobal", "cuModuleGetGlobal_v2", 3020},
    {"cuMemcpyHtoD", "cuMemcpyHtoD_v2", 3020},
    {"cuMemcpyDtoH", "cuMemcpyDtoH_v2", 3020},
    {"cuMemcpyDtoD", "cuMemcpyDtoD_v2", 3020},
    {"cuMemsetD8", "cuMemsetD8_v2", 3020},
    {"cuMemsetD32", "cuMemsetD32_v2", 3020},
    {"cuCtxPushCurrent", "cuCtxPushCurrent_v2", 4000},
    {"cuCtxPopCurrent", "cuCtxPopCurrent_v2", 4000},
    {"cuStreamDestroy", "cuStreamDestroy_v2", 4000},
    {"cuEventDestroy", "cuEventDestroy_v2", 4000},
    {"cuLinkCreate", "cuLinkCreate_v2", 6050},
    {"cuLinkAddData", "cuLinkAddData_v2", 6050},
    {"cuLinkAddFile", "cuLinkAddFile_v2", 6050},
    {"cuMemHostRegister", "cuMemHostRegister_v2", 6050},
    {"cuDevicePrimaryCtxRelease", "cuDevicePrimaryCtxRelease_v2", 11000},
    {"cuDevicePrimaryCtxReset", "cuDevicePrimaryCtxReset_v2", 11000},
    {"cuDevicePrimaryCtxSetFlags", "cuDevicePrimaryCtxSetFlags_v2", 11000},
    {"cuIpcOpenMemHandle", "cuIpcOpenMemHandle_v2", 11000},
    {"cuDeviceGetUuid", "cuDeviceGetUuid_v2", 11040},
    {"cuStreamWriteValue32", "cuStreamWriteValue32_v2", 11070},
    {"cuStreamWriteValue64", "cuStreamWriteValue64_v2", 11070},
    {"cuStreamWaitValue32", "cuStreamWaitValue32_v2", 11070},
    {"cuStreamWaitValue64", "cuStreamWaitValue64_v2", 11070},
    {"cuStreamBatchMemOp", "cuStreamBatchMemOp_v2", 11070},
    {"cuGetProcAddress", "cuGetProcAddress_v2", 12000},
    {"cuMemAdvise", "cuMemAdvise_v2", 12020},
    {"cuMemPrefetchAsync", "cuMemPrefetchAsync_v2", 12020},
    {"cuCtxGetDevice", "cuCtxGetDevice_v2", 13000},
};

void *fake_cuda_driver_symbol(const char *symbol, unsigned long long cudaVersion, unsigned long long flags)
{
    if (symbol == NULL)
        return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s", symbol);
    for (size_t i = 0; i < sizeof versioned / sizeof versioned[0]; i++)
        if (strcmp(versioned[i].base, symbol) == 0 && cudaVersion >= versioned[i].since) {
            snprintf(name, sizeof name, "%s", versioned[i].versioned);
            break;
        }
    if (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) {
        static const char *const suffixes[] = {"_ptsz", "_ptds"};
        for (int s = 0; s < 2; s++) {
            char variant[272];
            snprintf(variant, sizeof variant, "%s%s", name, suffixes[s]);
            void *fn = find_local(variant);
            if (fn != NULL)
                return fn;
        }
    }
    return find_local(name);
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags, int *symbolStatus)
{
    if (symbol == NULL || pfn == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = fake_cuda_driver_symbol(symbol, cudaVersion < 0 ? 0 : (unsigned long long)cudaVersion, flags);
    if (symbolStatus)
        *symbolStatus = *pfn ? 0 /* CU_GET_PROC_ADDRESS_SUCCESS */ : 1 /* SYMBOL_NOT_FOUND */;
    return *pfn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    if (symbol == NULL || pfn == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = fake_cuda_driver_symbol(symbol, cudaVersion < 0 ? 0 : (unsigned long long)cudaVersion, flags);
    return *pfn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

/* ---- exported: the fake's own accounts ---- */

int fake_cuda_stats(struct fake_cuda_stats *out)
{
    if (out == NULL)
        return -1;
    pthread_mutex_lock(&lock);
    *out = st;
    pthread_mutex_unlock(&lock);
    return 0;
}

void fake_cuda_reset_stats(void)
{
    pthread_mutex_lock(&lock);
    memset(st.api, 0, sizeof st.api);
    struct device_counters *counters[] = {&st.device, &st.host};
    for (int i = 0; i < 2; i++)
        *counters[i] = (struct device_counters){
            .live_bytes = counters[i]->live_bytes,
            .peak_live_bytes = counters[i]->live_bytes,
        };
    for (int d = 0; d < FAKE_CUDA_MAX_DEVICES; d++)
        st.devices[d] = (struct fake_cuda_device_stats){
            .live_bytes = st.devices[d].live_bytes,
            .peak_live_bytes = st.devices[d].live_bytes,
        };
    pthread_mutex_unlock(&lock);
}

int fake_cuda_stats_json(char *buf, size_t len)
{
    static struct fake_cuda_stats copy; /* large: not on the caller's stack */
    static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
    char *text = NULL;
    size_t n = 0;
    pthread_mutex_lock(&copy_lock);
    fake_cuda_stats(&copy);
    FILE *f = open_memstream(&text, &n);
    if (f != NULL) {
        fake_cuda_write_stats_json(f, &copy);
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
