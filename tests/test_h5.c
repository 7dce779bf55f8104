// The HDF5 store (host/io/h5.c): round trips of every dtype and attribute
// kind, groups and listings, atomic commits, and one clear message (naming the
// file and the object) for every kind of bad input. Each test also checks that
// no HDF5 id is left open.
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/h5.h"
#include "test_util.h"

#define OK(expr) do { Status st_ = (expr); cr_assert_eq(st_, ST_OK, "%s: %s", #expr, status_message()); } while (0)

// A fresh directory per test; file names go under it.
static char g_dir[256];

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "h5");
}

static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(h5, .init = setup, .fini = teardown);

static const char *in_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static const char *tmp_name(char *buf, size_t n, const char *path) {
    snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
    return buf;
}

// Every file, group, dataset, attribute and committed type id is closed.
static void expect_no_open_ids(void) {
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    cr_expect_eq(n, 0, "%zd HDF5 ids left open", n);
}

// h5_list(group) gives exactly the n names of want, in order.
static void expect_list(H5Store *f, const char *group, int n_want, const char *const *want) {
    char **list;
    int n;
    OK(h5_list(f, group, &list, &n));
    cr_assert_eq(n, n_want, "%s: %d names, expected %d", group, n, n_want);
    for (int i = 0; i < n; i++) cr_expect_str_eq(list[i], want[i], "%s: name %d", group, i);
    h5_free_names(list, n);
}

// A small file: x = float32 [2, 3], n = int64 [4], attribute "kind" on the root.
static void write_small(const char *path) {
    H5Store *f;
    OK(h5_create(&f, path));
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t n[4] = {10, 20, 30, 40};
    OK(h5_write_f32(f, "x", 2, (int64_t[]){2, 3}, x));
    OK(h5_write_i64(f, "g/n", 1, (int64_t[]){4}, n));
    OK(h5_set_attr_str(f, "", "kind", "small"));
    OK(h5_commit(f));
}

Test(h5, roundtrip_every_dtype) {
    char path[512];
    in_dir(path, sizeof path, "dtypes.h5");
    float f32[6] = {1.5f, -2, 3e-8f, 4, 5, 6};
    double f64[4] = {1e300, -0.1, 0, 3.25};
    int32_t i32[8] = {INT32_MIN, -1, 0, 1, 2, 3, 4, INT32_MAX};
    int64_t i64 = INT64_MIN + 7;
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_f32(f, "f32", 2, (int64_t[]){2, 3}, f32));
    OK(h5_write_f64(f, "f64", 1, (int64_t[]){4}, f64));
    OK(h5_write_i32(f, "i32", 3, (int64_t[]){2, 2, 2}, i32));
    OK(h5_write_i64(f, "i64", 0, NULL, &i64));
    OK(h5_write_f32(f, "empty", 2, (int64_t[]){0, 5}, NULL));
    OK(h5_commit(f));

    OK(h5_open_read(&f, path));
    cr_expect_str_eq(h5_path(f), path);
    int64_t shape[3];
    float *rf32;
    OK(h5_read_f32(f, "f32", 2, shape, &rf32));
    cr_expect(shape[0] == 2 && shape[1] == 3);
    cr_expect(memcmp(rf32, f32, sizeof f32) == 0);
    free(rf32);
    double *rf64;
    OK(h5_read_f64(f, "f64", 1, shape, &rf64));
    cr_expect(shape[0] == 4 && memcmp(rf64, f64, sizeof f64) == 0);
    free(rf64);
    int32_t *ri32;
    OK(h5_read_i32(f, "i32", 3, shape, &ri32));
    cr_expect(shape[0] == 2 && shape[1] == 2 && shape[2] == 2 && memcmp(ri32, i32, sizeof i32) == 0);
    free(ri32);
    int64_t *ri64;
    OK(h5_read_i64(f, "i64", 0, shape, &ri64));
    cr_expect_eq(*ri64, i64);
    free(ri64);
    float *rempty;
    OK(h5_read_f32(f, "empty", 2, shape, &rempty));
    cr_expect(shape[0] == 0 && shape[1] == 5);
    free(rempty);

    // The _into forms, with the shape known in advance.
    float g32[6];
    double g64[4];
    int32_t gi32[8];
    int64_t gi64;
    OK(h5_read_f32_into(f, "f32", 2, (int64_t[]){2, 3}, g32));
    OK(h5_read_f64_into(f, "/f64", 1, (int64_t[]){4}, g64));
    OK(h5_read_i32_into(f, "i32", 3, (int64_t[]){2, 2, 2}, gi32));
    OK(h5_read_i64_into(f, "i64", 0, NULL, &gi64));
    cr_expect(memcmp(g32, f32, sizeof f32) == 0 && memcmp(g64, f64, sizeof f64) == 0);
    cr_expect(memcmp(gi32, i32, sizeof i32) == 0 && gi64 == i64);
    h5_close(f);
    expect_no_open_ids();
}

