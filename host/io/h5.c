#include "h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct H5Store {
    hid_t file;       // the open HDF5 file (the temporary one while writing)
    bool writable;    // opened by h5_create or h5_open_update
    char path[1024];  // as given: messages and the final rename
    char tmp[1100];   // "<path>.tmp.<pid>" while writing, else ""
};

typedef enum { K_F32, K_F64, K_I32, K_I64 } Kind; // dataset element types

static const char *const KIND_NAME[] = {"float32", "float64", "int32", "int64"};

static hid_t kind_mem(Kind k) {
    switch (k) {
    case K_F32: return H5T_NATIVE_FLOAT;
    case K_F64: return H5T_NATIVE_DOUBLE;
    case K_I32: return H5T_NATIVE_INT32;
    case K_I64: return H5T_NATIVE_INT64;
    }
    return H5I_INVALID_HID;
}

static hid_t kind_file(Kind k) {
    switch (k) {
    case K_F32: return H5T_IEEE_F32LE;
    case K_F64: return H5T_IEEE_F64LE;
    case K_I32: return H5T_STD_I32LE;
    case K_I64: return H5T_STD_I64LE;
    }
    return H5I_INVALID_HID;
}

static size_t kind_size(Kind k) { return k == K_F32 || k == K_I32 ? 4 : 8; }

// HDF5 prints its error stack on every failed call unless told not to. The
// setting is per thread in this thread-safe build, so every entry point calls this.
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// Closes any HDF5 id; invalid ids (< 0) are skipped so cleanup paths can close everything.
static void close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: H5Idec_ref(id); break;
    }
}

// ---- names ----

// Copies name to buf without leading or trailing '/'; "" is the root group.
// Empty, "." and ".." components are rejected (HDF5 gives them meanings of its own).
static Status norm_name(const H5Store *f, const char *name, char *buf, size_t n, const char *what) {
    if (!name) name = "";
    while (*name == '/') name++;
    size_t len = strlen(name);
    while (len > 0 && name[len - 1] == '/') len--;
    if (len >= n) return status_fail(ST_USAGE, "%s: %s name '%s' is too long", f->path, what, name);
    memcpy(buf, name, len);
    buf[len] = '\0';
    for (const char *c = buf; *c;) {
        size_t k = strcspn(c, "/");
        if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
            return status_fail(ST_USAGE, "%s: bad %s name '%s' (empty, '.' or '..' component)", f->path, what, name);
        c += k;
        if (*c == '/') c++;
    }
    return ST_OK;
}

static const char *shown(const char *nm) { return nm[0] ? nm : "/"; }

// Whether the normalized name exists, checking each prefix first (H5Lexists
// fails rather than answering false when an intermediate group is missing).
static bool exists_norm(hid_t file, const char *nm) {
    if (!nm[0]) return true;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", nm);
    for (char *s = strchr(buf, '/');; s = strchr(s + 1, '/')) {
        if (s) *s = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0 || H5Oexists_by_name(file, buf, H5P_DEFAULT) <= 0) return false;
        if (!s) return true;
        *s = '/';
    }
}

typedef enum { OBJ_MISSING, OBJ_GROUP, OBJ_DATASET, OBJ_OTHER } ObjKind;

static ObjKind obj_kind(hid_t file, const char *nm) {
    if (!exists_norm(file, nm)) return OBJ_MISSING;
    hid_t o = H5Oopen(file, nm[0] ? nm : "/", H5P_DEFAULT);
    if (o < 0) return OBJ_MISSING;
    H5I_type_t t = H5Iget_type(o);
    close_id(o);
    return t == H5I_GROUP ? OBJ_GROUP : t == H5I_DATASET ? OBJ_DATASET : OBJ_OTHER;
}

static Status check_writable(const H5Store *f, const char *what, const char *name) {
    if (!f->writable) return status_fail(ST_USAGE, "%s: opened read-only; cannot %s '%s'", f->path, what, name ? name : "");
    return ST_OK;
}

// ---- opening and committing ----

static Status store_new(H5Store **out, const char *path, bool writable) {
    *out = NULL;
    if (strlen(path) >= sizeof((H5Store *)0)->path) return status_fail(ST_USAGE, "%s: path is too long", path);
    H5Store *f = calloc(1, sizeof *f);
    if (!f) return status_fail(ST_OOM, "%s: out of memory", path);
    f->file = H5I_INVALID_HID;
    f->writable = writable;
    snprintf(f->path, sizeof f->path, "%s", path);
    if (writable) snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
    *out = f;
    return ST_OK;
}

