// Bad checkpoints: every case must fail with one clear message naming the
// file (and the tensor or key), free everything (ASan checks), and make the
// CLI exit with status 1.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/llama.h"
#include "test_util.h"

#define MHA "tests/fixtures/tiny-llama-mha"
#define GQA "tests/fixtures/tiny-llama3-gqa"

// Loads path expecting failure with `code`; the message must contain each needle.
static void expect_load_error(const char *path, Status code, const char *needle1, const char *needle2) {
    LlamaModel m;
    Status st = llama_load(&m, path);
    const char *msg = status_message();
    cr_assert_eq(st, code, "expected %s, got %s: %s", status_name(code), status_name(st), msg);
    if (needle1) cr_expect(strstr(msg, needle1) != NULL, "message lacks '%s': %s", needle1, msg);
    if (needle2) cr_expect(strstr(msg, needle2) != NULL, "message lacks '%s': %s", needle2, msg);
    cr_expect(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
}

// The CLI on the same input: exit status 1 and one line starting "elastilm: ".
static void expect_cli_error(const char *path, const char *needle) {
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s info --model '%s'", tu_bin(), path);
    int rc = tu_run(cmd, out, sizeof out);
    cr_expect_eq(rc, 1, "exit status %d for %s: %s", rc, path, out);
    cr_expect(strncmp(out, "elastilm: ", 10) == 0, "output: %s", out);
    cr_expect(strstr(out, needle) != NULL, "CLI message lacks '%s': %s", needle, out);
    char *nl = strchr(out, '\n');
    cr_expect(nl && nl[1] == '\0', "not exactly one line: %s", out);
}

// A copy of GQA (single model.safetensors) whose model file is replaced by `data`.
static void gqa_with_model_file(char *dir, size_t n, const uint8_t *data, size_t len) {
    tu_copy_dir(GQA, dir, n);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static uint8_t *gqa_model_bytes(size_t *len) { return tu_read_file(GQA "/model.safetensors", len); }

static uint64_t header_len(const uint8_t *p) {
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | p[i];
    return h;
}

// Replaces the first occurrence of `from` in the JSON header by `to` (same length).
static void patch_header(uint8_t *p, const char *from, const char *to) {
    cr_assert_eq(strlen(from), strlen(to));
    uint64_t h = header_len(p);
    char *hdr = (char *)p + 8;
    char *at = memmem(hdr, h, from, strlen(from));
    cr_assert_not_null(at, "'%s' not in header", from);
    memcpy(at, to, strlen(to));
}

static void check_model_bytes(uint8_t *data, size_t len, Status code, const char *needle) {
    char dir[256], file[600];
    gqa_with_model_file(dir, sizeof dir, data, len);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    expect_load_error(dir, code, file, needle);
    expect_cli_error(dir, "model.safetensors");
    tu_remove_dir(dir);
}

Test(bad_input, truncated_data) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    check_model_bytes(p, len - 100, ST_FORMAT, "past the end");
    free(p);
}

Test(bad_input, truncated_before_header_length) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    check_model_bytes(p, 5, ST_FORMAT, "truncated");
    free(p);
}

Test(bad_input, header_length_past_eof) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    uint64_t h = len; // one more than what is there
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(h >> (8 * i));
    check_model_bytes(p, len, ST_FORMAT, "header length");
    free(p);
}

Test(bad_input, malformed_header_json) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    p[8] = '['; // the header object now opens with a bracket
    check_model_bytes(p, len, ST_FORMAT, "malformed header JSON");
    free(p);
}

Test(bad_input, unknown_dtype) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    patch_header(p, "\"BF16\"", "\"XF16\"");
    check_model_bytes(p, len, ST_UNSUPPORTED, "XF16");
    free(p);
}

Test(bad_input, offsets_out_of_range) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    // Two bytes short: the last tensor's end offset is past EOF.
    check_model_bytes(p, len - 2, ST_FORMAT, "past the end of the file");
    free(p);
}

Test(bad_input, overlapping_offsets) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    // Point the first entry's data_offsets at [0, n) of another: rewrite "data_offsets":[X,Y] of
    // the first tensor whose begin is not 0 to begin at 0 by patching digits in place.
    char *hdr = (char *)p + 8;
    uint64_t h = header_len(p);
    char *at = hdr;
    for (;;) {
        at = memmem(at, h - (size_t)(at - hdr), "\"data_offsets\":[", 16);
        cr_assert_not_null(at);
        at += 16;
        if (*at != '0') break;
    }
    // "[A,B]" -> "[0 ...": the JSON keeps its length by padding A's digits with spaces after 0.
    char *comma = strchr(at, ',');
    long a = strtol(at, NULL, 10), b = strtol(comma + 1, NULL, 10);
    long width = b - a;
    char repl[64];
    int rl = snprintf(repl, sizeof repl, "0,%ld", width);
    char *close = strchr(at, ']');
    cr_assert(rl <= close - at, "replacement does not fit");
    memset(at, ' ', (size_t)(close - at));
    memcpy(at, repl, (size_t)rl);
    check_model_bytes(p, len, ST_FORMAT, "overlap");
    free(p);
}

