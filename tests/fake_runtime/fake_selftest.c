/*
 * Checks the fake runtime itself, without the preloaded library: every test of
 * the hooks trusts its accounts. Linked with the fake (-lascendcl).
 *
 *   fake_selftest            main checks; expects FAKE_ACL_DEVICE_BYTES=64 MiB,
 *                            FAKE_ACL_DEVICE_COUNT=2, FAKE_ACL_HOST_BYTES=1 MiB,
 *                            FAKE_ACL_OOM_CODE=207018. With libpltprobe.so
 *                            preloaded it also checks that aclrtMallocAlign32
 *                            reaches aclrtMalloc through the PLT.
 *   fake_selftest fail-every expects FAKE_ACL_FAIL_EVERY=3
 *   fake_selftest null       expects FAKE_ACL_NULL_ON_SUCCESS=1
 * Prints "selftest ok: <mode>" and exits 0, or names the failed check.
 */
#define _GNU_SOURCE
#include "fake_acl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ULL * 1024)
#define SENTINEL ((void *)0x5a5a)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fake_selftest: line %d: check failed: %s\n", __LINE__, #cond);        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static struct fake_acl_stats before, after;

static void snap(struct fake_acl_stats *s) { CHECK(fake_acl_stats(s) == 0); }

#define DELTA(field) (after.field - before.field)

static int device_of(void *p) { return (int)(((uintptr_t)p - 0x100000000000ULL) >> 40); }

static void *other_thread(void *arg)
{
    int32_t *device = arg;
    CHECK(aclrtGetDevice(device) == 0);
    return NULL;
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = NULL;
        CHECK(aclrtMalloc(&p, 4096 + (size_t)i, 0) == 0);
        CHECK(aclrtFree(p) == 0);
    }
    return NULL;
}

