// test_gguf.c: the GGUF reader against tests/fixtures/quant.gguf (written by
// tests/reference/make_gguf_fixtures.py with gguf-py), hand-built files, and
// mutated copies of the fixture.
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf.h"
#include "runtime/half.h"

#define FIXTURE "tests/fixtures/quant.gguf"

// ---------------------------------------------------------------------------
// Where the fixture's header fields lie, found by walking it independently of
// the reader under test (the fixture is trusted here).

typedef struct {
    char key[64];
    size_t len_off;   // the key's u64 length
    size_t type_off;  // its u32 value type
    size_t value_off; // its value
} KvField;

typedef struct {
    char name[64];
    size_t len_off;    // the name's u64 length
    size_t ne_off;     // ne[0]
    size_t type_off;   // u32 GGML type
    size_t offset_off; // u64 offset relative to the data section
    uint64_t offset;
} TensorField;

typedef struct {
    uint8_t *bytes; // [size] the whole file
    size_t size;
    uint64_t n_kv, n_tensors;
    KvField kv[32];
    TensorField ti[32];
    size_t header_end; // end of the tensor infos
} Fixture;

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void wr(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t skip_value(const uint8_t *b, size_t pos, uint32_t type) {
    static const int fixed[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == GGUF_T_STRING) return pos + 8 + rd(b + pos, 8);
    if (type != GGUF_T_ARRAY) return pos + (size_t)fixed[type];
    uint32_t elem = (uint32_t)rd(b + pos, 4);
    uint64_t n = rd(b + pos + 4, 8);
    pos += 12;
    for (uint64_t i = 0; i < n; i++) pos = skip_value(b, pos, elem);
    return pos;
}

static void copy_name(char *dst, const uint8_t *src, uint64_t len) {
    cr_assert_lt(len, 64);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void fixture_load(Fixture *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(FIXTURE, "rb");
    cr_assert_not_null(fp, "cannot open %s (tests run from the repository root)", FIXTURE);
    fseek(fp, 0, SEEK_END);
    f->size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->bytes = malloc(f->size);
    cr_assert_eq(fread(f->bytes, 1, f->size, fp), f->size);
    fclose(fp);
    const uint8_t *b = f->bytes;
    f->n_tensors = rd(b + 8, 8);
    f->n_kv = rd(b + 16, 8);
    cr_assert(f->n_kv <= 32 && f->n_tensors <= 32);
    size_t pos = 24;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        KvField *k = &f->kv[i];
        k->len_off = pos;
        copy_name(k->key, b + pos + 8, rd(b + pos, 8));
        k->type_off = pos + 8 + rd(b + pos, 8);
        k->value_off = k->type_off + 4;
        pos = skip_value(b, k->value_off, (uint32_t)rd(b + k->type_off, 4));
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        TensorField *t = &f->ti[i];
        t->len_off = pos;
        copy_name(t->name, b + pos + 8, rd(b + pos, 8));
        pos += 8 + rd(b + pos, 8);
        uint32_t n_dims = (uint32_t)rd(b + pos, 4);
        t->ne_off = pos + 4;
        t->type_off = t->ne_off + 8 * n_dims;
        t->offset_off = t->type_off + 4;
        t->offset = rd(b + t->offset_off, 8);
        pos = t->offset_off + 8;
    }
    f->header_end = pos;
}

static const KvField *fixture_kv(const Fixture *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    cr_assert_fail("fixture has no key %s", key);
    return NULL;
}

static const TensorField *fixture_tensor(const Fixture *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->ti[i].name, name) == 0) return &f->ti[i];
    cr_assert_fail("fixture has no tensor %s", name);
    return NULL;
}

// ---------------------------------------------------------------------------
// Temporary files and failure checks

