/*
 * The fake CUDA runtime used by the tests: a `libcudart.so.12` (soname and
 * version node `libcudart.so.12`) and a `libcuda.so.1` (the driver), with the
 * C signatures of CUDA 12's cuda_runtime_api.h and cuda.h for the calls the
 * library hooks, and exact accounts of every call (`fake_cuda_stats`), which
 * the tests compare with what the preloaded library recorded. The real
 * PyTorch CUDA caching allocator runs on it (tests/fake_cuda/README.md).
 *
 * Only libc and pthread: nothing here may need the real CUDA headers.
 */
#ifndef FAKE_CUDA_H
#define FAKE_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- CUDA types (ABI-compatible with CUDA 12: enums are C int) ---- */
typedef int cudaError_t;
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long CUmemGenericAllocationHandle;
typedef unsigned long long cuuint64_t;
typedef void *cudaStream_t;
typedef void *CUstream;
typedef void *cudaMemPool_t;
typedef void *CUcontext;

typedef struct CUmemLocation_st {
    int type; /* CU_MEM_LOCATION_TYPE_DEVICE = 1 */
    int id;
} CUmemLocation;

typedef struct CUmemAllocationProp_st {
    int type; /* CU_MEM_ALLOCATION_TYPE_PINNED = 1 */
    int requestedHandleTypes;
    CUmemLocation location;
    void *win32HandleMetaData;
    struct {
        unsigned char compressionType, gpuDirectRDMACapable;
        unsigned short usage;
        unsigned char reserved[4];
    } allocFlags;
} CUmemAllocationProp;

typedef struct CUmemAccessDesc_st {
    CUmemLocation location;
    int flags;
} CUmemAccessDesc;

/* Return codes the fake uses (values from CUDA 12). */
#define cudaSuccess 0
#define cudaErrorInvalidValue 1
#define cudaErrorMemoryAllocation 2
#define cudaErrorInvalidDevice 101
#define cudaErrorSymbolNotFound 500
#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_FOUND 500

/* cudaGetDriverEntryPoint's flags and query results. */
#define cudaEnableDefault 0
#define cudaEnablePerThreadDefaultStream 2
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM 2
#define cudaDriverEntryPointSuccess 0
#define cudaDriverEntryPointSymbolNotFound 1

/* ---- Runtime API (libcudart.so.12) ---- */
cudaError_t cudaMalloc(void **devPtr, size_t size);
cudaError_t cudaFree(void *devPtr);
cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t stream);
cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t stream);
cudaError_t cudaMallocFromPoolAsync(void **ptr, size_t size, cudaMemPool_t pool, cudaStream_t stream);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaMemGetInfo(size_t *free, size_t *total);
/* The driver's function `symbol` (a name without _v2: the newest ABI the
 * runtime knows is handed out), NULL with status SymbolNotFound when absent. */
cudaError_t cudaGetDriverEntryPoint(const char *symbol, void **funcPtr, unsigned long long flags,
                                    int *driverStatus);
cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **funcPtr, unsigned int cudaVersion,
                                             unsigned long long flags, int *driverStatus);

/* ---- Driver API (libcuda.so.1) ---- */
CUresult cuInit(unsigned int flags);
CUresult cuDriverGetVersion(int *version);
/* Names without _v2, as CUDA's headers pass them: "cuMemAlloc" with
 * cudaVersion >= 3020 is cuMemAlloc_v2; per-thread-stream flags give the
 * `_ptsz` variants of stream calls (cuMemAllocAsync_ptsz, cuMemFreeAsync_ptsz). */
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags, int *symbolStatus);
CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                     unsigned long long flags);
CUresult cuMemRelease(CUmemGenericAllocationHandle handle);
CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                             unsigned long long flags);
CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size);
CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags);
CUresult cuMemUnmap(CUdeviceptr ptr, size_t size);
CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count);
CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
CUresult cuMemFree_v2(CUdeviceptr dptr);
CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream);
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
CUresult cuMemGetInfo_v2(size_t *free, size_t *total);
CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, int option);
CUresult cuCtxGetDevice(CUdevice *device);

/* ---- Self-accounting (both libraries share one account, kept in libcuda.so.1) ---- */

