#include "test_util.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "models/encoder.h"
#include "runtime/mapped_file.h"

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

float tu_max_abs(const float *a, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i]));
    return m;
}

void tu_expect_err(Status st, Status code, const char *n1, const char *n2, const char *n3) {
    const char *msg = status_message();
    cr_assert_eq(st, code, "expected %s, got %s: %s", status_name(code), status_name(st), msg);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) cr_expect(strstr(msg, needles[i]) != NULL, "message lacks '%s': %s", needles[i], msg);
    cr_expect(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
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

void tu_replace_in_file(const char *path, const char *from, const char *to) {
    size_t len;
    char *text = (char *)tu_read_file(path, &len);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "%s: no '%s'", path, from);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "cannot rewrite %s", path);
    fwrite(text, 1, (size_t)(at - text), fp);
    fputs(to, fp);
    fputs(at + strlen(from), fp);
    cr_assert_eq(fclose(fp), 0, "cannot rewrite %s", path);
    free(text);
}

void tu_make_temp_dir(char *buf, size_t n, const char *prefix) {
    int len = snprintf(buf, n, "/tmp/elastilm-%s-XXXXXX", prefix);
    cr_assert(len > 0 && (size_t)len < n, "temp dir name for '%s' does not fit in %zu bytes", prefix, n);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s failed", buf);
}

void tu_copy_dir(const char *src, char *buf, size_t n) {
    tu_make_temp_dir(buf, n, "dir");
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

// nftw callback: removes one entry (files before their directory with FTW_DEPTH).
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

bool tu_remove_dir(const char *dir) {
    static const char temp_prefix[] = "/tmp/elastilm-";
    cr_assert(strncmp(dir, temp_prefix, sizeof temp_prefix - 1) == 0, "refusing to remove %s: not a test temp dir", dir);
    struct stat sb;
    if (lstat(dir, &sb) != 0) return false;
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

void tu_write_byte_tokenizer(const char *path) {
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp, "cannot create %s", path);
    fprintf(fp, "{\"model\": {\"type\": \"BPE\", \"merges\": [], \"vocab\": {");
    for (int b = 0, k = 0; b < 256; b++) { // GPT-2's bytes_to_unicode, written out independently of host/text
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = printable ? b : 256 + k++;
        const char *sep = b ? ", " : "";
        if (cp == '"' || cp == '\\') fprintf(fp, "%s\"\\%c\": %d", sep, cp, b);
        else if (cp < 0x80) fprintf(fp, "%s\"%c\": %d", sep, cp, b);
        else fprintf(fp, "%s\"%c%c\": %d", sep, 0xc0 | (cp >> 6), 0x80 | (cp & 0x3f), b);
    }
    fprintf(fp, "}}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
                " \"decoder\": {\"type\": \"ByteLevel\"}}");
    fclose(fp);
}

void tu_write_file_in(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) { // the parent folders
        *s = '\0';
        mkdir(path, 0777);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
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

char *tu_read_text(const char *path, size_t *len) {
    size_t n;
    uint8_t *d = tu_read_file(path, &n);
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memcpy(s, d, n);
    s[n] = 0;
    free(d);
    if (len) *len = n;
    return s;
}

int tu_train_losses(const char *path, double *out, int cap) {
    char *text = tu_read_text(path, NULL);
    int n = 0;
    char *line = strchr(text, '\n'); // after the header
    while (line && line[1] && n < cap) {
        long step, epoch;
        cr_assert_eq(sscanf(line + 1, "%ld\t%ld\t%lf", &step, &epoch, &out[n]), 3, "%s: %.80s", path, line + 1);
        n++;
        line = strchr(line + 1, '\n');
    }
    free(text);
    return n;
}

void tu_make_tiny_encoder(const char *dir, char *enc, size_t n) { tu_make_tiny_encoder_as(dir, "enc", 64, HEAD_TOKEN, enc, n); }

void tu_make_tiny_encoder_as(const char *dir, const char *name, int max_position, int head, char *enc, size_t n) {
    char *tok;
    size_t len;
    cr_assert_eq(read_file_maybe_gz("tests/fixtures/tokenizers/minilm-tokenizer.json.gz", &tok, &len), ST_OK);
    tu_write_file_in(dir, "tok/tokenizer.json", tok);
    free(tok);
    EncoderConfig c = {.arch = ENC_BERT, .vocab_size = 30522, .dim = 16, .n_layers = 2, .n_heads = 2, .head_dim = 8,
                       .ffn_dim = 32, .max_position = max_position, .type_vocab = 2, .ln_eps = 1e-12f, .act = ACT_GELU,
                       .pooler = head == HEAD_SEQUENCE, .head = head, .num_labels = 2};
    Encoder m;
    cr_assert_eq(encoder_alloc(&m, &c), ST_OK, "%s", status_message());
    encoder_init_random(&m, 0.2f, 7);
    char tok_dir[1024];
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", dir);
    snprintf(enc, n, "%s/%s", dir, name);
    cr_assert_eq(encoder_save_hf(&m, enc, tok_dir), ST_OK, "%s", status_message());
    encoder_free(&m);
}

int tu_run_bin(char *out, size_t n, const char *fmt, ...) {
    char args[4096], cmd[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "ELASTILM_THREADS=1 %s %s", tu_bin(), args);
    return tu_run(cmd, out, n);
}

void tu_logits(const LlamaModel *m, const LlamaView *view, const int32_t *ids, int n_seq, int T, Tensor *out) {
    const Device cpu = {DEV_CPU, 0};
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, m, n_seq, T, cpu), ST_OK, "%s", status_message());
    cr_assert_eq(llama_session_set_view(&s, m, view), ST_OK, "%s", status_message());
    cr_assert_eq(tensor_alloc_2d(out, DT_F32, cpu, (int64_t)n_seq * T, m->cfg.vocab_size), ST_OK);
    cr_assert_eq(llama_forward(m, &s, ids, NULL, T, LOGITS_ALL, out), ST_OK, "%s", status_message());
    llama_session_free(&s);
}