static void write_temp(const uint8_t *bytes, size_t n, char path[64]) {
    snprintf(path, 64, "/tmp/elastilm_gguf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

static bool all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

// Opens bytes[0..n) from a temporary file and requires failure with `code`, a
// message naming the file and containing `needle` (unless NULL), and *g zeroed.
static void expect_failure(const uint8_t *bytes, size_t n, Status code, const char *needle) {
    char path[64];
    write_temp(bytes, n, path);
    GgufFile g;
    memset(&g, 0xAB, sizeof g);
    status_clear();
    Status st = gguf_open(&g, path);
    const char *msg = status_message();
    unlink(path);
    cr_assert_eq(st, code, "expected %s, got %s: %s", status_name(code), status_name(st), msg);
    cr_assert_not_null(strstr(msg, path), "message does not name the file: %s", msg);
    if (needle) cr_assert_not_null(strstr(msg, needle), "message lacks \"%s\": %s", needle, msg);
    cr_assert(all_zero(&g, sizeof g), "GgufFile not zeroed after a failure");
}

// A mutated copy of the fixture: the caller edits it and passes it on.
static uint8_t *fixture_copy(const Fixture *f) {
    uint8_t *b = malloc(f->size);
    memcpy(b, f->bytes, f->size);
    return b;
}

// ---------------------------------------------------------------------------
// The fixture, read correctly

Test(gguf, header_and_layout) {
    Fixture f;
    fixture_load(&f);
    GgufFile g;
    cr_assert_eq(gguf_open(&g, FIXTURE), ST_OK, "%s", status_message());
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.n_kv, f.n_kv);
    cr_assert_eq(g.n_kv, 13);
    cr_assert_eq(g.n_tensors, 16);
    cr_assert_eq(g.alignment, 32);
    cr_assert_eq(g.data_offset, (f.header_end + 31) / 32 * 32);
    cr_assert_eq(g.file.size, f.size);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        cr_assert_str_eq(g.tensors[i].name, f.ti[i].name);
        cr_assert_eq(g.tensors[i].offset, g.data_offset + f.ti[i].offset, "%s", f.ti[i].name);
    }
    gguf_close(&g);
    cr_assert(all_zero(&g, sizeof g));
    free(f.bytes);
}

Test(gguf, metadata_getters) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, FIXTURE), ST_OK, "%s", status_message());
    uint32_t u = 0;
    cr_assert_eq(gguf_get_u32(&g, "test.u32", &u), ST_OK);
    cr_assert_eq(u, 123456789u);
    cr_assert_eq(gguf_get_u32(&g, "test.u8", &u), ST_OK);
    cr_assert_eq(u, 200u);
    cr_assert_eq(gguf_get_u32(&g, "test.i32_pos", &u), ST_OK);
    cr_assert_eq(u, 77u);
    float x = 0;
    cr_assert_eq(gguf_get_f32(&g, "test.f32", &x), ST_OK);
    cr_assert_eq(x, 0.15625f);
    cr_assert_eq(gguf_get_f32(&g, "test.f64", &x), ST_OK);
    cr_assert_eq(x, -2.5f);
    bool b = false;
    cr_assert_eq(gguf_get_bool(&g, "test.bool_true", &b), ST_OK);
    cr_assert(b);
    cr_assert_eq(gguf_get_bool(&g, "test.bool_false", &b), ST_OK);
    cr_assert(!b);
    GgufStr s = {0};
    cr_assert_eq(gguf_get_str(&g, "test.string", &s), ST_OK);
    cr_assert_eq(s.len, strlen("h\xc3\xa9llo, gguf"));
    cr_assert_eq(memcmp(s.ptr, "h\xc3\xa9llo, gguf", s.len), 0);
    cr_assert_eq(gguf_get_str(&g, "general.architecture", &s), ST_OK);
    cr_assert_eq(s.len, strlen("elastilm-test"));
    cr_assert_eq(memcmp(s.ptr, "elastilm-test", s.len), 0);

    const GgufKV *kv = gguf_find_kv(&g, "test.i32");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->value.type, GGUF_T_INT32);
    cr_assert_eq(kv->value.i64, -42);
    kv = gguf_find_kv(&g, "test.str_array");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->value.type, GGUF_T_ARRAY);
    cr_assert_eq(kv->value.arr.elem, GGUF_T_STRING);
    cr_assert_eq(kv->value.arr.n, 3);
    const char *want[] = {"alpha", "", "gamma delta"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(kv->value.arr.strs[i].len, strlen(want[i]));
        cr_assert_eq(memcmp(kv->value.arr.strs[i].ptr, want[i], strlen(want[i])), 0);
    }
    kv = gguf_find_kv(&g, "test.nested");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->value.arr.elem, GGUF_T_ARRAY);
    cr_assert_eq(kv->value.arr.n, 3);
    cr_assert_null(kv->value.arr.strs);
    // first inner array: int32 x 3 = {1, 2, 3}
    cr_assert_eq(rd(kv->value.arr.data, 4), GGUF_T_INT32);
    cr_assert_eq(rd(kv->value.arr.data + 4, 8), 3);
    cr_assert_eq(rd(kv->value.arr.data + 12, 4), 1);
    cr_assert_null(gguf_find_kv(&g, "no.such.key"));
    gguf_close(&g);
}

