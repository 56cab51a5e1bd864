/* A hostile stand-in for libnvidia-ml.so.1 (the fuzz suite's probe cases).
 * FAKE_NVML_MODE: ok, hang, crash, initfail, manydev (a million devices), junk (unterminated,
 * non-UTF-8 names), hugemem (2^64-1 bytes), badcc (INT_MIN.INT_MAX), slow (every call sleeps). */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
static const char *mode(void) { const char *m = getenv("FAKE_NVML_MODE"); return m ? m : "ok"; }
static int is(const char *m) { return !strcmp(mode(), m); }
static void nap(void) { if (is("slow")) usleep(700000); }

int nvmlInit_v2(void) {
    if (is("hang")) for (;;) sleep(1);
    if (is("crash")) raise(SIGSEGV);
    if (is("initfail")) return 9;
    nap();
    return 0;
}
int nvmlShutdown(void) { return 0; }
static int text(char *buf, unsigned int len, const char *value) {
    nap();
    if (is("junk")) { memset(buf, 0xff, len); return 0; } /* no terminating NUL, not UTF-8 */
    strncpy(buf, value, len);
    return 0;
}
int nvmlSystemGetDriverVersion(char *buf, unsigned int len) { return text(buf, len, "550.54.15"); }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = is("badcc") ? INT_MIN : 12040; return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { nap(); *n = is("manydev") ? 1000000 : 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) { *h = (void *)(long)(i + 1); return 0; }
int nvmlDeviceGetName(void *h, char *buf, unsigned int len) { return text(buf, len, "NVIDIA H100 80GB HBM3"); }
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len) { return text(buf, len, "GPU-aaaa"); }
int nvmlDeviceGetCudaComputeCapability(void *h, int *maj, int *min) {
    if (is("badcc")) { *maj = INT_MIN; *min = INT_MAX; } else { *maj = 9; *min = 0; }
    return 0;
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    m->total = is("hugemem") ? ~0ULL : 85899345920ULL;
    m->used = is("hugemem") ? ~0ULL : 1073741824ULL;
    m->free = 0;
    return 0;
}
int nvmlDeviceGetMigMode(void *h, unsigned int *cur, unsigned int *pending) {
    *cur = is("badcc") ? 7 : 0; *pending = 0; return 0;
}