const char *tu_bin(void) {
    const char *b = getenv("ELASTILM_BIN");
    return b ? b : "./elastilm";
}

// ---- tokenizer parity -----------------------------------------------------

#define TOKENIZER_DIR "tests/fixtures/tokenizers/"

// Reads a gzip'd JSON-lines file into an array of parsed values.
static json_t *read_jsonl_gz(const char *path) {
    gzFile f = gzopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    json_t *all = json_array();
    size_t cap = 1 << 16, len = 0;
    char *line = malloc(cap);
    int c;
    while ((c = gzgetc(f)) != -1) {
        if (c != '\n') {
            if (len + 2 > cap) line = realloc(line, cap *= 2);
            line[len++] = (char)c;
            continue;
        }
        json_error_t err;
        json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        cr_assert_not_null(v, "%s: line %zu: %s", path, json_array_size(all) + 1, err.text);
        json_array_append_new(all, v);
        len = 0;
    }
    free(line);
    gzclose(f);
    return all;
}

static bool ids_equal(const TokenList *l, json_t *want) {
    if (json_array_size(want) != l->n) return false;
    for (size_t i = 0; i < l->n; i++)
        if (json_integer_value(json_array_get(want, i)) != l->ids[i]) return false;
    return true;
}

static bool offsets_equal(const TokenList *l, const char *text, json_t *want) {
    if (json_array_size(want) != l->n) return false;
    for (size_t i = 0; i < l->n; i++) {
        json_t *o = json_array_get(want, i);
        if (json_integer_value(json_array_get(o, 0)) != utf8_char_offset(text, l->starts[i]) ||
            json_integer_value(json_array_get(o, 1)) != utf8_char_offset(text, l->ends[i]))
            return false;
    }
    return true;
}

// Compares bytes that may contain NUL with a JSON string.
static bool same_string(const char *s, size_t len, json_t *want) {
    return json_string_length(want) == len && memcmp(json_string_value(want), s, len) == 0;
}