// Calls getter `expr` and requires ST_FORMAT naming the file and `key`.
#define EXPECT_GETTER_FAILS(expr, key)                                                       \
    do {                                                                                     \
        status_clear();                                                                      \
        cr_assert_eq((expr), ST_FORMAT, "%s", status_message());                             \
        cr_assert_not_null(strstr(status_message(), key), "%s", status_message());           \
        cr_assert_not_null(strstr(status_message(), FIXTURE), "%s", status_message());       \
    } while (0)

Test(gguf, getter_errors) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, FIXTURE), ST_OK, "%s", status_message());
    uint32_t u;
    float x;
    bool b;
    GgufStr s;
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "no.such.key", &u), "no.such.key");
    EXPECT_GETTER_FAILS(gguf_get_f32(&g, "no.such.key", &x), "no.such.key");
    EXPECT_GETTER_FAILS(gguf_get_bool(&g, "no.such.key", &b), "no.such.key");
    EXPECT_GETTER_FAILS(gguf_get_str(&g, "no.such.key", &s), "no.such.key");
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "test.string", &u), "test.string");
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "test.f32", &u), "test.f32");
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "test.bool_true", &u), "test.bool_true");
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "test.i32", &u), "test.i32");         // negative
    EXPECT_GETTER_FAILS(gguf_get_u32(&g, "test.u64_big", &u), "test.u64_big"); // 2^40
    EXPECT_GETTER_FAILS(gguf_get_f32(&g, "test.u32", &x), "test.u32");
    EXPECT_GETTER_FAILS(gguf_get_str(&g, "test.u32", &s), "test.u32");
    EXPECT_GETTER_FAILS(gguf_get_str(&g, "test.str_array", &s), "test.str_array");
    EXPECT_GETTER_FAILS(gguf_get_bool(&g, "test.u8", &b), "test.u8");
    gguf_close(&g);
}

typedef struct {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t nbytes;
} ExpectedTensor;

static const ExpectedTensor EXPECTED[] = {
    {"f32", GGML_F32, 2, {64, 3, 1, 1}, 64 * 3 * 4},
    {"f16", GGML_F16, 2, {96, 2, 1, 1}, 96 * 2 * 2},
    {"bf16", GGML_BF16, 2, {64, 3, 1, 1}, 64 * 3 * 2},
    {"q8_0", GGML_Q8_0, 2, {96, 2, 1, 1}, 6 * 34},
    {"q4_0", GGML_Q4_0, 2, {64, 3, 1, 1}, 6 * 18},
    {"q4_1", GGML_Q4_1, 2, {96, 2, 1, 1}, 6 * 20},
    {"f32_vec", GGML_F32, 1, {7, 1, 1, 1}, 7 * 4},
    {"q8_0_3d", GGML_Q8_0, 3, {32, 2, 2, 1}, 4 * 34},
};
enum { N_EXPECTED = sizeof EXPECTED / sizeof EXPECTED[0] };

Test(gguf, tensor_infos) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, FIXTURE), ST_OK, "%s", status_message());
    for (int i = 0; i < N_EXPECTED; i++) {
        const ExpectedTensor *e = &EXPECTED[i];
        const GgufTensorInfo *t = gguf_find_tensor(&g, e->name);
        cr_assert_not_null(t, "no tensor %s", e->name);
        cr_assert_eq(t->type, e->type, "%s", e->name);
        cr_assert_eq(t->n_dims, e->n_dims, "%s", e->name);
        for (int d = 0; d < 4; d++) cr_assert_eq(t->ne[d], e->ne[d], "%s ne[%d]", e->name, d);
        cr_assert_eq(t->nbytes, e->nbytes, "%s", e->name);
        cr_assert_eq(t->offset % g.alignment, 0);
        char ref[80];
        snprintf(ref, sizeof ref, "%s.expected", e->name);
        const GgufTensorInfo *r = gguf_find_tensor(&g, ref);
        cr_assert_not_null(r, "no tensor %s", ref);
        cr_assert_eq(r->type, GGML_F32);
        cr_assert_eq(gguf_tensor_numel(r), gguf_tensor_numel(t));
    }
    cr_assert_null(gguf_find_tensor(&g, "nope"));
    gguf_close(&g);
}

