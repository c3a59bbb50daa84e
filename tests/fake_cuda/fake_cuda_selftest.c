/*
 * Exercises every function of fake_cuda.h against the two fakes and checks
 * that fake_cuda_stats agrees with what was done:
 *
 *   tests/fake_cuda/build.sh /tmp/fc
 *   cc -Wall -Werror -o /tmp/fc/selftest tests/fake_cuda/fake_cuda_selftest.c \
 *       -L/tmp/fc -lcudart -lcuda -ldl -lpthread -Wl,-rpath,/tmp/fc
 *   FAKE_CUDA_DEVICE_BYTES=1073741824 /tmp/fc/selftest
 *
 * It needs two devices and re-executes itself with FAKE_CUDA_DEVICE_COUNT=2
 * when started with fewer. *
 * Prints the final counters as JSON and "fake_cuda_selftest: ok" (exit 0),
 * or the first failed check (exit 1).
 */
#define _GNU_SOURCE
#include "fake_cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define EQ(a, b)                                                                                   \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, #a,    \
                    a_, #b, b_);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static struct fake_cuda_stats st;
static const struct api_counters *api(int i) { return &st.api[i]; }
static void snap(void) { CHECK(fake_cuda_stats(&st) == 0); }

#define MiB (1ULL << 20)
#define GRAN (2 * MiB)

