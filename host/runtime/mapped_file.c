#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <stdint.h>

Status mapped_file_open(MappedFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return status_fail(ST_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return status_fail(ST_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return status_fail(ST_IO, "%s: not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return status_fail(ST_IO, "%s: cannot mmap: %s", path, strerror(errno));
        }
        f->data = p;
    }
    close(fd);
    return ST_OK;
}

void mapped_file_close(MappedFile *f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

Status read_text_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return status_fail(ST_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(fp);
            return status_fail(ST_OOM, "%s: out of memory reading file", path);
        }
        n += fread(buf + n, 1, cap - n - 1, fp);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        return status_fail(ST_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return ST_OK;
}

Status write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return status_fail(ST_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t w = fwrite(data, 1, len, fp);
    int ok = (w == len) && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = (fclose(fp) == 0) && ok;
    if (!ok) {
        unlink(tmp);
        return status_fail(ST_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return status_fail(ST_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    return ST_OK;
}

// The whole file, gunzipped when it is gzip (zlib reads plain files as they are).
Status read_file_maybe_gz(const char *path, char **out, size_t *len) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return status_fail(ST_IO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    Status st = buf ? ST_OK : status_fail(ST_OOM, "out of memory reading %s", path);
    while (st == ST_OK) {
        if (cap - n < (1 << 16)) {
            char *p = cap < SIZE_MAX / 4 ? realloc(buf, cap * 2 + 1) : NULL;
            if (!p) {
                st = status_fail(ST_OOM, "out of memory reading %s", path);
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t want = cap - n < (1u << 30) ? cap - n : (1u << 30);
        int got = gzread(f, buf + n, (unsigned)want);
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            st = code == Z_ERRNO ? status_fail(ST_IO, "%s: %s", path, strerror(errno))
                                 : status_fail(ST_FORMAT, "%s: bad gzip data: %s", path, msg);
        }
        if (got <= 0) break;
        n += (size_t)got;
    }
    int rc = gzclose(f);
    if (st == ST_OK && rc != Z_OK) st = status_fail(ST_FORMAT, "%s: bad gzip data (truncated?)", path);
    if (st != ST_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return ST_OK;
}
