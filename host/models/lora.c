// LoRA adapter sets: layout, initialisation, target tables and lists.
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/device.h"
#include "runtime/rng.h"

const char *const lora_target_names[LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
static const char *const short_names[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const llama_paths[LORA_N_TARGETS] = {
    "model.layers.%d.self_attn.q_proj", "model.layers.%d.self_attn.k_proj", "model.layers.%d.self_attn.v_proj",
    "model.layers.%d.self_attn.o_proj", "model.layers.%d.mlp.gate_proj",    "model.layers.%d.mlp.up_proj",
    "model.layers.%d.mlp.down_proj"};

static void llama_shape(const void *ctx, int layer, int t, int *out, int *in) {
    const LlamaShapeCtx *x = ctx;
    lora_target_shape(x->c, x->widths ? &x->widths[layer] : NULL, (LoraTarget)t, out, in);
}

const LoraTargetTable lora_llama_targets = {.model = "LLaMA",
                                            .n = LORA_N_TARGETS,
                                            .names = lora_target_names,
                                            .short_names = short_names,
                                            .module_paths = llama_paths,
                                            .peft_task_type = "CAUSAL_LM",
                                            .shape = llama_shape};

static unsigned all_targets(const LoraTargetTable *tt) { return tt->n >= 32 ? ~0u : (1u << tt->n) - 1; }

Status lora_parse_targets_in(const LoraTargetTable *tt, const char *list, unsigned *targets) {
    *targets = 0;
    if (!strcmp(list, "all")) {
        *targets = all_targets(tt);
        return ST_OK;
    }
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int t = 0; t < tt->n && found < 0; t++)
            if ((strlen(tt->short_names[t]) == n && !strncmp(p, tt->short_names[t], n)) ||
                (strlen(tt->names[t]) == n && !strncmp(p, tt->names[t], n)))
                found = t;
        if (found < 0) {
            char known[512];
            lora_targets_string_in(tt, all_targets(tt), known, sizeof known);
            return status_fail(ST_USAGE, "unknown LoRA target '%.*s' in \"%s\" (known: %s)", (int)n, p, list, known);
        }
        *targets |= 1u << found;
        p += n;
        if (*p == ',') p++;
    }
    if (!*targets) return status_fail(ST_USAGE, "no LoRA targets in \"%s\"", list);
    return ST_OK;
}

const char *lora_targets_string_in(const LoraTargetTable *tt, unsigned targets, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int t = 0; t < tt->n; t++)
        if (targets & (1u << t)) {
            int w = snprintf(buf + len, n - len, "%s%s", len ? "," : "", tt->short_names[t]);
            if (w < 0 || (size_t)w >= n - len) break;
            len += (size_t)w;
        }
    return buf;
}

Status lora_parse_targets(const char *list, unsigned *targets) {
    return lora_parse_targets_in(&lora_llama_targets, list, targets);
}

const char *lora_targets_string(unsigned targets, char *buf, size_t n) {
    return lora_targets_string_in(&lora_llama_targets, targets, buf, n);
}

void lora_target_shape(const LlamaConfig *c, const LlamaWidth *w, LoraTarget t, int *out, int *in) {
    int kv = w ? w->n_kv : c->n_kv_heads, ffn = w ? w->ffn : c->ffn_dim;
    int q = kv * (c->n_heads / c->n_kv_heads) * c->head_dim, k = kv * c->head_dim;
    switch (t) {
    case LORA_Q: *out = q, *in = c->dim; break;
    case LORA_K:
    case LORA_V: *out = k, *in = c->dim; break;
    case LORA_O: *out = c->dim, *in = q; break;
    case LORA_GATE:
    case LORA_UP: *out = ffn, *in = c->dim; break;
    default: *out = c->dim, *in = ffn; break;
    }
}

Status lora_init(LoraSet *s, const LlamaConfig *c, const LlamaWidth *widths, const LoraConfig *cfg, uint64_t seed) {
    LlamaShapeCtx ctx = {c, widths};
    return lora_init_table(s, &lora_llama_targets, &ctx, c->n_layers, cfg, seed);
}

