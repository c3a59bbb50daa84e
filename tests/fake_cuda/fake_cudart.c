/*
 * The fake CUDA runtime, built by tests/fake_cuda/build.sh as
 * libcudart.so.12 (soname and version node libcudart.so.12, as PyPI's
 * nvidia-cuda-runtime-cu12 has them; with FAKE_CUDART_MAJOR=13 the same for
 * libcudart.so.13). It implements the runtime calls of fake_cuda.h with real
 * behaviour and every other name the PyTorch wheels import from the runtime,
 * enough for torch's CUDA caching allocator to run: devices, versions,
 * properties, streams and events with distinct handles, the fat-binary
 * registration, and the driver entry points.
 *
 * All memory is accounted in libcuda.so.1 (fake_cuda_driver.c), reached
 * through its private fake_cuda_account_* functions, never through the
 * driver's public cu* functions, which the preloaded library hooks. Device
 * pointers are fake addresses, never dereferenced; host allocations are real
 * memory. Copies and kernels do nothing.
 */
#define _GNU_SOURCE
#include "fake_cuda.h"

#include <stdlib.h>
#include <string.h>

#ifndef FAKE_CUDART_MAJOR
#define FAKE_CUDART_MAJOR 12
#endif
#if FAKE_CUDART_MAJOR >= 13
#define RUNTIME_VERSION 13000
#else
#define RUNTIME_VERSION 12080
#endif

/* Error state of the calling thread (cudaGetLastError). */
static __thread cudaError_t last_error;
static __thread int capture_mode;

static cudaError_t ret(cudaError_t rc)
{
    if (rc != cudaSuccess)
        last_error = rc;
    return rc;
}

/* Distinct, never-freed handles for streams, events, graphs and pools:
 * real zeroed memory, so that even a caller that looks inside finds bytes. */
static void *new_handle(void)
{
    void *h = calloc(1, 64);
    return h;
}

/* ---- memory ---- */

static cudaError_t device_alloc(int api, void **ptr, size_t size)
{
    uint64_t addr = 0;
    if (ptr == NULL)
        return ret(fake_cuda_account_alloc(api, FAKE_CUDA_KIND_DEVICE, fake_cuda_account_device(), size, NULL));
    if (size == 0) {
        /* CUDA: a zero-byte request succeeds with NULL. */
        *ptr = NULL;
        fake_cuda_account_call(api, cudaSuccess, 0);
        return cudaSuccess;
    }
    cudaError_t rc = fake_cuda_account_alloc(api, FAKE_CUDA_KIND_DEVICE, fake_cuda_account_device(), size, &addr);
    if (rc == cudaSuccess)
        *ptr = (void *)(uintptr_t)addr;
    return ret(rc);
}

cudaError_t cudaMalloc(void **devPtr, size_t size) { return device_alloc(FAKE_CUDA_API_cudaMalloc, devPtr, size); }

cudaError_t cudaFree(void *devPtr)
{
    /* cudaFree(NULL) succeeds (it is how programs create the context). */
    return ret(fake_cuda_account_free(FAKE_CUDA_API_cudaFree, FAKE_CUDA_KIND_DEVICE, (uintptr_t)devPtr));
}

cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t stream)
{
    (void)stream;
    return device_alloc(FAKE_CUDA_API_cudaMallocAsync, devPtr, size);
}

cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t stream)
{
    (void)stream;
    return ret(fake_cuda_account_free(FAKE_CUDA_API_cudaFreeAsync, FAKE_CUDA_KIND_DEVICE, (uintptr_t)devPtr));
}

cudaError_t cudaMallocFromPoolAsync(void **ptr, size_t size, cudaMemPool_t pool, cudaStream_t stream)
{
    (void)pool;
    (void)stream;
    return device_alloc(FAKE_CUDA_API_cudaMallocFromPoolAsync, ptr, size);
}

cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags)
{
    (void)flags;
    uint64_t addr = 0;
    cudaError_t rc = fake_cuda_account_alloc(FAKE_CUDA_API_cudaMallocManaged, FAKE_CUDA_KIND_MANAGED,
                                             fake_cuda_account_device(), size, devPtr ? &addr : NULL);
    if (rc == cudaSuccess)
        *devPtr = (void *)(uintptr_t)addr;
    return ret(rc);
}

