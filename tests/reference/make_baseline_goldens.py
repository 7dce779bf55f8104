#!/usr/bin/env python3
"""Baseline goldens on tiny-elastic-gqa: ShortGPT / LLM-Drop importances, a sub-block-drop
forward, and the LaCo layer-merging search (paper and ElastiLM-artifact variants).

Run by hand from the repository root when the goldens must change (after
make_elastic_goldens.py, whose calibration batch and fixture folder it reads):

    python3 tests/reference/make_baseline_goldens.py

Deterministic: float32 on the CPU, torch.set_num_threads(1),
torch.use_deterministic_algorithms(True), attn_implementation="eager", no hub access
(HF_HUB_OFFLINE=1), no randomness at all. The model is tests/fixtures/tiny-elastic-gqa (HF
LlamaForCausalLM: L = 6 layers, D = hidden 64, 8 heads / 4 kv heads, head_dim 8, ffn 96,
vocab V = 256, eps 1e-6) loaded with make_fixtures.load_f32. The calibration batch is
`calib_ids` [4, 16] from tests/fixtures/elastic/tiny-elastic-gqa_elastic.safetensors. Writes

  tests/fixtures/elastic/tiny-elastic-gqa_baselines.safetensors

(F32 and I32 tensors only, all contiguous, header keys sorted so reruns are byte-identical).

ACTIVATIONS. One forward of the whole batch, model(input_ids=calib_ids) with no attention
mask (all ones), default position ids (0..15 in every row), use_cache=False. For decoder
layer l, captured with forward hooks on the modules (NOT output_hidden_states, whose last
entry is after the final norm), each reshaped to [T = 64, D] (row t = 16*b + i, sequence b,
position i):
    X_l   = hidden states entering layer l (X_0 = embeddings)
    Y_l   = layer l's output; for the last layer BEFORE model.norm (Y_l = X_{l+1})
    A_in  = input_layernorm(X_l)
    A_out = self_attn(A_in) after o_proj, no residual
    H     = X_l + A_out           (float32, as the layer forms it; the script checks that
                                   the post_attention_layernorm input is exactly this)
    M_out = mlp(post_attention_layernorm(H)), no residual; Y_l = H + M_out (float32)
Every statistic is computed in float64 from these float32 tensors and stored as F32.
cos(a, b) = <a, b> / (|a| |b|) in float64 (no eps: no vector here is near zero).

TENSORS (L = 6):
  bi_token    [L]  F32  ShortGPT Block Influence as the paper defines it:
                        1 - (1/64) sum_t cos(X_l[t], Y_l[t]).
  bi_flat     [L]  F32  the ElastiLM artifact's variant: 1 - cos(vec(X_l), vec(Y_l)), the whole
                        batch flattened into one 64*64 vector.
  attn_flat   [L]  F32  the artifact's attention importance: 1 - cos(vec(A_in), vec(A_out)).
  attn_token  [L]  F32  LLM-Drop (layer_drop_norm=True), attention block:
                        1 - (1/64) sum_t cos(X_l[t], H[t]), H = X_l + A_out.
  mlp_token   [L]  F32  LLM-Drop, MLP block: 1 - (1/64) sum_t cos(H[t], Y_l[t]),
                        Y_l = H + M_out.
      (For attn_token / mlp_token the second argument is the float32 sum the model itself
      forms, widened to float64; forming the sum in float64 instead changes the values by
      the amount main() prints, ~1e-9.)
  drop_logits [4, 16, V] F32  logits of the whole-batch forward (same inputs as above) with
                        the ATTENTION sub-block of layers 1 and 4 and the MLP sub-block of
                        layers 2 and 4 skipped: a skipped sub-block contributes zero, the
                        residual stream passes through unchanged (hidden = hidden). Made with
                        forward hooks returning zeros for those modules' outputs; checked
                        against a second way (the modules' forward replaced by zeros) and
                        against the residual stream being unchanged across each skipped
                        sub-block.

LACO (layer merging, Yang et al. 2024). "Sentences" = the 4 rows of calib_ids, each run
alone as a [1, 16] input (no extra BOS, no mask, default positions, use_cache=False).
    sim(A, B) = (1/4) sum_{b=0..3} cos(vec(hA_b), vec(hB_b))
where h_b = hidden_states[-1] of sentence b = the final hidden states AFTER model.norm,
[16, 64] flattened to 1024 values (float32, cosine and mean in float64; the mean is summed
in order b = 0..3 then divided by 4). The reference model A is always the ORIGINAL model.
Constants MERGE_LAYERS = 4, INTERVAL = 1, HIGHEST = L-1 = 5, LOWEST = 0, THRESHOLD0 = 0.45.
Ratios r = 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 in that order; target = int(r * L) in
Python float arithmetic: 1, 1, 2, 3, 3, 4, 4, 5, 6 (int(0.3*6) = int(1.7999999999999998) = 1,
int(0.6*6) = 3, int(0.7*6) = 4). One ratio, starting from a fresh copy of the ORIGINAL model:

    cur = original; lay = HIGHEST - MERGE_LAYERS            # = 1
    while len(cur.layers) > target:
        if lay == LOWEST: THRESHOLD -= 0.1                  # Python double arithmetic
        m = min(MERGE_LAYERS - 1, len(cur.layers) - lay - 1)
        cand = merge(cur, lay, m)       # layers lay+1..lay+m folded into lay, then deleted
        s = sim(original, cand)
        if s > THRESHOLD:
            cur = cand; lay -= INTERVAL
            if lay >= len(cur.layers): lay = len(cur.layers) - 1 - MERGE_LAYERS
        else:
            lay -= 1
        if lay < LOWEST: lay = LOWEST

`lay` indexes the CURRENT (already shrunk) layer list. Merging deletes layers lay+1..lay+m
(the survivors keep their order); RMSNorm weights (input_layernorm, post_attention_layernorm)
always stay layer lay's. Two variants, computed independently:
  paper:    every one of the 7 projections (q, k, v, o, gate, up, down) of layer l becomes
            W_l + sum_{k=1..m} (W_{l+k} - W_l), all W from cur BEFORE the merge (out of
            place). Evaluated in float32 as acc = W_l.clone(); for k = 1..m:
            acc += (W_{l+k} - W_l). THRESHOLD is reset to 0.45 at the start of every ratio.
  artifact: the ElastiLM artifact's in-place loop on a deep copy: for k = l+1..l+m in order,
            W_base.add_(cur.W_k - W_base), W_base being the COPY's layer-l weight (updated
            in place each time), float32; the result is W_{l+m} up to float32 rounding.
            THRESHOLD is NOT reset: it starts at 0.45 once and carries over from ratio to
            ratio in the order above.
Alongside, each current layer is tracked symbolically as a float64 coefficient vector c over
the ORIGINAL layers' projection weights (original layer j = unit vector e_j; all 7
projections share it): paper merge c_l <- c_l + sum_k (c_{l+k} - c_l); artifact merge
c_l <- c_{l+m} (m = 0 leaves c_l). Plus the original layer whose norms it carries.
For v in {paper, artifact} and each r (named with Python "%g" % r: "0.2", ..., "0.9", "1"):
  laco.<v>.<r>.trials    [n, 5] F32  one row per loop iteration in order: (lay, m, THRESHOLD
                                     used in the comparison, s, accepted 0/1). lay and m are
                                     small integers (exact in F32); THRESHOLD is the float32
                                     rounding of the Python double (0.45, 0.35, 0.25, ...
                                     each one made by repeated "-= 0.1" in double). When the
                                     target is met before any trial (r = 1.0) the tensor has
                                     shape [0, 5] (zero bytes; safetensors and the C reader
                                     both accept it).
  laco.<v>.<r>.coef      [depth, L] F32  coefficient vectors of the final model's layers
                                     (row k = final layer k; depth <= target).
  laco.<v>.<r>.norm_src  [depth]    I32  original layer whose two RMSNorm weights final layer k
                                     carries.
  laco.<v>.<r>.sim       [1]        F32  sim(original, final model) (1 when nothing merged).
  r = 0.4 only, for every final layer k and proj in q_proj, k_proj, v_proj, o_proj,
  gate_proj, up_proj, down_proj:
  laco.<v>.0.4.<k>.<proj> [out, in] F32  the final model's actual merged weight, as HF stores
                                     it (q/o [64, 64], k/v [32, 64], gate/up [96, 64],
                                     down [64, 96]).
The final model's embeddings, final norm and lm_head are the original ones.

ACCEPT MARGINS. The C side recomputes s and compares accept decisions, so what matters is
how far each s is from its THRESHOLD. main() prints every trial and the smallest
|s - THRESHOLD| per ratio/variant and overall. With this fixture (torch 2.15, transformers
5.25) the smallest margin over all trials of both variants is 2.78e-02 (paper, the trial
lay 0, m 3, THRESHOLD 0.049999999999999961, s = 0.0221578, rejected; it recurs in every
paper ratio but r = 1); the next smallest is 4.57e-02 (artifact, r = 0.2, lay 0, m 3,
THRESHOLD -0.15000000000000005, s = -0.1042780, accepted). Any s within ~1e-3 of the
golden decides every trial the same way. Comparing against the F32-rounded THRESHOLD
instead of the double changes nothing (rounding error < 1e-8).

RESULTS worth knowing (random weights, so merging destroys the output: s is 0.19 at best,
and the searches only finish because THRESHOLD keeps falling by 0.1 at lay 0):
  paper, r <= 0.4:  7 trials, depth 1, coef [2, -1, -1, -1, 1, 1], norms of layer 0.
  paper, 0.5..0.9:  6 trials, depth 3, coefs [-2, 1, 1, 1, 0, 0], e4, e5; norms 0, 4, 5.
  artifact, r 0.2:  8 trials, depth 1 (e5, norms 0); THRESHOLD is -0.25 after it, so every
                    later trial accepts: r 0.3, 0.4: 2 trials, depth 1 (e5, norms 0);
                    r 0.5..0.9: 1 trial (lay 1, m 3), depth 3 (e0, e4, e5; norms 0, 1, 5).
  r = 1: no trial, depth 6 (identity coefs), sim 1, for both.
  The final depth can be BELOW target (a merge of m layers removes m at once): r = 0.4
  (target 2) ends at depth 1 in both variants, so the 0.4 weights are one layer each. The
  artifact's merged weights equal W_{l+m} only up to float32 rounding (3e-08), and two
  paths to the same coefficient e5 (r 0.2 vs 0.3) give s differing in the 9th digit.

metadata (sorted header): model, n_layers, calib, bi, attn_flat, llm_drop, drop, laco,
laco_constants, laco_targets, torch, transformers.

CHECKS the script makes: X_{l+1} == Y_l, the post_attention_layernorm input == X_l + A_out,
Y_l == H + M_out and the final norm's input == Y_{L-1} (all exact); drop_logits agree
exactly with a second way of skipping and the residual stream is unchanged across each
skipped sub-block; hidden_states[-1] == last_hidden_state (after the norm); a merge with
m = 0 gives the same sim as an unmerged copy; sim(original, final) equals the s of the last
accepted trial exactly; sum_j coef[j] * W_j (original weights, float64) reproduces the actual merged
weights of every final model of every ratio and both variants (max abs difference printed:
1.5e-07 paper, 3.0e-08 artifact; asserted < 1e-5) and the norms equal norm_src's; the file
reloads exactly; a second run of the computation gives the same tensors.
"""