Test(h5, attributes_roundtrip_and_replace) {
    char path[512];
    in_dir(path, sizeof path, "attrs.h5");
    const char *utf8 = "h\xc3\xa9llo \xe2\x9c\x93"; // "héllo ✓"
    size_t big_len = 100000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big[i] = (char)('a' + i % 26);
    big[big_len] = '\0';
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_i32(f, "grp/ds", 1, (int64_t[]){1}, (int32_t[]){7}));
    OK(h5_set_attr_str(f, "", "name", "first"));
    OK(h5_set_attr_str(f, "/", "name", utf8)); // replaces
    OK(h5_set_attr_i64(f, "grp", "step", 1));
    OK(h5_set_attr_i64(f, "grp", "step", -((int64_t)1 << 40)));
    OK(h5_set_attr_f64(f, "grp/ds", "lr", 0.5));
    OK(h5_set_attr_f64(f, "grp/ds", "lr", 3e-4));
    OK(h5_set_attr_i64(f, "grp/ds", "kind", 3));
    OK(h5_set_attr_str(f, "grp/ds", "kind", "now a string")); // replaces with another type
    OK(h5_set_attr_str(f, "grp", "config", big));
    OK(h5_commit(f));

    OK(h5_open_read(&f, path));
    char *s;
    OK(h5_get_attr_str(f, "", "name", &s));
    cr_expect_str_eq(s, utf8);
    free(s);
    OK(h5_get_attr_str(f, "grp/ds", "kind", &s));
    cr_expect_str_eq(s, "now a string");
    free(s);
    OK(h5_get_attr_str(f, "grp", "config", &s));
    cr_expect(strcmp(s, big) == 0);
    free(s);
    int64_t step;
    OK(h5_get_attr_i64(f, "grp", "step", &step));
    cr_expect_eq(step, -((int64_t)1 << 40));
    double lr, step_f;
    OK(h5_get_attr_f64(f, "grp/ds", "lr", &lr));
    cr_expect_eq(lr, 3e-4);
    OK(h5_get_attr_f64(f, "grp", "step", &step_f)); // an integer reads as a double
    cr_expect_eq(step_f, (double)(-((int64_t)1 << 40)));
    cr_expect(h5_has_attr(f, "/", "name"));
    cr_expect(h5_has_attr(f, "grp/ds", "lr"));
    cr_expect(!h5_has_attr(f, "grp/ds", "step"));
    cr_expect(!h5_has_attr(f, "nope", "step"));

    tu_expect_err(h5_get_attr_i64(f, "grp/ds", "kind", &step), ST_FORMAT, path, "'kind'", "is a string, expected an integer");
    tu_expect_err(h5_get_attr_str(f, "grp", "step", &s), ST_FORMAT, path, "'step'", "is int64, expected a string");
    tu_expect_err(h5_get_attr_f64(f, "grp", "missing", &lr), ST_FORMAT, path, "attribute 'missing' of 'grp' is missing", NULL);
    tu_expect_err(h5_get_attr_f64(f, "", "missing", &lr), ST_FORMAT, path, "of '/' is missing", NULL);
    tu_expect_err(h5_get_attr_i64(f, "nope/x", "step", &step), ST_FORMAT, path, "object 'nope/x' is missing", NULL);
    tu_expect_err(h5_set_attr_i64(f, "grp", "step", 2), ST_USAGE, path, "read-only", NULL);
    h5_close(f);
    free(big);
    expect_no_open_ids();
}

