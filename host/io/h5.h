// h5.h: a small HDF5 store for artifact files and training checkpoints.
//
// Objects are named by slash paths, "group/sub/dataset" (a leading '/' is
// ignored; "" and "/" name the root group). Datasets hold float32, float64,
// int32 or int64 arrays, little-endian, row-major in their natural shape, so
// h5py/numpy see a [rows, cols] matrix as [rows, cols]. Attributes on groups
// and datasets are UTF-8 strings (variable-length, read by h5py as str),
// int64 or float64 scalars. See docs/hdf5.md.
//
// Writing is atomic: h5_create and h5_open_update work on "<path>.tmp.<pid>"
// (an update starts from a copy of the existing file); h5_commit flushes,
// fsyncs, closes and renames it over path; h5_close without a commit deletes
// the temporary file and leaves path as it was.
//
// Every failure returns a Status whose message names the file (the path the
// caller gave, never the temporary name) and the dataset, group or attribute.
#ifndef ELASTILM_H5_H
#define ELASTILM_H5_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct H5Store H5Store;

Status h5_create(H5Store **out, const char *path);      // a new empty file (replaces path on commit)
Status h5_open_update(H5Store **out, const char *path); // path's content, or an empty file if path is absent
Status h5_open_read(H5Store **out, const char *path);
Status h5_commit(H5Store *f); // write handles only; f is freed whether or not it succeeds
void h5_close(H5Store *f);    // read handles, or abandons a write; NULL is ok

const char *h5_path(const H5Store *f); // the path given at open (not the temporary name)

bool h5_exists(H5Store *f, const char *name);     // any group or dataset
Status h5_delete(H5Store *f, const char *name);
// Creates group `name` and any missing parents (ok if it exists as a group).
Status h5_make_group(H5Store *f, const char *name);   // a group (with its content) or dataset; ok if absent

// Writes a dataset of shape[0..ndim) (ndim 0 = a scalar); missing groups are
// created and an existing dataset of that name is replaced (in place when its
// dtype and shape are unchanged, so rewriting a checkpoint does not grow it).
Status h5_write_f32(H5Store *f, const char *name, int ndim, const int64_t *shape, const float *data);
Status h5_write_f64(H5Store *f, const char *name, int ndim, const int64_t *shape, const double *data);
Status h5_write_i32(H5Store *f, const char *name, int ndim, const int64_t *shape, const int32_t *data);
Status h5_write_i64(H5Store *f, const char *name, int ndim, const int64_t *shape, const int64_t *data);

// Reads a dataset that must exist, hold exactly the dtype asked for (no
// conversion) and have exactly ndim dims; shape[0..ndim) receives them and
// *data a malloc'd copy (the caller frees it).
Status h5_read_f32(H5Store *f, const char *name, int ndim, int64_t *shape, float **data);
Status h5_read_f64(H5Store *f, const char *name, int ndim, int64_t *shape, double **data);
Status h5_read_i32(H5Store *f, const char *name, int ndim, int64_t *shape, int32_t **data);
Status h5_read_i64(H5Store *f, const char *name, int ndim, int64_t *shape, int64_t **data);

// Reads into caller memory; the dataset's shape must equal shape[0..ndim).
Status h5_read_f32_into(H5Store *f, const char *name, int ndim, const int64_t *shape, float *data);
Status h5_read_f64_into(H5Store *f, const char *name, int ndim, const int64_t *shape, double *data);
Status h5_read_i32_into(H5Store *f, const char *name, int ndim, const int64_t *shape, int32_t *data);
Status h5_read_i64_into(H5Store *f, const char *name, int ndim, const int64_t *shape, int64_t *data);

// Attributes of the group or dataset obj; a set replaces any attribute of that key.
Status h5_set_attr_str(H5Store *f, const char *obj, const char *key, const char *value);
Status h5_set_attr_i64(H5Store *f, const char *obj, const char *key, int64_t value);
Status h5_set_attr_f64(H5Store *f, const char *obj, const char *key, double value);
Status h5_get_attr_str(H5Store *f, const char *obj, const char *key, char **value); // malloc'd
Status h5_get_attr_i64(H5Store *f, const char *obj, const char *key, int64_t *value); // any integer type
Status h5_get_attr_f64(H5Store *f, const char *obj, const char *key, double *value); // any float or integer type
bool h5_has_attr(H5Store *f, const char *obj, const char *key);

// Names of the direct children of a group, sorted by strcmp: a malloc'd
// array of malloc'd strings; free with h5_free_names.
Status h5_list(H5Store *f, const char *group, char ***names, int *count);
void h5_free_names(char **names, int count);

#endif
