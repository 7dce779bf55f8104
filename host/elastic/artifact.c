// The elastic artifact in HDF5.
#include "artifact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5.h"
#include "train/lora_store.h"

void level_name(double level, char *buf, size_t n) { snprintf(buf, n, "%g", level); }

static Status write_all(H5Store *f, const LlamaConfig *c, const Artifact *a) {
    int L = c->n_layers;
    const char *root = "/";
    const char *groups[] = {"model", "calibration", "anchors", "permutation", "importance", "levels"};
    for (int i = 0; i < 6; i++) TRY(h5_make_group(f, groups[i]));
    TRY(h5_set_attr_str(f, root, "format", "elastilm-artifact"));
    TRY(h5_set_attr_i64(f, root, "version", 1));
    TRY(h5_set_attr_str(f, root, "model", a->model));
    int64_t dims[] = {c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab_size};
    const char *dim_names[] = {"n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size"};
    for (int i = 0; i < 7; i++) TRY(h5_set_attr_i64(f, "model", dim_names[i], dims[i]));
    TRY(h5_set_attr_str(f, "calibration", "file", a->calib));
    TRY(h5_set_attr_i64(f, "calibration", "samples", a->samples));
    TRY(h5_set_attr_i64(f, "calibration", "seq", a->seq));
    TRY(h5_set_attr_i64(f, "calibration", "seed", (int64_t)a->seed));
    TRY(h5_set_attr_f64(f, "calibration", "base_loss", a->base_loss));
    int64_t sh[1] = {L};
    if (a->skip_loss) TRY(h5_write_f64(f, "anchors/skip_loss", 1, sh, a->skip_loss));
    int32_t *anchor = malloc((size_t)L * sizeof *anchor);
    if (!anchor) return status_fail(ST_OOM, "out of memory");
    int n_anchor = 0;
    for (int l = 0; l < L; l++)
        if (a->anchor[l]) anchor[n_anchor++] = l;
    int64_t na[1] = {n_anchor};
    Status st = h5_write_i32(f, "anchors/layers", 1, na, anchor);
    free(anchor);
    TRY(st);
    TRY(h5_set_attr_str(f, "permutation", "order", a->order));
    char name[128];
    for (int l = 0; l < L; l++) {
        if (a->anchor[l]) continue;
        int64_t skv[1] = {c->n_kv_heads}, sf[1] = {c->ffn_dim};
        snprintf(name, sizeof name, "permutation/attn/%d", l);
        TRY(h5_write_i32(f, name, 1, skv, a->perm.attn + (size_t)l * c->n_kv_heads));
        snprintf(name, sizeof name, "permutation/ffn/%d", l);
        TRY(h5_write_i32(f, name, 1, sf, a->perm.mlp + (size_t)l * c->ffn_dim));
        if (a->imp.attn) {
            snprintf(name, sizeof name, "importance/attn/%d", l);
            TRY(h5_write_f64(f, name, 1, skv, a->imp.attn + (size_t)l * c->n_kv_heads));
            snprintf(name, sizeof name, "importance/ffn/%d", l);
            TRY(h5_write_f64(f, name, 1, sf, a->imp.mlp + (size_t)l * c->ffn_dim));
        }
    }
    LlamaWidth *w = malloc((size_t)L * sizeof *w);
    int32_t *kv = malloc((size_t)L * sizeof *kv), *ffn = malloc((size_t)L * sizeof *ffn);
    st = w && kv && ffn ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < a->n_levels; i++) {
        level_widths(c, a->anchor, a->levels[i].ratio, w);
        for (int l = 0; l < L; l++) kv[l] = w[l].n_kv, ffn[l] = w[l].ffn;
        char lv[32];
        level_name(a->levels[i].level, lv, sizeof lv);
        snprintf(name, sizeof name, "levels/%s/n_kv", lv);
        st = h5_write_i32(f, name, 1, sh, kv);
        snprintf(name, sizeof name, "levels/%s/ffn", lv);
        if (st == ST_OK) st = h5_write_i32(f, name, 1, sh, ffn);
        snprintf(name, sizeof name, "levels/%s", lv);
        if (st == ST_OK) st = h5_set_attr_f64(f, name, "level", a->levels[i].level);
        if (st == ST_OK) st = h5_set_attr_f64(f, name, "ratio", a->levels[i].ratio);
    }
    free(w), free(kv), free(ffn);
    return st;
}