Test(h5, nested_groups_exists_list_delete) {
    char path[512];
    in_dir(path, sizeof path, "tree.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    float w = 1;
    const char *names[] = {"model/layers/1/wq", "model/layers/10/wq", "model/layers/0/wq", "model/layers/0/wk",
                           "/model/embed", "opt/step/"};
    for (int i = 0; i < 6; i++) OK(h5_write_f32(f, names[i], 1, (int64_t[]){1}, &w));
    cr_expect(h5_exists(f, ""));
    cr_expect(h5_exists(f, "/model"));
    cr_expect(h5_exists(f, "model/layers/0"));
    cr_expect(h5_exists(f, "model/layers/0/wq"));
    cr_expect(!h5_exists(f, "model/layers/2"));
    cr_expect(!h5_exists(f, "model/nope/deeper/x"));
    cr_expect(!h5_exists(f, "model/embed/under_a_dataset"));
    cr_expect(!h5_exists(f, "model//embed"));

    expect_list(f, "model/layers", 3, (const char *[]){"0", "1", "10"});
    expect_list(f, "/", 2, (const char *[]){"model", "opt"});
    expect_list(f, "model/layers/0", 2, (const char *[]){"wk", "wq"});
    char **list;
    int n;
    tu_expect_err(h5_list(f, "model/embed", &list, &n), ST_FORMAT, path, "'model/embed' is not a group", NULL);
    tu_expect_err(h5_list(f, "model/none", &list, &n), ST_FORMAT, path, "group 'model/none' is missing", NULL);
    cr_expect(list == NULL && n == 0);

    OK(h5_delete(f, "model/layers/10"));
    OK(h5_delete(f, "model/embed"));
    OK(h5_delete(f, "model/embed"));    // absent: fine
    OK(h5_delete(f, "nothing/at/all")); // absent parents: fine
    cr_expect(!h5_exists(f, "model/layers/10/wq"));
    cr_expect(!h5_exists(f, "model/embed"));
    cr_expect(h5_exists(f, "model/layers/1/wq"));
    tu_expect_err(h5_delete(f, "/"), ST_USAGE, path, "root", NULL);
    tu_expect_err(h5_write_f32(f, "a//b", 1, (int64_t[]){1}, &w), ST_USAGE, path, "'a//b'", NULL);
    tu_expect_err(h5_write_f32(f, "../b", 1, (int64_t[]){1}, &w), ST_USAGE, path, "'../b'", NULL);
    tu_expect_err(h5_write_f32(f, "opt/step/x", 1, (int64_t[]){1}, &w), ST_USAGE, path, "'opt/step' is not a group", NULL);
    tu_expect_err(h5_write_f32(f, "model/layers", 1, (int64_t[]){1}, &w), ST_USAGE, path, "'model/layers'", "group");
    tu_expect_err(h5_write_f32(f, "neg", 1, (int64_t[]){-1}, &w), ST_USAGE, path, "'neg'", "negative");
    OK(h5_commit(f));

    OK(h5_open_read(&f, path));
    expect_list(f, "model/layers", 2, (const char *[]){"0", "1"});
    h5_close(f);
    expect_no_open_ids();
}

Test(h5, replace_dataset) {
    char path[512];
    in_dir(path, sizeof path, "replace.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_f32(f, "w", 2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4}));
    OK(h5_write_f32(f, "w", 2, (int64_t[]){2, 2}, (float[]){5, 6, 7, 8})); // in place
    OK(h5_write_f32(f, "v", 1, (int64_t[]){2}, (float[]){1, 2}));
    OK(h5_write_i32(f, "v", 2, (int64_t[]){1, 3}, (int32_t[]){9, 8, 7})); // new dtype and shape
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    float w[4];
    int32_t v[3];
    OK(h5_read_f32_into(f, "w", 2, (int64_t[]){2, 2}, w));
    OK(h5_read_i32_into(f, "v", 2, (int64_t[]){1, 3}, v));
    cr_expect(w[0] == 5 && w[3] == 8 && v[0] == 9 && v[2] == 7);
    h5_close(f);
    expect_no_open_ids();
}

// Rewriting a checkpoint's tensors (same dtype and shape) in update after
// update must not grow the file: they are overwritten in place.
Test(h5, repeated_updates_do_not_grow) {
    char path[512];
    in_dir(path, sizeof path, "ckpt.h5");
    size_t n = 1 << 18;
    float *w = calloc(n, sizeof *w);
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_f32(f, "params/w", 1, (int64_t[]){(int64_t)n}, w));
    OK(h5_set_attr_i64(f, "", "step", 0));
    OK(h5_commit(f));
    struct stat first, later;
    cr_assert_eq(stat(path, &first), 0);
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) w[i] = (float)(step * i);
        OK(h5_open_update(&f, path));
        OK(h5_write_f32(f, "params/w", 1, (int64_t[]){(int64_t)n}, w));
        OK(h5_set_attr_i64(f, "", "step", step));
        OK(h5_commit(f));
    }
    cr_assert_eq(stat(path, &later), 0);
    cr_expect(later.st_size <= first.st_size + 4096, "grew from %lld to %lld bytes", (long long)first.st_size,
              (long long)later.st_size);
    OK(h5_open_read(&f, path));
    int64_t step;
    OK(h5_get_attr_i64(f, "", "step", &step));
    cr_expect_eq(step, 3);
    OK(h5_read_f32_into(f, "params/w", 1, (int64_t[]){(int64_t)n}, w));
    cr_expect_eq(w[n - 1], (float)(3 * (n - 1)));
    h5_close(f);
    free(w);
    expect_no_open_ids();
}

