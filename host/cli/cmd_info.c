// elastilm info: what a checkpoint holds.
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "models/llama.h"
#include "runtime/device.h"

// The tokenizer kind of an HF directory's tokenizer.json ("" when absent).
static void hf_tokenizer_kind(const char *dir, char *buf, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    buf[0] = '\0';
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    fclose(fp);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        snprintf(buf, n, "unreadable tokenizer.json (line %d: %s)", err.line, err.text);
        return;
    }
    json_t *model = json_object_get(root, "model"), *pre = json_object_get(root, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(model, "type"));
    bool byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    char *pre_text = pre ? json_dumps(pre, JSON_COMPACT) : NULL;
    bool byte_level = pre_text && strstr(pre_text, "\"ByteLevel\"");
    free(pre_text);
    if (!type) snprintf(buf, n, "tokenizer.json without model.type");
    else if (strcmp(type, "BPE") == 0 && byte_level) snprintf(buf, n, "byte-level BPE (tokenizer.json)");
    else if (strcmp(type, "BPE") == 0 && byte_fallback) snprintf(buf, n, "SentencePiece-style BPE with byte fallback (tokenizer.json)");
    else snprintf(buf, n, "%s (tokenizer.json)", type);
    json_decref(root);
}

static const char *rope_desc(const LlamaConfig *c, char *buf, size_t n) {
    const RopeScaling *r = &c->rope_scaling;
    switch (r->type) {
    case ROPE_DEFAULT: snprintf(buf, n, "none"); break;
    case ROPE_LINEAR: snprintf(buf, n, "linear, factor %g", r->factor); break;
    case ROPE_LLAMA3:
        snprintf(buf, n, "llama3, factor %g, low/high freq factor %g/%g, original context %d", r->factor,
                 r->low_freq_factor, r->high_freq_factor, r->original_max_position);
        break;
    case ROPE_FREQ_FACTORS: snprintf(buf, n, "per-frequency factors (GGUF rope_freqs.weight)"); break;
    }
    return buf;
}

int cmd_info(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS};
    int n = CLI_N_COMMON;
    Status st = args_parse(argc, argv, opts, n, "info");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("info", "Prints a checkpoint's configuration, parameter count, dtypes and tokenizer kind.", opts, n);
        return 0;
    }
    Device dev;
    if ((st = cli_setup(opts, n, &dev)) != ST_OK) return cli_fail(st);
    const char *path = args_get(opts, n, "model");
    LlamaModel m;
    if ((st = llama_load(&m, path)) != ST_OK) return cli_fail(st);
    if ((st = llama_convert_weights(&m, cli_weights())) != ST_OK) { // --weights: what the matrices take in memory
        llama_free(&m);
        return cli_fail(st);
    }
    const LlamaConfig *c = &m.cfg;
    char buf[256], tok[256];
    if (m.format == FORMAT_HF) hf_tokenizer_kind(path, tok, sizeof tok);
    else snprintf(tok, sizeof tok, "%s", m.tokenizer_kind);
    printf("model:            %s\n", path);
    printf("format:           %s\n", m.format == FORMAT_HF ? "Hugging Face safetensors" : "GGUF");
    printf("stored dtypes:    %s (computed in f32 on the CPU)\n", m.source_dtype);
    printf("architecture:     llama (%s)\n", c->n_kv_heads == c->n_heads ? "MHA" : "GQA");
    printf("vocab_size:       %d\n", c->vocab_size);
    printf("hidden_size:      %d\n", c->dim);
    printf("intermediate:     %d\n", c->ffn_dim);
    printf("layers:           %d\n", c->n_layers);
    printf("heads:            %d (kv heads %d, head_dim %d)\n", c->n_heads, c->n_kv_heads, c->head_dim);
    printf("max_position:     %d\n", c->max_position);
    printf("rms_norm_eps:     %g\n", c->rms_eps);
    printf("rope_theta:       %g\n", c->rope_theta);
    printf("rope_scaling:     %s\n", rope_desc(c, buf, sizeof buf));
    printf("tied embeddings:  %s\n", c->tie_embeddings ? "yes" : "no");
    printf("bos/eos ids:      %d/%d\n", c->bos_token_id, c->eos_token_id);
    printf("parameters:       %lld\n", (long long)llama_param_count(&m));
    printf("weights:          %s on the CPU, %.1f MB in memory\n", llama_weights_name(llama_weights_dtype(&m)),
           llama_weights_bytes(&m) / 1e6);
    printf("tokenizer:        %s\n", tok[0] ? tok : "none");
    int ndev = device_count();
    printf("cuda devices:     %d%s\n", ndev, device_cuda_built() ? "" : " (built without CUDA)");
    printf("running on:       %s\n", device_name(dev, buf, sizeof buf));
    llama_free(&m);
    return 0;
}
