// Lingua2+Contextual: the prompt through LLMLingua-2 and the FFNs through
// contextual sparsity (Deja Vu), as the artifact runs them together (spec
// §6, §6.1, §6.2; ARC_E.py:1489-1490, 2240-2250).
//
//   prompt  LLMLingua-2 (llmlingua 0.2.2's rule, tlm/compress.h) on the system
//           prompt only, at rate = the prefill SLO, force tokens "\n" and "?";
//           the classifier is any BERT token classifier: the TLM's score head
//           (--tlm ART, default the artifact) or an LLMLingua-2 checkpoint
//           directory (--tlm DIR). At rate 1.0 the prompt is unchanged.
//   model   per token and layer, the k = int(F * decode SLO) FFN neurons the
//           layer's predictor scores highest run (op_ffn_sparse); attention
//           is untouched, every layer is sparse. At k = F the FFN runs dense
//           (the same sum).
//
// prepare records the FFNs on calibration windows (default 500 x 128 tokens,
// the artifact's amount) and trains the predictors (elastic/ffn_predictor.h)
// into baselines/Lingua2+Contextual/<compat>/predictor. Paper: the predictors
// learn which neurons are active and the top k are kept, as Deja Vu intends;
// --compat artifact: they learn the inactive ones, and the top k of that (the
// neurons predicted inactive) are kept, as the artifact does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/ffn_predictor.h"
#include "policy.h"
#include "tlm/prompt_compress.h"
#include "tlm/tlm_store.h"

#define MODE "Lingua2+Contextual"

static void group_path(char *buf, size_t n, Compat c) {
    snprintf(buf, n, "baselines/%s/%s/predictor", MODE, compat_name(c));
}

static Status lingua2_prepare(const PolicyPrepare *p) {
    if (!p->calib) return status_fail(ST_USAGE, "%s records the FFNs on calibration text: --calib FILE", MODE);
    FfnTrainOptions o = ffn_train_defaults();
    o.artifact = p->compat == COMPAT_ARTIFACT;
    if (o.artifact) o.batch = 0; // 5 full-batch steps per epoch
    if (p->ffn_threshold > 0) o.threshold = (float)p->ffn_threshold;
    o.val_windows = p->n_calib / 10 > 0 ? p->n_calib / 10 : 1;
    char resume[4200];
    snprintf(resume, sizeof resume, "%s.%s-%s.partial.h5", p->artifact, "ffn-predictors", compat_name(p->compat));
    o.resume = resume;
    printf("%s: recording the FFNs on %d windows of %d tokens (%d held out); predictors Linear(%d -> %d) -> ReLU -> "
           "Linear(%d -> %d), labels: %s\n", MODE, p->n_calib, p->seq, o.val_windows, p->m->cfg.dim, o.rank, o.rank,
           p->m->cfg.ffn_dim, o.artifact ? "inactive (silu(gate) < 0.001), as the artifact" : "active (|silu(gate)| > threshold)");
    FfnPredictors pred;
    TRY(ffn_predictors_train(p->m, p->calib, p->n_calib, p->seq, &o, &pred));
    char group[256];
    group_path(group, sizeof group, p->compat);
    Status st = ffn_predictors_save(p->artifact, group, &p->m->cfg, &pred);
    if (st == ST_OK) {
        double r[FFN_N_DENSITIES] = {0}, act = 0;
        for (int l = 0; l < pred.n_layers; l++) {
            act += pred.active[l] / pred.n_layers;
            for (int q = 0; q < FFN_N_DENSITIES; q++) r[q] += pred.recall[l * FFN_N_DENSITIES + q] / pred.n_layers;
        }
        printf("mean over layers: %.1f%% active; recall", 100 * act);
        for (int q = 0; q < FFN_N_DENSITIES; q++) printf(" %.3f@%g", r[q], FFN_DENSITIES[q]);
        printf("\n");
        remove(resume); // the artifact holds them now
    }
    ffn_predictors_free(&pred);
    return st;
}

typedef struct {
    int n_layers, F;
    FfnPredictor *layers;   // [L] on the model's device after place
    FfnSparsity sparse[6];  // one view per decode SLO 0.5 ... 1.0, so that a cached prefix never crosses densities
    LlamaView view[6];
    Encoder clf;            // the LLMLingua-2 classifier
    bool clf_ok;
    Tokenizer *clf_tok, *cl100k, *llm_tok;
    PromptCompressor *pc;
} Lingua2;

static void lingua2_close(void *state) {
    Lingua2 *s = state;
    if (!s) return;
    ffn_sparsity_free(s->layers, s->n_layers);
    prompt_compressor_free(s->pc);
    if (s->clf_ok) encoder_free(&s->clf);
    tokenizer_free(s->clf_tok), tokenizer_free(s->cl100k), tokenizer_free(s->llm_tok);
    free(s);
}

