// The TLM in the artifact (tlm/score) and from HF directories.
#include "tlm_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/h5.h"
#include "runtime/mapped_file.h"


Status tlm_store_save(const char *artifact, const char *group, Encoder *m, const char *tok_dir, const char *info) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", tok_dir);
    char *tok_json;
    TRY(read_text_file(path, &tok_json, NULL));
    Status st = tlm_store_save_text(artifact, group, m, tok_json, info);
    free(tok_json);
    return st;
}

Status tlm_store_save_text(const char *artifact, const char *group, Encoder *m, const char *tok_json, const char *info) {
    char *config = NULL;
    Status st = encoder_config_json(m, &config);
    int n = encoder_params(m, NULL);
    EncoderParam *ps = malloc((size_t)(n ? n : 1) * sizeof *ps);
    float *host = NULL;
    if (st == ST_OK && !ps) st = status_fail(ST_OOM, "out of memory");
    H5Store *f = NULL;
    if (st == ST_OK) st = h5_open_update(&f, artifact);
    if (st == ST_OK) st = h5_delete(f, group);
    if (st == ST_OK) st = h5_make_group(f, group);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "config", config);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "tokenizer", tok_json);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "info", info ? info : "");
    if (st == ST_OK) encoder_params(m, ps);
    for (int i = 0; st == ST_OK && i < n; i++) {
        const Tensor *t = ps[i].t;
        int64_t numel = tensor_numel(t);
        float *buf = realloc(host, (size_t)numel * sizeof *buf);
        if (!buf) {
            st = status_fail(ST_OOM, "out of memory");
            break;
        }
        host = buf;
        Tensor v = *t;
        if (v.ndim == 1) v = tensor_reshape(t, 2, (int64_t[]){1, numel});
        op_copy_to_host(host, &v);
        char name[256];
        snprintf(name, sizeof name, "%s/%s", group, ps[i].name);
        st = h5_write_f32(f, name, t->ndim, t->shape, host);
    }
    if (st == ST_OK) st = h5_commit(f);
    else h5_close(f);
    free(host), free(ps), free(config);
    return st;
}

Status tlm_store_load(const char *artifact, const char *group, Encoder *m, Tokenizer **tok) {
    memset(m, 0, sizeof *m);
    *tok = NULL;
    H5Store *f;
    TRY(h5_open_read(&f, artifact));
    char *tok_json = NULL, *config = NULL;
    EncoderConfig c;
    Status st = ST_OK;
    if (!h5_exists(f, group))
        st = status_fail(ST_FORMAT, "%s: no %s group (train one with `elastilm tlm %s --artifact`)", artifact, group,
                         strcmp(group, TLM_SCORE_GROUP) ? "decision" : "score");
    if (st == ST_OK) st = h5_get_attr_str(f, group, "config", &config);
    if (st == ST_OK) st = h5_get_attr_str(f, group, "tokenizer", &tok_json);
    char what[4200];
    snprintf(what, sizeof what, "%s: %s config", artifact, group);
    if (st == ST_OK) st = encoder_config_parse(&c, config, what);
    if (st == ST_OK) st = encoder_alloc(m, &c);
    bool alloc = st == ST_OK;
    int n = alloc ? encoder_params(m, NULL) : 0;
    EncoderParam *ps = malloc((size_t)(n ? n : 1) * sizeof *ps);
    if (st == ST_OK && !ps) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) encoder_params(m, ps);
    for (int i = 0; st == ST_OK && i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s/%s", group, ps[i].name);
        st = h5_read_f32_into(f, name, ps[i].t->ndim, ps[i].t->shape, ps[i].t->data);
    }
    snprintf(what, sizeof what, "%s: %s tokenizer", artifact, group);
    if (st == ST_OK) st = tokenizer_load_json_text(tok, tok_json, strlen(tok_json), what);
    free(ps), free(config), free(tok_json);
    h5_close(f);
    if (st != ST_OK && alloc) encoder_free(m);
    return st;
}

Status tlm_check_vocab(const Encoder *m, const Tokenizer *tok, const char *what) {
    if (strcmp(tokenizer_kind(tok), "WordPiece"))
        return status_fail(ST_FORMAT, "%s: the tokenizer is %s; the TLM needs the encoder's WordPiece vocabulary", what,
                           tokenizer_kind(tok));
    if (tokenizer_vocab_size(tok) > m->cfg.vocab_size)
        return status_fail(ST_FORMAT, "%s: the tokenizer has %d tokens but the model's embedding only %d rows (another "
                           "model's tokenizer?)", what, tokenizer_vocab_size(tok), m->cfg.vocab_size);
    return ST_OK;
}

Status tlm_open(const char *path, Encoder *m, Tokenizer **tok) {
    struct stat sb;
    if (stat(path, &sb) != 0) return status_fail(ST_IO, "%s: no such file or directory", path);
    Status st;
    if (!S_ISDIR(sb.st_mode)) st = tlm_store_load(path, TLM_SCORE_GROUP, m, tok);
    else {
        TRY(encoder_load(m, path));
        st = tokenizer_load_for_model(tok, path);
        if (st != ST_OK) {
            encoder_free(m);
            return st;
        }
    }
    if (st == ST_OK && (st = tlm_check_vocab(m, *tok, path)) != ST_OK) {
        tokenizer_free(*tok);
        *tok = NULL;
        encoder_free(m);
    }
    return st;
}