// File access for the temporary files: a strong close degree, so H5Fclose
// really closes (and flushes) the file before it is renamed into place.
static hid_t write_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        close_id(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

// Whether this process has the file `name` open in HDF5 already (a second
// writer of the same path would share, then truncate, the first one's file).
static bool open_in_hdf5(const char *name) {
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
    if (n <= 0) return false;
    hid_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return false;
    n = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_FILE, (size_t)n, ids);
    bool found = false;
    char buf[1100];
    for (ssize_t i = 0; i < n && !found; i++) {
        ssize_t len = H5Fget_name(ids[i], buf, sizeof buf);
        found = len > 0 && (size_t)len < sizeof buf && strcmp(buf, name) == 0;
    }
    free(ids);
    return found;
}

static Status check_not_writing(const H5Store *f) {
    if (open_in_hdf5(f->tmp)) return status_fail(ST_USAGE, "%s: already open for writing in this process", f->path);
    return ST_OK;
}

static Status create_tmp(H5Store *f) {
    TRY(check_not_writing(f));
    // A plain open first, for an errno message (HDF5's own says little).
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return status_fail(ST_IO, "%s: cannot create %s: %s", f->path, f->tmp, strerror(errno));
    close(fd);
    hid_t fapl = write_fapl();
    f->file = fapl < 0 ? H5I_INVALID_HID : H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    close_id(fapl);
    if (f->file < 0) {
        unlink(f->tmp);
        return status_fail(ST_IO, "%s: cannot create HDF5 file %s (is it already open for writing?)", f->path, f->tmp);
    }
    return ST_OK;
}

Status h5_create(H5Store **out, const char *path) {
    quiet();
    *out = NULL;
    TRY(store_new(out, path, true));
    Status st = create_tmp(*out);
    if (st != ST_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

static Status write_all(int fd, const char *buf, size_t n, const char *path, const char *tmp) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return status_fail(ST_IO, "%s: cannot write %s: %s", path, tmp, strerror(w < 0 ? errno : EIO));
        buf += w;
        n -= (size_t)w;
    }
    return ST_OK;
}

// Copies the existing file (user path) to the temporary name: copy_file_range
// where the kernel offers it (reflinks on btrfs/xfs), else read/write.
static Status copy_to_tmp(const H5Store *f, int in, off_t size) {
    TRY(check_not_writing(f));
    int out = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (out < 0) return status_fail(ST_IO, "%s: cannot create %s: %s", f->path, f->tmp, strerror(errno));
    struct stat sb;
    if (fstat(in, &sb) == 0) fchmod(out, sb.st_mode & 07777); // keep the file's permissions
    Status st = ST_OK;
    off_t done = 0;
    while (done < size) {
        ssize_t c = copy_file_range(in, NULL, out, NULL, (size_t)(size - done), 0);
        if (c < 0 && errno == EINTR) continue;
        if (c <= 0) break; // unsupported here (or a short file): finish with read/write
        done += c;
    }
    enum { CHUNK = 1 << 20 };
    char *buf = done < size ? malloc(CHUNK) : NULL;
    if (done < size && !buf) st = status_fail(ST_OOM, "%s: out of memory copying to %s", f->path, f->tmp);
    while (st == ST_OK && done < size) {
        ssize_t r = pread(in, buf, CHUNK, done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) st = status_fail(ST_IO, "%s: read error: %s", f->path, strerror(errno));
        else if (r == 0) break; // the file shrank under us; HDF5 will call it truncated
        else if ((st = write_all(out, buf, (size_t)r, f->path, f->tmp)) == ST_OK) done += r;
    }
    free(buf);
    if (close(out) != 0 && st == ST_OK) st = status_fail(ST_IO, "%s: cannot write %s: %s", f->path, f->tmp, strerror(errno));
    if (st != ST_OK) unlink(f->tmp);
    return st;
}

// Opens the user's file for reading or copying: errno messages for missing or odd files.
static Status open_source(const char *path, int *fd, off_t *size) {
    *fd = open(path, O_RDONLY);
    if (*fd < 0) return status_fail(ST_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return status_fail(ST_IO, "%s: not a regular file", path);
    }
    *size = sb.st_size;
    return ST_OK;
}

static Status fail_not_hdf5(const char *path) {
    return status_fail(ST_FORMAT, "%s: not an HDF5 file or truncated", path);
}

