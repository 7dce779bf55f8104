// Training engine against torch autograd and peft (goldens from
// tests/reference/make_train_goldens.py, transformers 5.23 + peft 0.21, fp32):
// full-model gradients, LoRA gradients and a 10-step AdamW trajectory with
// gradient accumulation, clipping and the warm-up/decay schedule.
//
// Tolerances (fp32 throughout): loss 1e-5 relative; each gradient tensor
// max |ours - torch| <= 1e-4 * max |torch| (+1e-7 absolute); AdamW losses
// 1e-5 relative per step, final LoRA weights 1e-4 of their scale.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/llama.h"
#include "ops/ops.h"
#include "test_util.h"
#include "train/llama_train.h"
#include "train/optim.h"
#include "train/peft.h"

#define DIR "tests/fixtures/train/"

typedef struct {
    int32_t ids[64], targets[64], cu[4];
    int n_seq, n;
    int counted;
} Batch;

// The golden batch with HF's unshifted labels turned into next-token targets.
static void load_batch(Batch *b) {
    SafetensorsFile f;
    tu_open_safetensors(&f, DIR "batch.safetensors");
    const SafeTensor *ids = tu_tensor(&f, "ids", DT_I32), *labels = tu_tensor(&f, "labels", DT_I32),
                     *cu = tu_tensor(&f, "cu_seqlens", DT_I32);
    b->n = (int)ids->shape[0];
    b->n_seq = (int)cu->shape[0] - 1;
    cr_assert(b->n <= 64 && b->n_seq <= 3);
    memcpy(b->ids, ids->data, (size_t)b->n * 4);
    memcpy(b->cu, cu->data, (size_t)(b->n_seq + 1) * 4);
    const int32_t *lab = (const int32_t *)labels->data;
    b->counted = 0;
    for (int s = 0; s < b->n_seq; s++)
        for (int i = b->cu[s]; i < b->cu[s + 1]; i++) {
            b->targets[i] = i + 1 < b->cu[s + 1] ? lab[i + 1] : -1;
            b->counted += b->targets[i] >= 0;
        }
    safetensors_close(&f);
}

static TrainBatch as_train_batch(const Batch *b, int first_seq, int n_seq, int32_t *cu_buf) {
    int off = b->cu[first_seq];
    for (int s = 0; s <= n_seq; s++) cu_buf[s] = b->cu[first_seq + s] - off;
    return (TrainBatch){.ids = b->ids + off, .targets = b->targets + off, .cu = cu_buf, .n_seq = n_seq,
                        .n_tokens = cu_buf[n_seq]};
}

static void check_tensor(const SafetensorsFile *g, const char *name, const Tensor *ours) {
    const SafeTensor *ref = tu_tensor(g, name, DT_F32);
    int64_t n = 1;
    for (int i = 0; i < ref->ndim; i++) n *= ref->shape[i];
    cr_assert_eq(n, tensor_numel(ours), "%s: %lld elements, ours %lld", name, (long long)n,
                 (long long)tensor_numel(ours));
    const float *r = (const float *)ref->data;
    float scale = tu_max_abs(r, (size_t)n);
    float err = tu_max_abs_diff(r, ours->data, (size_t)n);
    cr_assert(err <= 1e-4f * scale + 1e-7f, "%s: max |diff| %g vs max |ref| %g", name, err, scale);
}

static float golden_scalar(const SafetensorsFile *g, const char *name) {
    return ((const float *)tu_tensor(g, name, DT_F32)->data)[0];
}

