#!/usr/bin/env python3
"""Elasticization goldens: a 6-layer GQA fixture, layer-skip losses and Taylor importance.

Run by hand from the repository root when the goldens must change:

    python3 tests/reference/make_elastic_goldens.py

Deterministic: fixed seeds, float32 on the CPU, one thread, deterministic algorithms,
attn_implementation="eager", no hub access. Weights are drawn with make_fixtures.py's own
functions (make_config, init_weights, save_model: every matrix ~ N(0, 0.1^2), RMSNorm gains
~ U(0.6, 1.4), drawn in sorted-name order from one generator), so the C loader reads the new
folder exactly as it reads the others. Writes:

  tests/fixtures/tiny-elastic-gqa/   HF LlamaForCausalLM folder for elasticization tests.
      vocab 256, hidden 64, 6 layers, 8 attention heads / 4 kv heads (GQA group 2),
      head_dim 8, ffn 96, eps 1e-6, rope_theta 1e4 (no rope scaling), untied, float32,
      one model.safetensors, seed 1004. config.json in the classic Hub layout
      ("rope_theta", "torch_dtype"), as make_fixtures.py writes tiny-llama-mha.
      Also golden.safetensors: the same cases make_fixtures.py writes for the other folders
      (case0 / case1 logits, greedy gen), so test_llama_golden.c's check_model can read it.

  tests/fixtures/elastic/<model>_elastic.safetensors, <model> in
      tiny-llama-mha (MHA: 4 heads, 4 kv heads, head_dim 20, ffn 192, 2 layers) and
      tiny-elastic-gqa (above). Tensors:

    calib_ids        [4, 16]   I32  the calibration batch: torch.randint(1, 256) from a
                                    torch.Generator seeded CALIB_SEED (same batch in both
                                    files). Never 0 (HF's embedding has padding_idx 0).
    logits           [4, 16, V] F32 model(calib_ids).logits (no attention mask: all ones)
    loss             [1]       F32  HF causal-LM loss with labels = calib_ids: mean
                                    cross-entropy over 4 x 15 predicted positions (logits at
                                    t predict calib_ids[t+1]).
    skip_loss        [L]       F32  the same loss with decoder layer i replaced by the
                                    identity (the layer returns its input hidden states
                                    unchanged: residual branches, norms, attention and MLP
                                    all gone), for every layer i (anchor selection, spec
                                    A.4: sort ascending, the last n_anchor are anchors).
    skip_order       [L]       I32  stable ascending argsort of skip_loss (float64 values).
    imp_attn.<l>     [KV]      F32  attention unit importance of layer l (see UNITS)
    rank_attn.<l>    [KV]      I32  stable ascending argsort of the float64 sums: least
                                    important first (the rank_all.json convention, spec A.8)
    imp_ffn.<l>      [F]       F32  FFN channel importance of layer l
    rank_ffn.<l>     [F]       I32

  IMPORTANCE (spec A.7, taylor=param_first, group_reduction=sum). One forward/backward of
  `loss` with EVERY parameter requiring grad; for each weight element s = |W * dL/dW|
  (W and G fp32, product and sums in float64: the product of two fp32 values is exact in
  float64). With H heads, KV kv heads, hd = head_dim, grp = H / KV, Hugging Face's repeat_kv
  mapping (query head h reads kv head h // grp):
    attention unit g (g < KV): rows [g*hd, (g+1)*hd) of k_proj and v_proj (all columns),
        rows [g*grp*hd, (g+1)*grp*hd) of q_proj (query heads g*grp .. (g+1)*grp-1, all
        columns), columns [g*grp*hd, (g+1)*grp*hd) of o_proj (all rows). Score = sum of s
        over all of those elements. For MHA (grp 1) this is the per-head score of A.7.
        NOTE for GQA this is the "semantically consistent" choice of A.7, NOT upstream
        LLM-Pruner's fold (which credits q/o channels c to group c mod (KV*hd), i.e. query
        heads {g, g+KV, ...}); main() prints how the two rankings compare.
    FFN channel j: row j of gate_proj and up_proj (all columns) + column j of down_proj
        (all rows).
  Every layer is scored (anchors included); the C test picks the non-anchor ones.

  metadata (sorted header): model, n_layers, heads, kv_heads, head_dim, ffn, vocab,
  n_calib, calib_seq, calib_seed, n_pred_tokens, loss, skip, units_attn, units_ffn,
  importance, rank, torch, transformers.

CHECKS the script makes: the loss equals a hand-written shifted mean CE; each skip loss
equals the loss of a model with layer i removed from model.model.layers (a second way of
skipping); the vectorised importance equals a unit-by-unit loop over explicit index sets;
a consistent unit permutation of every layer (by descending importance, as ARC_E.py's
reorder_llama does) leaves loss and logits unchanged and permutes the importance the same
way (importance recomputed on the permuted model); tests/reference/check_export.py passes
on such a permuted copy saved to disk (config.json + model.safetensors only) and fails on a
broken one (q_proj rows permuted alone); the fixture folder and the golden files reload and
reproduce exactly; running the script twice gives byte-identical files (safetensors headers
are rewritten with sorted keys).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (same weight law, config layout, loader)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "elastic"
CHECK_EXPORT = Path(__file__).resolve().parent / "check_export.py"

ELASTIC_SPEC = dict(
    name="tiny-elastic-gqa",
    seed=1004,
    dtype=torch.float32,
    shard=None,
    config_layout="classic",
    config=dict(
        vocab_size=256, hidden_size=64, num_attention_heads=8, num_key_value_heads=4,
        head_dim=8, intermediate_size=96, num_hidden_layers=6, rms_norm_eps=1e-6,
        rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
    ),
)

MODELS = ["tiny-llama-mha", "tiny-elastic-gqa"]
CALIB_SEED = 3001
N_CALIB, CALIB_SEQ = 4, 16

UNITS_ATTN = ("unit g < kv_heads = kv head g with the query heads that share it under HF "
              "repeat_kv (query head h -> kv head h // grp, grp = heads / kv_heads): rows "
              "[g*hd,(g+1)*hd) of k_proj and v_proj (all columns), rows [g*grp*hd,(g+1)*grp*hd) "
              "of q_proj (all columns), columns [g*grp*hd,(g+1)*grp*hd) of o_proj (all rows)")
UNITS_FFN = ("channel j < ffn: row j of gate_proj and up_proj (all columns), column j of "
             "down_proj (all rows)")
IMPORTANCE = ("first-order Taylor, param_first: sum over the unit's elements of |W * dL/dW|, "
              "W and G fp32, product and sums in float64; one forward/backward of `loss`, "
              "every parameter requiring grad")


# ----------------------------------------------------------------------------- io

def save_st(tensors, path, metadata=None):
    """safetensors.save_file with the header rewritten with sorted keys (byte-stable), as in
    make_train_goldens.py."""
    save_file(tensors, path, metadata=metadata)
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    with safe_open(path, "pt") as h:
        assert sorted(h.keys()) == sorted(tensors)
        assert (h.metadata() or {}) == (metadata or {})
        for k, t in tensors.items():
            assert torch.equal(h.get_tensor(k), t), k


def load_f32(path):
    return mf.load_f32(path)


def make_fixture():
    cfg = mf.make_config(ELASTIC_SPEC)
    out = mf.save_model(ELASTIC_SPEC, cfg)
    model = load_f32(out)
    golden, margin = mf.compute_golden(model, ELASTIC_SPEC["seed"], cfg.vocab_size)
    mf.check_positions_claim(model, golden)
    meta = {"generator": f"tests/reference/make_elastic_goldens.py (make_fixtures.compute_golden); "
                         f"torch {torch.__version__}; transformers {transformers.__version__}; "
                         f"weights stored as float32"}
    save_st(golden, str(out / "golden.safetensors"), metadata=meta)
    again, _ = mf.compute_golden(load_f32(out), ELASTIC_SPEC["seed"], cfg.vocab_size)
    for k, v in load_file(str(out / "golden.safetensors")).items():
        assert torch.equal(again[k], v), k
    return out, golden, margin


# ----------------------------------------------------------------------------- loss, skip

def calib_batch(vocab):
    gen = torch.Generator().manual_seed(CALIB_SEED)
    return torch.randint(1, vocab, (N_CALIB, CALIB_SEQ), generator=gen)


def hf_loss(model, ids):
    out = model(input_ids=ids, labels=ids, use_cache=False)
    return out.loss, out.logits


def hand_loss(logits, ids):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V).double(), ids[:, 1:].reshape(-1))


class Skipped:
    """Make decoder layer i return its input hidden states unchanged, in whatever form the
    real layer returns (transformers 5.23's LlamaDecoderLayer returns a bare tensor; older
    versions returned a tuple whose first entry is the hidden states)."""

    def __init__(self, model, i, returns_tuple):
        self.layer, self.returns_tuple = model.model.layers[i], returns_tuple

    def __enter__(self):
        tup = self.returns_tuple

        def identity(hidden_states, *args, **kwargs):
            return (hidden_states,) if tup else hidden_states
        self.layer.forward = identity  # instance attribute shadows the class method
        return self

    def __exit__(self, *exc):
        del self.layer.forward


def layer_return_form(model, ids):
    seen = []
    h = model.model.layers[0].register_forward_hook(lambda m, a, o: seen.append(o))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    h.remove()
    out = seen[0]
    if isinstance(out, torch.Tensor):
        return False
    assert isinstance(out, tuple) and isinstance(out[0], torch.Tensor), type(out)
    return True


def skip_losses(model, ids):
    L = model.config.num_hidden_layers
    tup = layer_return_form(model, ids)
    losses = []
    with torch.no_grad():
        base = hf_loss(model, ids)[0].item()
        for i in range(L):
            with Skipped(model, i, tup):
                losses.append(hf_loss(model, ids)[0])
        assert hf_loss(model, ids)[0].item() == base, "skip wrapper not undone"
        # second way: drop the layer from the ModuleList (LlamaModel loops over
        # layers[:num_hidden_layers]; eager attention, no cache: layer_idx is unused)
        layers = model.model.layers
        for i in range(L):
            model.model.layers = torch.nn.ModuleList([m for j, m in enumerate(layers) if j != i])
            model.config.num_hidden_layers = L - 1
            alt = hf_loss(model, ids)[0]
            model.model.layers, model.config.num_hidden_layers = layers, L
            d = abs(alt.item() - losses[i].item())
            assert d < 1e-6, (i, d)
    return torch.stack(losses).float(), tup


# ----------------------------------------------------------------------------- importance

def dims(cfg):
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    return H, KV, hd, H // KV, cfg.intermediate_size


def salience(lin):
    return (lin.weight.detach().double() * lin.weight.grad.detach().double()).abs()


def importance(model, ids):
    """Vectorised unit scores of every layer (float64), after one forward/backward."""
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(True)
    loss, _ = hf_loss(model, ids)
    loss.backward()
    H, KV, hd, grp, ff = dims(model.config)
    attn, ffn, upstream = [], [], []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        q = salience(a.q_proj).sum(1)          # [H*hd] per q row
        k = salience(a.k_proj).sum(1)          # [KV*hd]
        v = salience(a.v_proj).sum(1)
        o = salience(a.o_proj).sum(0)          # [H*hd] per o column
        attn.append(q.view(KV, grp * hd).sum(1) + o.view(KV, grp * hd).sum(1)
                    + k.view(KV, hd).sum(1) + v.view(KV, hd).sum(1))
        # upstream LLM-Pruner fold, for comparison only: q/o channel c -> kv channel c mod KV*hd
        upstream.append((q + o).view(grp, KV * hd).sum(0).view(KV, hd).sum(1)
                        + k.view(KV, hd).sum(1) + v.view(KV, hd).sum(1))
        ffn.append(salience(m.gate_proj).sum(1) + salience(m.up_proj).sum(1)
                   + salience(m.down_proj).sum(0))
    return loss.detach(), attn, ffn, upstream


def importance_loop(model):
    """The unit definitions written out with explicit index sets (uses the grads left by
    importance())."""
    H, KV, hd, grp, ff = dims(model.config)
    attn, ffn = [], []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        sq, sk, sv, so = (salience(x) for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj))
        sa = []
        for g in range(KV):
            kv_rows = list(range(g * hd, (g + 1) * hd))
            q_rows = [h * hd + c for h in range(g * grp, (g + 1) * grp) for c in range(hd)]
            assert all(h // grp == g for h in range(g * grp, (g + 1) * grp))  # repeat_kv
            sa.append(sk[kv_rows].sum() + sv[kv_rows].sum() + sq[q_rows].sum()
                      + so[:, q_rows].sum())
        attn.append(torch.stack(sa))
        sg, su, sd = salience(m.gate_proj), salience(m.up_proj), salience(m.down_proj)
        ffn.append(torch.stack([sg[j].sum() + su[j].sum() + sd[:, j].sum() for j in range(ff)]))
    return attn, ffn


def ascending(x):
    return torch.argsort(x, stable=True)


def min_rel_gap(x):
    s = torch.sort(x).values
    return ((s[1:] - s[:-1]) / s[1:].abs()).min().item() if len(s) > 1 else float("inf")


# ----------------------------------------------------------------------------- permutation

def permute_layer(layer, cfg, attn_perm, ffn_perm, broken=False):
    """New order: position i holds old unit attn_perm[i] / channel ffn_perm[i]. Consistent:
    q/k/v rows and o columns move in whole unit blocks, gate/up rows with down columns.
    broken=True permutes q_proj rows only (a deliberately wrong export)."""
    H, KV, hd, grp, ff = dims(cfg)
    qidx = torch.cat([torch.arange(g * grp * hd, (g + 1) * grp * hd) for g in attn_perm.tolist()])
    kidx = torch.cat([torch.arange(g * hd, (g + 1) * hd) for g in attn_perm.tolist()])
    a, m = layer.self_attn, layer.mlp
    with torch.no_grad():
        a.q_proj.weight.copy_(a.q_proj.weight[qidx])
        if broken:
            return
        a.k_proj.weight.copy_(a.k_proj.weight[kidx])
        a.v_proj.weight.copy_(a.v_proj.weight[kidx])
        a.o_proj.weight.copy_(a.o_proj.weight[:, qidx])
        m.gate_proj.weight.copy_(m.gate_proj.weight[ffn_perm])
        m.up_proj.weight.copy_(m.up_proj.weight[ffn_perm])
        m.down_proj.weight.copy_(m.down_proj.weight[:, ffn_perm])


def export_dir(model, src, dst):
    """What an elastilm export holds: config.json + one model.safetensors (no generation
    config, no tokenizer)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.json", dst / "config.json")
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})


