// LoRA sets to and from HDF5 groups.
#include "lora_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void matrix_name(const LoraSet *s, char *buf, size_t n, const char *group, int layer, int t, char which) {
    snprintf(buf, n, "%s/%d/%s/%c", group, layer, s->tt->names[t], which);
}

Status lora_store_write(H5Store *f, const char *group, const LoraSet *s) {
    TRY(h5_delete(f, group));
    char name[512], targets[512];
    for (int l = 0; l < s->n_layers; l++)
        for (int t = 0; t < s->n_targets; t++) {
            const LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            matrix_name(s, name, sizeof name, group, l, t, 'A');
            TRY(h5_write_f32(f, name, 2, a->A.shape, a->A.data));
            matrix_name(s, name, sizeof name, group, l, t, 'B');
            TRY(h5_write_f32(f, name, 2, a->B.shape, a->B.data));
        }
    TRY(h5_set_attr_i64(f, group, "rank", s->cfg.rank));
    TRY(h5_set_attr_f64(f, group, "alpha", s->cfg.alpha));
    TRY(h5_set_attr_f64(f, group, "dropout", s->cfg.dropout));
    TRY(h5_set_attr_str(f, group, "targets", lora_targets_string_in(s->tt, s->cfg.targets, targets, sizeof targets)));
    return ST_OK;
}

Status lora_store_read_table(H5Store *f, const char *group, const LoraTargetTable *tt, const void *shape_ctx,
                            int n_layers, LoraSet *s) {
    if (!h5_exists(f, group)) return status_fail(ST_FORMAT, "%s: no LoRA set '%s'", h5_path(f), group);
    int64_t rank;
    double alpha, dropout;
    char *targets = NULL;
    TRY(h5_get_attr_i64(f, group, "rank", &rank));
    TRY(h5_get_attr_f64(f, group, "alpha", &alpha));
    TRY(h5_get_attr_f64(f, group, "dropout", &dropout));
    TRY(h5_get_attr_str(f, group, "targets", &targets));
    if (rank < 1 || rank > 65536) {
        free(targets);
        return status_fail(ST_FORMAT, "%s: %s: rank %lld is out of range", h5_path(f), group, (long long)rank);
    }
    LoraConfig cfg = {.rank = (int)rank, .alpha = (float)alpha, .dropout = (float)dropout};
    Status st = lora_parse_targets_in(tt, targets, &cfg.targets);
    free(targets);
    if (st != ST_OK) return status_wrap(st, "%s: %s", h5_path(f), group);
    if (lora_init_table(s, tt, shape_ctx, n_layers, &cfg, 0) != ST_OK) return status_wrap(ST_FORMAT, "%s: %s: rank / dropout", h5_path(f), group);
    char name[512];
    for (int l = 0; st == ST_OK && l < n_layers; l++)
        for (int t = 0; st == ST_OK && t < tt->n; t++) {
            LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            matrix_name(s, name, sizeof name, group, l, t, 'A');
            st = h5_read_f32_into(f, name, 2, a->A.shape, a->A.data);
            if (st != ST_OK) break;
            matrix_name(s, name, sizeof name, group, l, t, 'B');
            st = h5_read_f32_into(f, name, 2, a->B.shape, a->B.data);
        }
    if (st != ST_OK) lora_free(s);
    return st;
}


Status lora_store_read(H5Store *f, const char *group, const LlamaConfig *c, const LlamaWidth *widths, LoraSet *s) {
    LlamaShapeCtx ctx = {c, widths};
    return lora_store_read_table(f, group, &lora_llama_targets, &ctx, c->n_layers, s);
}
