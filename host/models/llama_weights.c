// Weight formats on the CPU: a loaded (and reordered) f32 model converted
// once to bf16 or q8_0 matrices for inference (llama.h, llama_convert_weights).
#include <stdlib.h>
#include <string.h>

#include "llama.h"

// The matrices the forward reads with matmuls or the embedding lookup; the
// large vocabulary matrices last, so that converting one at a time adds at
// most a projection's size to the f32 model's peak memory.
static int matrix_list(LlamaModel *m, Tensor **out) {
    int n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        LlamaLayer *ly = &m->layers[l];
        Tensor *ts[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) out[n++] = ts[i];
    }
    if (!m->cfg.tie_embeddings) out[n++] = &m->lm_head;
    out[n++] = &m->tok_embd;
    return n;
}

DType llama_weights_dtype(const LlamaModel *m) { return m->tok_embd.dtype; }

const char *llama_weights_name(DType dt) {
    return dt == DT_F32 ? "f32" : dt == DT_BF16 ? "bf16" : dt == DT_Q8_0 ? "q8" : dtype_name(dt);
}

Status llama_weights_parse(const char *name, DType *dt) {
    if (!strcmp(name, "f32")) *dt = DT_F32;
    else if (!strcmp(name, "bf16")) *dt = DT_BF16;
    else if (!strcmp(name, "q8")) *dt = DT_Q8_0;
    else return status_fail(ST_USAGE, "expected f32, bf16 or q8, got '%s'", name);
    return ST_OK;
}

Status llama_require_f32(const LlamaModel *m, const char *what) {
    if (m->dev.kind == DEV_CPU && llama_weights_dtype(m) != DT_F32)
        return status_fail(ST_UNSUPPORTED,
                           "%s needs f32 weights; this model's CPU weights are %s (llama_convert_weights)", what,
                           llama_weights_name(llama_weights_dtype(m)));
    return ST_OK;
}

Status llama_convert_weights(LlamaModel *m, DType dt) {
    if (dt != DT_F32 && dt != DT_BF16 && dt != DT_Q8_0)
        return status_fail(ST_USAGE, "CPU weights are f32, bf16 or q8, not %s", dtype_name(dt));
    if (dt == llama_weights_dtype(m)) return ST_OK;
    if (m->dev.kind != DEV_CPU)
        return status_fail(ST_UNSUPPORTED, "weight formats are for CPU models (the GPU has its own)");
    TRY(llama_require_f32(m, "converting weights"));
    Tensor **ts = malloc((size_t)(2 + 7 * m->cfg.n_layers) * sizeof *ts);
    if (!ts) return status_fail(ST_OOM, "out of memory");
    int n = matrix_list(m, ts);
    Status st = ST_OK;
    // one matrix at a time, each replaced by its conversion (peak: the model plus one matrix)
    for (int i = 0; st == ST_OK && i < n; i++) {
        Tensor low;
        st = tensor_alloc_2d(&low, dt, m->dev, ts[i]->shape[0], ts[i]->shape[1]);
        if (st == ST_OK) st = tensor_copy_convert(&low, ts[i]);
        if (st == ST_OK) {
            tensor_free(ts[i]);
            *ts[i] = low;
        } else {
            tensor_free(&low);
        }
    }
    free(ts);
    if (m->cfg.tie_embeddings) { // the head reads the converted embedding
        m->lm_head = m->tok_embd;
        m->lm_head.owns = false;
    }
    if (st != ST_OK) return status_wrap(st, "converting the weights to %s", llama_weights_name(dt));
    return ST_OK;
}

size_t llama_weights_bytes(const LlamaModel *m) {
    Tensor **ts = malloc((size_t)(2 + 7 * m->cfg.n_layers) * sizeof *ts);
    if (!ts) return 0;
    int n = matrix_list((LlamaModel *)m, ts);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += (size_t)ts[i]->shape[0] * dtype_bytes(ts[i]->dtype, ts[i]->shape[1]);
    free(ts);
    // norms: f32 in every format
    bytes += (size_t)(2 * m->cfg.n_layers + 1) * (size_t)m->cfg.dim * sizeof(float);
    return bytes;
}