Test(h5, create_is_atomic) {
    char path[512], tmp[600];
    in_dir(path, sizeof path, "new.h5");
    tmp_name(tmp, sizeof tmp, path);
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_i32(f, "x", 1, (int64_t[]){1}, (int32_t[]){1}));
    cr_expect(!file_exists(path), "the target exists before the commit");
    cr_expect(file_exists(tmp), "no temporary file %s", tmp);
    OK(h5_commit(f));
    cr_expect(file_exists(path));
    cr_expect(!file_exists(tmp), "temporary file left behind");

    // An abandoned create leaves nothing behind.
    char other[512];
    in_dir(other, sizeof other, "abandoned.h5");
    tmp_name(tmp, sizeof tmp, other);
    OK(h5_create(&f, other));
    OK(h5_write_i32(f, "x", 1, (int64_t[]){1}, (int32_t[]){1}));
    h5_close(f);
    cr_expect(!file_exists(other) && !file_exists(tmp));
    expect_no_open_ids();
}

Test(h5, abandoned_update_keeps_old_file) {
    char path[512], tmp[600];
    in_dir(path, sizeof path, "old.h5");
    tmp_name(tmp, sizeof tmp, path);
    write_small(path);
    size_t len0, len1;
    uint8_t *before = tu_read_file(path, &len0);
    H5Store *f;
    OK(h5_open_update(&f, path));
    OK(h5_write_f32(f, "y", 1, (int64_t[]){2}, (float[]){1, 2}));
    OK(h5_delete(f, "x"));
    OK(h5_set_attr_str(f, "", "kind", "changed"));
    uint8_t *during = tu_read_file(path, &len1);
    cr_expect(len0 == len1 && memcmp(before, during, len0) == 0, "the target changed before the commit");
    free(during);
    h5_close(f);
    cr_expect(!file_exists(tmp), "temporary file left behind");
    uint8_t *after = tu_read_file(path, &len1);
    cr_expect(len0 == len1 && memcmp(before, after, len0) == 0, "the target changed after an abandoned update");
    free(after);
    free(before);
    OK(h5_open_read(&f, path));
    cr_expect(h5_exists(f, "x") && !h5_exists(f, "y"));
    h5_close(f);
    expect_no_open_ids();
}

