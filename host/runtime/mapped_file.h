// mapped_file.h: a read-only memory map of a whole file.
#ifndef ELASTILM_MAPPED_FILE_H
#define ELASTILM_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    char path[1024];       // as given, for error messages
    const uint8_t *data;   // NULL for an empty file
    size_t size;           // bytes
} MappedFile;

Status mapped_file_open(MappedFile *f, const char *path);
void mapped_file_close(MappedFile *f);

// Reads a whole (small) file into a NUL-terminated malloc'd buffer.
Status read_text_file(const char *path, char **out, size_t *len);

// The whole file NUL-terminated, gunzipped when it is gzip (plain files are read as they are).
Status read_file_maybe_gz(const char *path, char **out, size_t *len);

// Writes bytes to path atomically: a temporary file beside it, then rename.
Status write_file_atomic(const char *path, const void *data, size_t len);

#endif
