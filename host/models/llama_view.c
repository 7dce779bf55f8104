// Views of a model: per-layer prefix widths and the adapters on top.
#include "llama.h"
#include "lora.h"

LlamaLayerView llama_layer_view(const LlamaConfig *c, const LlamaLayer *ly, const LlamaWidth *w) {
    LlamaLayerView v;
    v.kv = w ? w->n_kv : c->n_kv_heads;
    v.ffn = w ? w->ffn : c->ffn_dim;
    v.nq = v.kv * (c->n_heads / c->n_kv_heads);
    v.qd = (int64_t)v.nq * c->head_dim;
    v.kvd = (int64_t)v.kv * c->head_dim;
    v.wq = tensor_rows(&ly->wq, 0, v.qd);
    v.wk = tensor_rows(&ly->wk, 0, v.kvd);
    v.wv = tensor_rows(&ly->wv, 0, v.kvd);
    v.wo = tensor_cols(&ly->wo, 0, v.qd);
    v.w_gate = tensor_rows(&ly->w_gate, 0, v.ffn);
    v.w_up = tensor_rows(&ly->w_up, 0, v.ffn);
    v.w_down = tensor_cols(&ly->w_down, 0, v.ffn);
    return v;
}

Status llama_view_check(const LlamaConfig *c, const LlamaWidth *widths, const struct LoraSet *lora) {
    for (int l = 0; widths && l < c->n_layers; l++)
        if (widths[l].n_kv < 1 || widths[l].n_kv > c->n_kv_heads || widths[l].ffn < 1 || widths[l].ffn > c->ffn_dim)
            return status_fail(ST_USAGE, "layer %d: view widths (%d KV heads, %d FFN channels) outside 1..%d, 1..%d", l,
                               widths[l].n_kv, widths[l].ffn, c->n_kv_heads, c->ffn_dim);
    if (!lora) return ST_OK;
    if (lora->n_layers != c->n_layers)
        return status_fail(ST_USAGE, "the LoRA set has %d layers, the model %d", lora->n_layers, c->n_layers);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const LoraAdapter *a = lora_adapter(lora, l, t);
            int out, in;
            lora_target_shape(c, widths ? &widths[l] : NULL, t, &out, &in);
            if (a->in && (a->in != in || a->out != out))
                return status_fail(ST_USAGE, "layer %d %s: the adapter is [%d, %d], the view needs [%d, %d]", l,
                                   lora_target_names[t], a->out, a->in, out, in);
        }
    return ST_OK;
}
