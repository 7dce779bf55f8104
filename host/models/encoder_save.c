// An encoder as a Hugging Face directory: config.json (the architecture of its
// head), model.safetensors (f32, "bert."/"mobilebert."-prefixed body, bare head, as
// save_pretrained writes a *ForTokenClassification / *ForSequenceClassification)
// and the tokenizer files, written into DIR.tmp and renamed into place.
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder_internal.h"
#include "io/safetensors.h"
#include "runtime/mapped_file.h"

static const char *arch_name(const EncoderConfig *c) {
    bool mb = c->arch == ENC_MOBILEBERT;
    switch (c->head) {
    case HEAD_TOKEN: return mb ? "MobileBertForTokenClassification" : "BertForTokenClassification";
    case HEAD_SEQUENCE: return mb ? "MobileBertForSequenceClassification" : "BertForSequenceClassification";
    default: return mb ? "MobileBertModel" : "BertModel";
    }
}

// config.json text; pooler: whether the weights written with it hold the pooler.
static Status config_text(const Encoder *m, bool pooler, char **out) {
    const EncoderConfig *c = &m->cfg;
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", arch_name(c)));
    json_object_set_new(j, "model_type", json_string(c->arch == ENC_BERT ? "bert" : "mobilebert"));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "intermediate_size", json_integer(c->ffn_dim));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_position));
    json_object_set_new(j, "type_vocab_size", json_integer(c->type_vocab));
    json_object_set_new(j, "layer_norm_eps", json_real(c->ln_eps));
    json_object_set_new(j, "hidden_act", json_string(c->act == ACT_RELU ? "relu" : "gelu"));
    json_object_set_new(j, "pad_token_id", json_integer(c->pad_token_id));
    json_object_set_new(j, "position_embedding_type", json_string("absolute"));
    json_object_set_new(j, "hidden_dropout_prob", json_real(c->arch == ENC_MOBILEBERT ? 0.0 : 0.1));
    json_object_set_new(j, "attention_probs_dropout_prob", json_real(0.1));
    json_object_set_new(j, "classifier_dropout", json_null());
    json_object_set_new(j, "initializer_range", json_real(0.02));
    json_object_set_new(j, "torch_dtype", json_string("float32"));
    json_object_set_new(j, "use_cache", json_true());
    if (c->arch == ENC_MOBILEBERT) {
        json_object_set_new(j, "embedding_size", json_integer(c->embedding_size));
        json_object_set_new(j, "intra_bottleneck_size", json_integer(c->inner));
        json_object_set_new(j, "true_hidden_size", json_integer(c->inner));
        json_object_set_new(j, "use_bottleneck", json_boolean(c->use_bottleneck));
        json_object_set_new(j, "num_feedforward_networks", json_integer(c->n_ffn));
        json_object_set_new(j, "trigram_input", json_boolean(c->trigram));
        json_object_set_new(j, "key_query_shared_bottleneck", json_boolean(c->kq_shared_bottleneck));
        json_object_set_new(j, "use_bottleneck_attention", json_boolean(c->use_bottleneck_attention));
        json_object_set_new(j, "normalization_type", json_string(c->no_norm ? "no_norm" : "layer_norm"));
        json_object_set_new(j, "classifier_activation", json_boolean(c->pooler));
    }
    if (c->head != HEAD_NONE) {
        json_t *id2label = json_object(), *label2id = json_object();
        for (int i = 0; i < c->num_labels; i++) {
            char id[16], label[32];
            snprintf(id, sizeof id, "%d", i);
            snprintf(label, sizeof label, "LABEL_%d", i);
            json_object_set_new(id2label, id, json_string(label));
            json_object_set_new(label2id, label, json_integer(i));
        }
        json_object_set_new(j, "id2label", id2label);
        json_object_set_new(j, "label2id", label2id);
    }
    json_object_set_new(j, "elastilm_pooler", json_boolean(pooler));
    if (c->n_groups) {
        json_t *g = json_array();
        for (int i = 0; i < c->n_groups; i++) json_array_append_new(g, json_integer(c->group_size[i]));
        json_object_set_new(j, "elastilm_label_groups", g);
    }
    *out = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    return *out ? ST_OK : status_fail(ST_OOM, "out of memory");
}

Status encoder_config_json(const Encoder *m, char **out) { return config_text(m, m->cfg.pooler, out); }

// transformers' Bert/MobileBertForTokenClassification have no pooler: a saved token head leaves it
// out (rather than have transformers report it unexpected).
static bool saves_pooler(const Encoder *m) { return m->cfg.pooler && m->cfg.head != HEAD_TOKEN; }