static void print_ids(const char *what, const TokenList *l) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < l->n && i < 40; i++) fprintf(stderr, " %d", l->ids[i]);
    fprintf(stderr, "\n");
}

void tu_check_tokenizer(const Tokenizer *t, const char *name) {
    char path[256];
    json_t *corpus = read_jsonl_gz(TOKENIZER_DIR "corpus.jsonl.gz");
    snprintf(path, sizeof path, TOKENIZER_DIR "%s.golden.jsonl.gz", name);
    json_t *gold = read_jsonl_gz(path);
    cr_assert_eq(json_array_size(corpus), json_array_size(gold), "%s: corpus and golden differ in length", name);
    size_t n = json_array_size(corpus), bad_ids = 0, bad_plain = 0, bad_offsets = 0, bad_decode = 0, bad_skip = 0;
    for (size_t i = 0; i < n; i++) {
        const char *text = json_string_value(json_array_get(corpus, i));
        size_t len = json_string_length(json_array_get(corpus, i));
        json_t *g = json_array_get(gold, i);
        TokenList with, plain;
        cr_assert_eq(tokenizer_encode(t, text, len, true, &with), ST_OK, "%s: string %zu: %s", name, i, status_message());
        cr_assert_eq(tokenizer_encode(t, text, len, false, &plain), ST_OK, "%s: string %zu: %s", name, i, status_message());
        if (!ids_equal(&with, json_object_get(g, "ids"))) bad_ids++;
        if (!ids_equal(&plain, json_object_get(g, "plain"))) {
            if (bad_plain++ < 5) {
                fprintf(stderr, "%s: string %zu ids differ: %.80s\n", name, i, text);
                print_ids("elastilm", &plain);
            }
        } else if (!offsets_equal(&plain, text, json_object_get(g, "offsets")) && bad_offsets++ < 5) {
            fprintf(stderr, "%s: string %zu offsets differ: %.80s\n", name, i, text);
        }
        char *dec = NULL, *skip = NULL;
        size_t dec_len, skip_len;
        cr_assert_eq(tokenizer_decode(t, with.ids, with.n, false, &dec, &dec_len), ST_OK, "%s", status_message());
        cr_assert_eq(tokenizer_decode(t, with.ids, with.n, true, &skip, &skip_len), ST_OK, "%s", status_message());
        if (!same_string(dec, dec_len, json_object_get(g, "decoded")) && bad_decode++ < 5)
            fprintf(stderr, "%s: string %zu decode differs: '%.80s' vs '%.80s'\n", name, i, dec,
                    json_string_value(json_object_get(g, "decoded")));
        if (!same_string(skip, skip_len, json_object_get(g, "decoded_skip"))) bad_skip++;
        free(dec);
        free(skip);
        token_list_free(&with);
        token_list_free(&plain);
    }
    cr_log_info("%s: %zu strings; differing: ids %zu, plain ids %zu, offsets %zu, decode %zu, decode(skip) %zu", name, n,
                bad_ids, bad_plain, bad_offsets, bad_decode, bad_skip);
    cr_expect_eq(bad_ids + bad_plain + bad_offsets + bad_decode + bad_skip, 0, "%s: mismatches against HF", name);
    json_decref(corpus);
    json_decref(gold);
}

// ---- f32 tensors and finite differences ----------------------------------------

static const Device CPU = {DEV_CPU, 0};

Tensor tu_zeros_1d(int64_t n) {
    Tensor t;
    cr_assert_eq(tensor_alloc_1d(&t, DT_F32, CPU, n), ST_OK);
    return t;
}

Tensor tu_zeros_2d(int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    return t;
}

Tensor tu_random_2d(Rng *r, int64_t rows, int64_t cols) {
    Tensor t = tu_zeros_2d(rows, cols);
    for (int64_t i = 0; i < rows * cols; i++) ((float *)t.data)[i] = rng_normal(r);
    return t;
}

Tensor tu_random_1d(Rng *r, int64_t n, float mean, float sd) {
    Tensor t = tu_zeros_1d(n);
    for (int64_t i = 0; i < n; i++) ((float *)t.data)[i] = mean + sd * rng_normal(r);
    return t;
}