import copy
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (same loader as the other goldens)
from make_elastic_goldens import save_st  # noqa: E402  (sorted, byte-stable header)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
NAME = "tiny-elastic-gqa"
MODEL_DIR = FIXTURES / NAME
CALIB = FIXTURES / "elastic" / f"{NAME}_elastic.safetensors"
OUT = FIXTURES / "elastic" / f"{NAME}_baselines.safetensors"

DROP_ATTN = (1, 4)
DROP_MLP = (2, 4)

MERGE_LAYERS, INTERVAL, LOWEST, THRESHOLD0 = 4, 1, 0, 0.45
RATIOS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
WEIGHT_RATIO = 0.4
PROJS = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"),
         ("self_attn", "o_proj"), ("mlp", "gate_proj"), ("mlp", "up_proj"),
         ("mlp", "down_proj")]
NORMS = ["input_layernorm", "post_attention_layernorm"]


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def load_model():
    return mf.load_f32(MODEL_DIR)


def cos64(a, b, dim=-1):
    a, b = a.double(), b.double()
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim))


# ----------------------------------------------------------------------------- activations

def hidden_arg(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def first(out):
    return out[0] if isinstance(out, tuple) else out


def capture(model, ids):
    """Whole-batch forward with hooks; returns per-layer dicts of [T, D] float32 tensors."""
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    acts = [dict() for _ in range(L)]
    final_in = []
    hooks = []

    def put(l, key, t):
        acts[l][key] = t.detach().reshape(-1, D).clone()

    for l, layer in enumerate(model.model.layers):
        hooks += [
            layer.register_forward_pre_hook(
                lambda m, a, k, l=l: put(l, "X", hidden_arg(a, k)), with_kwargs=True),
            layer.register_forward_hook(lambda m, a, o, l=l: put(l, "Y", first(o))),
            layer.input_layernorm.register_forward_hook(
                lambda m, a, o, l=l: put(l, "A_in", o)),
            layer.self_attn.register_forward_hook(lambda m, a, o, l=l: put(l, "A_out", o[0])),
            layer.post_attention_layernorm.register_forward_pre_hook(
                lambda m, a, l=l: put(l, "H", a[0])),
            layer.mlp.register_forward_hook(lambda m, a, o, l=l: put(l, "M_out", o)),
        ]
    hooks.append(model.model.norm.register_forward_pre_hook(
        lambda m, a: final_in.append(a[0].detach().reshape(-1, D).clone())))
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    for h in hooks:
        h.remove()
    for l in range(L):
        a = acts[l]
        assert torch.equal(a["H"], a["X"] + a["A_out"]), l
        assert torch.equal(a["Y"], a["H"] + a["M_out"]), l
        if l + 1 < L:
            assert torch.equal(acts[l + 1]["X"], a["Y"]), l
    assert torch.equal(final_in[0], acts[L - 1]["Y"])
    return acts, logits


def importances(acts):
    bi_token, bi_flat, attn_flat, attn_token, mlp_token = [], [], [], [], []
    d64 = 0.0
    for a in acts:
        X, Y, A_in, A_out, H, M = (a[k] for k in ("X", "Y", "A_in", "A_out", "H", "M_out"))
        bi_token.append(1 - cos64(X, Y).mean())
        bi_flat.append(1 - cos64(X.flatten(), Y.flatten(), 0))
        attn_flat.append(1 - cos64(A_in.flatten(), A_out.flatten(), 0))
        attn_token.append(1 - cos64(X, H).mean())
        mlp_token.append(1 - cos64(H, Y).mean())
        # the same two with the sums formed in float64 instead of float32
        alt_a = 1 - cos64(X, X.double() + A_out.double()).mean()
        alt_m = 1 - cos64(H, H.double() + M.double()).mean()
        d64 = max(d64, abs(alt_a - attn_token[-1]).item(), abs(alt_m - mlp_token[-1]).item())
    st = lambda v: torch.stack(v)  # noqa: E731
    return dict(bi_token=st(bi_token), bi_flat=st(bi_flat), attn_flat=st(attn_flat),
                attn_token=st(attn_token), mlp_token=st(mlp_token)), d64


# ----------------------------------------------------------------------------- sub-block drop

def drop_forward(model, ids):
    hooks, seen = [], {}
    for l in DROP_ATTN:
        a = model.model.layers[l].self_attn
        hooks.append(a.register_forward_hook(
            lambda m, args, o: (torch.zeros_like(o[0]),) + tuple(o[1:])))
    for l in DROP_MLP:
        hooks.append(model.model.layers[l].mlp.register_forward_hook(
            lambda m, args, o: torch.zeros_like(o)))
    # residual-stream checks: X, post-attention-norm input, layer output
    for l, layer in enumerate(model.model.layers):
        hooks += [
            layer.register_forward_pre_hook(
                lambda m, a, k, l=l: seen.__setitem__((l, "X"), hidden_arg(a, k).clone()),
                with_kwargs=True),
            layer.post_attention_layernorm.register_forward_pre_hook(
                lambda m, a, l=l: seen.__setitem__((l, "H"), a[0].clone())),
            layer.register_forward_hook(
                lambda m, a, o, l=l: seen.__setitem__((l, "Y"), first(o).clone())),
        ]
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    for h in hooks:
        h.remove()
    for l in DROP_ATTN:
        assert torch.equal(seen[(l, "H")], seen[(l, "X")]), l
    for l in DROP_MLP:
        assert torch.equal(seen[(l, "Y")], seen[(l, "H")]), l

    # second way: the modules' forward replaced by zero functions (instance attributes)
    def zero_attn(*args, **kwargs):
        return torch.zeros_like(hidden_arg(args, kwargs)), None

    patched = []
    for l in DROP_ATTN:
        model.model.layers[l].self_attn.forward = zero_attn
        patched.append(model.model.layers[l].self_attn)
    for l in DROP_MLP:
        model.model.layers[l].mlp.forward = lambda x: torch.zeros_like(x)
        patched.append(model.model.layers[l].mlp)
    with torch.no_grad():
        alt = model(input_ids=ids, use_cache=False).logits
    for m in patched:
        if "forward" in m.__dict__:
            del m.forward
    assert torch.equal(alt, logits)
    return logits


# ----------------------------------------------------------------------------- LaCo

def weight(layer, proj):
    mod, name = proj
    return getattr(getattr(layer, mod), name).weight


def set_depth(model, layers):
    model.model.layers = torch.nn.ModuleList(layers)
    model.config.num_hidden_layers = len(layers)


def merge(cur, l, m, variant):
    """A new model: cur with layers l+1..l+m folded into l (per variant) and deleted."""
    cand = copy.deepcopy(cur)
    with torch.no_grad():
        for proj in PROJS:
            base = weight(cand.model.layers[l], proj)
            if variant == "paper":
                W_l = weight(cur.model.layers[l], proj)
                acc = W_l.detach().clone()
                for k in range(1, m + 1):
                    acc += weight(cur.model.layers[l + k], proj) - W_l
                base.copy_(acc)
            else:
                for k in range(l + 1, l + m + 1):
                    base.add_(weight(cur.model.layers[k], proj) - base)
    layers = list(cand.model.layers)
    set_depth(cand, layers[:l + 1] + layers[l + m + 1:])
    return cand


def merge_sym(state, l, m, variant):
    coefs, norms = state
    c = coefs[l].clone()
    if variant == "paper":
        for k in range(1, m + 1):
            c = c + (coefs[l + k] - coefs[l])
    else:
        c = coefs[l + m].clone()
    coefs = coefs[:l] + [c] + coefs[l + m + 1:]
    norms = norms[:l + 1] + norms[l + m + 1:]
    return coefs, norms


class Sim:
    def __init__(self, original, ids):
        self.ids = ids
        self.ref = [self.hidden(original, b) for b in range(ids.shape[0])]

    def hidden(self, model, b):
        with torch.no_grad():
            out = model(input_ids=self.ids[b:b + 1], output_hidden_states=True,
                        use_cache=False)
        h = out.hidden_states[-1]
        return h.reshape(-1)

    def __call__(self, model):
        total = 0.0
        for b, ref in enumerate(self.ref):
            total += cos64(ref, self.hidden(model, b), 0).item()
        return total / len(self.ref)


def laco_search(original, sim, target, threshold, variant):
    L = original.config.num_hidden_layers
    cur = copy.deepcopy(original)
    state = ([torch.eye(L, dtype=torch.float64)[j] for j in range(L)], list(range(L)))
    lay = (L - 1) - MERGE_LAYERS
    trials, last_s = [], None
    while len(cur.model.layers) > target:
        if lay == LOWEST:
            threshold -= 0.1
        n = len(cur.model.layers)
        m = min(MERGE_LAYERS - 1, n - lay - 1)
        cand = merge(cur, lay, m, variant)
        s = sim(cand)
        acc = s > threshold
        trials.append((lay, m, threshold, s, int(acc)))
        if acc:
            cur = cand
            state = merge_sym(state, lay, m, variant)
            last_s = s
            lay -= INTERVAL
            if lay >= len(cur.model.layers):
                lay = len(cur.model.layers) - 1 - MERGE_LAYERS
        else:
            lay -= 1
        if lay < LOWEST:
            lay = LOWEST
    final_s = sim(cur)
    if last_s is not None:
        assert final_s == last_s, (final_s, last_s)
    return cur, state, trials, final_s, threshold


def check_coef(original, model, state):
    """max |sum_j c_j W_j - W| over every projection of every layer (float64); and the norms
    must equal norm_src's exactly."""
    coefs, norms = state
    assert len(coefs) == len(model.model.layers) == model.config.num_hidden_layers
    worst = 0.0
    for k, layer in enumerate(model.model.layers):
        for proj in PROJS:
            ref = sum(coefs[k][j] * weight(original.model.layers[j], proj).double()
                      for j in range(len(original.model.layers)))
            worst = max(worst, (ref - weight(layer, proj).double()).abs().max().item())
        for nm in NORMS:
            assert torch.equal(getattr(layer, nm).weight,
                               getattr(original.model.layers[norms[k]], nm).weight), (k, nm)
    return worst


def laco_all(original, ids):
    L = original.config.num_hidden_layers
    sim = Sim(original, ids)
    assert sim(merge(original, 2, 0, "paper")) == sim(copy.deepcopy(original))
    # hidden_states[-1] is after the final norm
    with torch.no_grad():
        o = original(input_ids=ids[:1], output_hidden_states=True, use_cache=False)
        assert torch.equal(o.hidden_states[-1], original.model(input_ids=ids[:1]).last_hidden_state)
    tensors, results = {}, {}
    for variant in ("paper", "artifact"):
        threshold = THRESHOLD0
        for r in RATIOS:
            target = int(r * L)
            if variant == "paper":
                threshold = THRESHOLD0
            model, state, trials, s, threshold = laco_search(original, sim, target, threshold,
                                                             variant)
            coefs, norms = state
            err = check_coef(original, model, state)
            assert err < 1e-5, (variant, r, err)
            key = f"laco.{variant}.{'%g' % r}"
            tensors[f"{key}.trials"] = torch.tensor(
                [[float(x) for x in t] for t in trials], dtype=torch.float32).reshape(-1, 5)
            tensors[f"{key}.coef"] = torch.stack(coefs).float().contiguous()
            tensors[f"{key}.norm_src"] = torch.tensor(norms, dtype=torch.int32)
            tensors[f"{key}.sim"] = torch.tensor([s], dtype=torch.float32)
            if r == WEIGHT_RATIO:
                for k, layer in enumerate(model.model.layers):
                    for proj in PROJS:
                        tensors[f"{key}.{k}.{proj[1]}"] = \
                            weight(layer, proj).detach().float().contiguous().clone()
            results[(variant, r)] = dict(target=target, trials=trials, sim=s, err=err,
                                         coefs=coefs, norms=norms, depth=len(coefs))
    return tensors, results


# ----------------------------------------------------------------------------- main

def compute():
    model = load_model()
    ids = load_file(str(CALIB))["calib_ids"].long()
    assert tuple(ids.shape) == (4, 16)
    acts, logits = capture(model, ids)
    imp, d64 = importances(acts)
    out = {k: v.float().contiguous() for k, v in imp.items()}
    out["drop_logits"] = drop_forward(load_model(), ids).float().contiguous()
    dl = (out["drop_logits"] - logits).abs().max().item()
    laco, results = laco_all(load_model(), ids)
    out.update(laco)
    return out, dict(imp=imp, d64=d64, dl=dl, laco=results, L=model.config.num_hidden_layers)


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(", ".join(f"{k} {v}" for k, v in versions().items()))
    out, rep = compute()
    L = rep["L"]

    print(f"\n{NAME}, calib_ids [4,16] (T = 64 tokens)")
    for k, v in rep["imp"].items():
        print(f"  {k:10s} " + " ".join(f"{x:.6f}" for x in v.tolist())
              + f"   ascending order {torch.argsort(v, stable=True).tolist()}")
    print(f"  attn_token/mlp_token with float64 sums instead of float32: max diff "
          f"{rep['d64']:.1e}")
    print(f"  drop_logits (attn {list(DROP_ATTN)}, mlp {list(DROP_MLP)} skipped): max |delta| "
          f"vs full logits {rep['dl']:.4f}; second way exact; residual unchanged")

    overall = (float("inf"), None)
    worst_err = {"paper": 0.0, "artifact": 0.0}
    for variant in ("paper", "artifact"):
        print(f"\nLaCo {variant}")
        for r in RATIOS:
            res = rep["laco"][(variant, r)]
            worst_err[variant] = max(worst_err[variant], res["err"])
            margins = [abs(t[3] - t[2]) for t in res["trials"]]
            mm = min(margins) if margins else float("nan")
            print(f"  r={'%g' % r} target {res['target']}: {len(res['trials'])} trials, "
                  f"final depth {res['depth']}, sim {res['sim']:.6f}, min margin "
                  f"{mm:.3e}, coef err {res['err']:.1e}")
            for t in res["trials"]:
                print(f"      lay {t[0]} m {t[1]} thr {t[2]:.17g} s {t[3]:.9f} "
                      f"{'ACCEPT' if t[4] else 'reject'}  |s-thr| {abs(t[3] - t[2]):.3e}")
                if abs(t[3] - t[2]) < overall[0]:
                    overall = (abs(t[3] - t[2]), (variant, '%g' % r, t))
            for k, (c, n) in enumerate(zip(res["coefs"], res["norms"])):
                print(f"      layer {k}: coef {[round(x, 6) for x in c.tolist()]} norms of {n}")
    print(f"\nsmallest |s - THRESHOLD| over all trials: {overall[0]:.3e} at {overall[1]}")
    print(f"coefficient reconstruction, max |sum_j c_j W_j - W| over every final model: "
          f"paper {worst_err['paper']:.2e}, artifact {worst_err['artifact']:.2e}")

    meta = {
        "model": NAME, "n_layers": str(L),
        "calib": "calib_ids [4,16] of tests/fixtures/elastic/tiny-elastic-gqa_elastic"
                 ".safetensors; whole batch, no mask, default positions",
        "bi": "bi_token = 1 - mean_t cos(X_l[t], Y_l[t]); bi_flat = 1 - cos(vec X_l, vec Y_l); "
              "Y_l before the final norm; float64",
        "attn_flat": "1 - cos(vec input_layernorm(X_l), vec self_attn output after o_proj)",
        "llm_drop": "attn_token = 1 - mean_t cos(X[t], X[t]+A_out[t]); mlp_token = 1 - "
                    "mean_t cos(H[t], H[t]+M_out[t]); sums as the model forms them (float32)",
        "drop": f"drop_logits: attention of layers {list(DROP_ATTN)} and MLP of layers "
                f"{list(DROP_MLP)} contribute zero",
        "laco": "sim = mean over the 4 calib rows (each alone, [1,16]) of cos(vec h_orig, "
                "vec h_cand), h = hidden_states[-1] (after the final norm); paper: "
                "W_l + sum_k (W_{l+k} - W_l), threshold reset per ratio; artifact: in-place "
                "W_base += W_k - W_base (~W_{l+m}), threshold carried across ratios",
        "laco_constants": f"MERGE_LAYERS={MERGE_LAYERS} INTERVAL={INTERVAL} HIGHEST={L - 1} "
                          f"LOWEST={LOWEST} THRESHOLD0={THRESHOLD0} ratios={RATIOS}",
        "laco_targets": " ".join(f"{'%g' % r}:{int(r * L)}" for r in RATIOS),
        **versions()}
    for k, v in out.items():
        assert v.dtype in (torch.float32, torch.int32) and v.is_contiguous(), k
    save_st(out, str(OUT), metadata=meta)
    back = load_file(str(OUT))
    assert sorted(back) == sorted(out) and all(torch.equal(back[k], out[k]) for k in out)
    again, _ = compute()
    assert sorted(again) == sorted(out) and all(torch.equal(again[k], out[k]) for k in out), \
        "second run differs"
    print(f"\n{OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes, {len(out)} tensors "
          f"(reload exact, second run identical)")
    for k in sorted(out):
        print(f"  {k:36s} {str(out[k].dtype).replace('torch.', ''):8s} {list(out[k].shape)}")
    assert OUT.stat().st_size < 400 * 1024


if __name__ == "__main__":
    sys.exit(main())