static cudaError_t host_alloc(int api, void **ptr, size_t size)
{
    uint64_t addr = 0;
    cudaError_t rc = fake_cuda_account_alloc(api, FAKE_CUDA_KIND_HOST, -1, size, ptr ? &addr : NULL);
    if (rc == cudaSuccess)
        *ptr = (void *)(uintptr_t)addr;
    return ret(rc);
}

cudaError_t cudaMallocHost(void **ptr, size_t size) { return host_alloc(FAKE_CUDA_API_cudaMallocHost, ptr, size); }

cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags)
{
    (void)flags;
    return host_alloc(FAKE_CUDA_API_cudaHostAlloc, pHost, size);
}

cudaError_t cudaFreeHost(void *ptr)
{
    return ret(fake_cuda_account_free(FAKE_CUDA_API_cudaFreeHost, FAKE_CUDA_KIND_HOST, (uintptr_t)ptr));
}

cudaError_t cudaMemGetInfo(size_t *free, size_t *total)
{
    return ret(fake_cuda_account_mem_info(FAKE_CUDA_API_cudaMemGetInfo, -1, free, total));
}

/* ---- devices ---- */

cudaError_t cudaSetDevice(int device) { return ret(fake_cuda_account_set_device(FAKE_CUDA_API_cudaSetDevice, device)); }

cudaError_t cudaGetDevice(int *device)
{
    if (device == NULL)
        return ret(cudaErrorInvalidValue);
    *device = fake_cuda_account_device();
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    if (count == NULL)
        return ret(cudaErrorInvalidValue);
    *count = fake_cuda_account_device_count();
    return cudaSuccess;
}

static int valid_device(int device) { return device >= 0 && device < fake_cuda_account_device_count(); }


cudaError_t cudaDeviceGetAttribute(int *value, int attr, int device)
{
    if (value == NULL)
        return ret(cudaErrorInvalidValue);
    if (!valid_device(device))
        return ret(cudaErrorInvalidDevice);
    *value = fake_cuda_device_attribute(attr, device);
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    if (version == NULL)
        return ret(cudaErrorInvalidValue);
    *version = fake_cuda_account_driver_version();
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (version == NULL)
        return ret(cudaErrorInvalidValue);
    *version = RUNTIME_VERSION;
    return cudaSuccess;
}

/* struct cudaDeviceProp of CUDA 12.8 (1032 bytes) and of CUDA 13.x (CUDA 13
 * removed clockRate, deviceOverlap, kernelExecTimeoutEnabled, computeMode,
 * maxTexture1DLinear, memoryClockRate, singleToDoublePrecisionPerfRatio and
 * cooperativeMultiDeviceLaunch). Only the fields written below are named. */