// Bit-exact: every decoder is the same sequence of IEEE single operations as
// gguf-py's numpy one (half->float conversions are exact, then one multiply,
// and for Q4_1 one add, each rounded once; no FMA under -std=c11), so results
// match bit for bit, NaN payloads and infinities included.
Test(gguf, dequantize_matches_gguf_py) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, FIXTURE), ST_OK, "%s", status_message());
    for (int i = 0; i < N_EXPECTED; i++) {
        const GgufTensorInfo *t = gguf_find_tensor(&g, EXPECTED[i].name);
        char ref_name[80];
        snprintf(ref_name, sizeof ref_name, "%s.expected", EXPECTED[i].name);
        const GgufTensorInfo *r = gguf_find_tensor(&g, ref_name);
        uint64_t n = gguf_tensor_numel(t);
        float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
        cr_assert_eq(gguf_tensor_to_f32(&g, t, got), ST_OK, "%s", status_message());
        cr_assert_eq(gguf_tensor_to_f32(&g, r, want), ST_OK, "%s", status_message());
        for (uint64_t j = 0; j < n; j++) {
            uint32_t a, b;
            memcpy(&a, &got[j], 4);
            memcpy(&b, &want[j], 4);
            cr_assert_eq(a, b, "%s[%lu]: got %g (0x%08x), gguf-py %g (0x%08x)", t->name,
                         (unsigned long)j, got[j], a, want[j], b);
        }
        free(got);
        free(want);
    }
    gguf_close(&g);
}

Test(gguf, block_decoders) {
    uint8_t block[34] = {0};
    float out[32];
    // Q4_0: d = 1.0 (f16 0x3c00); low nibble j, high nibble 15 - j
    wr(block, 0x3c00, 2);
    for (int j = 0; j < 16; j++) block[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    gguf_dequant_q4_0(block, out);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(out[j], (float)(j - 8));
        cr_assert_eq(out[j + 16], (float)(7 - j));
    }
    // Q4_1: d = 0.5 (0x3800), m = -1.0 (0xbc00); same nibbles
    wr(block, 0x3800, 2);
    wr(block + 2, 0xbc00, 2);
    for (int j = 0; j < 16; j++) block[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    gguf_dequant_q4_1(block, out);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(out[j], 0.5f * (float)j - 1.0f);
        cr_assert_eq(out[j + 16], 0.5f * (float)(15 - j) - 1.0f);
    }
    // Q8_0: d = 2.0 (0x4000); qs = -128, -120, ..., 120
    wr(block, 0x4000, 2);
    for (int j = 0; j < 32; j++) block[2 + j] = (uint8_t)(-128 + 8 * j);
    gguf_dequant_q8_0(block, out);
    for (int j = 0; j < 32; j++) cr_assert_eq(out[j], 2.0f * (float)(-128 + 8 * j));
}

Test(gguf, type_names) {
    cr_assert_str_eq(ggml_type_name(GGML_Q4_0), "Q4_0");
    cr_assert_str_eq(ggml_type_name(GGML_BF16), "BF16");
    cr_assert_str_eq(ggml_type_name(12), "Q4_K");
    cr_assert_str_eq(ggml_type_name(14), "Q6_K");
    cr_assert_str_eq(ggml_type_name(999), "unknown");
}

// ---------------------------------------------------------------------------
// Hand-built files

typedef struct {
    uint8_t b[1024];
    size_t n;
} Buf;

static void put(Buf *b, uint64_t v, int nbytes) {
    wr(b->b + b->n, v, nbytes);
    b->n += (size_t)nbytes;
}

static void put_str(Buf *b, const char *s) {
    put(b, strlen(s), 8);
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}

// Header for n_kv key-values and one tensor; the caller adds the key-values.
static void put_header(Buf *b, uint64_t n_kv) {
    memset(b, 0, sizeof *b);
    memcpy(b->b, "GGUF", 4);
    b->n = 4;
    put(b, 3, 4);
    put(b, 1, 8);
    put(b, n_kv, 8);
}

// Tensor "w": F32 with ne = {32}, then padding to `alignment` and its data 0, 1, ..., 31.
static void put_tensor_and_data(Buf *b, uint64_t alignment) {
    put_str(b, "w");
    put(b, 1, 4);
    put(b, 32, 8);
    put(b, GGML_F32, 4);
    put(b, 0, 8);
    b->n = (b->n + alignment - 1) / alignment * alignment;
    for (int i = 0; i < 32; i++) {
        float x = (float)i;
        memcpy(b->b + b->n, &x, 4);
        b->n += 4;
    }
}