static void main_checks(void)
{
    void *p = SENTINEL, *q = NULL, *r = NULL;
    size_t free_bytes = 0, total = 0;

    snap(&before);
    CHECK(before.device_capacity == 64 * MiB && before.device_count == 2);
    CHECK(before.host_capacity == 1 * MiB && before.oom_code == ACL_ERROR_RT_DEVICE_OOM);

    /* Capacity per device, exact; a failure leaves the out-parameter alone. */
    CHECK(aclrtMalloc(&q, 16 * MiB, 0) == 0 && q != NULL && device_of(q) == 0);
    CHECK(aclrtMalloc(&p, 48 * MiB + 1, 0) == ACL_ERROR_RT_DEVICE_OOM && p == SENTINEL);
    CHECK(aclrtMallocCached(&r, 48 * MiB, 0) == 0 && r != q);
    CHECK(aclrtMallocWithCfg(&p, 1, 0, NULL) == ACL_ERROR_RT_DEVICE_OOM && p == SENTINEL);
    CHECK(aclrtGetMemInfo(1, &free_bytes, &total) == 0 && free_bytes == 0 && total == 64 * MiB);
    snap(&after);
    CHECK(DELTA(device.alloc_calls) == 2 && DELTA(device.failed_calls) == 2);
    CHECK(after.device.live_bytes == 64 * MiB && after.device.peak_live_bytes == 64 * MiB);
    CHECK(after.devices[0].live_bytes == 64 * MiB && after.n_failures == 2);
    CHECK(after.failures[0].api == FAKE_API_aclrtMalloc && after.failures[0].size == 48 * MiB + 1);
    CHECK(after.failures[0].device_live_bytes == 16 * MiB && after.failures[1].device == 0);

    /* Unknown frees fail and change nothing; a double free is unknown. */
    snap(&before);
    CHECK(aclrtFree((void *)0x10) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtFree(q) == 0 && aclrtFree(q) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtFreePhysical(q) == ACL_ERROR_RT_PARAM_INVALID); /* wrong kind */
    snap(&after);
    CHECK(DELTA(api[FAKE_API_aclrtFree].calls) == 3 && DELTA(api[FAKE_API_aclrtFree].failures) == 2);
    CHECK(DELTA(api[FAKE_API_aclrtFree].bytes) == 16 * MiB && DELTA(device.free_calls) == 1);
    CHECK(after.device.live_bytes == 48 * MiB && after.device.freed_bytes == 16 * MiB);

    /* The current device is per thread; bad ids are refused. */
    int32_t device = -1;
    pthread_t tid;
    CHECK(aclrtSetDevice(2) == ACL_ERROR_RT_INVALID_DEVICEID);
    CHECK(aclrtSetDevice(1) == 0 && aclrtGetDevice(&device) == 0 && device == 1);
    CHECK(pthread_create(&tid, NULL, other_thread, &device) == 0 && pthread_join(tid, NULL) == 0);
    CHECK(device == 0);
    CHECK(aclrtMalloc(&q, 1000, 0) == 0 && device_of(q) == 1);

    /* Align32: through aclrtMalloc, counted once, at the caller's size. */
    int *probe = dlsym(RTLD_DEFAULT, "pltprobe_malloc_calls");
    int probe_before = probe ? *probe : 0;
    snap(&before);
    CHECK(aclrtMallocAlign32(&p, 100, 0) == 0 && (uintptr_t)p % 32 == 0 && device_of(p) == 1);
    snap(&after);
    CHECK(DELTA(api[FAKE_API_aclrtMallocAlign32].calls) == 1);
    CHECK(DELTA(api[FAKE_API_aclrtMallocAlign32].bytes) == 100);
    CHECK(DELTA(api[FAKE_API_aclrtMalloc].calls) == 0 && DELTA(device.alloc_calls) == 1);
    CHECK(DELTA(device.alloc_bytes) == 100 && DELTA(devices[1].alloc_bytes) == 100);
    if (probe)
        CHECK(*probe - probe_before == 1);
    int has_100 = 0;
    for (int i = 0; i < after.n_sizes; i++)
        has_100 |= after.sizes[i].size == 100 && after.sizes[i].count == 1;
    CHECK(has_100);
    CHECK(aclrtFree(p) == 0);

    /* VMM: physical memory counts against the device, reservations do not. */
    void *va = NULL;
    aclrtDrvMemHandle h = NULL, h2 = SENTINEL;
    aclrtPhysicalMemProp prop = {.location = {.id = 1}};
    snap(&before);
    CHECK(aclrtReserveMemAddress(&va, 1024 * MiB, 2 * MiB, NULL, 0) == 0 && (uintptr_t)va % (2 * MiB) == 0);
    CHECK(aclrtMallocPhysical(&h, 20 * MiB, &prop, 0) == 0 && h != NULL);
    CHECK(aclrtMallocPhysical(&h2, 64 * MiB, &prop, 0) == ACL_ERROR_RT_DEVICE_OOM && h2 == SENTINEL);
    CHECK(aclrtMapMem(va, 20 * MiB, 0, h, 0) == 0);
    CHECK(aclrtMapMem(va, 20 * MiB, 0, h, 0) == ACL_ERROR_RT_PARAM_INVALID); /* already mapped */
    CHECK(aclrtMapMem((void *)0x10, 2 * MiB, 0, h, 0) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtUnmapMem(va) == 0 && aclrtUnmapMem(va) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtFreePhysical(h) == 0 && aclrtReleaseMemAddress(va) == 0);
    CHECK(aclrtReleaseMemAddress(va) == ACL_ERROR_RT_PARAM_INVALID);
    snap(&after);
    CHECK(DELTA(device.alloc_calls) == 1 && DELTA(device.alloc_bytes) == 20 * MiB);
    CHECK(DELTA(device.failed_calls) == 1 && DELTA(device.free_calls) == 1);
    CHECK(DELTA(devices[1].alloc_calls) == 1 && after.devices[1].peak_live_bytes == 20 * MiB + 1000);
    CHECK(DELTA(api[FAKE_API_aclrtReserveMemAddress].bytes) == 1024 * MiB);
    CHECK(DELTA(api[FAKE_API_aclrtMapMem].calls) == 3 && DELTA(api[FAKE_API_aclrtMapMem].failures) == 2);
    CHECK(DELTA(api[FAKE_API_aclrtUnmapMem].bytes) == 20 * MiB);
    CHECK(DELTA(api[FAKE_API_aclrtFreePhysical].bytes) == 20 * MiB);

    /* Host memory is real, has its own capacity and counters. */
    char *host = NULL;
    int on_stack = 0;
    snap(&before);
    CHECK(aclrtMallocHost((void **)&host, 512 * 1024) == 0 && host != NULL);
    memset(host, 1, 512 * 1024);
    p = SENTINEL;
    CHECK(aclrtMallocHostWithCfg(&p, 600 * 1024, NULL) == ACL_ERROR_RT_DEVICE_OOM && p == SENTINEL);
    CHECK(aclrtFreeHost(&on_stack) == ACL_ERROR_RT_PARAM_INVALID);
    CHECK(aclrtFreeHost(host) == 0);
    snap(&after);
    CHECK(DELTA(host.alloc_calls) == 1 && DELTA(host.failed_calls) == 1 && DELTA(host.free_calls) == 1);
    CHECK(after.host.live_bytes == 0 && after.host.peak_live_bytes == 512 * 1024);
    CHECK(DELTA(device.alloc_calls) == 0 && DELTA(device.failed_calls) == 0);

    /* Reset keeps what is live. */
    fake_acl_reset_stats();
    snap(&after);
    CHECK(after.device.alloc_calls == 0 && after.api[FAKE_API_aclrtMalloc].calls == 0);
    CHECK(after.device.live_bytes == 48 * MiB + 1000 && after.device.peak_live_bytes == 48 * MiB + 1000);
    CHECK(after.devices[1].live_bytes == 1000 && after.devices[1].peak_live_bytes == 1000);
    CHECK(after.n_sizes == 0 && after.n_failures == 0);
    CHECK(aclrtFree(q) == 0 && aclrtFree(r) == 0);

    /* Many threads: the accounts add up. */
    pthread_t tids[8];
    fake_acl_reset_stats();
    for (int t = 0; t < 8; t++)
        CHECK(pthread_create(&tids[t], NULL, churn, NULL) == 0);
    for (int t = 0; t < 8; t++)
        CHECK(pthread_join(tids[t], NULL) == 0);
    snap(&after);
    CHECK(after.device.alloc_calls == 8000 && after.device.free_calls == 8000);
    CHECK(after.device.live_bytes == 0 && after.device.alloc_bytes == after.device.freed_bytes);
    CHECK(after.n_sizes == FAKE_ACL_MAX_SIZES && after.sizes_dropped == (1000 - FAKE_ACL_MAX_SIZES) * 8);

    /* The JSON form, for Python. */
    char small[8];
    int n = fake_acl_stats_json(small, sizeof small);
    CHECK(n > 100 && strlen(small) == 7 && small[0] == '{');
}