Test(bad_input, size_disagrees_with_shape) {
    size_t len;
    uint8_t *p = gqa_model_bytes(&len);
    patch_header(p, "[256,64]", "[256,65]");
    check_model_bytes(p, len, ST_FORMAT, "data bytes, but shape and dtype need");
    free(p);
}

// A copy of GQA whose config.json has `from` replaced by `to`.
static void gqa_with_config_edit(char *dir, size_t n, const char *from, const char *to) {
    tu_copy_dir(GQA, dir, n);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_replace_in_file(path, from, to);
}

Test(bad_input, shape_disagrees_with_config) {
    char dir[256];
    gqa_with_config_edit(dir, sizeof dir, "\"intermediate_size\": 128", "\"intermediate_size\": 96");
    expect_load_error(dir, ST_FORMAT, "model.layers.0.mlp.gate_proj.weight", "config.json implies [96, 64]");
    expect_cli_error(dir, "gate_proj");
    tu_remove_dir(dir);
}

Test(bad_input, missing_config_key) {
    char dir[256];
    gqa_with_config_edit(dir, sizeof dir, "\"hidden_size\"", "\"hidden_sizeX\"");
    expect_load_error(dir, ST_FORMAT, "config.json", "'hidden_size'");
    expect_cli_error(dir, "hidden_size");
    tu_remove_dir(dir);
}

Test(bad_input, malformed_config_json) {
    char dir[256];
    gqa_with_config_edit(dir, sizeof dir, "\"model_type\": \"llama\",", "\"model_type\": \"llama\" ");
    expect_load_error(dir, ST_FORMAT, "config.json", "malformed JSON");
    expect_cli_error(dir, "config.json");
    tu_remove_dir(dir);
}

Test(bad_input, wrong_type_config_value) {
    char dir[256];
    gqa_with_config_edit(dir, sizeof dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": \"2\"");
    expect_load_error(dir, ST_FORMAT, "config.json", "'num_hidden_layers'");
    tu_remove_dir(dir);
}

Test(bad_input, missing_tensor) {
    char dir[256];
    // Claim three layers: layer 2's tensors do not exist.
    gqa_with_config_edit(dir, sizeof dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_load_error(dir, ST_FORMAT, "missing tensor", "layer 2");
    expect_cli_error(dir, "missing tensor");
    tu_remove_dir(dir);
}

Test(bad_input, missing_shard) {
    char dir[256], path[600];
    tu_copy_dir(MHA, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model-00003-of-00005.safetensors", dir);
    cr_assert_eq(unlink(path), 0);
    expect_load_error(dir, ST_IO, "model-00003-of-00005.safetensors", "cannot open");
    expect_cli_error(dir, "model-00003-of-00005.safetensors");
    tu_remove_dir(dir);
}

Test(bad_input, not_a_model) {
    expect_load_error("tests/fixtures/does-not-exist.gguf", ST_IO, "does-not-exist.gguf", NULL);
    expect_cli_error("tests/fixtures/does-not-exist.gguf", "does-not-exist.gguf");
}

// A GGUF truncated inside its tensor data: the loader names the file.
Test(bad_input, truncated_gguf_model) {
    size_t len;
    uint8_t *p = tu_read_file("tests/fixtures/tiny-llama3-gqa.gguf", &len);
    char path[256];
    tu_write_temp(p, len - 1000, ".gguf", path, sizeof path);
    expect_load_error(path, ST_FORMAT, path, NULL);
    expect_cli_error(path, path);
    unlink(path);
    free(p);
}

// Usage errors exit with 2.
Test(bad_input, cli_usage_errors) {
    const char *bin = tu_bin();
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "%s info --model " GQA " --bogus", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--bogus") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s forward --model " GQA " --ids '1 x 3'", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s forward --model " GQA " --ids '1 999 3'", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "outside the vocabulary") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s generate --model " GQA " --ids '1 2' --steps -3", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s frobnicate", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s forward --ids '1 2'", bin);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
}

// Random single-byte changes in the header of a safetensors file: each either
// opens or fails with a one-line message; never a crash (ASan/UBSan watch).
Test(bad_input, safetensors_header_mutations) {
    size_t len;
    uint8_t *orig = gqa_model_bytes(&len), *p = malloc(len);
    uint64_t h = header_len(orig);
    static const uint8_t values[] = {'"', '[', ']', '{', '}', ',', ':', '-', '9', '0', 0, 0xff, ' ', 'e'};
    uint64_t state = 12345;
    char path[256];
    for (int trial = 0; trial < 400; trial++) {
        memcpy(p, orig, len);
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t at = 8 + (size_t)((state >> 33) % h);
        p[at] = values[(state >> 20) % sizeof values];
        tu_write_temp(p, len, ".safetensors", path, sizeof path);
        SafetensorsFile f;
        Status st = safetensors_open(&f, path);
        if (st == ST_OK) safetensors_close(&f);
        else cr_expect(strlen(status_message()) > 0 && strchr(status_message(), '\n') == NULL, "trial %d", trial);
        unlink(path);
    }
    free(p);
    free(orig);
}