#if FAKE_CUDART_MAJOR >= 13
#define IF12(...)
#else
#define IF12(...) __VA_ARGS__
#endif
struct device_prop {
    char name[256];
    unsigned char uuid[16];
    char luid[8];
    unsigned int luidDeviceNodeMask;
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    size_t memPitch;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    IF12(int clockRate;)
    size_t totalConstMem;
    int major;
    int minor;
    size_t textureAlignment;
    size_t texturePitchAlignment;
    IF12(int deviceOverlap;)
    int multiProcessorCount;
    IF12(int kernelExecTimeoutEnabled;)
    int integrated;
    int canMapHostMemory;
    IF12(int computeMode;)
    int maxTexture1D;
    int maxTexture1DMipmap;
    IF12(int maxTexture1DLinear;)
    int maxTexture2D[2];
    int maxTexture2DMipmap[2];
    int maxTexture2DLinear[3];
    int maxTexture2DGather[2];
    int maxTexture3D[3];
    int maxTexture3DAlt[3];
    int maxTextureCubemap;
    int maxTexture1DLayered[2];
    int maxTexture2DLayered[3];
    int maxTextureCubemapLayered[2];
    int maxSurface1D;
    int maxSurface2D[2];
    int maxSurface3D[3];
    int maxSurface1DLayered[2];
    int maxSurface2DLayered[3];
    int maxSurfaceCubemap;
    int maxSurfaceCubemapLayered[2];
    size_t surfaceAlignment;
    int concurrentKernels;
    int ECCEnabled;
    int pciBusID;
    int pciDeviceID;
    int pciDomainID;
    int tccDriver;
    int asyncEngineCount;
    int unifiedAddressing;
    IF12(int memoryClockRate;)
    int memoryBusWidth;
    int l2CacheSize;
    int persistingL2CacheMaxSize;
    int maxThreadsPerMultiProcessor;
    int streamPrioritiesSupported;
    int globalL1CacheSupported;
    int localL1CacheSupported;
    size_t sharedMemPerMultiprocessor;
    int regsPerMultiprocessor;
    int managedMemory;
    int isMultiGpuBoard;
    int multiGpuBoardGroupID;
    int hostNativeAtomicSupported;
    IF12(int singleToDoublePrecisionPerfRatio;)
    int pageableMemoryAccess;
    int concurrentManagedAccess;
    int computePreemptionSupported;
    int canUseHostPointerForRegisteredMem;
    int cooperativeLaunch;
    IF12(int cooperativeMultiDeviceLaunch;)
    size_t sharedMemPerBlockOptin;
    int pageableMemoryAccessUsesHostPageTables;
    int directManagedMemAccessFromHost;
    int maxBlocksPerMultiProcessor;
    int accessPolicyMaxWindowSize;
    size_t reservedSharedMemPerBlock;
    int hostRegisterSupported;
    int sparseCudaArraySupported;
    int hostRegisterReadOnlySupported;
    int timelineSemaphoreInteropSupported;
    int memoryPoolsSupported;
    int gpuDirectRDMASupported;
    unsigned int gpuDirectRDMAFlushWritesOptions;
    int gpuDirectRDMAWritesOrdering;
    unsigned int memoryPoolSupportedHandleTypes;
    int deferredMappingCudaArraySupported;
    int ipcEventSupported;
    int clusterLaunch;
    int unifiedFunctionPointers;
    int deviceNumaConfig;
    int deviceNumaId;
    int mpsEnabled;
    int hostNumaId;
    unsigned int gpuPciDeviceID;
    unsigned int gpuPciSubsystemID;
    int hostNumaMultinodeIpcSupported;
    int reserved[56];
};
_Static_assert(__builtin_offsetof(struct device_prop, totalGlobalMem) == 288, "totalGlobalMem at 288");
#if FAKE_CUDART_MAJOR < 13
_Static_assert(sizeof(struct device_prop) == 1032, "CUDA 12's cudaDeviceProp is 1032 bytes");
_Static_assert(__builtin_offsetof(struct device_prop, major) == 360, "major at 360");
#endif

static cudaError_t device_properties(struct device_prop *p, int device)
{
    if (p == NULL)
        return ret(cudaErrorInvalidValue);
    if (!valid_device(device))
        return ret(cudaErrorInvalidDevice);
#define A(n) fake_cuda_device_attribute(n, device)
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "Fake CUDA Device %d", device);
    memcpy(p->uuid, "fakecuda", 8);
    p->uuid[15] = (unsigned char)device;
    p->totalGlobalMem = fake_cuda_account_capacity();
    p->sharedMemPerBlock = (size_t)A(8);
    p->regsPerBlock = A(12);
    p->warpSize = A(10);
    p->memPitch = (size_t)A(11);
    p->maxThreadsPerBlock = A(1);
    for (int i = 0; i < 3; i++) {
        p->maxThreadsDim[i] = A(2 + i);
        p->maxGridSize[i] = A(5 + i);
    }
    IF12(p->clockRate = A(13); p->deviceOverlap = 1; p->memoryClockRate = A(36);)
    p->totalConstMem = (size_t)A(9);
    p->major = A(75);
    p->minor = A(76);
    p->textureAlignment = (size_t)A(14);
    p->texturePitchAlignment = 32;
    p->multiProcessorCount = A(16);
    p->canMapHostMemory = A(19);
    p->concurrentKernels = A(31);
    p->pciBusID = A(33);
    p->asyncEngineCount = A(40);
    p->unifiedAddressing = A(41);
    p->memoryBusWidth = A(37);
    p->l2CacheSize = A(38);
    p->maxThreadsPerMultiProcessor = A(39);
    p->streamPrioritiesSupported = A(78);
    p->globalL1CacheSupported = A(79);
    p->localL1CacheSupported = A(80);
    p->sharedMemPerMultiprocessor = (size_t)A(81);
    p->regsPerMultiprocessor = A(82);
    p->managedMemory = A(83);
    p->concurrentManagedAccess = A(89);
    p->computePreemptionSupported = A(90);
    p->cooperativeLaunch = A(95);
    p->sharedMemPerBlockOptin = (size_t)A(97);
    p->maxBlocksPerMultiProcessor = A(106);
    p->memoryPoolsSupported = A(115);
    p->deviceNumaId = -1;
    p->hostNumaId = -1;
