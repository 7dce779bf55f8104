#include "test_util.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

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