/* Every accounted function, once: X(name). Gives the enum and the names. */
#define FAKE_CUDA_APIS(X)                                                                          \
    X(cudaMalloc)                                                                                  \
    X(cudaFree)                                                                                    \
    X(cudaMallocAsync)                                                                             \
    X(cudaFreeAsync)                                                                               \
    X(cudaMallocFromPoolAsync)                                                                     \
    X(cudaMallocHost)                                                                              \
    X(cudaHostAlloc)                                                                               \
    X(cudaFreeHost)                                                                                \
    X(cudaMallocManaged)                                                                           \
    X(cudaSetDevice)                                                                               \
    X(cudaMemGetInfo)                                                                              \
    X(cuMemCreate)                                                                                 \
    X(cuMemRelease)                                                                                \
    X(cuMemAddressReserve)                                                                         \
    X(cuMemAddressFree)                                                                            \
    X(cuMemMap)                                                                                    \
    X(cuMemUnmap)                                                                                  \
    X(cuMemSetAccess)                                                                              \
    X(cuMemAlloc_v2)                                                                               \
    X(cuMemFree_v2)                                                                                \
    X(cuMemAllocAsync)                                                                             \
    X(cuMemFreeAsync)                                                                              \
    X(cuMemGetInfo_v2)

#define FAKE_CUDA_ENUM_ENTRY(name) FAKE_CUDA_API_##name,
enum fake_cuda_api { FAKE_CUDA_APIS(FAKE_CUDA_ENUM_ENTRY) FAKE_CUDA_API_COUNT };
#undef FAKE_CUDA_ENUM_ENTRY

static inline const char *fake_cuda_api_name(int api)
{
#define FAKE_CUDA_NAME_ENTRY(name) #name,
    static const char *const names[] = {FAKE_CUDA_APIS(FAKE_CUDA_NAME_ENTRY)};
#undef FAKE_CUDA_NAME_ENTRY
    return api >= 0 && api < FAKE_CUDA_API_COUNT ? names[api] : "?";
}

#define FAKE_CUDA_MAX_DEVICES 16

#include "../../crates/cli/assets/sim_runtime/device_counters.h"

/* `device` counts device memory as the library's recording does: cudaMalloc,
 * cudaMallocAsync, cudaMallocFromPoolAsync, cudaMallocManaged, cuMemCreate,
 * cuMemAlloc_v2, cuMemAllocAsync and their frees (cuMemRelease for handles);
 * `host` cudaMallocHost, cudaHostAlloc, cudaFreeHost. `_ptsz` variants count
 * as their plain function. */
struct fake_cuda_device_stats {
    uint64_t live_bytes, peak_live_bytes, alloc_calls, alloc_bytes;
};

struct fake_cuda_stats {
    uint64_t device_capacity; /* bytes per device */
    int32_t device_count, pad_;
    struct api_counters api[FAKE_CUDA_API_COUNT];
    struct device_counters device, host;
    struct fake_cuda_device_stats devices[FAKE_CUDA_MAX_DEVICES];
};

/* Copies the counters (0; -1 when out is NULL). Exported by libcuda.so.1. */
int fake_cuda_stats(struct fake_cuda_stats *out);
/* The counters as one JSON object, snprintf-like (for Python callers). */
int fake_cuda_stats_json(char *buf, size_t len);

/* ---- Added by the fake's implementation (nothing above changed) ---- */

/* More return codes the fake uses (values from CUDA 12). */
#define cudaErrorInvalidResourceHandle 400
#define cudaErrorNotSupported 801
#define CUDA_ERROR_INVALID_DEVICE 101
#define CUDA_ERROR_INVALID_HANDLE 400
#define CUDA_ERROR_NOT_SUPPORTED 801

/* Zeroes the counters; what is live stays live (peaks restart at it).
 * Exported by libcuda.so.1. */
void fake_cuda_reset_stats(void);

typedef int (*fake_cuda_stats_fn)(struct fake_cuda_stats *out);

static inline void fake_cuda_write_counters_json(FILE *f, const struct device_counters *c)
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

/* {"device_capacity","device_count","device":{counters},"host":{counters},
 *  "by_api":{name:{calls,successes,failures,bytes}} (every function),
 *  "devices":[{device,live_bytes,peak_live_bytes,alloc_calls,alloc_bytes}] (every device)}:
 * the shape of fake_acl_write_stats_json without its NPU-only fields. */