static void check_full_grads(const char *model_dir, const char *golden) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, model_dir), ST_OK, "%s", status_message());
    Batch b;
    load_batch(&b);
    for (int recompute = 0; recompute < 2; recompute++) {
        LlamaTrain t;
        TrainOptions o = {.full_grads = true, .recompute = recompute, .logits_chunk = 7}; // chunks cross sequences
        cr_assert_eq(llama_train_init(&t, &m, NULL, NULL, &o, 64), ST_OK, "%s", status_message());
        int32_t cu[4];
        TrainBatch tb = as_train_batch(&b, 0, b.n_seq, cu);
        double loss = 0;
        int64_t counted = 0;
        cr_assert_eq(llama_train_step(&t, &tb, 1.0f / (float)b.counted, 0, &loss, &counted), ST_OK, "%s",
                     status_message());
        SafetensorsFile g;
        tu_open_safetensors(&g, golden);
        cr_assert_eq(counted, b.counted);
        float ref = golden_scalar(&g, "loss");
        cr_assert(fabs(loss / counted - ref) <= 1e-5 * fabs(ref), "loss %.7f vs torch %.7f", loss / counted, ref);
        check_tensor(&g, "grad.model.embed_tokens.weight", &t.grads.tok_embd);
        check_tensor(&g, "grad.model.norm.weight", &t.grads.final_norm);
        if (!m.cfg.tie_embeddings) check_tensor(&g, "grad.lm_head.weight", &t.grads.lm_head);
        char name[160];
        for (int l = 0; l < m.cfg.n_layers; l++) {
            const LlamaLayer *d = &t.grads.layers[l];
            struct { const char *hf; const Tensor *t; } ws[] = {
                {"input_layernorm", &d->attn_norm},      {"self_attn.q_proj", &d->wq}, {"self_attn.k_proj", &d->wk},
                {"self_attn.v_proj", &d->wv},            {"self_attn.o_proj", &d->wo},
                {"post_attention_layernorm", &d->mlp_norm}, {"mlp.gate_proj", &d->w_gate},
                {"mlp.up_proj", &d->w_up},               {"mlp.down_proj", &d->w_down},
            };
            for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
                snprintf(name, sizeof name, "grad.model.layers.%d.%s.weight", l, ws[i].hf);
                check_tensor(&g, name, ws[i].t);
            }
        }
        safetensors_close(&g);
        llama_train_free(&t);
    }
    llama_free(&m);
}

Test(train_golden, full_grads_mha) { check_full_grads("tests/fixtures/tiny-llama-mha", DIR "tiny-llama-mha_grads.safetensors"); }
Test(train_golden, full_grads_gqa) {
    check_full_grads("tests/fixtures/tiny-llama3-gqa", DIR "tiny-llama3-gqa_grads.safetensors");
}
Test(train_golden, full_grads_tied) {
    check_full_grads("tests/fixtures/tiny-smol-tied", DIR "tiny-smol-tied_grads.safetensors");
}

// LoRA training on a fixture model: the model, its fixture adapter (peft), the golden batch and the trainer.
typedef struct {
    LlamaModel m;
    LoraSet s;
    Batch b;
    LlamaTrain t;
} LoraRun;

// Sets up r for tests/fixtures/<name> with DIR/<name>-lora; r must stay in place until lora_run_free.
static void lora_run_init(LoraRun *r, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", name);
    cr_assert_eq(llama_load(&r->m, path), ST_OK, "%s", status_message());
    snprintf(path, sizeof path, DIR "%s-lora", name);
    cr_assert_eq(peft_import(&r->s, &r->m.cfg, NULL, path), ST_OK, "%s", status_message());
    load_batch(&r->b);
    TrainOptions o = {0};
    cr_assert_eq(llama_train_init(&r->t, &r->m, NULL, &r->s, &o, 64), ST_OK, "%s", status_message());
}

// Frees what lora_run_init made.
static void lora_run_free(LoraRun *r) {
    llama_train_free(&r->t);
    lora_free(&r->s);
    llama_free(&r->m);
}

// Every adapter's A and B (or, with grads, their gradients) against g's "<prefix>.<peft key>".
static void check_adapters(const SafetensorsFile *g, const LoraSet *s, int n_layers, const char *prefix, bool grads) {
    char key[160], gkey[180];
    for (int l = 0; l < n_layers; l++)
        for (int tg = 0; tg < LORA_N_TARGETS; tg++) {
            const LoraAdapter *a = lora_adapter(s, l, tg);
            peft_key(key, sizeof key, l, tg, 'A');
            snprintf(gkey, sizeof gkey, "%s.%s", prefix, key);
            check_tensor(g, gkey, grads ? &a->gA : &a->A);
            peft_key(key, sizeof key, l, tg, 'B');
            snprintf(gkey, sizeof gkey, "%s.%s", prefix, key);
            check_tensor(g, gkey, grads ? &a->gB : &a->B);
        }
}