Test(h5, update_keeps_other_datasets) {
    char path[512], tmp[600];
    in_dir(path, sizeof path, "upd.h5");
    tmp_name(tmp, sizeof tmp, path);
    write_small(path);
    H5Store *f;
    OK(h5_open_update(&f, path));
    cr_expect(h5_exists(f, "g/n"));
    OK(h5_write_f32(f, "x", 2, (int64_t[]){2, 3}, (float[]){6, 5, 4, 3, 2, 1}));
    OK(h5_write_f64(f, "g/z", 1, (int64_t[]){1}, (double[]){0.25}));
    OK(h5_set_attr_i64(f, "g", "count", 2));
    OK(h5_commit(f));
    cr_expect(!file_exists(tmp));
    OK(h5_open_read(&f, path));
    int64_t n[4];
    float x[6];
    double z;
    OK(h5_read_i64_into(f, "g/n", 1, (int64_t[]){4}, n));
    OK(h5_read_f32_into(f, "x", 2, (int64_t[]){2, 3}, x));
    OK(h5_read_f64_into(f, "g/z", 1, (int64_t[]){1}, &z));
    cr_expect(n[0] == 10 && n[3] == 40 && x[0] == 6 && x[5] == 1 && z == 0.25);
    char *kind;
    OK(h5_get_attr_str(f, "", "kind", &kind));
    cr_expect_str_eq(kind, "small");
    free(kind);
    h5_close(f);
    expect_no_open_ids();
}

// A second writer of the same path in one process would share the first's
// temporary file: it is refused, and the first one still commits.
Test(h5, second_writer_is_refused) {
    char path[512];
    in_dir(path, sizeof path, "twice.h5");
    write_small(path);
    H5Store *f, *g = (H5Store *)1;
    OK(h5_open_update(&f, path));
    OK(h5_write_i32(f, "mine", 1, (int64_t[]){1}, (int32_t[]){5}));
    tu_expect_err(h5_open_update(&g, path), ST_USAGE, path, "already open for writing", NULL);
    cr_expect_null(g);
    tu_expect_err(h5_create(&g, path), ST_USAGE, path, "already open for writing", NULL);
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    cr_expect(h5_exists(f, "mine") && h5_exists(f, "x"));
    h5_close(f);
    expect_no_open_ids();
}

Test(h5, update_of_missing_file_creates_it) {
    char path[512];
    in_dir(path, sizeof path, "fresh.h5");
    H5Store *f;
    OK(h5_open_update(&f, path));
    OK(h5_write_i64(f, "a", 1, (int64_t[]){2}, (int64_t[]){1, 2}));
    cr_expect(!file_exists(path));
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    cr_expect(h5_exists(f, "a"));
    h5_close(f);
    h5_close(NULL);
    expect_no_open_ids();
}

