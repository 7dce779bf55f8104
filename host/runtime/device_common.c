// device_parse is the same with or without CUDA.
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Status device_parse(const char *spec, Device *out) {
    out->kind = DEV_CPU;
    out->index = 0;
    if (strcmp(spec, "cpu") == 0) return ST_OK;
    if (strcmp(spec, "auto") == 0) {
        if (device_count() > 0) out->kind = DEV_CUDA;
        return ST_OK;
    }
    if (strncmp(spec, "cuda", 4) != 0 || (spec[4] != '\0' && spec[4] != ':'))
        return status_fail(ST_USAGE, "--device: expected cpu, cuda or cuda:N, got '%s'", spec);
    int index = 0;
    if (spec[4] == ':') {
        char *end;
        long v = strtol(spec + 5, &end, 10);
        if (end == spec + 5 || *end != '\0' || v < 0 || v >= DEVICE_MAX_CUDA)
            return status_fail(ST_USAGE, "--device: bad device number in '%s' (cuda:0 ... cuda:%d)", spec,
                               DEVICE_MAX_CUDA - 1);
        index = (int)v;
    }
    if (!device_cuda_built())
        return status_fail(ST_UNSUPPORTED, "--device %s: this binary was built without CUDA (CUDA=0 or no nvcc)", spec);
    int n = device_count();
    if (index >= n)
        return status_fail(ST_DEVICE, "--device %s: %d usable CUDA device(s) on this machine", spec, n);
    out->kind = DEV_CUDA;
    out->index = index;
    return ST_OK;
}

void cpu_describe(char *buf, size_t n) {
    snprintf(buf, n, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(buf, n, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    fclose(f);
}
