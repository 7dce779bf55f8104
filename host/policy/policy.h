// policy.h: every method ElastiLM is compared with (and ElastiLM itself) as a
// policy: offline, `prepare` computes what the method needs (layer ranks,
// merged layers, ...) and writes it into the elastic artifact; at serving
// time, `decide` maps a request and its latency SLO to a model view (which
// layers, sub-blocks, units and weights run, which LoRA) and a prompt
// transform. Views point at the loaded weights: switching copies nothing.
//
// One file per method (policy_<name>.c); the table in policy.c lists them.
#ifndef ELASTILM_POLICY_H
#define ELASTILM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "models/causal_lm.h"
#include "models/llama.h"
#include "text/tokenizer.h"

// A latency SLO as fractions of the full model's cost (the artifact's
// --prefill_SLO / --decode_SLO): prefill in {0.2, ..., 1.0}, decode in {0.5, ..., 1.0}.
typedef struct {
    double prefill, decode;
} Slo;

// Parses the two fractions and checks them against the artifact's grid.
Status slo_parse(const char *prefill, const char *decode, Slo *out);

// Where the artifact's code differs from the method's paper: the paper is the
// default, COMPAT_ARTIFACT gives the artifact's numbers (docs/deviations.md).
typedef enum { COMPAT_PAPER = 0, COMPAT_ARTIFACT } Compat;
Status compat_parse(const char *name, Compat *out); // "paper" | "artifact"; NULL = paper
const char *compat_name(Compat c);

// What prepare works from.
typedef struct {
    const LlamaModel *m;           // the original model (f32 on the CPU, not reordered)
    const Tokenizer *tok;          // its tokenizer
    const char *artifact;          // the elastic artifact to write into (made by elasticize)
    const int32_t *calib;          // [n_calib * seq] calibration batch, or NULL when none was given
    int n_calib, seq;
    const int32_t *ranks;          // [n_ranks] a published rank list (--ranks) instead of computing, or NULL
    int n_ranks;
    const int32_t *ffn_ranks;      // [n_ffn_ranks] AttnDrop: the published FFN list (--ffn-ranks), or NULL
    int n_ffn_ranks;
    Compat compat;
    double ffn_threshold;          // Lingua2+Contextual: |silu(gate)| above it is an active neuron (0 = the default)
} PolicyPrepare;

// What a policy is opened with for serving.
typedef struct {
    const LlamaModel *m;           // as loaded: reordered by the artifact when the policy says so
    const char *artifact;          // the elastic artifact (NULL when the policy needs none)
    const char *model_path;        // the LLM (--model): its tokenizer counts prompt tokens
    const char *tlm;               // the TLM (--tlm: an artifact with tlm/score and tlm/decision, or a token
                                   // classifier's directory); NULL = artifact
    const char *cl100k;            // cl100k_base.tiktoken (LLMLingua-2 weighs words by it); NULL = not available
    const char *ladder;            // Off-The-Shelf: the model ladder file (policy/ladder.h); NULL = none given
    Compat compat;
    bool no_lora;                  // levels without their adapters
} PolicyOpen;

// One request: a multiple-choice question under its dataset's prompt.
typedef struct {
    const char *system;            // the system prompt (instruction + worked examples)
    const char *query;             // the query template with one "{question}"
    const char *question;          // the question
    const char *const *choices;    // [n_choices]
    int n_choices;
} PolicyRequest;

typedef struct PromptCompressor PromptCompressor;

typedef struct {
    const LlamaView *view;         // the view to run (NULL = the full model); valid until the next decide/close
    double model_ratio;            // the elastic level the view serves (0 = not an elastic level)
    double prompt_ratio;           // fraction of the prompt kept (1 = unchanged)
    PromptCompressor *compress;    // the prompt transform: compress the system prompt to prompt_ratio with it
                                   // (prompt_compress_request); NULL = the prompt as it is
    const CausalLM *lm;            // the model that answers when it is not the served one (Off-The-Shelf), with
    const Tokenizer *tok;          // its tokenizer; NULL = the served model. Valid until close
    bool system_rate;              // prompt_ratio is the system prompt's own rate (LLMLingua-2 as the artifact calls
                                   // it: prompt_compress with Q = 0), not ElastiLM's ratio of the whole prompt
    char what[200];                // one line saying what was chosen, e.g. "keep 18 of 30 layers"
} Decision;

typedef struct {
    const char *name;              // the --mode string (the artifact's spelling)
    const char *summary;
    bool reordered;                // serves the model reordered by the artifact's permutation (elastic levels)
    bool needs_artifact;           // open reads the artifact
    bool needs_calib;              // prepare computes from calibration text (unless --ranks is given)
    bool takes_ranks;              // --ranks applies
    int calib_samples, calib_seq;  // the calibration amount prepare uses when --samples / --seq are not given
                                   // (0: the common defaults)
    Status (*prepare)(const PolicyPrepare *p); // NULL: nothing to prepare
    Status (*open)(void **state, const PolicyOpen *o);      // o->m: f32 on the CPU, before any conversion
    Status (*place)(void *state, const LlamaModel *m);      // NULL, or: the policy's own weights to m's format
                                                            // and device, once m is converted or moved
    Status (*decide)(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d);
    void (*close)(void *state);
} Policy;