static Buf with_alignment(uint32_t type, uint64_t value, uint64_t pad) {
    Buf b;
    put_header(&b, 1);
    put_str(&b, "general.alignment");
    put(&b, type, 4);
    put(&b, value, type == GGUF_T_UINT64 ? 8 : 4);
    put_tensor_and_data(&b, pad);
    return b;
}

Test(gguf, custom_alignment) {
    Buf b = with_alignment(GGUF_T_UINT32, 256, 256);
    char path[64];
    write_temp(b.b, b.n, path);
    GgufFile g;
    Status st = gguf_open(&g, path);
    unlink(path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    cr_assert_eq(g.alignment, 256);
    cr_assert_eq(g.data_offset, 256);
    float out[32];
    cr_assert_eq(gguf_tensor_to_f32(&g, &g.tensors[0], out), ST_OK);
    for (int i = 0; i < 32; i++) cr_assert_eq(out[i], (float)i);
    gguf_close(&g);
}

Test(gguf, bad_alignment) {
    Buf b = with_alignment(GGUF_T_UINT32, 48, 64);
    expect_failure(b.b, b.n, ST_FORMAT, "general.alignment");
    b = with_alignment(GGUF_T_UINT32, 0, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "general.alignment");
    b = with_alignment(GGUF_T_UINT64, 32, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "general.alignment");
}

Test(gguf, hand_built_bad_values) {
    Buf b;
    // unknown value type
    put_header(&b, 1);
    put_str(&b, "k.unknown");
    put(&b, 13, 4);
    put_tensor_and_data(&b, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "k.unknown");
    // bool that is neither 0 nor 1
    put_header(&b, 1);
    put_str(&b, "k.bool");
    put(&b, GGUF_T_BOOL, 4);
    put(&b, 2, 1);
    put_tensor_and_data(&b, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "k.bool");
    // key with a NUL byte inside
    put_header(&b, 1);
    put(&b, 3, 8);
    memcpy(b.b + b.n, "a\0b", 3);
    b.n += 3;
    put(&b, GGUF_T_UINT8, 4);
    put(&b, 1, 1);
    put_tensor_and_data(&b, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "control byte 0x00");
    // arrays nested 40 deep
    put_header(&b, 1);
    put_str(&b, "k.deep");
    put(&b, GGUF_T_ARRAY, 4);
    for (int i = 0; i < 40; i++) {
        put(&b, GGUF_T_ARRAY, 4);
        put(&b, 1, 8);
    }
    put(&b, GGUF_T_UINT8, 4);
    put(&b, 0, 8);
    put_tensor_and_data(&b, 32);
    expect_failure(b.b, b.n, ST_FORMAT, "k.deep");
    // an empty file
    expect_failure(b.b, 0, ST_FORMAT, "truncated");
}

// Builds a file whose one tensor "w" has the given dims and type (no data check
// is reached when the shape is wrong).
static Buf with_shape(uint32_t n_dims, const uint64_t *ne, uint32_t type) {
    Buf b;
    put_header(&b, 0);
    put_str(&b, "w");
    put(&b, n_dims, 4);
    for (uint32_t d = 0; d < n_dims && d < 8; d++) put(&b, ne[d], 8);
    put(&b, type, 4);
    put(&b, 0, 8);
    b.n = (b.n + 31) / 32 * 32 + 128;
    return b;
}

Test(gguf, hand_built_bad_shapes) {
    uint64_t ne[8] = {32, 1, 1, 1, 1, 1, 1, 1};
    Buf b = with_shape(0, ne, GGML_F32);
    expect_failure(b.b, b.n, ST_FORMAT, "'w'");
    b = with_shape(5, ne, GGML_F32);
    expect_failure(b.b, b.n, ST_FORMAT, "'w'");
    uint64_t zero[2] = {32, 0};
    b = with_shape(2, zero, GGML_F32);
    expect_failure(b.b, b.n, ST_FORMAT, "'w'");
    uint64_t huge[4] = {1ull << 32, 1ull << 32, 1ull << 32, 1};
    b = with_shape(3, huge, GGML_F32);
    expect_failure(b.b, b.n, ST_FORMAT, "'w'");
    uint64_t big[2] = {1ull << 40, 1ull << 20}; // fits in numel, data far past the end
    b = with_shape(2, big, GGML_F32);
    expect_failure(b.b, b.n, ST_FORMAT, "'w'");
    b = with_shape(1, ne, 99);
    expect_failure(b.b, b.n, ST_UNSUPPORTED, "'w'");
}

// Tensors large enough for the OpenMP path decode exactly as block by block.
Test(gguf, large_tensors_parallel) {
    enum { NE0 = 4096, NE1 = 32, N = NE0 * NE1, NB = N / 32 };
    const uint32_t types[3] = {GGML_Q4_1, GGML_Q8_0, GGML_F16};
    const uint64_t bytes[3] = {(uint64_t)NB * 20, (uint64_t)NB * 34, (uint64_t)N * 2};
    size_t header = 24 + 3 * (8 + 2 + 4 + 16 + 4 + 8), size = (header + 31) / 32 * 32;
    uint64_t offsets[3];
    for (int i = 0; i < 3; i++) {
        offsets[i] = size - (header + 31) / 32 * 32;
        size += (bytes[i] + 31) / 32 * 32;
    }
    uint8_t *file = calloc(size, 1);
    Buf *h = calloc(1, sizeof *h);
    put_header(h, 0);
    wr(h->b + 8, 3, 8);
    for (int i = 0; i < 3; i++) {
        char name[3] = {'t', (char)('0' + i), 0};
        put_str(h, name);
        put(h, 2, 4);
        put(h, NE0, 8);
        put(h, NE1, 8);
        put(h, types[i], 4);
        put(h, offsets[i], 8);
    }
    cr_assert_eq(h->n, header);
    memcpy(file, h->b, h->n);
    uint64_t seed = 12345;
    size_t data = (header + 31) / 32 * 32;
    for (size_t i = data; i < size; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        file[i] = (uint8_t)(seed >> 56);
    }
    // keep every f16 finite (exponent bits not all ones) so comparisons are plain
    for (size_t i = data + 1; i < size; i += 2) file[i] &= 0xBF;
    char path[64];
    write_temp(file, size, path);
    GgufFile g;
    Status st = gguf_open(&g, path);
    unlink(path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    float *got = malloc(N * sizeof *got), *want = malloc(N * sizeof *want);
    for (int i = 0; i < 3; i++) {
        const GgufTensorInfo *t = &g.tensors[i];
        cr_assert_eq(gguf_tensor_to_f32(&g, t, got), ST_OK, "%s", status_message());
        const uint8_t *src = g.file.data + t->offset;
        for (int b = 0; b < NB; b++) {
            if (t->type == GGML_Q4_1) gguf_dequant_q4_1(src + b * 20, want + b * 32);
            if (t->type == GGML_Q8_0) gguf_dequant_q8_0(src + b * 34, want + b * 32);
        }
        if (t->type == GGML_F16)
            for (int j = 0; j < N; j++) want[j] = f16_to_f32((uint16_t)rd(src + 2 * j, 2));
        cr_assert_eq(memcmp(got, want, N * sizeof *got), 0, "%s", t->name);
    }
    free(got);
    free(want);
    free(h);
    free(file);
    gguf_close(&g);
}

// ---------------------------------------------------------------------------
// Mutated copies of the fixture

Test(gguf, truncated) {
    Fixture f;
    fixture_load(&f);
    const KvField *str_array = fixture_kv(&f, "test.str_array");
    const TensorField *q4_1 = fixture_tensor(&f, "q4_1");
    expect_failure(f.bytes, 2, ST_FORMAT, "truncated GGUF header");  // magic
    expect_failure(f.bytes, 20, ST_FORMAT, "truncated GGUF header"); // counts
    // in the key-values, the 16 tensor infos (at least 32 bytes each) cannot fit in what is left
    expect_failure(f.bytes, str_array->value_off + 30, ST_FORMAT, "claims 16 tensor infos");
    // ... so, to see where the reader stopped, claim no tensors (13 key-values fit after 169 bytes)
    uint8_t *b = fixture_copy(&f);
    wr(b + 8, 0, 8);
    const KvField *string = fixture_kv(&f, "test.string"); // the 11th
    expect_failure(b, string->len_off + 12, ST_FORMAT, "reading key-value 11 of 13)");
    expect_failure(b, str_array->value_off + 30, ST_FORMAT, "test.str_array");
    free(b);
    // in the tensor infos
    expect_failure(f.bytes, q4_1->ne_off + 3, ST_FORMAT,
                   "truncated GGUF header (reading tensor info 11 of 16, 'q4_1')");
    expect_failure(f.bytes, f.header_end, ST_FORMAT, "'f32'");    // no data at all
    // in the data: the last tensor no longer fits
    expect_failure(f.bytes, f.size - 10, ST_FORMAT, "'q8_0_3d.expected'");
    free(f.bytes);
}

// Every strict prefix of the fixture is rejected (the last tensor ends at EOF).
Test(gguf, every_prefix_fails) {
    Fixture f;
    fixture_load(&f);
    char path[64];
    write_temp(f.bytes, f.size, path);
    for (size_t n = 0; n < f.size; n++) {
        cr_assert_eq(truncate(path, (off_t)n), 0);
        GgufFile g;
        status_clear();
        Status st = gguf_open(&g, path);
        cr_assert_eq(st, ST_FORMAT, "prefix of %zu bytes: %s", n, status_message());
        cr_assert_not_null(strstr(status_message(), path), "%s", status_message());
    }
    unlink(path);
    free(f.bytes);
}

Test(gguf, bad_magic_and_version) {
    Fixture f;
    fixture_load(&f);
    uint8_t *b = fixture_copy(&f);
    b[0] = 'X';
    expect_failure(b, f.size, ST_FORMAT, "not a GGUF file");
    b[0] = 'G';
    wr(b + 4, 1, 4);
    expect_failure(b, f.size, ST_UNSUPPORTED, "version 1");
    wr(b + 4, 4, 4);
    expect_failure(b, f.size, ST_UNSUPPORTED, "version 4");
    wr(b + 4, 0x03000000u, 4);
    expect_failure(b, f.size, ST_UNSUPPORTED, "big-endian");
    wr(b + 4, 2, 4); // version 2 has the same layout
    char path[64];
    write_temp(b, f.size, path);
    GgufFile g;
    Status st = gguf_open(&g, path);
    unlink(path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    cr_assert_eq(g.version, 2);
    gguf_close(&g);
    free(b);
    free(f.bytes);
}

Test(gguf, huge_counts) {
    Fixture f;
    fixture_load(&f);
    uint8_t *b = fixture_copy(&f);
    wr(b + 8, 1ull << 62, 8);
    expect_failure(b, f.size, ST_FORMAT, "claims 4611686018427387904 tensor infos");
    wr(b + 8, f.n_tensors, 8);
    wr(b + 16, UINT64_MAX, 8);
    expect_failure(b, f.size, ST_FORMAT, "claims 18446744073709551615 key-values");
    wr(b + 16, f.n_kv, 8);
    // a key's length
    wr(b + f.kv[2].len_off, UINT64_MAX - 3, 8);
    expect_failure(b, f.size, ST_FORMAT, "string length");
    wr(b + f.kv[2].len_off, strlen(f.kv[2].key), 8);
    // a string value's length
    const KvField *s = fixture_kv(&f, "test.string");
    wr(b + s->value_off, 1ull << 40, 8);
    expect_failure(b, f.size, ST_FORMAT, "test.string");
    wr(b + s->value_off, rd(f.bytes + s->value_off, 8), 8);
    // an array's count
    const KvField *a = fixture_kv(&f, "test.str_array");
    wr(b + a->value_off + 4, 1ull << 61, 8);
    expect_failure(b, f.size, ST_FORMAT, "test.str_array");
    wr(b + a->value_off + 4, 3, 8);
    // a tensor name's length
    const TensorField *t = fixture_tensor(&f, "bf16");
    wr(b + t->len_off, 1ull << 50, 8);
    expect_failure(b, f.size, ST_FORMAT, "string length");
    wr(b + t->len_off, 4, 8);
    cr_assert_eq(memcmp(b, f.bytes, f.size), 0); // every edit undone
    free(b);
    free(f.bytes);
}

Test(gguf, unknown_ggml_type) {
    Fixture f;
    fixture_load(&f);
    uint8_t *b = fixture_copy(&f);
    const TensorField *t = fixture_tensor(&f, "q4_0");
    wr(b + t->type_off, 14, 4);
    expect_failure(b, f.size, ST_UNSUPPORTED, "tensor 'q4_0' has GGML type Q6_K (14)");
    wr(b + t->type_off, 12345, 4);
    expect_failure(b, f.size, ST_UNSUPPORTED, "'q4_0'");
    free(b);
    free(f.bytes);
}

Test(gguf, bad_offsets) {
    Fixture f;
    fixture_load(&f);
    uint8_t *b = fixture_copy(&f);
    const TensorField *f16 = fixture_tensor(&f, "f16"), *f16e = fixture_tensor(&f, "f16.expected");
    // past the end of the file
    wr(b + f16->offset_off, (f.size + 31) / 32 * 32, 8);
    expect_failure(b, f.size, ST_FORMAT, "'f16'");
    wr(b + f16->offset_off, UINT64_MAX - 31, 8); // aligned, and overflows when added
    expect_failure(b, f.size, ST_FORMAT, "'f16'");
    wr(b + f16->offset_off, f16->offset, 8);
    // misaligned
    wr(b + f16->offset_off, f16->offset + 1, 8);
    expect_failure(b, f.size, ST_FORMAT, "'f16'");
    wr(b + f16->offset_off, f16->offset + 16, 8);
    expect_failure(b, f.size, ST_FORMAT, "not a multiple of the alignment");
    wr(b + f16->offset_off, f16->offset, 8);
    // overlapping: f16.expected starts where f16 does; and where f16 is mid-way
    wr(b + f16e->offset_off, f16->offset, 8);
    expect_failure(b, f.size, ST_FORMAT, "'f16'");
    expect_failure(b, f.size, ST_FORMAT, "'f16.expected'");
    wr(b + f16e->offset_off, f16->offset + 32, 8);
    expect_failure(b, f.size, ST_FORMAT, "overlap");
    free(b);
    free(f.bytes);
}

Test(gguf, block_size_and_duplicates) {
    Fixture f;
    fixture_load(&f);
    uint8_t *b = fixture_copy(&f);
    // ne[0] = 48 is not a multiple of Q4_0's block of 32
    const TensorField *q4_0 = fixture_tensor(&f, "q4_0");
    wr(b + q4_0->ne_off, 48, 8);
    expect_failure(b, f.size, ST_FORMAT, "'q4_0'");
    wr(b + q4_0->ne_off, 64, 8);
    // duplicate key: rename test.f32 to test.u32 (same length)
    const KvField *kf = fixture_kv(&f, "test.f32");
    memcpy(b + kf->len_off + 8, "test.u32", 8);
    expect_failure(b, f.size, ST_FORMAT, "duplicate key 'test.u32'");
    memcpy(b + kf->len_off + 8, "test.f32", 8);
    // duplicate tensor name: rename q4_1 to q4_0
    const TensorField *q4_1 = fixture_tensor(&f, "q4_1");
    memcpy(b + q4_1->len_off + 8, "q4_0", 4);
    expect_failure(b, f.size, ST_FORMAT, "'q4_0'");
    free(b);
    free(f.bytes);
}

// ---------------------------------------------------------------------------
// Robustness: single-byte corruptions never crash (also run under ASan+UBSan).

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(gguf, random_byte_flips) {
    Fixture f;
    fixture_load(&f);
    char path[64];
    write_temp(f.bytes, f.size, path);
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int opened = 0;
    for (int i = 0; i < 2000; i++) {
        // three flips in four land in the header, where they matter most
        size_t span = (i % 4 == 3) ? f.size : f.header_end;
        size_t pos = (size_t)(xorshift(&seed) % span);
        uint8_t flipped = f.bytes[pos] ^ (uint8_t)(1 + xorshift(&seed) % 255);
        fseek(fp, (long)pos, SEEK_SET);
        fputc(flipped, fp);
        fflush(fp);
        GgufFile g;
        status_clear();
        Status st = gguf_open(&g, path);
        if (st == ST_OK) {
            opened++;
            for (uint64_t t = 0; t < g.n_tensors; t++) {
                float *out = malloc(gguf_tensor_numel(&g.tensors[t]) * sizeof *out);
                cr_assert_eq(gguf_tensor_to_f32(&g, &g.tensors[t], out), ST_OK);
                free(out);
            }
            gguf_close(&g);
        } else {
            cr_assert_neq(status_message()[0], '\0', "flip %d at %zu: empty message", i, pos);
            cr_assert_not_null(strstr(status_message(), path), "%s", status_message());
        }
        fseek(fp, (long)pos, SEEK_SET);
        fputc(f.bytes[pos], fp);
        fflush(fp);
    }
    fclose(fp);
    unlink(path);
    cr_assert_gt(opened, 0); // flips in tensor data and string bytes are harmless
    free(f.bytes);
}

Test(gguf, missing_file) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, "/tmp/elastilm-no-such-file.gguf"), ST_IO);
    cr_assert_not_null(strstr(status_message(), "/tmp/elastilm-no-such-file.gguf"));
    cr_assert(all_zero(&g, sizeof g));
}