static Status write_config(const Encoder *m, const char *path) {
    char *text;
    TRY(config_text(m, saves_pooler(m), &text));
    Status st = write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static Status write_weights(const Encoder *m, const char *path) {
    int n = encoder_params((Encoder *)m, NULL);
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    char **names = calloc((size_t)n, sizeof *names);
    Tensor *ts = calloc((size_t)n, sizeof *ts);
    Status st = ps && names && ts ? ST_OK : status_fail(ST_OOM, "out of memory");
    const char *prefix = m->cfg.head == HEAD_NONE ? "" : m->cfg.arch == ENC_BERT ? "bert." : "mobilebert.";
    if (st == ST_OK) encoder_params((Encoder *)m, ps);
    bool skip_pooler = !saves_pooler(m);
    int k = 0;
    for (int i = 0; st == ST_OK && i < n; i++) {
        if (skip_pooler && strncmp(ps[i].name, "pooler.", 7) == 0) continue;
        bool head = strncmp(ps[i].name, "classifier.", 11) == 0;
        names[k] = malloc(strlen(prefix) + strlen(ps[i].name) + 1);
        if (!names[k]) {
            st = status_fail(ST_OOM, "out of memory");
            break;
        }
        sprintf(names[k], "%s%s", head ? "" : prefix, ps[i].name);
        ts[k++] = *ps[i].t;
    }
    if (st == ST_OK) st = safetensors_write(path, (const char *const *)names, ts, (size_t)k);
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names), free(ts), free(ps);
    return st;
}

static Status copy_file(const char *src, const char *dst) {
    MappedFile f;
    TRY(mapped_file_open(&f, src));
    Status st = write_file_atomic(dst, f.data ? f.data : (const uint8_t *)"", f.size);
    mapped_file_close(&f);
    return st;
}

static const char *const tok_files[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                        "special_tokens_map.json"};

// Whether a file name is one encoder_save_hf writes.
static bool ours(const char *name) {
    if (strcmp(name, "config.json") == 0 || strcmp(name, "model.safetensors") == 0) return true;
    for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files; i++)
        if (strcmp(name, tok_files[i]) == 0) return true;
    return false;
}

// The first entry of dir that is not a file encoder_save_hf writes ("" when none).
static void foreign_entry(const char *dir, char *buf, size_t n) {
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || ours(e->d_name)) continue;
        snprintf(buf, n, "%s", e->d_name);
        break;
    }
    closedir(d);
}

// Removes a directory this code wrote (its own files only, then the directory if empty).
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d))) {
        if (!ours(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

Status encoder_save_hf(const Encoder *m, const char *dir, const char *tok_dir) {
    if (m->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "encoder_save_hf: the model must be on the CPU");
    if (strlen(dir) > 3000) return status_fail(ST_USAGE, "%s: path too long", dir);
    char tmp[3100], old[3100], path[3300], foreign[256];
    struct stat sb;
    bool had = stat(dir, &sb) == 0;
    if (had) { // only a directory that holds a saved encoder (or nothing) is replaced
        if (!S_ISDIR(sb.st_mode)) return status_fail(ST_USAGE, "%s: exists and is not a directory", dir);
        foreign_entry(dir, foreign, sizeof foreign);
        if (foreign[0])
            return status_fail(ST_USAGE, "%s: exists and holds '%s', which a saved encoder does not; not replacing it",
                               dir, foreign);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    snprintf(old, sizeof old, "%s.old", dir);
    remove_dir(tmp);
    if (mkdir(tmp, 0777) != 0) return status_fail(ST_IO, "%s: cannot create: %s", tmp, strerror(errno));
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    Status st = write_weights(m, path);
    if (st == ST_OK) {
        snprintf(path, sizeof path, "%s/config.json", tmp);
        st = write_config(m, path);
    }
    for (size_t i = 0; st == ST_OK && tok_dir && i < sizeof tok_files / sizeof *tok_files; i++) {
        char src[3300];
        snprintf(src, sizeof src, "%s/%s", tok_dir, tok_files[i]);
        if (access(src, F_OK) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", tmp, tok_files[i]);
        st = copy_file(src, path);
    }
    if (st != ST_OK) {
        remove_dir(tmp);
        return st;
    }
    // an existing directory is moved aside first, then dropped (it held a model written here, or nothing)
    if (had) {
        remove_dir(old);
        if (rename(dir, old) != 0) {
            remove_dir(tmp);
            return status_fail(ST_IO, "%s: cannot move the old directory aside: %s", dir, strerror(errno));
        }
    }
    if (rename(tmp, dir) != 0) {
        int e = errno;
        if (had) rename(old, dir);
        remove_dir(tmp);
        return status_fail(ST_IO, "%s: cannot rename %s into place: %s", dir, tmp, strerror(e));
    }
    if (had) remove_dir(old);
    return ST_OK;
}
