// A model on another device, and models with random weights (benchmarks).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "runtime/device.h"
#include "runtime/rng.h"

static const Device CPU = {DEV_CPU, 0};

// Every weight tensor of a model, for walking them together.
static int weight_list(LlamaModel *m, Tensor **out, bool *is_matrix) {
    int n = 0;
    out[n] = &m->tok_embd, is_matrix[n++] = true;
    out[n] = &m->final_norm, is_matrix[n++] = false;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        LlamaLayer *ly = &m->layers[l];
        Tensor *ts[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->mlp_norm, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 9; i++) out[n] = ts[i], is_matrix[n++] = i != 0 && i != 5;
    }
    if (!m->cfg.tie_embeddings) out[n] = &m->lm_head, is_matrix[n++] = true;
    return n;
}


Status llama_to_device(LlamaModel *m, Device dev, DType weight_dtype) {
    if (dev.kind == DEV_CPU) return ST_OK;
    TRY(llama_require_f32(m, "moving the model to a device")); // the device converts from f32 itself
    if (weight_dtype != DT_BF16 && weight_dtype != DT_F16 && weight_dtype != DT_F32)
        return status_fail(ST_USAGE, "device weights must be bf16, f16 or f32");
    int cap = 3 + 9 * m->cfg.n_layers;
    Tensor **ws = malloc((size_t)cap * sizeof *ws);
    bool *is_matrix = malloc((size_t)cap * sizeof *is_matrix);
    if (!ws || !is_matrix) {
        free(ws), free(is_matrix);
        return status_fail(ST_OOM, "out of memory");
    }
    int n = weight_list(m, ws, is_matrix);
    Status st = tensors_to_device(ws, is_matrix, n, dev, weight_dtype);
    if (st == ST_OK) { // the rotary frequencies where the ops read them (ops.h)
        Tensor freq = tensor_wrap(m->inv_freq, DT_F32, CPU, 1, (int64_t[]){m->cfg.head_dim / 2});
        tensor_free(&m->inv_freq_dev);
        st = tensor_copy_to_device(&m->inv_freq_dev, &freq, dev, DT_F32);
    }
    if (st == ST_OK && m->cfg.tie_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head.owns = false;
    }
    if (st == ST_OK) m->dev = dev;
    free(ws), free(is_matrix);
    return st;
}

Status llama_tensor_like_model(const LlamaModel *m, Tensor *t, bool matrix) {
    if (t->dtype != DT_F32 || t->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "an extra tensor starts as f32 on the CPU");
    DType dt = matrix ? m->layers[0].wq.dtype : DT_F32;
    if (dt == DT_F32 && m->dev.kind == DEV_CPU) return ST_OK;
    Tensor out;
    if (m->dev.kind == DEV_CPU) {
        TRY(tensor_alloc(&out, dt, CPU, t->ndim, t->shape));
        Status st = tensor_copy_convert(&out, t);
        if (st != ST_OK) {
            tensor_free(&out);
            return st;
        }
    } else {
        TRY(tensor_copy_to_device(&out, t, m->dev, dt));
    }
    tensor_free(t);
    *t = out;
    return ST_OK;
}

Status llama_layer_like_model(const LlamaModel *m, LlamaLayer *ly) {
    Tensor *ts[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
    for (int i = 0; i < 7; i++) {
        if (ts[i]->dtype != DT_F32 || ts[i]->dev.kind != DEV_CPU)
            return status_fail(ST_USAGE, "an extra layer starts as f32 on the CPU");
        TRY(llama_tensor_like_model(m, ts[i], true));
    }
    return ST_OK;
}

Status llama_init_random(LlamaModel *m, const LlamaConfig *c, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->dev = CPU;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float));
    if (!m->layers || !m->inv_freq) {
        llama_free(m);
        return status_fail(ST_OOM, "out of memory");
    }
    llama_rope_inv_freq(c, m->inv_freq);
    int64_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, QD = (int64_t)c->n_heads * c->head_dim,
            KVD = (int64_t)c->n_kv_heads * c->head_dim;
    Status st = tensor_alloc_2d(&m->tok_embd, DT_F32, CPU, V, D);
    if (st == ST_OK) st = tensor_alloc_1d(&m->final_norm, DT_F32, CPU, D);
    if (st == ST_OK && !c->tie_embeddings) st = tensor_alloc_2d(&m->lm_head, DT_F32, CPU, V, D);
    if (st == ST_OK && c->tie_embeddings) m->lm_head = m->tok_embd, m->lm_head.owns = false;
    for (int l = 0; st == ST_OK && l < c->n_layers; l++) {
        LlamaLayer *ly = &m->layers[l];
        int64_t shapes[9][2] = {{D, 0}, {QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {D, 0}, {F, D}, {F, D}, {D, F}};
        Tensor *ts[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->mlp_norm, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; st == ST_OK && i < 9; i++)
            st = shapes[i][1] ? tensor_alloc_2d(ts[i], DT_F32, CPU, shapes[i][0], shapes[i][1])
                               : tensor_alloc_1d(ts[i], DT_F32, CPU, shapes[i][0]);
    }
    if (st != ST_OK) {
        llama_free(m);
        return st;
    }
    // N(0, 0.02) matrices (GPT-2 style init), norms near 1
    Rng rng;
    rng_seed(&rng, seed);
    Tensor *ws[3 + 9 * 128];
    bool is_matrix[3 + 9 * 128];
    if (c->n_layers > 128) {
        llama_free(m);
        return status_fail(ST_USAGE, "random models have at most 128 layers");
    }
    int n = weight_list(m, ws, is_matrix);
    for (int i = 0; i < n; i++) {
        float *p = ws[i]->data;
        for (int64_t j = 0; j < tensor_numel(ws[i]); j++)
            p[j] = is_matrix[i] ? 0.02f * rng_normal(&rng) : 1.0f + 0.1f * (rng_uniform(&rng) - 0.5f);
    }
    snprintf(m->source_dtype, sizeof m->source_dtype, "random");
    return ST_OK;
}