static void check_lora_grads(const char *name) {
    LoraRun r;
    lora_run_init(&r, name);
    cr_assert_float_eq(lora_scale(&r.s), 2.0f, 0);
    cr_assert_null(r.t.grads.layers, "no base-weight gradient is formed for LoRA training");
    int32_t cu[4];
    TrainBatch tb = as_train_batch(&r.b, 0, r.b.n_seq, cu);
    double loss = 0;
    cr_assert_eq(llama_train_step(&r.t, &tb, 1.0f / (float)r.b.counted, 0, &loss, NULL), ST_OK, "%s",
                 status_message());
    SafetensorsFile g;
    char path[256];
    snprintf(path, sizeof path, DIR "%s_lora.safetensors", name);
    tu_open_safetensors(&g, path);
    float ref = golden_scalar(&g, "loss");
    cr_assert(fabs(loss / r.b.counted - ref) <= 1e-5 * fabs(ref), "loss %.7f vs peft %.7f", loss / r.b.counted, ref);
    check_adapters(&g, &r.s, r.m.cfg.n_layers, "grad", true);
    safetensors_close(&g);
    lora_run_free(&r);
}

Test(train_golden, lora_grads_mha) { check_lora_grads("tiny-llama-mha"); }
Test(train_golden, lora_grads_gqa) { check_lora_grads("tiny-llama3-gqa"); }

// 10 AdamW steps: micro-batches [seq0, seq1] and [seq2], loss normalised by the
// global batch's label count, clipping, warm-up 3 of 10, wd 0.01 (metadata).
static void check_adamw(const char *name) {
    LoraRun r;
    lora_run_init(&r, name);
    LoraSet *s = &r.s;
    const Batch *b = &r.b;
    OptimConfig oc = optim_defaults();
    oc.lr = 5e-3f, oc.weight_decay = 0.01f, oc.max_grad_norm = 1.75f, oc.warmup = 3, oc.total = 10;
    AdamW opt;
    cr_assert_eq(adamw_init(&opt, &oc, s->n_params), ST_OK);
    SafetensorsFile g;
    char path[256];
    snprintf(path, sizeof path, DIR "%s_adamw.safetensors", name);
    tu_open_safetensors(&g, path);
    const float *losses = (const float *)tu_tensor(&g, "losses", DT_F32)->data;
    const float *norms = (const float *)tu_tensor(&g, "grad_norms", DT_F32)->data;
    const float *lrs = (const float *)tu_tensor(&g, "lrs", DT_F32)->data;
    int32_t cu[4];
    for (int step = 0; step < 10; step++) {
        tensor_zero(&s->grads);
        double total = 0, part;
        TrainBatch mb0 = as_train_batch(b, 0, 2, cu);
        cr_assert_eq(llama_train_step(&r.t, &mb0, 1.0f / (float)b->counted, 0, &part, NULL), ST_OK);
        total += part;
        TrainBatch mb1 = as_train_batch(b, 2, 1, cu);
        cr_assert_eq(llama_train_step(&r.t, &mb1, 1.0f / (float)b->counted, 0, &part, NULL), ST_OK);
        total += part;
        float lr;
        double norm = adamw_update(&opt, &s->params, &s->grads, &lr);
        cr_assert(fabs(total / b->counted - losses[step]) <= 1e-5 * losses[step], "step %d: loss %.7f vs torch %.7f",
                  step + 1, total / b->counted, losses[step]);
        cr_assert(fabs(norm - norms[step]) <= 1e-4 * norms[step], "step %d: grad norm %g vs %g", step + 1, norm,
                  norms[step]);
        cr_assert(fabsf(lr - lrs[step]) <= 1e-9f, "step %d: lr %g vs %g", step + 1, lr, lrs[step]);
    }
    check_adapters(&g, s, r.m.cfg.n_layers, "final", false);
    safetensors_close(&g);
    adamw_free(&opt);
    lora_run_free(&r);
}

Test(train_golden, adamw_trajectory_mha) { check_adamw("tiny-llama-mha"); }
Test(train_golden, adamw_trajectory_gqa) { check_adamw("tiny-llama3-gqa"); }