Status artifact_write(const char *path, const LlamaConfig *c, const Artifact *a) {
    H5Store *f;
    TRY(h5_create(&f, path));
    Status st = write_all(f, c, a);
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

Status artifact_check_model(H5Store *f, const LlamaConfig *c) {
    char *fmt = NULL;
    Status st = h5_get_attr_str(f, "/", "format", &fmt);
    if (st == ST_OK && strcmp(fmt, "elastilm-artifact"))
        st = status_fail(ST_FORMAT, "%s: not an elastilm artifact (format \"%s\")", h5_path(f), fmt);
    free(fmt);
    TRY(st);
    int64_t dims[] = {c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab_size};
    const char *dim_names[] = {"n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size"};
    for (int i = 0; i < 7; i++) {
        int64_t v;
        TRY(h5_get_attr_i64(f, "model", dim_names[i], &v));
        if (v != dims[i])
            return status_fail(ST_FORMAT, "%s: made for a model with %s = %lld, this one has %lld", h5_path(f),
                               dim_names[i], (long long)v, (long long)dims[i]);
    }
    return ST_OK;
}

static Status read_str(H5Store *f, const char *obj, const char *key, char *buf, size_t n) {
    char *s;
    TRY(h5_get_attr_str(f, obj, key, &s));
    snprintf(buf, n, "%s", s);
    free(s);
    return ST_OK;
}

static Status read_all(H5Store *f, const LlamaConfig *c, Artifact *a) {
    int L = c->n_layers;
    TRY(artifact_check_model(f, c));
    TRY(read_str(f, "/", "model", a->model, sizeof a->model));
    TRY(read_str(f, "calibration", "file", a->calib, sizeof a->calib));
    TRY(read_str(f, "permutation", "order", a->order, sizeof a->order));
    int64_t v;
    TRY(h5_get_attr_i64(f, "calibration", "samples", &v));
    a->samples = (int)v;
    TRY(h5_get_attr_i64(f, "calibration", "seq", &v));
    a->seq = (int)v;
    TRY(h5_get_attr_i64(f, "calibration", "seed", &v));
    a->seed = (uint64_t)v;
    TRY(h5_get_attr_f64(f, "calibration", "base_loss", &a->base_loss));
    a->anchor = calloc((size_t)L, 1);
    if (!a->anchor) return status_fail(ST_OOM, "out of memory");
    int64_t sh[1] = {L};
    if (h5_exists(f, "anchors/skip_loss")) {
        a->skip_loss = malloc((size_t)L * sizeof *a->skip_loss);
        if (!a->skip_loss) return status_fail(ST_OOM, "out of memory");
        TRY(h5_read_f64_into(f, "anchors/skip_loss", 1, sh, a->skip_loss));
    }
    int64_t na[1];
    int32_t *layers;
    TRY(h5_read_i32(f, "anchors/layers", 1, na, &layers));
    for (int64_t i = 0; i < na[0]; i++) {
        if (layers[i] < 0 || layers[i] >= L) {
            free(layers);
            return status_fail(ST_FORMAT, "%s: anchor layer %d outside the model's %d layers", h5_path(f), layers[i], L);
        }
        a->anchor[layers[i]] = 1;
    }
    free(layers);
    TRY(permutation_random(L, c->n_kv_heads, c->ffn_dim, NULL, 0, &a->perm)); // allocation; overwritten below
    for (int l = 0; l < L; l++) {
        int32_t *pa = a->perm.attn + (size_t)l * c->n_kv_heads, *pf = a->perm.mlp + (size_t)l * c->ffn_dim;
        for (int i = 0; i < c->n_kv_heads; i++) pa[i] = i;
        for (int i = 0; i < c->ffn_dim; i++) pf[i] = i;
        if (a->anchor[l]) continue;
        char name[128];
        int64_t skv[1] = {c->n_kv_heads}, sf[1] = {c->ffn_dim};
        snprintf(name, sizeof name, "permutation/attn/%d", l);
        TRY(h5_read_i32_into(f, name, 1, skv, pa));
        snprintf(name, sizeof name, "permutation/ffn/%d", l);
        TRY(h5_read_i32_into(f, name, 1, sf, pf));
        // each must be a permutation of 0..n-1
        struct { const int32_t *p; int n; const char *what; } ps[] = {{pa, c->n_kv_heads, "attn"}, {pf, c->ffn_dim, "ffn"}};
        for (int k = 0; k < 2; k++) {
            uint8_t *seen = calloc((size_t)ps[k].n, 1);
            if (!seen) return status_fail(ST_OOM, "out of memory");
            Status st = ST_OK;
            for (int i = 0; i < ps[k].n && st == ST_OK; i++) {
                if (ps[k].p[i] < 0 || ps[k].p[i] >= ps[k].n || seen[ps[k].p[i]])
                    st = status_fail(ST_FORMAT, "%s: permutation/%s/%d is not a permutation", h5_path(f), ps[k].what, l);
                else seen[ps[k].p[i]] = 1;
            }
            free(seen);
            TRY(st);
        }
    }
    char **names = NULL;
    int n = 0;
    if (h5_exists(f, "levels")) TRY(h5_list(f, "levels", &names, &n));
    a->n_levels = 0;
    Status st = ST_OK;
    for (int i = 0; i < n && st == ST_OK; i++) {
        if (a->n_levels == ARTIFACT_MAX_LEVELS) break;
        char name[128];
        snprintf(name, sizeof name, "levels/%s", names[i]);
        LevelSpec *ls = &a->levels[a->n_levels];
        st = h5_get_attr_f64(f, name, "level", &ls->level);
        if (st == ST_OK) st = h5_get_attr_f64(f, name, "ratio", &ls->ratio);
        if (st == ST_OK) a->n_levels++;
    }
    h5_free_names(names, n);
    for (int i = 1; i < a->n_levels; i++) // ascending levels
        for (int j = i; j > 0 && a->levels[j - 1].level > a->levels[j].level; j--) {
            LevelSpec t = a->levels[j];
            a->levels[j] = a->levels[j - 1], a->levels[j - 1] = t;
        }
    return st;
}

Status artifact_read(const char *path, const LlamaConfig *c, Artifact *a) {
    memset(a, 0, sizeof *a);
    H5Store *f;
    TRY(h5_open_read(&f, path));
    Status st = read_all(f, c, a);
    h5_close(f);
    if (st != ST_OK) artifact_free(a);
    return st;
}

void artifact_free(Artifact *a) {
    free(a->skip_loss);
    free(a->anchor);
    importance_free(&a->imp);
    permutation_free(&a->perm);
    memset(a, 0, sizeof *a);
}

Status artifact_apply(LlamaModel *m, const char *path) {
    Artifact a;
    TRY(artifact_read(path, &m->cfg, &a));
    Status st = permutation_apply(m, &a.perm);
    artifact_free(&a);
    return st;
}

Status artifact_level_widths(H5Store *f, const char *level, const LlamaConfig *c, LlamaWidth *out) {
    char name[256];
    snprintf(name, sizeof name, "levels/%s", level);
    if (!h5_exists(f, name)) {
        if (!strcmp(level, "1") || !strcmp(level, "1.0")) {
            for (int l = 0; l < c->n_layers; l++) out[l] = (LlamaWidth){c->n_kv_heads, c->ffn_dim};
            return ST_OK;
        }
        return status_fail(ST_FORMAT, "%s: the artifact has no level %s (no group '%s'; run elasticize first)",
                           h5_path(f), level, name);
    }
    int64_t shape[1] = {c->n_layers};
    int32_t *kv = malloc((size_t)c->n_layers * sizeof *kv), *ffn = malloc((size_t)c->n_layers * sizeof *ffn);
    Status st = kv && ffn ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) {
        snprintf(name, sizeof name, "levels/%s/n_kv", level);
        st = h5_read_i32_into(f, name, 1, shape, kv);
    }
    if (st == ST_OK) {
        snprintf(name, sizeof name, "levels/%s/ffn", level);
        st = h5_read_i32_into(f, name, 1, shape, ffn);
    }
    for (int l = 0; st == ST_OK && l < c->n_layers; l++) {
        if (kv[l] < 1 || kv[l] > c->n_kv_heads || ffn[l] < 1 || ffn[l] > c->ffn_dim)
            st = status_fail(ST_FORMAT, "%s: level %s, layer %d: widths (%d KV heads, %d FFN channels) do not fit the model",
                             h5_path(f), level, l, kv[l], ffn[l]);
        else out[l] = (LlamaWidth){kv[l], ffn[l]};
    }
    free(kv);
    free(ffn);
    return st;
}