Status lora_init_table(LoraSet *s, const LoraTargetTable *tt, const void *shape_ctx, int n_layers,
                       const LoraConfig *cfg, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (tt->n < 1 || tt->n > LORA_MAX_TARGETS)
        return status_fail(ST_USAGE, "a LoRA target table has 1 to %d targets (%s: %d)", LORA_MAX_TARGETS, tt->model,
                           tt->n);
    if (cfg->rank <= 0) return status_fail(ST_USAGE, "LoRA rank must be positive (got %d)", cfg->rank);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return status_fail(ST_USAGE, "LoRA dropout must be in [0, 1) (got %g)", cfg->dropout);
    s->cfg = *cfg;
    s->tt = tt;
    s->n_targets = tt->n;
    s->n_layers = n_layers;
    s->ad = calloc((size_t)n_layers * (size_t)tt->n, sizeof *s->ad);
    if (!s->ad) return status_fail(ST_OOM, "out of memory for LoRA adapters");
    int64_t total = 0;
    for (int l = 0; l < n_layers; l++)
        for (int t = 0; t < tt->n; t++) {
            if (!(cfg->targets & (1u << t))) continue;
            LoraAdapter *a = lora_adapter(s, l, t);
            tt->shape(shape_ctx, l, t, &a->out, &a->in);
            total += (int64_t)cfg->rank * (a->in + a->out);
        }
    s->n_params = total;
    Status st = tensor_alloc_1d(&s->params, DT_F32, (Device){DEV_CPU, 0}, total > 0 ? total : 1);
    if (st == ST_OK) st = tensor_alloc_1d(&s->grads, DT_F32, (Device){DEV_CPU, 0}, total > 0 ? total : 1);
    if (st != ST_OK) {
        lora_free(s);
        return st;
    }
    float *p = s->params.data, *g = s->grads.data;
    Rng rng;
    rng_seed(&rng, seed);
    for (int l = 0; l < n_layers; l++)
        for (int t = 0; t < tt->n; t++) {
            LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            int64_t r = cfg->rank;
            a->A = tensor_wrap(p, DT_F32, s->params.dev, 2, (int64_t[]){r, a->in});
            a->gA = tensor_wrap(g, DT_F32, s->params.dev, 2, (int64_t[]){r, a->in});
            float bound = 1.0f / sqrtf((float)a->in);
            for (int64_t i = 0; i < r * a->in; i++) p[i] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
            p += r * a->in, g += r * a->in;
            a->B = tensor_wrap(p, DT_F32, s->params.dev, 2, (int64_t[]){a->out, r});
            a->gB = tensor_wrap(g, DT_F32, s->params.dev, 2, (int64_t[]){a->out, r});
            p += r * a->out, g += r * a->out; // B starts at zero (the allocation is zeroed)
        }
    return ST_OK;
}

void lora_free(LoraSet *s) {
    tensor_free(&s->params);
    tensor_free(&s->grads);
    free(s->ad);
    memset(s, 0, sizeof *s);
}

Status lora_to_device(LoraSet *s, Device dev) {
    if (dev.kind == s->params.dev.kind && dev.index == s->params.dev.index) return ST_OK;
    if (s->params.dev.kind != DEV_CPU) return status_fail(ST_USAGE, "lora_to_device: the adapters are not on the CPU");
    Tensor on_dev;
    TRY(tensor_alloc_1d(&on_dev, DT_F32, dev, s->params.shape[0]));
    Status st = device_copy_to(dev, on_dev.data, s->params.data, (size_t)s->params.shape[0] * sizeof(float));
    if (st != ST_OK) {
        tensor_free(&on_dev);
        return st;
    }
    const float *old = s->params.data;
    for (int i = 0; i < s->n_layers * s->n_targets; i++) {
        LoraAdapter *a = &s->ad[i];
        if (!a->in) continue;
        a->A.data = (float *)on_dev.data + ((const float *)a->A.data - old), a->A.dev = dev;
        a->B.data = (float *)on_dev.data + ((const float *)a->B.data - old), a->B.dev = dev;
        a->gA = a->gB = (Tensor){0};
    }
    tensor_free(&s->params);
    tensor_free(&s->grads);
    s->params = on_dev;
    return ST_OK;
}