static int64_t n_rows(const Tensor *t) { return t->ndim == 2 ? t->shape[0] : 1; }
static int64_t n_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }
int64_t tu_numel(const Tensor *t) { return n_rows(t) * n_cols(t); }

float *tu_elem(const Tensor *t, int64_t i) {
    if (t->ndim == 1) return (float *)t->data + i;
    return tensor_row_f32(t, i / n_cols(t)) + i % n_cols(t);
}

float tu_at(const Tensor *t, int64_t i, int64_t j) { return tensor_row_f32(t, i)[j]; }

void tu_fill(Tensor *t, float v) {
    for (int64_t i = 0; i < tu_numel(t); i++) *tu_elem(t, i) = v;
}

void tu_copy_into(Tensor *dst, const Tensor *src) {
    cr_assert_eq(tu_numel(dst), tu_numel(src));
    for (int64_t i = 0; i < tu_numel(src); i++) *tu_elem(dst, i) = *tu_elem(src, i);
}

Tensor tu_copy_of(const Tensor *t) {
    Tensor c = t->ndim == 1 ? tu_zeros_1d(n_cols(t)) : tu_zeros_2d(n_rows(t), n_cols(t));
    tu_copy_into(&c, t);
    return c;
}

double tu_project(const Tensor *r, const Tensor *y) {
    double s = 0.0;
    for (int64_t i = 0; i < tu_numel(y); i++) s += (double)*tu_elem(r, i) * *tu_elem(y, i);
    return s;
}

void tu_free_tensors(Tensor **all, size_t n) {
    for (size_t i = 0; i < n; i++) tensor_free(all[i]);
}

static double fd_err(double analytic, double numeric) {
    double m = fmax(fmax(fabs(analytic), fabs(numeric)), TU_FD_FLOOR);
    return fabs(analytic - numeric) / m;
}

// (L(x + delta) - L(x - delta)) / 2 for x += s * eps * u, and <grad, delta>,
// with delta the perturbation as stored. u[i] = 0 leaves element i alone.
static void fd_pair(TuLossFn loss, void *ctx, Tensor *x, const Tensor *grad, const float *u, double *analytic,
                    double *numeric) {
    int64_t n = tu_numel(x);
    float *x0 = malloc((size_t)n * sizeof(float)), *xp = malloc((size_t)n * sizeof(float));
    cr_assert(x0 && xp);
    for (int64_t i = 0; i < n; i++) x0[i] = *tu_elem(x, i);
    for (int64_t i = 0; i < n; i++) *tu_elem(x, i) = xp[i] = x0[i] + TU_FD_EPS * u[i];
    double lp = loss(ctx);
    for (int64_t i = 0; i < n; i++) *tu_elem(x, i) = x0[i] - TU_FD_EPS * u[i];
    double lm = loss(ctx);
    double a = 0.0;
    for (int64_t i = 0; i < n; i++) {
        a += (double)*tu_elem(grad, i) * ((double)xp[i] - (double)*tu_elem(x, i)) / 2.0;
        *tu_elem(x, i) = x0[i];
    }
    *analytic = a;
    *numeric = (lp - lm) / 2.0;
    free(x0);
    free(xp);
}

