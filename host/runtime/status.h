// status.h: error reporting for library code.
//
// Library functions never exit or assert on user input. They return a Status
// and leave a one-line message (naming the file, tensor or key at fault) in a
// thread-local buffer that the caller reads with status_message().
#ifndef ELASTILM_STATUS_H
#define ELASTILM_STATUS_H

typedef enum {
    ST_OK = 0,
    ST_IO,          // a file could not be opened, read, mapped or written
    ST_FORMAT,      // a file's content is malformed or inconsistent
    ST_UNSUPPORTED, // well-formed input that this build cannot handle
    ST_USAGE,       // a wrong flag or argument
    ST_OOM,         // an allocation failed
    ST_DEVICE,      // the accelerator reported an error
} Status;

// Sets the thread's message (printf-style) and returns code, so that
// `return status_fail(ST_FORMAT, "%s: ...", path);` reads naturally.
Status status_fail(Status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Prefixes the current message with more context: "<prefix>: <old message>".
Status status_wrap(Status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *status_message(void);
const char *status_name(Status code);
void status_clear(void);

// Propagates a non-OK status to the caller.
#define TRY(expr) do { Status st_try_ = (expr); if (st_try_ != ST_OK) return st_try_; } while (0)

#endif