#undef A
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties_v2(struct device_prop *prop, int device) { return device_properties(prop, device); }
cudaError_t cudaGetDeviceProperties(struct device_prop *prop, int device) { return device_properties(prop, device); }

cudaError_t cudaDeviceGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
    if (leastPriority)
        *leastPriority = 0;
    if (greatestPriority)
        *greatestPriority = -5; /* as an H100 */
    return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int *canAccessPeer, int device, int peerDevice)
{
    if (canAccessPeer == NULL)
        return ret(cudaErrorInvalidValue);
    if (!valid_device(device) || !valid_device(peerDevice))
        return ret(cudaErrorInvalidDevice);
    *canAccessPeer = device != peerDevice;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char *pciBusId, int len, int device)
{
    if (pciBusId == NULL || len <= 0)
        return ret(cudaErrorInvalidValue);
    if (!valid_device(device))
        return ret(cudaErrorInvalidDevice);
    snprintf(pciBusId, (size_t)len, "00000000:%02X:00.0", device + 1);
    return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *memPool, int device)
{
    static void *pools[FAKE_CUDA_MAX_DEVICES];
    if (memPool == NULL)
        return ret(cudaErrorInvalidValue);
    if (!valid_device(device))
        return ret(cudaErrorInvalidDevice);
    void *pool = __atomic_load_n(&pools[device], __ATOMIC_ACQUIRE);
    if (pool == NULL) {
        /* Lock-free (nothing to re-initialise after fork): the first one wins. */
        void *fresh = new_handle(), *expected = NULL;
        if (__atomic_compare_exchange_n(&pools[device], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            pool = fresh;
        } else {
            free(fresh);
            pool = expected;
        }
    }
    *memPool = pool;
    return cudaSuccess;
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, int attr, void *value)
{
    (void)pool;
    if (value == NULL)
        return ret(cudaErrorInvalidValue);
    if (attr >= 1 && attr <= 3) /* the reuse flags: int */
        *(int *)value = 1;
    else /* thresholds and the reserved/used figures: uint64 */
        *(uint64_t *)value = 0;
    return cudaSuccess;
}

/* ---- errors ---- */

cudaError_t cudaGetLastError(void)
{
    cudaError_t rc = last_error;
    last_error = cudaSuccess;
    return rc;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case 0: return "cudaSuccess";
    case 1: return "cudaErrorInvalidValue";
    case 2: return "cudaErrorMemoryAllocation";
    case 3: return "cudaErrorInitializationError";
    case 101: return "cudaErrorInvalidDevice";
    case 400: return "cudaErrorInvalidResourceHandle";
    case 500: return "cudaErrorSymbolNotFound";
    case 801: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case 0: return "no error";
    case 1: return "invalid argument";
    case 2: return "out of memory";
    case 3: return "initialization error";
    case 101: return "invalid device ordinal";
    case 400: return "invalid resource handle";
    case 500: return "named symbol not found";
    case 801: return "operation not supported";
    default: return "unknown error";
    }
}

/* ---- driver entry points ---- */

static cudaError_t entry_point(const char *symbol, void **funcPtr, unsigned long long version,
                               unsigned long long flags, int *driverStatus)
{
    if (symbol == NULL || funcPtr == NULL)
        return ret(cudaErrorInvalidValue);
    /* cudaEnablePerThreadDefaultStream and the driver's flag are both 2. */
    *funcPtr = fake_cuda_driver_symbol(symbol, version, flags & cudaEnablePerThreadDefaultStream);
    if (driverStatus)
        *driverStatus = *funcPtr ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    /* CUDA: success with NULL (and the status) when the symbol is not found. */
    return cudaSuccess;
}