Test(h5, dataset_errors_name_file_and_dataset) {
    char path[512];
    in_dir(path, sizeof path, "errs.h5");
    write_small(path);
    H5Store *f;
    OK(h5_open_read(&f, path));
    int64_t shape[3];
    float *x = NULL;
    int32_t *xi = NULL;
    tu_expect_err(h5_read_f32(f, "g/missing", 1, shape, &x), ST_FORMAT, path, "dataset 'g/missing' is missing", NULL);
    cr_expect_null(x);
    tu_expect_err(h5_read_f32(f, "nope/deeper", 1, shape, &x), ST_FORMAT, path, "dataset 'nope/deeper' is missing", NULL);
    tu_expect_err(h5_read_f32(f, "g", 1, shape, &x), ST_FORMAT, path, "'g' is a group", NULL);
    tu_expect_err(h5_read_i32(f, "x", 2, shape, &xi), ST_FORMAT, path, "dataset 'x' is float32, expected int32", NULL);
    tu_expect_err(h5_read_f32(f, "g/n", 1, shape, &x), ST_FORMAT, path, "dataset 'g/n' is int64, expected float32", NULL);
    tu_expect_err(h5_read_f32(f, "x", 3, shape, &x), ST_FORMAT, path, "dataset 'x' has 2 dims, expected 3", NULL);
    tu_expect_err(h5_read_f32(f, "x", 0, shape, &x), ST_FORMAT, path, "dataset 'x' has 2 dims, expected 0", NULL);
    cr_expect_null(x);
    float buf[6];
    tu_expect_err(h5_read_f32_into(f, "x", 2, (int64_t[]){3, 2}, buf), ST_FORMAT, path,
               "dataset 'x' has shape [2, 3], expected [3, 2]", NULL);
    tu_expect_err(h5_read_f32_into(f, "x", 1, (int64_t[]){6}, buf), ST_FORMAT, path, "dataset 'x' has 2 dims, expected 1", NULL);
    int64_t nb[4];
    tu_expect_err(h5_read_i64_into(f, "g/n", 1, (int64_t[]){5}, nb), ST_FORMAT, path, "'g/n' has shape [4], expected [5]", NULL);
    tu_expect_err(h5_write_f32(f, "y", 1, (int64_t[]){1}, buf), ST_USAGE, path, "read-only", "'y'");
    tu_expect_err(h5_delete(f, "x"), ST_USAGE, path, "read-only", NULL);
    tu_expect_err(h5_commit(f), ST_USAGE, path, "read-only", NULL); // frees f
    expect_no_open_ids();
}

Test(h5, missing_file) {
    char path[512];
    in_dir(path, sizeof path, "absent.h5");
    H5Store *f = (H5Store *)1;
    tu_expect_err(h5_open_read(&f, path), ST_IO, path, "No such file", NULL);
    cr_expect_null(f);
    in_dir(path, sizeof path, "no/such/dir/x.h5");
    tu_expect_err(h5_create(&f, path), ST_IO, path, "cannot create", NULL);
    tu_expect_err(h5_open_update(&f, path), ST_IO, path, "cannot create", NULL);
    tu_expect_err(h5_open_read(&f, g_dir), ST_IO, g_dir, "not a regular file", NULL);
    expect_no_open_ids();
}

static void expect_not_hdf5(const char *path) {
    char tmp[600];
    tmp_name(tmp, sizeof tmp, path);
    H5Store *f = NULL;
    tu_expect_err(h5_open_read(&f, path), ST_FORMAT, path, "not an HDF5 file or truncated", NULL);
    cr_expect_null(f);
    tu_expect_err(h5_open_update(&f, path), ST_FORMAT, path, "not an HDF5 file or truncated", NULL);
    cr_expect(!file_exists(tmp), "temporary file left behind");
    cr_expect_null(f);
    expect_no_open_ids();
}

Test(h5, truncated_file) {
    char path[512];
    in_dir(path, sizeof path, "trunc.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    float *w = calloc(4096, sizeof *w);
    OK(h5_write_f32(f, "w", 2, (int64_t[]){64, 64}, w));
    OK(h5_commit(f));
    free(w);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(truncate(path, sb.st_size / 2), 0);
    expect_not_hdf5(path);
}

Test(h5, text_file) {
    char path[512];
    in_dir(path, sizeof path, "notes.h5");
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < 100; i++) fprintf(fp, "this is a text file, line %d\n", i);
    fclose(fp);
    expect_not_hdf5(path);
    in_dir(path, sizeof path, "empty.h5");
    fp = fopen(path, "w");
    fclose(fp);
    expect_not_hdf5(path);
}