Status h5_open_update(H5Store **out, const char *path) {
    quiet();
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) return h5_create(out, path);
    TRY(store_new(out, path, true));
    H5Store *f = *out;
    int fd;
    off_t size;
    Status st = open_source(path, &fd, &size);
    if (st == ST_OK) {
        // HDF5 opens a zero-length file read-write as a new empty one; an empty
        // file here is a truncated store, not a fresh start.
        st = size == 0 ? fail_not_hdf5(path) : copy_to_tmp(f, fd, size);
        close(fd);
    }
    if (st == ST_OK) {
        hid_t fapl = write_fapl();
        f->file = fapl < 0 ? H5I_INVALID_HID : H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
        close_id(fapl);
        if (f->file < 0) {
            unlink(f->tmp);
            st = fail_not_hdf5(path);
        }
    }
    if (st != ST_OK) {
        free(f);
        *out = NULL;
    }
    return st;
}

Status h5_open_read(H5Store **out, const char *path) {
    quiet();
    *out = NULL;
    int fd;
    off_t size;
    TRY(open_source(path, &fd, &size));
    close(fd);
    TRY(store_new(out, path, false));
    (*out)->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if ((*out)->file < 0) {
        free(*out);
        *out = NULL;
        return fail_not_hdf5(path);
    }
    return ST_OK;
}

static Status fsync_path(const char *path, const char *tmp) {
    int fd = open(tmp, O_RDONLY);
    if (fd < 0) return status_fail(ST_IO, "%s: cannot reopen %s: %s", path, tmp, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return status_fail(ST_IO, "%s: cannot sync %s: %s", path, tmp, strerror(err));
    return ST_OK;
}

Status h5_commit(H5Store *f) {
    quiet();
    if (!f->writable) {
        Status st = status_fail(ST_USAGE, "%s: opened read-only; nothing to commit", f->path);
        h5_close(f);
        return st;
    }
    herr_t flushed = H5Fflush(f->file, H5F_SCOPE_LOCAL);
    herr_t closed = H5Fclose(f->file);
    f->file = H5I_INVALID_HID;
    Status st = ST_OK;
    if (flushed < 0 || closed < 0) st = status_fail(ST_IO, "%s: cannot write %s", f->path, f->tmp);
    if (st == ST_OK) st = fsync_path(f->path, f->tmp);
    if (st == ST_OK && rename(f->tmp, f->path) != 0)
        st = status_fail(ST_IO, "%s: cannot rename into place: %s", f->path, strerror(errno));
    if (st != ST_OK) unlink(f->tmp);
    free(f);
    return st;
}

void h5_close(H5Store *f) {
    if (!f) return;
    quiet();
    close_id(f->file);
    if (f->writable) unlink(f->tmp);
    free(f);
}

const char *h5_path(const H5Store *f) { return f->path; }

bool h5_exists(H5Store *f, const char *name) {
    quiet();
    char nm[1024];
    if (norm_name(f, name, nm, sizeof nm, "object") != ST_OK) {
        status_clear();
        return false;
    }
    return exists_norm(f->file, nm);
}

Status h5_delete(H5Store *f, const char *name) {
    quiet();
    TRY(check_writable(f, "delete", name));
    char nm[1024];
    TRY(norm_name(f, name, nm, sizeof nm, "object"));
    if (!nm[0]) return status_fail(ST_USAGE, "%s: cannot delete the root group", f->path);
    if (!exists_norm(f->file, nm)) return ST_OK;
    if (H5Ldelete(f->file, nm, H5P_DEFAULT) < 0) return status_fail(ST_IO, "%s: cannot delete '%s'", f->path, nm);
    return ST_OK;
}

// ---- datasets ----

static void shape_str(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

// Validates a caller's shape and its element count (numel * elem fits in size_t).
static Status check_shape(const H5Store *f, const char *nm, int ndim, const int64_t *shape, size_t elem, hsize_t *dims,
                          size_t *numel) {
    if (ndim < 0 || ndim > H5S_MAX_RANK || (ndim > 0 && !shape))
        return status_fail(ST_USAGE, "%s: dataset '%s': %d dims (0 to %d allowed)", f->path, nm, ndim, H5S_MAX_RANK);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return status_fail(ST_USAGE, "%s: dataset '%s': negative dim %lld", f->path, nm, (long long)shape[i]);
        dims[i] = (hsize_t)shape[i];
        if (shape[i] && count > SIZE_MAX / elem / (uint64_t)shape[i])
            return status_fail(ST_USAGE, "%s: dataset '%s': shape too large", f->path, nm);
        count *= (size_t)shape[i];
    }
    *numel = count;
    return ST_OK;
}

// Every existing prefix of nm must be a group (missing ones get created).
static Status check_parents(const H5Store *f, const char *nm) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", nm);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        ObjKind k = obj_kind(f->file, buf);
        if (k == OBJ_MISSING) return ST_OK;
        if (k != OBJ_GROUP)
            return status_fail(ST_USAGE, "%s: cannot create dataset '%s': '%s' is not a group", f->path, nm, buf);
        *s = '/';
    }
    return ST_OK;
}