cudaError_t cudaGetDriverEntryPoint(const char *symbol, void **funcPtr, unsigned long long flags, int *driverStatus)
{
    return entry_point(symbol, funcPtr, RUNTIME_VERSION, flags, driverStatus);
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **funcPtr, unsigned int cudaVersion,
                                             unsigned long long flags, int *driverStatus)
{
    return entry_point(symbol, funcPtr, cudaVersion, flags, driverStatus);
}

/* ---- streams, events, graphs ---- */

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    if (stream == NULL)
        return ret(cudaErrorInvalidValue);
    *stream = new_handle();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *stream, unsigned int flags, int priority)
{
    (void)flags;
    (void)priority;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamGetPriority(cudaStream_t stream, int *priority)
{
    (void)stream;
    if (priority)
        *priority = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int *flags)
{
    (void)stream;
    if (flags)
        *flags = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, int *status)
{
    (void)stream;
    if (status == NULL)
        return ret(cudaErrorInvalidValue);
    *status = 0; /* cudaStreamCaptureStatusNone */
    return cudaSuccess;
}

static cudaError_t capture_info(int *status, unsigned long long *id, void **graph, const void **deps,
                                size_t *numDeps)
{
    if (status == NULL)
        return ret(cudaErrorInvalidValue);
    *status = 0;
    if (id)
        *id = 0;
    if (graph)
        *graph = NULL;
    if (deps)
        *deps = NULL;
    if (numDeps)
        *numDeps = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamGetCaptureInfo_v2(cudaStream_t stream, int *status, unsigned long long *id, void **graph,
                                        const void **deps, size_t *numDeps)
{
    (void)stream;
    return capture_info(status, id, graph, deps, numDeps);
}

cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, int *status, unsigned long long *id, void **graph,
                                     const void **deps, const void **edgeData, size_t *numDeps)
{
    (void)stream;
    if (edgeData)
        *edgeData = NULL;
    return capture_info(status, id, graph, deps, numDeps);
}

cudaError_t cudaStreamGetCaptureInfo_v3(cudaStream_t stream, int *status, unsigned long long *id, void **graph,
                                        const void **deps, const void **edgeData, size_t *numDeps)
{
    return cudaStreamGetCaptureInfo(stream, status, id, graph, deps, edgeData, numDeps);
}

cudaError_t cudaThreadExchangeStreamCaptureMode(int *mode)
{
    if (mode == NULL)
        return ret(cudaErrorInvalidValue);
    int old = capture_mode;
    capture_mode = *mode;
    *mode = old;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, void **graph)
{
    (void)stream;
    if (graph)
        *graph = new_handle();
    return cudaSuccess;
}

static cudaError_t event_create(void **event)
{
    if (event == NULL)
        return ret(cudaErrorInvalidValue);
    *event = new_handle();
    return cudaSuccess;
}

cudaError_t cudaEventCreate(void **event) { return event_create(event); }

cudaError_t cudaEventCreateWithFlags(void **event, unsigned int flags)
{
    (void)flags;
    return event_create(event);
}

cudaError_t cudaEventElapsedTime(float *ms, void *start, void *end)
{
    (void)start;
    (void)end;
    if (ms == NULL)
        return ret(cudaErrorInvalidValue);
    *ms = 0.0f;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(void **exec, void *graph, unsigned long long flags)
{
    (void)graph;
    (void)flags;
    if (exec)
        *exec = new_handle();
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags)
{
    return cudaGraphInstantiate(exec, graph, flags);
}

cudaError_t cudaGraphGetNodes(void *graph, void **nodes, size_t *numNodes)
{
    (void)graph;
    (void)nodes;
    if (numNodes)
        *numNodes = 0;
    return cudaSuccess;
}

/* Host callbacks run at once: the fake's streams have no pending work. */
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, void (*fn)(void *), void *userData)
{
    (void)stream;
    if (fn == NULL)
        return ret(cudaErrorInvalidValue);
    fn(userData);
    return cudaSuccess;
}

cudaError_t cudaStreamAddCallback(cudaStream_t stream, void (*callback)(cudaStream_t, cudaError_t, void *),
                                  void *userData, unsigned int flags)
{
    (void)flags;
    if (callback == NULL)
        return ret(cudaErrorInvalidValue);
    callback(stream, cudaSuccess, userData);
    return cudaSuccess;
}

/* ---- pointers, occupancy, copies ---- */

struct pointer_attributes {
    int type; /* cudaMemoryTypeUnregistered 0, Host 1, Device 2, Managed 3 */
    int device;
    void *devicePointer;
    void *hostPointer;
};

cudaError_t cudaPointerGetAttributes(struct pointer_attributes *attributes, const void *ptr)
{
    if (attributes == NULL)
        return ret(cudaErrorInvalidValue);
    int device = 0;
    int kind = fake_cuda_account_lookup((uintptr_t)ptr, &device, NULL, NULL);
    memset(attributes, 0, sizeof *attributes);
    switch (kind) {
    case FAKE_CUDA_KIND_DEVICE:
        *attributes = (struct pointer_attributes){2, device, (void *)ptr, NULL};
        break;
    case FAKE_CUDA_KIND_MANAGED:
        *attributes = (struct pointer_attributes){3, device, (void *)ptr, (void *)ptr};
        break;
    case FAKE_CUDA_KIND_HOST:
        *attributes = (struct pointer_attributes){1, -1, (void *)ptr, (void *)ptr};
        break;
    default:
        *attributes = (struct pointer_attributes){0, -2, NULL, (void *)ptr};
        break;
    }
    return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *numBlocks, const void *func, int blockSize,
                                                                   size_t dynamicSMemSize, unsigned int flags)
{
    (void)func;
    (void)blockSize;
    (void)dynamicSMemSize;
    (void)flags;
    if (numBlocks)
        *numBlocks = 1;
    return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, const void *func, int blockSize,
                                                          size_t dynamicSMemSize)
{
    return cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(numBlocks, func, blockSize, dynamicSMemSize, 0);
}

/* Host-to-host copies are done (both sides are real memory); anything
 * touching device memory does nothing. */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, int kind)
{
    if (kind == 0 /* cudaMemcpyHostToHost */ && dst && src && count)
        memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, int kind, cudaStream_t stream)
{
    (void)stream;
    return cudaMemcpy(dst, src, count, kind);
}

