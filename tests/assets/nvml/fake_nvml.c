/* A stand-in for libnvidia-ml.so.1 with the entry points compat calls.
 * FAKE_NVML_MODE selects the behaviour: ok (two GPUs), hang, crash, initfail. */
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
static const char *mode(void) { const char *m = getenv("FAKE_NVML_MODE"); return m ? m : "ok"; }

int nvmlInit_v2(void) {
    if (!strcmp(mode(), "hang")) for (;;) sleep(1);
    if (!strcmp(mode(), "crash")) raise(SIGSEGV);
    if (!strcmp(mode(), "initfail")) return 9; /* NVML_ERROR_DRIVER_NOT_LOADED */
    return 0;
}
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *buf, unsigned int len) { strncpy(buf, "550.54.15", len); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 12040; return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) { *h = (void *)(long)(i + 1); return 0; }
int nvmlDeviceGetName(void *h, char *buf, unsigned int len) {
    strncpy(buf, (long)h == 1 ? "NVIDIA A100-SXM4-80GB" : "Tesla V100-SXM2-32GB", len); return 0;
}
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len) {
    strncpy(buf, (long)h == 1 ? "GPU-aaaa" : "GPU-bbbb", len); return 0;
}
int nvmlDeviceGetCudaComputeCapability(void *h, int *maj, int *min) {
    if ((long)h == 1) { *maj = 8; *min = 0; } else { *maj = 7; *min = 0; } return 0;
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    m->total = (long)h == 1 ? 85899345920ULL : 34359738368ULL; m->used = 1073741824ULL;
    m->free = m->total - m->used; return 0;
}
int nvmlDeviceGetMigMode(void *h, unsigned int *cur, unsigned int *pending) {
    if ((long)h == 2) return 3; /* NVML_ERROR_NOT_SUPPORTED on V100 */
    *cur = 1; *pending = 1; return 0;
}
