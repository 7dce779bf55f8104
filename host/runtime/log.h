// log.h: messages and progress on stderr.
#ifndef ELASTILM_LOG_H
#define ELASTILM_LOG_H

#include <stdbool.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } LogLevel;

void log_set_level(LogLevel level);
void log_set_quiet(bool quiet); // --quiet: only errors, no progress bars
bool log_is_quiet(void);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

// A progress bar, drawn only when stderr is a terminal and not quiet.
typedef struct {
    const char *label; // what is being counted
    long total;        // number of steps
    long done;         // steps finished so far
    double t_start;    // seconds, from time_now()
    bool active;       // false when nothing is drawn
    char note[96];     // shown after the counts (e.g. "loss 1.234 812 tok/s")
} Progress;

void progress_begin(Progress *p, const char *label, long total);
void progress_step(Progress *p, long n);
void progress_end(Progress *p);
// Sets the text shown after the counts; redrawn at the next step.
void progress_note(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

double time_now(void); // monotonic seconds

#endif