/* ---- the fat-binary registration done by every CUDA library's constructors ---- */

static void *fatbin_handle[4];

void **__cudaRegisterFatBinary(void *fatCubin)
{
    (void)fatCubin;
    return fatbin_handle;
}

void __cudaRegisterFatBinaryEnd(void **handle) { (void)handle; }
void __cudaUnregisterFatBinary(void **handle) { (void)handle; }

void __cudaRegisterFunction(void **handle, const char *hostFun, char *deviceFun, const char *deviceName,
                            int thread_limit, void *tid, void *bid, void *bDim, void *gDim, int *wSize)
{
    (void)handle, (void)hostFun, (void)deviceFun, (void)deviceName, (void)thread_limit;
    (void)tid, (void)bid, (void)bDim, (void)gDim, (void)wSize;
}

void __cudaRegisterVar(void **handle, char *hostVar, char *deviceAddress, const char *deviceName, int ext,
                       size_t size, int constant, int global)
{
    (void)handle, (void)hostVar, (void)deviceAddress, (void)deviceName, (void)ext, (void)size;
    (void)constant, (void)global;
}

char __cudaInitModule(void **handle)
{
    (void)handle;
    return 1;
}

/* <<<...>>> launches: push stores nothing, pop reports a zero configuration. */
unsigned int __cudaPushCallConfiguration(unsigned long long gridDimXY, unsigned int gridDimZ,
                                         unsigned long long blockDimXY, unsigned int blockDimZ, size_t sharedMem,
                                         void *stream)
{
    (void)gridDimXY, (void)gridDimZ, (void)blockDimXY, (void)blockDimZ, (void)sharedMem, (void)stream;
    return 0;
}

