#include "test_util.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void tu_open_safetensors(SafetensorsFile *f, const char *path) {
    Status st = safetensors_open(f, path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
}

const SafeTensor *tu_tensor(const SafetensorsFile *f, const char *name, DType dt) {
    const SafeTensor *t = safetensors_find(f, name);
    cr_assert_not_null(t, "%s: no tensor '%s'", f->file.path, name);
    cr_assert_eq(t->dtype, dt, "%s: tensor '%s' has dtype %s", f->file.path, name, dtype_name(t->dtype));
    return t;
}

float tu_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; // NaN propagates as the maximum
    }
    return m;
}

const char *tu_write_temp(const void *data, size_t len, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "/tmp/elastilm-test-XXXXXX%s", suffix);
    int fd = mkstemps(buf, (int)strlen(suffix));
    cr_assert(fd >= 0, "mkstemps failed");
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return buf;
}

uint8_t *tu_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size + 1);
    cr_assert_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
    buf[size] = 0; // callers may treat text files as strings
    fclose(fp);
    *len = (size_t)size;
    return buf;
}

void tu_copy_dir(const char *src, char *buf, size_t n) {
    snprintf(buf, n, "/tmp/elastilm-dir-XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
    DIR *d = opendir(src);
    cr_assert_not_null(d, "cannot open %s", src);
    struct dirent *e;
    while ((e = readdir(d))) {
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        struct stat sb;
        if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        snprintf(to, sizeof to, "%s/%s", buf, e->d_name);
        size_t len;
        uint8_t *data = tu_read_file(from, &len);
        FILE *fp = fopen(to, "wb");
        cr_assert_not_null(fp);
        cr_assert_eq(fwrite(data, 1, len, fp), len);
        fclose(fp);
        free(data);
    }
    closedir(d);
}

void tu_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int tu_run(const char *cmd, char *out, size_t n) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t used = fread(out, 1, n - 1, p);
    out[used] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
