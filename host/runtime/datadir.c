// datadir.c: the data folder (datadir.h).
#include "runtime/datadir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// The Makefile defines ELASTILM_DATADIR for this file only (and rebuilds it
// when the value changes); a build without it looks in ./datasets.
#ifndef ELASTILM_DATADIR
#define ELASTILM_DATADIR "datasets"
#endif

static const char *g_option; // --data-dir, NULL when not given

void datadir_set(const char *dir) { g_option = dir && dir[0] ? dir : NULL; }

const char *datadir_builtin(void) { return ELASTILM_DATADIR; }

const char *datadir_get(const char **origin) {
    const char *env = getenv("ELASTILM_DATA");
    const char *dir = ELASTILM_DATADIR, *why = "the built-in default";
    if (g_option) dir = g_option, why = "--data-dir";
    else if (env && env[0]) dir = env, why = "$ELASTILM_DATA";
    if (origin) *origin = why;
    return dir;
}

Status datadir_file(const char *rel, char *buf, size_t n) {
    const char *why;
    const char *dir = datadir_get(&why);
    int len = snprintf(buf, n, "%s/%s", dir, rel);
    if (len < 0 || (size_t)len >= n) return status_fail(ST_USAGE, "the data path %s/%s is too long", dir, rel);
    struct stat sb;
    if (stat(buf, &sb) == 0) return ST_OK;
    int err = errno;
    return status_fail(ST_IO, "%s: %s (data folder %s from %s; set another with --data-dir DIR or $ELASTILM_DATA)", buf,
                       strerror(err), dir, why);
}