static void fail_every_checks(void)
{
    /* Every third device allocation attempt fails, whatever the API. */
    void *p[6];
    CHECK(aclrtMalloc(&p[0], 512, 0) == 0 && aclrtMallocCached(&p[1], 512, 0) == 0);
    CHECK(aclrtMallocAlign32(&p[2], 512, 0) == ACL_ERROR_RT_MEMORY_ALLOCATION);
    CHECK(aclrtMalloc(&p[3], 512, 0) == 0 && aclrtMallocPhysical(&p[4], 512, NULL, 0) == 0);
    CHECK(aclrtMallocWithCfg(&p[5], 512, 0, NULL) == ACL_ERROR_RT_MEMORY_ALLOCATION);
    snap(&after);
    CHECK(after.device.alloc_calls == 4 && after.device.failed_calls == 2 && after.n_failures == 2);
    CHECK(after.api[FAKE_API_aclrtMallocAlign32].failures == 1 && after.api[FAKE_API_aclrtMalloc].calls == 2);
}

static void null_checks(void)
{
    void *p = SENTINEL;
    CHECK(aclrtMalloc(&p, 4096, 0) == 0 && p == NULL);
    CHECK(aclrtFree(p) == ACL_ERROR_RT_PARAM_INVALID);
    snap(&after);
    CHECK(after.api[FAKE_API_aclrtMalloc].successes == 1 && after.api[FAKE_API_aclrtMalloc].bytes == 0);
    CHECK(after.device.alloc_calls == 0 && after.device.live_bytes == 0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "main";
    if (strcmp(mode, "main") == 0)
        main_checks();
    else if (strcmp(mode, "fail-every") == 0)
        fail_every_checks();
    else if (strcmp(mode, "null") == 0)
        null_checks();
    else
        CHECK(!"unknown mode");
    printf("selftest ok: %s%s\n", mode, dlsym(RTLD_DEFAULT, "pltprobe_malloc_calls") ? " (plt probe)" : "");
    return 0;
}
