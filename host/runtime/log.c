#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static LogLevel g_level = LOG_INFO;
static bool g_quiet = false;

void log_set_level(LogLevel level) { g_level = level; }
void log_set_quiet(bool quiet) { g_quiet = quiet; }
bool log_is_quiet(void) { return g_quiet; }

// ELASTILM_LOG=debug shows the debug messages too (e.g. the thread count a
// command chose and why), without a flag on every command.
static bool debug_from_env(void) {
    static int on = -1; // read once; a race only reads the same variable twice
    if (on < 0) {
        const char *e = getenv("ELASTILM_LOG");
        on = e && strcmp(e, "debug") == 0;
    }
    return on;
}

void log_msg(LogLevel level, const char *fmt, ...) {
    if ((level > g_level && !(level == LOG_DEBUG && debug_from_env())) || (g_quiet && level > LOG_ERROR)) return;
    static const char *tags[] = {"error", "warning", "info", "debug"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "elastilm: %s: ", tags[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_draw(const Progress *p) {
    double elapsed = time_now() - p->t_start;
    int width = 30, filled = p->total > 0 ? (int)(width * p->done / p->total) : 0;
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    fprintf(stderr, "] %ld/%ld %.1fs %.2f/s", p->done, p->total, elapsed, rate);
    if (rate > 0 && p->done < p->total) fprintf(stderr, " eta %.0fs", (double)(p->total - p->done) / rate);
    fprintf(stderr, " %s\033[K", p->note);
    fflush(stderr);
}

void progress_begin(Progress *p, const char *label, long total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = time_now();
    p->note[0] = 0;
    p->active = !g_quiet && isatty(STDERR_FILENO);
    if (p->active) progress_draw(p);
}

void progress_step(Progress *p, long n) {
    p->done += n;
    if (p->active) progress_draw(p);
}

void progress_end(Progress *p) {
    if (p->active) fputc('\n', stderr);
    p->active = false;
}

void progress_note(Progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}