static Status lingua2_open(void **state, const PolicyOpen *o) {
    Lingua2 *s = calloc(1, sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    s->n_layers = o->m->cfg.n_layers, s->F = o->m->cfg.ffn_dim;
    char group[256];
    group_path(group, sizeof group, o->compat);
    FfnPredictors pred;
    Status st = ffn_predictors_load(o->artifact, group, &o->m->cfg, &pred);
    if (st == ST_OK) {
        st = ffn_sparsity_build(o->m, &pred, &s->layers);
        ffn_predictors_free(&pred);
    }
    const char *clf = o->tlm ? o->tlm : o->artifact;
    if (st == ST_OK) {
        st = tlm_open(clf, &s->clf, &s->clf_tok);
        s->clf_ok = st == ST_OK;
        if (st != ST_OK) st = status_wrap(st, "%s: the LLMLingua-2 classifier (--tlm: an artifact with tlm/score or "
                                          "a token-classification checkpoint directory)", MODE);
    }
    if (st == ST_OK && !o->cl100k)
        st = status_fail(ST_USAGE, "%s: LLMLingua-2 weighs words by cl100k_base (--cl100k FILE, or datasets/fetch.sh "
                         "tiktoken)", MODE);
    if (st == ST_OK && (st = tokenizer_load_tiktoken(&s->cl100k, o->cl100k)) != ST_OK)
        st = status_wrap(st, "%s: LLMLingua-2 weighs words by cl100k_base (--cl100k FILE, or datasets/fetch.sh "
                         "tiktoken)", MODE);
    if (st == ST_OK && o->model_path) st = tokenizer_load_for_model(&s->llm_tok, o->model_path);
    if (st == ST_OK) {
        PromptCompressorConfig cfg = {.method = PC_LLMLINGUA2, .tlm = &s->clf, .enc = s->clf_tok,
                                      .llm_tok = s->llm_tok, .cl100k = s->cl100k, .seed = 42, .max_len = 512};
        st = prompt_compressor_new(&s->pc, &cfg);
    }
    if (st != ST_OK) {
        lingua2_close(s);
        return st;
    }
    for (int i = 0; i < 6; i++) {
        s->sparse[i] = (FfnSparsity){.k = s->F, .layers = s->layers};
        s->view[i] = (LlamaView){.sparse = &s->sparse[i]};
    }
    *state = s;
    return ST_OK;
}

// The predictors where the model's weights are, in their format.
static Status lingua2_place(void *state, const LlamaModel *m) {
    Lingua2 *s = state;
    for (int l = 0; l < s->n_layers; l++) {
        FfnPredictor *q = &s->layers[l];
        TRY(llama_tensor_like_model(m, &q->w1, true));
        TRY(llama_tensor_like_model(m, &q->b1, false));
        TRY(llama_tensor_like_model(m, &q->w2, true));
        TRY(llama_tensor_like_model(m, &q->b2, false));
        TRY(llama_tensor_like_model(m, &q->w_down_t, true));
    }
    return ST_OK;
}

static Status lingua2_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)rq;
    Lingua2 *s = state;
    int k = (int)((double)s->F * slo->decode); // int(F * ratio), as the artifact forms it
    if (k < 1) k = 1;
    int i = (int)(slo->decode * 10 + 0.5) - 5; // slo_parse keeps decode on the grid 0.5 ... 1.0
    if (i < 0 || i > 5) return status_fail(ST_USAGE, "%s: decode SLO %g off the grid 0.5 ... 1.0", MODE, slo->decode);
    s->sparse[i].k = k;
    *d = (Decision){.view = k < s->F ? &s->view[i] : NULL, .prompt_ratio = slo->prefill,
                    .compress = slo->prefill < 1.0 ? s->pc : NULL, .system_rate = true};
    snprintf(d->what, sizeof d->what, "LLMLingua-2 at rate %g on the system prompt; FFN density %g (%d of %d neurons)",
             slo->prefill, slo->decode, k, s->F);
    return ST_OK;
}

const Policy policy_lingua2 = {
    .name = MODE,
    .summary = "LLMLingua-2 on the system prompt at rate = prefill SLO, and contextual sparsity (Deja Vu predictors) "
               "keeping int(F * decode SLO) FFN neurons per token",
    .needs_artifact = true,
    .needs_calib = true,
    .calib_samples = 500,
    .calib_seq = 128,
    .prepare = lingua2_prepare,
    .open = lingua2_open,
    .place = lingua2_place,
    .decide = lingua2_decide,
    .close = lingua2_close,
};