def run_check_export(orig, exported):
    r = subprocess.run([sys.executable, str(CHECK_EXPORT), str(orig), str(exported)],
                       capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def permutation_checks(name, ids, ref_loss, ref_logits, attn64, ffn64):
    src = FIXTURES / name
    model = load_f32(src)
    orders = []
    for l, layer in enumerate(model.model.layers):  # descending importance, as reorder_llama
        ap, fp = ascending(attn64[l]).flip(0), ascending(ffn64[l]).flip(0)
        permute_layer(layer, model.config, ap, fp)
        orders.append((ap, fp))
    loss, a2, f2, _ = importance(model, ids)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    dl = abs(loss.item() - ref_loss) / abs(ref_loss)
    dlog = (logits - ref_logits).abs().max().item()
    dimp = max(max(((a2[l] - attn64[l][ap]).abs() / attn64[l].abs().max()).max().item(),
                   ((f2[l] - ffn64[l][fp]).abs() / ffn64[l].abs().max()).max().item())
               for l, (ap, fp) in enumerate(orders))
    assert dl < 1e-6 and dlog < 1e-5 and dimp < 1e-5, (name, dl, dlog, dimp)
    # permuted importance is sorted descending now
    for l in range(len(orders)):
        assert torch.all(a2[l][:-1] >= a2[l][1:] - 1e-12 * a2[l].abs().max()), (name, l)
    with tempfile.TemporaryDirectory(prefix=f".{name}.perm.", dir=FIXTURES) as tmp:
        good, bad = Path(tmp) / "good", Path(tmp) / "bad"
        export_dir(model, src, good)
        rc_good, out_good = run_check_export(src, good)
        broken = load_f32(src)
        H, KV, hd, grp, ff = dims(broken.config)
        l = len(broken.model.layers) - 1
        permute_layer(broken.model.layers[l], broken.config, torch.arange(KV).flip(0),
                      torch.arange(ff), broken=True)
        export_dir(broken, src, bad)
        rc_bad, out_bad = run_check_export(src, bad)
    assert rc_good == 0, out_good
    assert rc_bad == 1, out_bad
    return dl, dlog, dimp, out_good, out_bad


# ----------------------------------------------------------------------------- goldens

def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def elastic_goldens(name):
    model = load_f32(FIXTURES / name)
    cfg = model.config
    H, KV, hd, grp, ff = dims(cfg)
    L, V = cfg.num_hidden_layers, cfg.vocab_size
    ids = calib_batch(V)
    skip, tup = skip_losses(model, ids)
    loss, attn64, ffn64, upstream = importance(model, ids)
    with torch.no_grad():
        loss2, logits = hf_loss(model, ids)
    assert loss2.item() == loss.item()
    dh = abs(hand_loss(logits, ids).item() - loss.item())
    assert dh < 1e-6, dh
    la, lf = importance_loop(model)
    dloop = max(max(((la[l] - attn64[l]).abs() / attn64[l].max()).max().item(),
                    ((lf[l] - ffn64[l]).abs() / ffn64[l].max()).max().item()) for l in range(L))
    assert dloop < 1e-12, dloop

    out = {"calib_ids": ids.to(torch.int32).contiguous(),
           "logits": logits.detach().float().contiguous(),
           "loss": loss.reshape(1).float().clone(),
           "skip_loss": skip.contiguous(),
           "skip_order": ascending(skip.double()).to(torch.int32)}
    for l in range(L):
        out[f"imp_attn.{l}"] = attn64[l].float().contiguous()
        out[f"rank_attn.{l}"] = ascending(attn64[l]).to(torch.int32)
        out[f"imp_ffn.{l}"] = ffn64[l].float().contiguous()
        out[f"rank_ffn.{l}"] = ascending(ffn64[l]).to(torch.int32)
    meta = {"model": name, "n_layers": str(L), "heads": str(H), "kv_heads": str(KV),
            "head_dim": str(hd), "ffn": str(ff), "vocab": str(V), "n_calib": str(N_CALIB),
            "calib_seq": str(CALIB_SEQ),
            "calib_seed": f"torch.Generator().manual_seed({CALIB_SEED}); "
                          f"torch.randint(1, {V}, ({N_CALIB}, {CALIB_SEQ}))",
            "n_pred_tokens": str(N_CALIB * (CALIB_SEQ - 1)), "loss": repr(loss.item()),
            "skip": "decoder layer i returns its input hidden states unchanged (identity)",
            "units_attn": UNITS_ATTN, "units_ffn": UNITS_FFN, "importance": IMPORTANCE,
            "rank": "rank_* = stable ascending argsort of the float64 scores (least important "
                    "first); skip_order = stable ascending argsort of skip_loss",
            **versions()}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}_elastic.safetensors"
    save_st(out, str(path), metadata=meta)

    report = dict(loss=loss.item(), skip=skip.tolist(), tup=tup, dh=dh, dloop=dloop,
                  attn=[a.tolist() for a in attn64], ffn=ffn64, upstream=upstream,
                  path=path)
    report["perm"] = permutation_checks(name, ids, loss.item(), logits, attn64, ffn64)
    return report


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(", ".join(f"{k} {v}" for k, v in versions().items()))

    out, golden, margin = make_fixture()
    size = (out / "model.safetensors").stat().st_size
    lg = golden["case0.logits"]
    print(f"{out.relative_to(ROOT)}: model.safetensors {size} bytes; golden reload exact; "
          f"logits std {lg.std():.3f}, max |logit| {lg.abs().max():.3f}; gen "
          f"{golden['gen.output_ids'][0, 6:].tolist()} (smallest greedy gap {margin:.2e})")
    assert size < 1024 * 1024, size

    for name in MODELS:
        r = elastic_goldens(name)
        skip = r["skip"]
        print(f"\n{name}: loss {r['loss']:.6f} (|HF - hand CE| {r['dh']:.1e}); layer returns "
              f"{'tuple' if r['tup'] else 'tensor'}")
        print("  skip_loss " + ", ".join(f"{i}:{s:.6f}" for i, s in enumerate(skip)))
        print(f"  skip order (ascending; last = strongest anchor candidates): "
              f"{sorted(range(len(skip)), key=lambda i: skip[i])}")
        print(f"  importance loop vs vectorised: max rel {r['dloop']:.1e}")
        for l, a in enumerate(r["attn"]):
            f64 = r["ffn"][l]
            up = r["upstream"][l]
            ra, ru = ascending(torch.tensor(a)).tolist(), ascending(up).tolist()
            print(f"  layer {l}: attn {[f'{x:.6g}' for x in a]} rank(asc) {ra} "
                  f"min rel gap {min_rel_gap(torch.tensor(a)):.2e}"
                  + ("" if ra == ru else f"  [upstream fold rank {ru}]"))
            rf = ascending(f64)
            print(f"           ffn: sum {f64.sum():.6g}, min {f64.min():.4g} (ch {rf[0].item()}),"
                  f" max {f64.max():.4g} (ch {rf[-1].item()}), least-important 8 "
                  f"{rf[:8].tolist()}, most-important 4 {rf[-4:].flip(0).tolist()}, "
                  f"min rel gap {min_rel_gap(f64):.2e}")
        dl, dlog, dimp, good, bad = r["perm"]
        print(f"  permutation by descending importance, every layer: rel |dloss| {dl:.1e}, "
              f"max|dlogits| {dlog:.1e}, importance permutes along (max rel {dimp:.1e})")
        print("  check_export.py on that export:  " + good.replace("\n", " | "))
        print("  check_export.py, q rows only:     " + bad.replace("\n", " | "))

    total = 0
    for f in sorted(list(OUT.glob("*.safetensors")) + list(out.iterdir())):
        total += f.stat().st_size
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