static void *other_thread(void *arg)
{
    (void)arg;
    int dev = -1;
    /* A new thread starts on device 0 whatever the main thread set. */
    CHECK(cudaGetDevice(&dev) == cudaSuccess && dev == 0);
    CUdevice cdev = -1;
    CHECK(cuCtxGetDevice(&cdev) == CUDA_SUCCESS && cdev == 0);
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    fake_cuda_reset_stats();
    snap();
    if (st.device_count < 2 && getenv("FAKE_CUDA_SELFTEST_REEXEC") == NULL) {
        /* The fake reads its environment once, at load: start again with two devices. */
        setenv("FAKE_CUDA_DEVICE_COUNT", "2", 1);
        setenv("FAKE_CUDA_SELFTEST_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
        perror("execv");
        return 1;
    }
    const uint64_t cap = st.device_capacity;
    const int ndev = st.device_count;
    CHECK(ndev >= 2);
    CHECK(cap >= 64 * MiB);

    /* ---- devices, versions ---- */
    int count = 0, dev = -1, version = 0;
    CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == ndev);
    CHECK(cuInit(0) == CUDA_SUCCESS);
    CHECK(cuDriverGetVersion(&version) == CUDA_SUCCESS && version >= 12000);
    CHECK(cudaGetDevice(&dev) == cudaSuccess && dev == 0);
    CHECK(cudaSetDevice(ndev) == cudaErrorInvalidDevice);
    CHECK(cudaSetDevice(1) == cudaSuccess);
    CHECK(cudaGetDevice(&dev) == cudaSuccess && dev == 1);
    CUdevice cdev = -1;
    CHECK(cuCtxGetDevice(&cdev) == CUDA_SUCCESS && cdev == 1);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0 && pthread_join(t, NULL) == 0);
    snap();
    EQ(api(FAKE_CUDA_API_cudaSetDevice)->calls, 2);
    EQ(api(FAKE_CUDA_API_cudaSetDevice)->failures, 1);

    /* ---- runtime device memory on device 1 ---- */
    void *a = NULL, *b = NULL, *c = NULL, *d = NULL, *m = NULL;
    CHECK(cudaMalloc(&a, 10 * MiB) == cudaSuccess && a != NULL);
    CHECK(cudaMallocAsync(&b, 3 * MiB, NULL) == cudaSuccess && b != NULL && b != a);
    CHECK(cudaMallocFromPoolAsync(&c, 1 * MiB, NULL, NULL) == cudaSuccess && c != NULL);
    CHECK(cudaMallocManaged(&m, 4096, 1) == cudaSuccess && m != NULL);
    memset(m, 0xab, 4096); /* managed memory is real */
    CHECK(cudaMalloc(&d, cap) == cudaErrorMemoryAllocation && d == NULL);
    size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess);
    EQ(total_b, cap);
    EQ(free_b, cap - 14 * MiB - 4096);
    CHECK(cuMemGetInfo_v2(&free_b, &total_b) == CUDA_SUCCESS);
    EQ(free_b, cap - 14 * MiB - 4096);
    snap();
    EQ(st.devices[1].live_bytes, 14 * MiB + 4096);
    EQ(st.devices[0].live_bytes, 0);
    EQ(st.device.alloc_calls, 4);
    EQ(st.device.failed_calls, 1);
    EQ(api(FAKE_CUDA_API_cudaMalloc)->calls, 2);
    EQ(api(FAKE_CUDA_API_cudaMalloc)->failures, 1);
    EQ(api(FAKE_CUDA_API_cudaMalloc)->bytes, 10 * MiB);
    CHECK(cudaFree(a) == cudaSuccess);
    CHECK(cudaFree(a) == cudaErrorInvalidValue); /* twice: not ours any more */
    CHECK(cudaFree(NULL) == cudaSuccess);
    CHECK(cudaFreeAsync(b, NULL) == cudaSuccess);
    CHECK(cudaFree(c) == cudaSuccess); /* a pool allocation freed by cudaFree */
    CHECK(cudaFree(m) == cudaSuccess);
    snap();
    EQ(st.device.live_bytes, 0);
    EQ(st.device.free_calls, 4);
    EQ(st.devices[1].peak_live_bytes, 14 * MiB + 4096);
    EQ(api(FAKE_CUDA_API_cudaFree)->calls, 5);
    EQ(api(FAKE_CUDA_API_cudaFree)->failures, 1);
    EQ(api(FAKE_CUDA_API_cudaFree)->bytes, 11 * MiB + 4096);
    EQ(api(FAKE_CUDA_API_cudaFreeAsync)->bytes, 3 * MiB);
    EQ(api(FAKE_CUDA_API_cudaMemGetInfo)->calls, 1);
    EQ(api(FAKE_CUDA_API_cuMemGetInfo_v2)->calls, 1);

    /* ---- host memory: real, writable ---- */
    void *h1 = NULL, *h2 = NULL;
    CHECK(cudaMallocHost(&h1, 1000) == cudaSuccess && h1 != NULL);
    CHECK(cudaHostAlloc(&h2, 5000, 0) == cudaSuccess && h2 != NULL);
    memset(h1, 1, 1000);
    memset(h2, 2, 5000);
    snap();
    EQ(st.host.live_bytes, 6000);
    EQ(st.device.live_bytes, 0);
    CHECK(cudaFreeHost(h1) == cudaSuccess);
    CHECK(cudaFreeHost(h2) == cudaSuccess);
    CHECK(cudaFreeHost(h2) == cudaErrorInvalidValue);
    snap();
    EQ(st.host.alloc_calls, 2);
    EQ(st.host.free_calls, 2);
    EQ(st.host.live_bytes, 0);
    EQ(api(FAKE_CUDA_API_cudaFreeHost)->failures, 1);

    /* ---- driver classic and stream-ordered memory (current device: 1) ---- */
    CUdeviceptr p1 = 0, p2 = 0, p3 = 0;
    CHECK(cuMemAlloc_v2(&p1, 2 * MiB) == CUDA_SUCCESS && p1 != 0);
    CHECK(cuMemAllocAsync(&p2, 1 * MiB, NULL) == CUDA_SUCCESS && p2 != 0);
    CHECK(cuMemAllocAsync_ptsz(&p3, 1 * MiB, NULL) == CUDA_SUCCESS && p3 != 0);
    snap();
    EQ(st.devices[1].live_bytes, 4 * MiB);
    EQ(api(FAKE_CUDA_API_cuMemAllocAsync)->calls, 2); /* _ptsz counts as the plain one */
    CHECK(cuMemFree_v2(p1) == CUDA_SUCCESS);
    CHECK(cuMemFreeAsync(p2, NULL) == CUDA_SUCCESS);
    CHECK(cuMemFreeAsync_ptsz(p3, NULL) == CUDA_SUCCESS);
    CHECK(cuMemFree_v2(p3) == CUDA_ERROR_INVALID_VALUE);
    snap();
    EQ(st.device.live_bytes, 0);
    EQ(api(FAKE_CUDA_API_cuMemFreeAsync)->calls, 2);
    EQ(api(FAKE_CUDA_API_cuMemFreeAsync)->bytes, 2 * MiB);
    EQ(api(FAKE_CUDA_API_cuMemFree_v2)->failures, 1);

    /* ---- virtual memory management, as PyTorch's expandable segments ---- */
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = 1;
    prop.location.type = 1;
    prop.location.id = 0; /* device 0, while device 1 is current */
    size_t gran = 0;
    CHECK(cuMemGetAllocationGranularity(&gran, &prop, 0) == CUDA_SUCCESS && gran == GRAN);
    CUdeviceptr va = 0;
    const size_t span = 8 * GRAN;
    CHECK(cuMemAddressReserve(&va, span, 0, 0, 0) == CUDA_SUCCESS && va != 0);
    CUmemGenericAllocationHandle hs[3] = {0, 0, 0}, huge = 0;
    for (int i = 0; i < 3; i++)
        CHECK(cuMemCreate(&hs[i], GRAN, &prop, 0) == CUDA_SUCCESS && hs[i] != 0);
    CHECK(cuMemCreate(&huge, cap, &prop, 0) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK(cuMemCreate(&huge, GRAN + 1, &prop, 0) == CUDA_ERROR_INVALID_VALUE);
    snap();
    EQ(st.device.failed_calls, 3); /* cudaMalloc(cap) and these two */
    for (int i = 0; i < 3; i++)
        CHECK(cuMemMap(va + i * GRAN, GRAN, 0, hs[i], 0) == CUDA_SUCCESS);
    CHECK(cuMemMap(va, GRAN, 0, hs[0], 0) == CUDA_ERROR_INVALID_VALUE);              /* mapped already */
    CHECK(cuMemMap(va + 3 * GRAN, GRAN, 0, 12345, 0) == CUDA_ERROR_INVALID_HANDLE);  /* no such handle */
    CHECK(cuMemMap(va + span, GRAN, 0, hs[0], 0) == CUDA_ERROR_INVALID_VALUE);       /* outside */
    CUmemAccessDesc access = {{1, 0}, 3};
    CHECK(cuMemSetAccess(va, 3 * GRAN, &access, 1) == CUDA_SUCCESS);
    CHECK(cuMemSetAccess(va, 4 * GRAN, &access, 1) == CUDA_ERROR_INVALID_VALUE); /* not all mapped */
    snap();
    EQ(st.devices[0].live_bytes, 3 * GRAN);
    EQ(st.devices[1].live_bytes, 0);
    EQ(api(FAKE_CUDA_API_cuMemCreate)->calls, 5);
    EQ(api(FAKE_CUDA_API_cuMemCreate)->failures, 2);
    EQ(api(FAKE_CUDA_API_cuMemCreate)->bytes, 3 * GRAN);
    EQ(api(FAKE_CUDA_API_cuMemAddressReserve)->bytes, span);
    EQ(api(FAKE_CUDA_API_cuMemMap)->successes, 3);
    EQ(api(FAKE_CUDA_API_cuMemMap)->failures, 3);
    EQ(api(FAKE_CUDA_API_cuMemSetAccess)->bytes, 3 * GRAN);
    CHECK(cudaSetDevice(0) == cudaSuccess);
    CHECK(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess);
    EQ(free_b, cap - 3 * GRAN);
    CHECK(cudaSetDevice(1) == cudaSuccess);
    CHECK(cuMemAddressFree(va, span) == CUDA_ERROR_INVALID_VALUE); /* still mapped */
    CHECK(cuMemUnmap(va, GRAN / 2) == CUDA_ERROR_INVALID_VALUE);   /* part of a mapping */
    CHECK(cuMemUnmap(va, 2 * GRAN) == CUDA_SUCCESS);               /* two whole mappings */
    CHECK(cuMemUnmap(va + 2 * GRAN, GRAN) == CUDA_SUCCESS);
    for (int i = 0; i < 3; i++)
        CHECK(cuMemRelease(hs[i]) == CUDA_SUCCESS);
    CHECK(cuMemRelease(hs[0]) == CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemAddressFree(va, span - GRAN) == CUDA_ERROR_INVALID_VALUE); /* not its size */
    CHECK(cuMemAddressFree(va, span) == CUDA_SUCCESS);
    snap();
    EQ(st.device.live_bytes, 0);
    EQ(api(FAKE_CUDA_API_cuMemRelease)->bytes, 3 * GRAN);
    EQ(api(FAKE_CUDA_API_cuMemRelease)->failures, 1);
    EQ(api(FAKE_CUDA_API_cuMemUnmap)->bytes, 3 * GRAN);
    EQ(api(FAKE_CUDA_API_cuMemAddressFree)->successes, 1);
    EQ(api(FAKE_CUDA_API_cuMemAddressFree)->failures, 2);

    /* ---- lookups by name ---- */
    void *libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    CHECK(libcuda != NULL);
    void *fn = NULL;
    CHECK(cuGetProcAddress("cuMemAlloc", &fn, 12000, 0) == CUDA_SUCCESS);
    CHECK(fn == (void *)cuMemAlloc_v2 && fn == dlsym(libcuda, "cuMemAlloc_v2"));
    CHECK(cuGetProcAddress("cuMemAlloc", &fn, 3010, 0) == CUDA_SUCCESS && fn == dlsym(libcuda, "cuMemAlloc"));
    CHECK(cuGetProcAddress("cuMemFree", &fn, 12000, 0) == CUDA_SUCCESS && fn == (void *)cuMemFree_v2);
    CHECK(cuGetProcAddress("cuMemGetInfo", &fn, 12000, 0) == CUDA_SUCCESS && fn == (void *)cuMemGetInfo_v2);
    CHECK(cuGetProcAddress("cuMemAllocAsync", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) ==
              CUDA_SUCCESS &&
          fn == (void *)cuMemAllocAsync_ptsz);
    CHECK(cuGetProcAddress("cuMemFreeAsync", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) ==
              CUDA_SUCCESS &&
          fn == (void *)cuMemFreeAsync_ptsz);
    CHECK(cuGetProcAddress("cuMemAllocAsync", &fn, 12000, 0) == CUDA_SUCCESS && fn == (void *)cuMemAllocAsync);
    CHECK(cuGetProcAddress("cuMemCreate", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) ==
              CUDA_SUCCESS &&
          fn == (void *)cuMemCreate);
    fn = (void *)1;
    CHECK(cuGetProcAddress("cuNoSuchFunction", &fn, 12000, 0) == CUDA_ERROR_NOT_FOUND && fn == NULL);
    int sym_status = -1;
    CHECK(cuGetProcAddress_v2("cuMemGetInfo", &fn, 12000, 0, &sym_status) == CUDA_SUCCESS &&
          fn == (void *)cuMemGetInfo_v2 && sym_status == 0);
    CHECK(cuGetProcAddress_v2("cuNoSuchFunction", &fn, 12000, 0, &sym_status) == CUDA_ERROR_NOT_FOUND &&
          fn == NULL && sym_status == 1);
    CHECK(cuGetProcAddress("cuGetProcAddress", &fn, 12000, 0) == CUDA_SUCCESS && fn == (void *)cuGetProcAddress_v2);
    int drv_status = -1;
    CHECK(cudaGetDriverEntryPoint("cuMemCreate", &fn, cudaEnableDefault, &drv_status) == cudaSuccess &&
          drv_status == cudaDriverEntryPointSuccess && fn == dlsym(libcuda, "cuMemCreate") && fn != NULL);
    CHECK(cudaGetDriverEntryPoint("cuMemAlloc", &fn, cudaEnableDefault, &drv_status) == cudaSuccess &&
          fn == (void *)cuMemAlloc_v2);
    CHECK(cudaGetDriverEntryPoint("cuMemFreeAsync", &fn, cudaEnablePerThreadDefaultStream, &drv_status) ==
              cudaSuccess &&
          fn == (void *)cuMemFreeAsync_ptsz);
    CHECK(cudaGetDriverEntryPointByVersion("cuMemMap", &fn, 12000, cudaEnableDefault, &drv_status) ==
              cudaSuccess &&
          fn == dlsym(libcuda, "cuMemMap"));
    CHECK(cudaGetDriverEntryPointByVersion("cuMemGetInfo", &fn, 3000, cudaEnableDefault, &drv_status) ==
              cudaSuccess &&
          fn == dlsym(libcuda, "cuMemGetInfo"));
    CHECK(cudaGetDriverEntryPoint("cuNoSuchFunction", &fn, cudaEnableDefault, &drv_status) == cudaSuccess &&
          fn == NULL && drv_status == cudaDriverEntryPointSymbolNotFound);

    /* A function found by name allocates like the direct call. */
    CUresult (*alloc)(CUdeviceptr *, size_t) = NULL;
    CHECK(cudaGetDriverEntryPoint("cuMemAlloc", (void **)&alloc, cudaEnableDefault, NULL) == cudaSuccess);
    CHECK(alloc != NULL && alloc(&p1, 5 * MiB) == CUDA_SUCCESS);
    CHECK(cuMemFree_v2(p1) == CUDA_SUCCESS);

    /* ---- the totals agree with the parts ---- */
    snap();
    EQ(api(FAKE_CUDA_API_cuMemAlloc_v2)->calls, 2);
    uint64_t dev_allocs = 0, dev_bytes = 0, dev_frees = 0, dev_freed = 0;
    const int allocs[] = {FAKE_CUDA_API_cudaMalloc, FAKE_CUDA_API_cudaMallocAsync,
                          FAKE_CUDA_API_cudaMallocFromPoolAsync, FAKE_CUDA_API_cudaMallocManaged,
                          FAKE_CUDA_API_cuMemCreate, FAKE_CUDA_API_cuMemAlloc_v2, FAKE_CUDA_API_cuMemAllocAsync};
    const int frees[] = {FAKE_CUDA_API_cudaFree, FAKE_CUDA_API_cudaFreeAsync, FAKE_CUDA_API_cuMemRelease,
                         FAKE_CUDA_API_cuMemFree_v2, FAKE_CUDA_API_cuMemFreeAsync};
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0]; i++) {
        dev_allocs += api(allocs[i])->successes;
        dev_bytes += api(allocs[i])->bytes;
    }
    for (size_t i = 0; i < sizeof frees / sizeof frees[0]; i++) {
        dev_freed += api(frees[i])->bytes;
        dev_frees += api(frees[i])->successes;
    }
    dev_frees -= 1; /* cudaFree(NULL) succeeded without freeing anything */
    EQ(st.device.alloc_calls, dev_allocs);
    EQ(st.device.alloc_bytes, dev_bytes);
    EQ(st.device.free_calls, dev_frees);
    EQ(st.device.freed_bytes, dev_freed);
    EQ(st.device.live_bytes, 0);
    EQ(st.devices[0].alloc_calls + st.devices[1].alloc_calls, dev_allocs);
    EQ(st.devices[0].alloc_bytes + st.devices[1].alloc_bytes, dev_bytes);

    char json[16384];
    int n = fake_cuda_stats_json(json, sizeof json);
    CHECK(n > 0 && (size_t)n < sizeof json && json[0] == '{' && strstr(json, "\"cuMemCreate\":{\"calls\":5,") != NULL);
    puts(json);
    if (failures) {
        fprintf(stderr, "fake_cuda_selftest: %d checks failed\n", failures);
        return 1;
    }
    puts("fake_cuda_selftest: ok");
    return 0;
}
