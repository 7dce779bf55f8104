#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_message[1024];

Status status_fail(Status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    return code;
}

Status status_wrap(Status code, const char *fmt, ...) {
    char prefix[512], old[sizeof g_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_message, sizeof old);
    char joined[sizeof prefix + sizeof old + 2];
    int n = snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len >= sizeof g_message) len = sizeof g_message - 1;
    memcpy(g_message, joined, len);
    g_message[len] = '\0';
    return code;
}

const char *status_message(void) { return g_message; }

void status_clear(void) { g_message[0] = '\0'; }

const char *status_name(Status code) {
    switch (code) {
    case ST_OK: return "ok";
    case ST_IO: return "i/o error";
    case ST_FORMAT: return "format error";
    case ST_UNSUPPORTED: return "unsupported";
    case ST_USAGE: return "usage error";
    case ST_OOM: return "out of memory";
    case ST_DEVICE: return "device error";
    }
    return "unknown status";
}