static const char *type_desc(hid_t t, char *buf, size_t n) {
    size_t bits = H5Tget_size(t) * 8;
    switch (H5Tget_class(t)) {
    case H5T_INTEGER: snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits); break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, n, "a string"); break;
    case H5T_ENUM: snprintf(buf, n, "an enum (bool?)"); break;
    case H5T_COMPOUND: snprintf(buf, n, "a compound type"); break;
    default: snprintf(buf, n, "an unsupported type"); break;
    }
    return buf;
}

static bool type_is(hid_t t, Kind k) {
    H5T_class_t c = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (size != kind_size(k)) return false;
    if (k == K_F32 || k == K_F64) return c == H5T_FLOAT;
    return c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
}

// The dataset's dims when its dtype is exactly k; ds stays open for the caller.
static Status dataset_dims(const H5Store *f, const char *nm, hid_t ds, Kind k, int ndim, hsize_t *dims) {
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    Status st = ST_OK;
    char desc[64];
    if (t < 0 || sp < 0) st = status_fail(ST_FORMAT, "%s: dataset '%s': cannot read its type or shape", f->path, nm);
    else if (!type_is(t, k))
        st = status_fail(ST_FORMAT, "%s: dataset '%s' is %s, expected %s", f->path, nm, type_desc(t, desc, sizeof desc),
                         KIND_NAME[k]);
    else if (H5Sget_simple_extent_type(sp) == H5S_NULL)
        st = status_fail(ST_FORMAT, "%s: dataset '%s' is empty (null dataspace)", f->path, nm);
    else {
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd != ndim) st = status_fail(ST_FORMAT, "%s: dataset '%s' has %d dims, expected %d", f->path, nm, nd, ndim);
        else if (nd > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
            st = status_fail(ST_FORMAT, "%s: dataset '%s': cannot read its shape", f->path, nm);
    }
    close_id(t);
    close_id(sp);
    return st;
}

// Opens dataset nm (normalized) or fails naming it.
static Status open_dataset(const H5Store *f, const char *nm, hid_t *ds) {
    *ds = H5I_INVALID_HID;
    ObjKind k = obj_kind(f->file, nm);
    if (k == OBJ_MISSING) return status_fail(ST_FORMAT, "%s: dataset '%s' is missing", f->path, shown(nm));
    if (k != OBJ_DATASET) return status_fail(ST_FORMAT, "%s: '%s' is a group, not a dataset", f->path, shown(nm));
    *ds = H5Dopen2(f->file, nm, H5P_DEFAULT);
    if (*ds < 0) return status_fail(ST_FORMAT, "%s: cannot open dataset '%s'", f->path, nm);
    return ST_OK;
}

// An existing dataset nm of the same dtype and dims is kept for an in-place
// write; any other one is unlinked. Returns the kept dataset or -1.
static Status reuse_or_unlink(const H5Store *f, const char *nm, Kind k, int ndim, const hsize_t *dims, hid_t *ds) {
    *ds = H5I_INVALID_HID;
    ObjKind kind = obj_kind(f->file, nm);
    if (kind == OBJ_MISSING) return ST_OK;
    if (kind != OBJ_DATASET) return status_fail(ST_USAGE, "%s: cannot write dataset '%s': it is a group", f->path, nm);
    hid_t old = H5Dopen2(f->file, nm, H5P_DEFAULT);
    hsize_t old_dims[H5S_MAX_RANK];
    bool same = old >= 0 && dataset_dims(f, nm, old, k, ndim, old_dims) == ST_OK &&
                (ndim == 0 || memcmp(old_dims, dims, (size_t)ndim * sizeof *dims) == 0);
    status_clear();
    if (same) {
        *ds = old;
        return ST_OK;
    }
    close_id(old);
    if (H5Ldelete(f->file, nm, H5P_DEFAULT) < 0) return status_fail(ST_IO, "%s: cannot replace dataset '%s'", f->path, nm);
    return ST_OK;
}

