/*
 * libpltprobe.so: a minimal stand-in for a preloaded hook library, used only
 * to check the fake itself. It interposes aclrtMalloc, counts the calls it
 * sees and forwards them. Preloaded into fake_selftest, it proves that the
 * fake's aclrtMallocAlign32 reaches aclrtMalloc through the PLT (so the real
 * library's hook sees that inner call and must not count it twice).
 */
#define _GNU_SOURCE
#include "fake_acl.h"

#include <dlfcn.h>

int pltprobe_malloc_calls;

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{
    __typeof__(aclrtMalloc) *next = (__typeof__(aclrtMalloc) *)dlsym(RTLD_NEXT, "aclrtMalloc");
    __atomic_fetch_add(&pltprobe_malloc_calls, 1, __ATOMIC_RELAXED);
    return next ? next(devPtr, size, policy) : ACL_ERROR_RT_PARAM_INVALID;
}