Status level_view_load(const char *path, const LlamaModel *m, const char *level, bool without_lora, LevelView *v) {
    memset(v, 0, sizeof *v);
    const LlamaConfig *c = &m->cfg;
    char *end;
    double r = strtod(level, &end);
    if (end == level || *end || !(r > 0 && r <= 1))
        return status_fail(ST_USAGE, "--level: expected a number in (0, 1], got '%s'", level);
    char name[32], group[64];
    level_name(r, name, sizeof name);
    v->widths = malloc((size_t)c->n_layers * sizeof *v->widths);
    if (!v->widths) return status_fail(ST_OOM, "out of memory");
    H5Store *f;
    Status st = h5_open_read(&f, path);
    if (st != ST_OK) {
        level_view_free(v);
        return st;
    }
    st = artifact_check_model(f, c);
    if (st == ST_OK) st = artifact_level_widths(f, name, c, v->widths);
    snprintf(group, sizeof group, "lora/%s", name);
    if (st == ST_OK && !without_lora && h5_exists(f, group)) {
        st = lora_store_read(f, group, c, v->widths, &v->lora);
        v->has_lora = st == ST_OK;
        if (st == ST_OK) st = lora_to_device(&v->lora, m->dev); // where the model's weights are
    }
    h5_close(f);
    if (st != ST_OK) {
        level_view_free(v);
        return st;
    }
    v->view = (LlamaView){.widths = v->widths, .lora = v->has_lora ? &v->lora : NULL};
    return ST_OK;
}

void level_view_free(LevelView *v) {
    free(v->widths);
    if (v->has_lora) lora_free(&v->lora);
    memset(v, 0, sizeof *v);
}