double tu_fd_check(const char *what, TuLossFn loss, void *ctx, Tensor *x, const Tensor *grad, Rng *rng) {
    int64_t n = tu_numel(x);
    cr_assert_eq(tu_numel(grad), n, "%s: gradient shape", what);
    float *u = calloc((size_t)n, sizeof(float));
    cr_assert(u);
    double a, num, worst;
    for (int64_t i = 0; i < n; i++) u[i] = rng_normal(rng);
    fd_pair(loss, ctx, x, grad, u, &a, &num);
    worst = fd_err(a, num);
    cr_expect(fd_err(a, num) <= TU_FD_REL, "%s: direction: analytic %.6g numeric %.6g", what, a / TU_FD_EPS,
              num / TU_FD_EPS);
    for (int c = 0; c < TU_FD_COORDS; c++) {
        memset(u, 0, (size_t)n * sizeof(float));
        int64_t i = (int64_t)rng_below(rng, (uint64_t)n);
        u[i] = 1.0f;
        fd_pair(loss, ctx, x, grad, u, &a, &num);
        cr_expect(fd_err(a, num) <= TU_FD_REL, "%s: element %ld: analytic %.6g numeric %.6g", what, (long)i,
                  a / TU_FD_EPS, num / TU_FD_EPS);
        worst = fmax(worst, fd_err(a, num));
    }
    free(u);
    cr_log_info("fd %s: max relative error %.2e", what, worst);
    return worst;
}

void tu_expect_doubled(const char *what, const Tensor *once, const Tensor *twice) {
    double largest = 0;
    for (int64_t i = 0; i < tu_numel(once); i++) {
        double a = *tu_elem(once, i), b = *tu_elem(twice, i);
        largest = fmax(largest, fabs(a));
        cr_expect_float_eq(b, 2 * a, 1e-5 * (1 + fabs(a)), "%s element %ld: once %g twice %g", what, (long)i, a, b);
    }
    cr_expect(largest > 0.1, "%s: the gradient is not trivially zero", what);
}

double tu_embedding_loss(void *ctx) {
    TuEmbeddingCase *c = ctx;
    op_embedding(&c->out, &c->table, c->ids);
    return tu_project(&c->r, &c->out);
}

void tu_attn_case_init(TuAttnCase *c, Rng *rng, const int *lens, int n_seq, int H, int KV, int hd, bool bidir) {
    cr_assert(n_seq < (int)(sizeof c->cu / sizeof *c->cu), "at most %zu sequences", sizeof c->cu / sizeof *c->cu - 1);
    memset(c, 0, sizeof *c);
    for (int b = 0; b < n_seq; b++) c->cu[b + 1] = c->cu[b] + lens[b];
    int N = c->cu[n_seq];
    c->s = (VarlenShape){
        .cu = c->cu, .n_seq = n_seq, .n_heads = H, .n_kv_heads = KV, .head_dim = hd, .bidirectional = bidir};
    c->qb = tu_random_2d(rng, N, (H + 1) * hd);
    c->kb = tu_random_2d(rng, N, (KV + 1) * hd);
    c->vb = tu_random_2d(rng, N, KV * hd + 3);
    c->q = tensor_cols(&c->qb, 0, H * hd);
    c->k = tensor_cols(&c->kb, 0, KV * hd);
    c->v = tensor_cols(&c->vb, 0, KV * hd);
    c->out = tu_zeros_2d(N, H * hd);
    c->lse = tu_zeros_2d(H, N);
    c->r = tu_random_2d(rng, N, H * hd);
    c->dq = tu_zeros_2d(N, H * hd);
    c->dk = tu_zeros_2d(N, KV * hd);
    c->dv = tu_zeros_2d(N, KV * hd);
}

void tu_attn_case_free(TuAttnCase *c) {
    TU_FREE_ALL(&c->qb, &c->kb, &c->vb, &c->out, &c->lse, &c->r, &c->dq, &c->dk, &c->dv);
}

void tu_attn_backward(TuAttnCase *c) {
    op_attention_varlen(&c->out, &c->lse, &c->q, &c->k, &c->v, &c->s);
    op_attention_varlen_backward(&c->dq, &c->dk, &c->dv, &c->r, &c->q, &c->k, &c->v, &c->out, &c->lse, &c->s);
}

static double attn_loss(void *ctx) {
    TuAttnCase *c = ctx;
    op_attention_varlen(&c->out, NULL, &c->q, &c->k, &c->v, &c->s);
    return tu_project(&c->r, &c->out);
}