Status h5_make_group(H5Store *f, const char *name) {
    quiet();
    TRY(check_writable(f, "create group", name));
    char nm[1024];
    TRY(norm_name(f, name, nm, sizeof nm, "group"));
    ObjKind k = obj_kind(f->file, nm[0] ? nm : "/");
    if (!nm[0] || k == OBJ_GROUP) return ST_OK;
    if (k != OBJ_MISSING) return status_fail(ST_USAGE, "%s: '%s' exists and is not a group", f->path, nm);
    TRY(check_parents(f, nm));
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t g = lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0
                  ? H5Gcreate2(f->file, nm, lcpl, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    Status st = g >= 0 ? ST_OK : status_fail(ST_IO, "%s: cannot create group '%s'", f->path, nm);
    close_id(g);
    close_id(lcpl);
    return st;
}

static Status write_dataset(H5Store *f, const char *name, int ndim, const int64_t *shape, Kind k, const void *data) {
    quiet();
    TRY(check_writable(f, "write dataset", name));
    char nm[1024];
    TRY(norm_name(f, name, nm, sizeof nm, "dataset"));
    if (!nm[0]) return status_fail(ST_USAGE, "%s: a dataset needs a name", f->path);
    hsize_t dims[H5S_MAX_RANK];
    size_t numel = 0;
    TRY(check_shape(f, nm, ndim, shape, kind_size(k), dims, &numel));
    if (numel > 0 && !data) return status_fail(ST_USAGE, "%s: dataset '%s': no data", f->path, nm);
    TRY(check_parents(f, nm));
    hid_t ds, space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
    TRY(reuse_or_unlink(f, nm, k, ndim, dims, &ds));
    Status st = ST_OK;
    if (ds < 0) {
        space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        lcpl = H5Pcreate(H5P_LINK_CREATE);
        if (space >= 0 && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
            H5Pset_char_encoding(lcpl, H5T_CSET_UTF8) >= 0)
            ds = H5Dcreate2(f->file, nm, kind_file(k), space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0) st = status_fail(ST_IO, "%s: cannot create dataset '%s'", f->path, nm);
    }
    if (st == ST_OK && numel > 0 && H5Dwrite(ds, kind_mem(k), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = status_fail(ST_IO, "%s: cannot write dataset '%s'", f->path, nm);
    close_id(ds);
    close_id(space);
    close_id(lcpl);
    return st;
}

// Reads dataset name of dtype k; with alloc, *out receives a malloc'd buffer and
// shape the dims; without, the dims must equal shape and data goes to *out.
static Status read_dataset(H5Store *f, const char *name, int ndim, int64_t *shape, Kind k, void **out, bool alloc) {
    quiet();
    char nm[1024];
    TRY(norm_name(f, name, nm, sizeof nm, "dataset"));
    if (ndim < 0 || ndim > H5S_MAX_RANK || (ndim > 0 && !shape))
        return status_fail(ST_USAGE, "%s: dataset '%s': %d dims asked for (0 to %d allowed)", f->path, nm, ndim, H5S_MAX_RANK);
    hid_t ds;
    TRY(open_dataset(f, nm, &ds));
    hsize_t dims[H5S_MAX_RANK];
    Status st = dataset_dims(f, nm, ds, k, ndim, dims);
    size_t numel = 1, elem = kind_size(k);
    for (int i = 0; st == ST_OK && i < ndim; i++) {
        if (dims[i] && numel > SIZE_MAX / elem / dims[i])
            st = status_fail(ST_FORMAT, "%s: dataset '%s' is too large to read", f->path, nm);
        numel *= (size_t)dims[i];
    }
    if (st == ST_OK && !alloc) {
        bool same = true;
        for (int i = 0; i < ndim; i++) same = same && shape[i] >= 0 && (hsize_t)shape[i] == dims[i];
        if (!same) {
            char have[256], want[256];
            hsize_t wanted[H5S_MAX_RANK];
            for (int i = 0; i < ndim; i++) wanted[i] = (hsize_t)shape[i];
            shape_str(have, sizeof have, ndim, dims);
            shape_str(want, sizeof want, ndim, wanted);
            st = status_fail(ST_FORMAT, "%s: dataset '%s' has shape %s, expected %s", f->path, nm, have, want);
        }
    }
    void *buf = NULL;
    if (st == ST_OK) {
        buf = alloc ? malloc(numel ? numel * elem : 1) : *out;
        if (!buf) st = status_fail(ST_OOM, "%s: out of memory reading dataset '%s'", f->path, nm);
    }
    if (st == ST_OK && numel > 0 && H5Dread(ds, kind_mem(k), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = status_fail(ST_FORMAT, "%s: cannot read dataset '%s' (truncated or corrupt file?)", f->path, nm);
    close_id(ds);
    if (alloc && st == ST_OK) {
        for (int i = 0; i < ndim; i++) shape[i] = (int64_t)dims[i];
        *out = buf;
    } else if (alloc) {
        free(buf);
    }
    return st;
}

Status h5_write_f32(H5Store *f, const char *name, int ndim, const int64_t *shape, const float *data) {
    return write_dataset(f, name, ndim, shape, K_F32, data);
}
Status h5_write_f64(H5Store *f, const char *name, int ndim, const int64_t *shape, const double *data) {
    return write_dataset(f, name, ndim, shape, K_F64, data);
}
Status h5_write_i32(H5Store *f, const char *name, int ndim, const int64_t *shape, const int32_t *data) {
    return write_dataset(f, name, ndim, shape, K_I32, data);
}
Status h5_write_i64(H5Store *f, const char *name, int ndim, const int64_t *shape, const int64_t *data) {
    return write_dataset(f, name, ndim, shape, K_I64, data);
}

Status h5_read_f32(H5Store *f, const char *name, int ndim, int64_t *shape, float **data) {
    *data = NULL;
    return read_dataset(f, name, ndim, shape, K_F32, (void **)data, true);
}
Status h5_read_f64(H5Store *f, const char *name, int ndim, int64_t *shape, double **data) {
    *data = NULL;
    return read_dataset(f, name, ndim, shape, K_F64, (void **)data, true);
}
Status h5_read_i32(H5Store *f, const char *name, int ndim, int64_t *shape, int32_t **data) {
    *data = NULL;
    return read_dataset(f, name, ndim, shape, K_I32, (void **)data, true);
}
Status h5_read_i64(H5Store *f, const char *name, int ndim, int64_t *shape, int64_t **data) {
    *data = NULL;
    return read_dataset(f, name, ndim, shape, K_I64, (void **)data, true);
}

Status h5_read_f32_into(H5Store *f, const char *name, int ndim, const int64_t *shape, float *data) {
    void *p = data;
    return read_dataset(f, name, ndim, (int64_t *)shape, K_F32, &p, false);
}
Status h5_read_f64_into(H5Store *f, const char *name, int ndim, const int64_t *shape, double *data) {
    void *p = data;
    return read_dataset(f, name, ndim, (int64_t *)shape, K_F64, &p, false);
}
Status h5_read_i32_into(H5Store *f, const char *name, int ndim, const int64_t *shape, int32_t *data) {
    void *p = data;
    return read_dataset(f, name, ndim, (int64_t *)shape, K_I32, &p, false);
}
Status h5_read_i64_into(H5Store *f, const char *name, int ndim, const int64_t *shape, int64_t *data) {
    void *p = data;
    return read_dataset(f, name, ndim, (int64_t *)shape, K_I64, &p, false);
}

// ---- attributes ----

// Opens the group or dataset obj; nm receives its normalized name.
static Status open_object(const H5Store *f, const char *obj, char *nm, size_t n, hid_t *o) {
    *o = H5I_INVALID_HID;
    TRY(norm_name(f, obj, nm, n, "object"));
    if (!exists_norm(f->file, nm)) return status_fail(ST_FORMAT, "%s: object '%s' is missing", f->path, shown(nm));
    *o = H5Oopen(f->file, nm[0] ? nm : "/", H5P_DEFAULT);
    if (*o < 0) return status_fail(ST_FORMAT, "%s: cannot open object '%s'", f->path, shown(nm));
    return ST_OK;
}

// A variable-length UTF-8 string type: what h5py reads back as str.
static hid_t vlen_str_type(H5T_cset_t cset) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0)) {
        close_id(t);
        return H5I_INVALID_HID;
    }
    return t;
}

// Writes a scalar attribute, replacing any of the same key. type is used for
// both the file and memory; value points at the element (a char * for strings).
static Status set_attr(H5Store *f, const char *obj, const char *key, hid_t type, const void *value) {
    quiet();
    TRY(check_writable(f, "set attributes of", obj));
    if (!key || !key[0]) return status_fail(ST_USAGE, "%s: an attribute needs a name", f->path);
    char nm[1024];
    hid_t o, space = H5I_INVALID_HID, acpl = H5I_INVALID_HID, a = H5I_INVALID_HID;
    TRY(open_object(f, obj, nm, sizeof nm, &o));
    Status st = ST_OK;
    htri_t had = H5Aexists(o, key);
    if (had < 0 || (had > 0 && H5Adelete(o, key) < 0)) st = ST_IO;
    if (st == ST_OK) {
        space = H5Screate(H5S_SCALAR);
        acpl = H5Pcreate(H5P_ATTRIBUTE_CREATE);
        if (type >= 0 && space >= 0 && acpl >= 0 && H5Pset_char_encoding(acpl, H5T_CSET_UTF8) >= 0)
            a = H5Acreate2(o, key, type, space, acpl, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, type, value) < 0) st = ST_IO;
    }
    close_id(a);
    close_id(acpl);
    close_id(space);
    close_id(o);
    if (st != ST_OK) return status_fail(st, "%s: cannot set attribute '%s' of '%s'", f->path, key, shown(nm));
    return ST_OK;
}

Status h5_set_attr_str(H5Store *f, const char *obj, const char *key, const char *value) {
    quiet();
    hid_t t = vlen_str_type(H5T_CSET_UTF8);
    const char *v = value ? value : "";
    Status st = set_attr(f, obj, key, t, &v);
    close_id(t);
    return st;
}

Status h5_set_attr_i64(H5Store *f, const char *obj, const char *key, int64_t value) {
    return set_attr(f, obj, key, H5T_STD_I64LE, &value); // an LE file type also converts from native memory
}

Status h5_set_attr_f64(H5Store *f, const char *obj, const char *key, double value) {
    return set_attr(f, obj, key, H5T_IEEE_F64LE, &value);
}

bool h5_has_attr(H5Store *f, const char *obj, const char *key) {
    quiet();
    char nm[1024];
    hid_t o;
    if (!key || !key[0] || open_object(f, obj, nm, sizeof nm, &o) != ST_OK) {
        status_clear();
        return false;
    }
    bool has = H5Aexists(o, key) > 0;
    close_id(o);
    return has;
}

// Opens attribute key of obj holding one element; *t receives its type.
static Status open_attr(const H5Store *f, const char *obj, const char *key, char *nm, size_t n, hid_t *a, hid_t *t) {
    *a = *t = H5I_INVALID_HID;
    hid_t o;
    TRY(open_object(f, obj, nm, n, &o));
    Status st = ST_OK;
    if (!key || H5Aexists(o, key) <= 0)
        st = status_fail(ST_FORMAT, "%s: attribute '%s' of '%s' is missing", f->path, key ? key : "", shown(nm));
    else if ((*a = H5Aopen(o, key, H5P_DEFAULT)) < 0 || (*t = H5Aget_type(*a)) < 0)
        st = status_fail(ST_FORMAT, "%s: cannot open attribute '%s' of '%s'", f->path, key, shown(nm));
    if (st == ST_OK) {
        hid_t sp = H5Aget_space(*a);
        if (sp < 0 || H5Sget_simple_extent_npoints(sp) != 1)
            st = status_fail(ST_FORMAT, "%s: attribute '%s' of '%s' is not a single value", f->path, key, shown(nm));
        close_id(sp);
    }
    close_id(o);
    if (st != ST_OK) {
        close_id(*t);
        close_id(*a);
        *a = *t = H5I_INVALID_HID;
    }
    return st;
}

static Status read_str_attr(const H5Store *f, const char *nm, const char *key, hid_t a, hid_t t, char **value) {
    Status st = ST_OK;
    if (H5Tis_variable_str(t) > 0) {
        hid_t mt = vlen_str_type(H5Tget_cset(t)); // HDF5 will not convert between ASCII and UTF-8
        char *s = NULL;
        if (mt < 0 || H5Aread(a, mt, &s) < 0) st = status_fail(ST_FORMAT, "%s: cannot read attribute '%s' of '%s'", f->path, key, shown(nm));
        else if (!(*value = strdup(s ? s : ""))) st = status_fail(ST_OOM, "%s: out of memory", f->path);
        if (s) H5free_memory(s);
        close_id(mt);
        return st;
    }
    size_t size = H5Tget_size(t); // fixed length: read the raw bytes, stop at the first NUL
    char *buf = calloc(size + 1, 1);
    if (!buf) return status_fail(ST_OOM, "%s: out of memory", f->path);
    if (H5Aread(a, t, buf) < 0) {
        free(buf);
        return status_fail(ST_FORMAT, "%s: cannot read attribute '%s' of '%s'", f->path, key, shown(nm));
    }
    if (H5Tget_strpad(t) == H5T_STR_SPACEPAD)
        for (size_t i = strlen(buf); i > 0 && buf[i - 1] == ' '; i--) buf[i - 1] = '\0';
    *value = buf;
    return ST_OK;
}

// Reads a numeric attribute converted to mem (int64 or double): integers always, floats when floats_ok.
static Status get_attr_num(H5Store *f, const char *obj, const char *key, hid_t mem, bool floats_ok, const char *want,
                           void *value) {
    quiet();
    char nm[1024], desc[64];
    hid_t a, t;
    TRY(open_attr(f, obj, key, nm, sizeof nm, &a, &t));
    H5T_class_t c = H5Tget_class(t);
    Status st = ST_OK;
    if (!(c == H5T_INTEGER || (floats_ok && c == H5T_FLOAT)))
        st = status_fail(ST_FORMAT, "%s: attribute '%s' of '%s' is %s, expected %s", f->path, key, shown(nm),
                         type_desc(t, desc, sizeof desc), want);
    else if (H5Aread(a, mem, value) < 0)
        st = status_fail(ST_FORMAT, "%s: cannot read attribute '%s' of '%s'", f->path, key, shown(nm));
    close_id(t);
    close_id(a);
    return st;
}

Status h5_get_attr_i64(H5Store *f, const char *obj, const char *key, int64_t *value) {
    return get_attr_num(f, obj, key, H5T_NATIVE_INT64, false, "an integer", value);
}

Status h5_get_attr_f64(H5Store *f, const char *obj, const char *key, double *value) {
    return get_attr_num(f, obj, key, H5T_NATIVE_DOUBLE, true, "a number", value);
}

Status h5_get_attr_str(H5Store *f, const char *obj, const char *key, char **value) {
    quiet();
    *value = NULL;
    char nm[1024], desc[64];
    hid_t a, t;
    TRY(open_attr(f, obj, key, nm, sizeof nm, &a, &t));
    Status st;
    if (H5Tget_class(t) != H5T_STRING)
        st = status_fail(ST_FORMAT, "%s: attribute '%s' of '%s' is %s, expected a string", f->path, key, shown(nm),
                         type_desc(t, desc, sizeof desc));
    else
        st = read_str_attr(f, nm, key, a, t, value);
    close_id(t);
    close_id(a);
    return st;
}

// ---- listing ----

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void h5_free_names(char **names, int count) {
    if (!names) return;
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

Status h5_list(H5Store *f, const char *group, char ***names, int *count) {
    quiet();
    *names = NULL;
    *count = 0;
    char nm[1024];
    TRY(norm_name(f, group, nm, sizeof nm, "group"));
    ObjKind k = obj_kind(f->file, nm);
    if (k == OBJ_MISSING) return status_fail(ST_FORMAT, "%s: group '%s' is missing", f->path, shown(nm));
    if (k != OBJ_GROUP) return status_fail(ST_FORMAT, "%s: '%s' is not a group", f->path, shown(nm));
    hid_t g = H5Gopen2(f->file, nm[0] ? nm : "/", H5P_DEFAULT);
    H5G_info_t info;
    if (g < 0 || H5Gget_info(g, &info) < 0) {
        close_id(g);
        return status_fail(ST_FORMAT, "%s: cannot read group '%s'", f->path, shown(nm));
    }
    Status st = ST_OK;
    char **out = calloc(info.nlinks ? info.nlinks : 1, sizeof *out);
    if (!out) st = status_fail(ST_OOM, "%s: out of memory", f->path);
    int n = 0;
    for (hsize_t i = 0; st == ST_OK && i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        char *s = len >= 0 ? malloc((size_t)len + 1) : NULL;
        if (!s || H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, s, (size_t)len + 1, H5P_DEFAULT) < 0) {
            free(s);
            st = status_fail(len < 0 ? ST_FORMAT : ST_OOM, "%s: cannot list group '%s'", f->path, shown(nm));
        } else {
            out[n++] = s;
        }
    }
    close_id(g);
    if (st != ST_OK) {
        h5_free_names(out, n);
        return st;
    }
    qsort(out, (size_t)n, sizeof *out, cmp_str);
    *names = out;
    *count = n;
    return ST_OK;
}