static inline void fake_cuda_write_stats_json(FILE *f, const struct fake_cuda_stats *s)
{
    fprintf(f, "{\"device_capacity\":%llu,\"device_count\":%d", (unsigned long long)s->device_capacity,
            s->device_count);
    fputs(",\"device\":", f);
    fake_cuda_write_counters_json(f, &s->device);
    fputs(",\"host\":", f);
    fake_cuda_write_counters_json(f, &s->host);
    fputs(",\"by_api\":{", f);
    for (int i = 0; i < FAKE_CUDA_API_COUNT; i++) {
        const struct api_counters *a = &s->api[i];
        fprintf(f, "%s\"%s\":{\"calls\":%llu,\"successes\":%llu,\"failures\":%llu,\"bytes\":%llu}",
                i ? "," : "", fake_cuda_api_name(i), (unsigned long long)a->calls,
                (unsigned long long)a->successes, (unsigned long long)a->failures,
                (unsigned long long)a->bytes);
    }
    fputs("},\"devices\":[", f);
    for (int d = 0; d < s->device_count && d < FAKE_CUDA_MAX_DEVICES; d++) {
        const struct fake_cuda_device_stats *v = &s->devices[d];
        fprintf(f,
                "%s{\"device\":%d,\"live_bytes\":%llu,\"peak_live_bytes\":%llu,"
                "\"alloc_calls\":%llu,\"alloc_bytes\":%llu}",
                d ? "," : "", d, (unsigned long long)v->live_bytes,
                (unsigned long long)v->peak_live_bytes, (unsigned long long)v->alloc_calls,
                (unsigned long long)v->alloc_bytes);
    }
    fputs("]}", f);
}

/* ---- Private: the one account both fakes share ----
 * Kept in libcuda.so.1 and reached from libcudart.so.12 through these
 * functions, never through the driver's public cu* names: the preloaded
 * library hooks those, and a runtime allocation made through a hooked driver
 * call would be recorded twice. Codes are CUDA's (cudaError_t and CUresult
 * agree on every value used here). */
enum fake_cuda_kind {
    FAKE_CUDA_KIND_DEVICE,   /* a fake device address, never dereferenced */
    FAKE_CUDA_KIND_MANAGED,  /* real memory counted as device memory (cudaMallocManaged) */
    FAKE_CUDA_KIND_HOST,     /* real memory counted as host memory */
    FAKE_CUDA_KIND_PHYSICAL, /* a cuMemCreate handle */
    FAKE_CUDA_KIND_NONE = -1
};
/* An allocation of `size` bytes on `device` (ignored for host memory), its
 * address or handle in *out on success. Counts the call as `api`. */
int fake_cuda_account_alloc(int api, int kind, int device, uint64_t size, uint64_t *out);
/* Frees what `addr` names, which must be of `kind`; for FAKE_CUDA_KIND_DEVICE
 * managed memory is accepted too. addr 0: success, nothing freed. */
int fake_cuda_account_free(int api, int kind, uint64_t addr);
/* A call counted per API only. */
void fake_cuda_account_call(int api, int rc, uint64_t bytes);
/* The calling thread's current device (shared by runtime and driver). */
int fake_cuda_account_device(void);
/* Makes `device` current for the calling thread; counted as `api` when >= 0. */
int fake_cuda_account_set_device(int api, int device);
int fake_cuda_account_device_count(void);
uint64_t fake_cuda_account_capacity(void);
/* Free and total memory of `device` (-1: the current one), counted as `api`. */
int fake_cuda_account_mem_info(int api, int device, size_t *free, size_t *total);
/* What holds `addr` (kind, device, start, size); FAKE_CUDA_KIND_NONE when nothing. */
int fake_cuda_account_lookup(uint64_t addr, int *device, uint64_t *start, uint64_t *size);
/* The driver function a lookup of `symbol` with this CUDA version and these
 * flags hands out (cuGetProcAddress's rules), NULL when there is none; the
 * address is libcuda.so.1's own definition, what dlsym on its handle gives. */
void *fake_cuda_driver_symbol(const char *symbol, unsigned long long cudaVersion, unsigned long long flags);
/* The driver version the fake reports (FAKE_CUDA_DRIVER_VERSION, default 12080,
 * 13000 in a driver built for a CUDA 13 runtime). */
int fake_cuda_account_driver_version(void);
/* An attribute of `device` (CUdevice_attribute and cudaDeviceAttr share
 * their values): an H100-like device, 0 for unknown attributes. */
int fake_cuda_device_attribute(int attr, int device);

#endif