// The policy named name (exact --mode spelling); the message lists the modes.
Status policy_lookup(const char *name, const Policy **out);
// "full, LLMPruner, ..." for help texts.
const char *policy_names(void);

// ---- helpers shared by the policy files -------------------------------------------

// s = min(prefill, decode): the ratio the layer baselines serve an SLO pair at.
double slo_min(const Slo *s);

// Layers kept at ratio s of n layers: the paper keeps round(s n) (at least 1);
// the artifact slices ranks[int(1 - s n):], i.e. floor(s n) - 1 layers, and all n
// when s n < 1 (the slice start rounds to 0).
int layers_kept(double s, int n, Compat c);

// A rank list (ascending importance: least important first) must name every
// layer 0..n-1 once; the message says what is wrong.
Status ranks_check(const int32_t *ranks, int len, int n, const char *what);

// Reads or writes baselines/<mode>/<compat>/<name> (int32 [n] or f64 [n]) in the artifact.
Status policy_read_i32(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat, const char *name,
                       int n, int32_t *out);
Status policy_read_f64(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat, const char *name,
                       int n, double *out);
Status policy_write_arrays(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat,
                           const char *source, int n, const char *const *i32_names, const int32_t *const *i32,
                           int n_i32, const char *const *f64_names, const double *const *f64, int n_f64);

// A view over a model: block bits and substitute weights per layer, owned by the policy.
typedef struct {
    int n_layers;
    uint8_t *blocks;               // [L]
    const LlamaLayer **weights;    // [L] (NULL entries = the model's own)
    LlamaView view;
} BlockView;
Status block_view_init(BlockView *v, int n_layers);
void block_view_free(BlockView *v);
// Every layer runs whole.
void block_view_reset(BlockView *v);
// Keeps the `keep` layers at the tail of ranks (the most important); the others are dropped.
void block_view_keep_tail(BlockView *v, const int32_t *ranks, int keep);

// Policies that drop whole layers by a rank list stored at baselines/<mode>/<compat>/ranks
// (LayerReduction, ShortGPT): s = min(prefill, decode), keep layers_kept(s) at the list's tail.
Status ranked_open(void **state, const PolicyOpen *o, const char *mode);
Status ranked_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d);
void ranked_close(void *state);
// --ranks or the list computed: checked, printed (when print) and written with its scores (may be NULL).
Status ranked_store(const PolicyPrepare *p, const char *mode, const int32_t *computed, const double *scores,
                    const char *score_name, bool print);

// AttnDrop's budget search (the artifact's, ARC_E.py:1770): the first (a, m) in
// lexicographic order, a and m in 0..n-1, with (n - a + 2n - 2m) / (3n) <= s
// (attention costs 1 and an FFN 2 per layer). Returns false when none fits.
bool attndrop_budget(int n, double s, int *a, int *m);

// Prints "label: [a, b, c]" (the artifact's scripts print ascending lists so).
void print_list_i32(const char *label, const int32_t *v, int n);

// ---- LaCo's merge search (policy_laco.c; exposed for its tests) ----------------------

// A model made of merged layers: group k runs in place of the original layers
// [start[k], start[k+1]) (start[depth] = L) with the projection weights
// sum_j coef[k*L + j] W_j and the norms of layer start[k].
typedef struct {
    int n_layers, depth;
    int32_t *start;   // [L] (first depth used)
    double *coef;     // [L * L] (first depth rows used)
    double sim;       // similarity of the final model to the original
    double *trials;   // [n_trials * 5]: lay, merged layers m, threshold, similarity, accepted (0/1)
    int n_trials;
} LacoModel;
void laco_free(LacoModel *g);

// One ratio of the artifact's search (Layer_pruning/LaCo/prune_llama3.py) to
// int(ratio L) layers: MERGE_LAYERS 4, INTERVAL 1, threshold *threshold on
// entry (0.45 for a fresh search; the artifact carries it from ratio to ratio),
// lowered by 0.1 each time the search stands at layer 0; on return it holds the
// value reached. Similarity = mean over the sentences (ids packed, cu [n_sent+1])
// of the cosine of the flattened final hidden states (after the final norm) of
// the original and the merged model. Paper merge: base + sum_k (W_k - base);
// artifact (--compat artifact): the in-place update leaves the last layer's weights.
Status laco_search(const LlamaModel *m, const int32_t *ids, const int32_t *cu, int n_sent, double ratio, Compat c,
                   double *threshold, LacoModel *out);
// The merged projection weights of group k (f32 on the CPU, the norms point at layer start[k]'s).
Status laco_materialize(const LlamaModel *m, const LacoModel *g, int k, LlamaLayer *out);
void laco_layer_free(LlamaLayer *ly);

extern const Policy policy_full, policy_llmpruner, policy_layer_reduction, policy_shortgpt, policy_attndrop,
    policy_laco, policy_ours, policy_lingua2, policy_offtheshelf;

#endif