cudaError_t __cudaPopCallConfiguration(unsigned int *gridDim, unsigned int *blockDim, size_t *sharedMem,
                                       void **stream)
{
    if (gridDim)
        gridDim[0] = gridDim[1] = gridDim[2] = 1;
    if (blockDim)
        blockDim[0] = blockDim[1] = blockDim[2] = 1;
    if (sharedMem)
        *sharedMem = 0;
    if (stream)
        *stream = NULL;
    return cudaSuccess;
}

/* ---- every other name torch imports: success, nothing written ---- */

#define FAKE_CUDART_SUCCESS_STUBS(X)                                                               \
    X(cudaDeviceEnablePeerAccess) X(cudaDeviceDisablePeerAccess) X(cudaDeviceSynchronize)          \
    X(cudaDeviceReset) X(cudaDeviceSetLimit) X(cudaDeviceGetLimit) X(cudaDeviceSetCacheConfig)     \
    X(cudaEventDestroy) X(cudaEventQuery) X(cudaEventRecord) X(cudaEventRecordWithFlags)           \
    X(cudaEventSynchronize) X(cudaFuncGetAttributes) X(cudaFuncSetAttribute)                       \
    X(cudaFuncSetCacheConfig) X(cudaGetSymbolAddress) X(cudaGetSymbolSize)                         \
    X(cudaGraphDebugDotPrint) X(cudaGraphDestroy) X(cudaGraphExecDestroy) X(cudaGraphLaunch)       \
    X(cudaGraphNodeGetDependencies) X(cudaGraphNodeGetDependencies_v2) X(cudaGraphNodeGetType)     \
    X(cudaGraphKernelNodeGetParams) X(cudaGraphKernelNodeSetParams) X(cudaGraphAddKernelNode)      \
    X(cudaGraphGetEdges) X(cudaGraphGetEdges_v2) X(cudaHostRegister) X(cudaHostUnregister)         \
    X(cudaHostGetDevicePointer) X(cudaIpcCloseMemHandle) X(cudaIpcGetEventHandle)                  \
    X(cudaIpcGetMemHandle) X(cudaIpcOpenEventHandle) X(cudaIpcOpenMemHandle) X(cudaLaunchKernel)   \
    X(cudaLaunchKernelExC) X(cudaLaunchCooperativeKernel) X(cudaMemPoolSetAccess)                  \
    X(cudaMemPoolSetAttribute) X(cudaMemPoolTrimTo) X(cudaMemPoolCreate) X(cudaMemPoolDestroy)     \
    X(cudaMemcpy2DAsync) X(cudaMemcpy2D) X(cudaMemcpyPeerAsync) X(cudaMemcpyPeer)                  \
    X(cudaMemcpyToSymbol) X(cudaMemcpyToSymbolAsync) X(cudaMemcpyFromSymbol) X(cudaMemset)         \
    X(cudaMemsetAsync) X(cudaMemset2DAsync) X(cudaMemPrefetchAsync) X(cudaMemAdvise)               \
    X(cudaProfilerStart) X(cudaProfilerStop) X(cudaStreamBeginCapture) X(cudaStreamDestroy)        \
    X(cudaStreamQuery) X(cudaStreamSynchronize) X(cudaStreamWaitEvent)                             \
    X(cudaStreamUpdateCaptureDependencies) X(cudaStreamUpdateCaptureDependencies_v2)               \
    X(cudaUserObjectCreate) X(cudaGraphRetainUserObject) X(cudaStreamAttachMemAsync)               \
    X(cudaSetDeviceFlags) X(cudaGetDeviceFlags) X(cudaDeviceGetP2PAttribute)                       \
    X(cudaDeviceGetByPCIBusId) X(cudaCtxResetPersistingL2Cache) X(cudaStreamSetAttribute)          \
    X(cudaStreamGetAttribute) X(cudaFuncGetName) X(cudaGetFuncBySymbol) X(cudaGetKernel)           \
    X(cudaLibraryLoadData) X(cudaLibraryGetKernel) X(cudaLibraryUnload)

#define DEFINE_SUCCESS_STUB(name)                                                                  \
    cudaError_t name(void);                                                                        \
    cudaError_t name(void) { return cudaSuccess; }
FAKE_CUDART_SUCCESS_STUBS(DEFINE_SUCCESS_STUB)