void tu_attn_fd_case(TuAttnCase *c, const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed,
                     bool bidir) {
    Rng rng;
    rng_seed(&rng, seed);
    tu_attn_case_init(c, &rng, lens, n_seq, H, KV, 8, bidir);
    tu_attn_backward(c);
    char what[80];
    snprintf(what, sizeof what, "%s dq", name);
    tu_fd_check(what, attn_loss, c, &c->q, &c->dq, &rng);
    snprintf(what, sizeof what, "%s dk", name);
    tu_fd_check(what, attn_loss, c, &c->k, &c->dk, &rng);
    snprintf(what, sizeof what, "%s dv", name);
    tu_fd_check(what, attn_loss, c, &c->v, &c->dv, &rng);
}

void tu_attn_expect_accumulates(const char *name, TuAttnCase *c) {
    Tensor dq1 = tu_copy_of(&c->dq), dk1 = tu_copy_of(&c->dk), dv1 = tu_copy_of(&c->dv);
    tu_attn_backward(c);
    char what[80];
    snprintf(what, sizeof what, "%s dq", name);
    tu_expect_doubled(what, &dq1, &c->dq);
    snprintf(what, sizeof what, "%s dk", name);
    tu_expect_doubled(what, &dk1, &c->dk);
    snprintf(what, sizeof what, "%s dv", name);
    tu_expect_doubled(what, &dv1, &c->dv);
    TU_FREE_ALL(&dq1, &dk1, &dv1);
}

// ---- a tiny .tiktoken file ------------------------------------------------------

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64(const unsigned char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        out[o++] = B64[w >> 18 & 63];
        out[o++] = B64[w >> 12 & 63];
        out[o++] = i + 1 < n ? B64[w >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? B64[w & 63] : '=';
    }
    out[o] = '\0';
}

const char *tu_tiny_tiktoken(int skip_byte, const char *extra, char *path, size_t n) {
    static char text[16384];
    size_t o = 0;
    char enc[16];
    for (int b = 0; b < 256; b++) {
        if (b == skip_byte) continue;
        unsigned char c = (unsigned char)b;
        b64(&c, 1, enc);
        o += (size_t)snprintf(text + o, sizeof text - o, "%s %d\n", enc, b);
    }
    o += (size_t)snprintf(text + o, sizeof text - o, "YWE= 256\nYWFh 257\n%s", extra ? extra : "");
    return tu_write_temp(text, o, ".tiktoken", path, n);
}

// ---- a tiny LLM folder and predictions files ------------------------------------------

void tu_make_byte_llm(const char *dir, const char *name, char *out, size_t n) {
    snprintf(out, n, "%s/%s", dir, name);
    cr_assert(mkdir(out, 0777) == 0 || errno == EEXIST, "%s: cannot create", out);
    const char *files[] = {"config.json", "generation_config.json", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char from[256], to[1200];
        snprintf(from, sizeof from, "tests/fixtures/tiny-llama3-gqa/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", out, files[i]);
        size_t len;
        uint8_t *d = tu_read_file(from, &len);
        FILE *fp = fopen(to, "wb");
        cr_assert_not_null(fp, "%s", to);
        cr_assert_eq(fwrite(d, 1, len, fp), len);
        fclose(fp);
        free(d);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", out);
    tu_write_byte_tokenizer(path);
}

void tu_make_byte_llm_artifact(const char *dir, char *llm, size_t nl, char *art, size_t na) {
    static char out[16384];
    tu_make_byte_llm(dir, "llm", llm, nl);
    cr_assert((size_t)snprintf(art, na, "%s/art.h5", dir) < na, "artifact path too long");
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "elasticize --model %s --calib tests/fixtures/train/text.txt --samples 4 --seq 16 "
                            "--keep 0 --out %s --quiet",
                            llm, art),
                 0, "%s", out);
}

int tu_pred_scores(const char *path, double *out, int cap) {
    size_t len;
    char *t = tu_read_text(path, &len);
    int n = 0;
    for (char *p = t; (p = strstr(p, "\"scores\": [")) != NULL;) {
        p += 11;
        while (*p && *p != ']' && n < cap) {
            out[n++] = strtod(p, &p);
            if (*p == ',') p++;
        }
    }
    free(t);
    return n;
}
