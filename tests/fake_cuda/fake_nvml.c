/*
 * The fake NVML, built by tests/fake_cuda/build.sh as libnvidia-ml.so.1: the
 * library NVIDIA's driver installs beside libcuda.so.1, which PyTorch opens
 * with dlopen("libnvidia-ml.so.1") (c10/cuda/driver_api.cpp). Where it is
 * found, torch asserts that every NVML name it knows is there, and recent
 * lines (2.15) call it without checking while mapping expandable segments
 * (fabric access), so it must exist and answer.
 *
 * The devices are the fake driver's (count, UUIDs, PCI bus ids, memory from
 * the shared account, not counted as calls). The fabric is "not supported"
 * and NVLink queries report NVML_ERROR_NOT_SUPPORTED, as on a GPU without
 * NVSwitch; no process
 * is listed. Names added at build time for one torch line report
 * NVML_ERROR_NOT_SUPPORTED too.
 */
#define _GNU_SOURCE
#include "fake_cuda.h"

#include <string.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6

typedef void *nvmlDevice_t;

#define HANDLE_BASE 0x7d0000000000ULL

static nvmlDevice_t handle_of(int device) { return (nvmlDevice_t)(uintptr_t)(HANDLE_BASE + ((uint64_t)device << 4)); }

static int device_of(nvmlDevice_t handle)
{
    uint64_t v = (uintptr_t)handle;
    if (v < HANDLE_BASE || (v - HANDLE_BASE) % 16 != 0)
        return -1;
    uint64_t d = (v - HANDLE_BASE) >> 4;
    return d < (uint64_t)fake_cuda_account_device_count() ? (int)d : -1;
}

/* The UUID cudaGetDeviceProperties reports ("fakecuda", then the device in
 * the last byte), as NVML writes it. */
static void uuid_text(int device, char *out, size_t len)
{
    unsigned char u[16] = {'f', 'a', 'k', 'e', 'c', 'u', 'd', 'a', 0, 0, 0, 0, 0, 0, 0, (unsigned char)device};
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
             u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

int nvmlInit_v2(void);
int nvmlInit_v2(void) { return NVML_SUCCESS; }
int nvmlInit(void);
int nvmlInit(void) { return NVML_SUCCESS; }
int nvmlInitWithFlags(unsigned int flags);
int nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    return NVML_SUCCESS;
}
int nvmlShutdown(void);
int nvmlShutdown(void) { return NVML_SUCCESS; }

const char *nvmlErrorString(int result);
const char *nvmlErrorString(int result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetCudaDriverVersion_v2(int *version);
int nvmlSystemGetCudaDriverVersion_v2(int *version)
{
    if (version == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *version = fake_cuda_account_driver_version();
    return NVML_SUCCESS;
}
int nvmlSystemGetCudaDriverVersion(int *version);
int nvmlSystemGetCudaDriverVersion(int *version) { return nvmlSystemGetCudaDriverVersion_v2(version); }

int nvmlDeviceGetCount_v2(unsigned int *count);
int nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)fake_cuda_account_device_count();
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (device == NULL || index >= (unsigned int)fake_cuda_account_device_count())
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = handle_of((int)index);
    return NVML_SUCCESS;
}

/* "00000000:0B:00.0" (as cudaDeviceGetPCIBusId writes them: bus = device + 1). */
int nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device);
int nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    if (pciBusId == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (sscanf(pciBusId, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4 &&
        sscanf(pciBusId, "%x:%x.%x", &bus, &dev, &fn) != 3)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (bus < 1 || bus > (unsigned int)fake_cuda_account_device_count())
        return NVML_ERROR_NOT_FOUND;
    *device = handle_of((int)bus - 1);
    return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length);
int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    int d = device_of(device);
    if (d < 0 || uuid == NULL || length < 41)
        return NVML_ERROR_INVALID_ARGUMENT;
    uuid_text(d, uuid, length);
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device);
int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    if (uuid == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (int d = 0; d < fake_cuda_account_device_count(); d++) {
        char text[64];
        uuid_text(d, text, sizeof text);
        if (strcmp(text, uuid) == 0 || strcmp(text + 4, uuid) == 0) {
            *device = handle_of(d);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

struct nvml_memory {
    unsigned long long total, free, used;
};

int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, struct nvml_memory *memory);
int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, struct nvml_memory *memory)
{
    int d = device_of(device);
    size_t free_bytes = 0, total = 0;
    if (d < 0 || memory == NULL || fake_cuda_account_mem_info(-1, d, &free_bytes, &total) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *memory = (struct nvml_memory){total, free_bytes, total - free_bytes};
    return NVML_SUCCESS;
}

int nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount, void *infos);
int nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount, void *infos)
{
    (void)infos;
    if (device_of(device) < 0 || infoCount == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *infoCount = 0;
    return NVML_SUCCESS;
}

/* NVML_P2P_STATUS_OK (0) between distinct devices, as cudaDeviceCanAccessPeer says. */
int nvmlDeviceGetP2PStatus(nvmlDevice_t device1, nvmlDevice_t device2, int p2pIndex, int *p2pStatus);
int nvmlDeviceGetP2PStatus(nvmlDevice_t device1, nvmlDevice_t device2, int p2pIndex, int *p2pStatus)
{
    (void)p2pIndex;
    int a = device_of(device1), b = device_of(device2);
    if (a < 0 || b < 0 || p2pStatus == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *p2pStatus = a != b ? 0 : 5 /* NOT_SUPPORTED */;
    return NVML_SUCCESS;
}

/* A GPU outside any NVLink fabric: success, state
 * NVML_GPU_FABRIC_STATE_NOT_SUPPORTED (0), status NVML_ERROR_NOT_SUPPORTED
 * (what torch 2.15 reads to decide against fabric handles; an error here makes
 * it warn "nvmlDeviceGetGpuFabricInfoV failed"). nvmlGpuFabricInfo_v2_t:
 * version, clusterUuid[16], status, cliqueId, state (a byte), healthMask. */
struct fabric_info_v2 {
    unsigned int version;
    unsigned char clusterUuid[16];
    int status;
    unsigned int cliqueId;
    unsigned char state;
    unsigned int healthMask;
};
struct fabric_info_v1 {
    unsigned char clusterUuid[16];
    int status;
    unsigned int cliqueId;
    unsigned char state;
};

int nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, struct fabric_info_v2 *info);
int nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, struct fabric_info_v2 *info)
{
    if (device_of(device) < 0 || info == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int version = info->version;
    *info = (struct fabric_info_v2){.version = version, .status = NVML_ERROR_NOT_SUPPORTED, .state = 0};
    return NVML_SUCCESS;
}

int nvmlDeviceGetGpuFabricInfo(nvmlDevice_t device, struct fabric_info_v1 *info);
int nvmlDeviceGetGpuFabricInfo(nvmlDevice_t device, struct fabric_info_v1 *info)
{
    if (device_of(device) < 0 || info == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *info = (struct fabric_info_v1){.status = NVML_ERROR_NOT_SUPPORTED, .state = 0};
    return NVML_SUCCESS;
}

#define NVML_UNSUPPORTED(X)                                                                        \
    X(nvmlDeviceGetNvLinkRemoteDeviceType) X(nvmlDeviceGetNvLinkRemotePciInfo_v2)                  \
    X(nvmlDeviceGetNvLinkState)

#define DEFINE_UNSUPPORTED(name)                                                                   \
    int name(void);                                                                                \
    int name(void) { return NVML_ERROR_NOT_SUPPORTED; }
NVML_UNSUPPORTED(DEFINE_UNSUPPORTED)
