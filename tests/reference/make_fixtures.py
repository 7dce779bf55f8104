#!/usr/bin/env python3
"""Tiny random LLaMA-family models and their Hugging Face golden outputs.

Run by hand from the repository root when the goldens must change:

    python3 tests/reference/make_fixtures.py

Deterministic: fixed seeds, weights drawn by this script (not by transformers'
initialisers), no hub access (HF_HUB_OFFLINE=1). It writes, under tests/fixtures/:

  tiny-llama-mha/      LLaMA-1/2 style MHA. vocab 256, hidden 80, 4 heads (head_dim 20,
                       deliberately not a power of two), 4 kv heads, ffn 192, 2 layers,
                       eps 1e-6, rope_theta 1e4, tie False. float32, SHARDED
                       (model-0000x-of-0000N.safetensors + model.safetensors.index.json).
                       config.json in the classic Hub layout: "rope_theta", "torch_dtype".
  tiny-llama3-gqa/     Llama-3 style GQA. vocab 256, hidden 64, 4 heads / 2 kv heads
                       (head_dim 16), ffn 128, 2 layers, eps 1e-5, rope_theta 1e4,
                       llama3 rope scaling (factor 8, low 1, high 4, original ctx 32),
                       tie False. bfloat16, one model.safetensors. config.json in the
                       classic Hub layout: "rope_theta", "rope_scaling", "torch_dtype".
  tiny-smol-tied/      SmolLM2 style. vocab 256, hidden 96, 6 heads / 2 kv heads
                       (head_dim 16), ffn 160, 3 layers, eps 1e-5, rope_theta 1e5, tied
                       embeddings (no lm_head.weight in the file). float16. config.json
                       exactly as transformers 5 writes it ("rope_parameters", "dtype"), so
                       the C config reader sees both layouts.
  tiny-llama3-gqa.gguf the tiny-llama3-gqa weights (bf16 values upcast, so exact) as an
                       all-F32 GGUF laid out the way llama.cpp's convert_hf_to_gguf.py lays
                       out LLaMA: Q/K rows permuted from HF's rotate-half order to
                       llama.cpp's interleaved-pair order, llama3 rope scaling stored as a
                       "rope_freqs.weight" tensor of per-frequency divisors. No tokenizer.

Each model folder also gets golden.safetensors (float32 computed from exactly the stored,
rounded weights: the folder is reloaded with dtype=float32 and attn_implementation="eager"):

  case0.input_ids      [1, 12]       I32  random ids in [1, 256)
  case0.attention_mask [1, 12]       I32  all ones
  case0.logits         [1, 12, 256]  F32
  case0.logprobs       [1, 11]       F32  log_softmax(logits[0, t])[input_ids[0, t+1]]
  case1.input_ids      [3, 10]       I32  LEFT-padded batch, lengths 10, 7, 3, pad id 0
  case1.attention_mask [3, 10]       I32  0 on pads
  case1.logits         [3, 10, 256]  F32  model(input_ids, attention_mask=mask), no
                                          position_ids given (see POSITIONS below)
  gen.input_ids        [1, 6]        I32
  gen.output_ids       [1, 16]       I32  greedy generate, 10 new tokens, no EOS stop

POSITIONS. When position_ids are not given, transformers 5.x LlamaModel.forward uses
position_ids = arange(T) (+ past length) for EVERY row, ignoring the attention mask: in a
left-padded row the first real token sits at position n_pad, not 0. (generate() is
different: it builds position_ids = cumsum(mask) - 1 with pads set to 0, see
GenerationMixin._prepare_position_ids_for_generation, so a left-padded row starts at 0;
our gen case has no padding, so both agree there.) case1 reproduces the forward() behaviour.

PAD ROWS. case1.logits at pad positions (mask 0) are whatever HF's eager attention does
with a query whose every key is masked; they carry no meaning. Compare only where
attention_mask == 1.

Tolerances are for the tests that read these files, not for this script; the script itself
checks that reloading each folder reproduces its golden logits exactly (max |delta| == 0)
and reports what transformers' own GGUF loader makes of tiny-llama3-gqa.gguf.
"""

import importlib.metadata
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import gguf  # noqa: E402
from safetensors.torch import save_file, load_file  # noqa: E402
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402
import transformers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

WEIGHT_STD = 0.1  # every matrix ~ N(0, 0.1^2): logits come out with std ~1
NORM_RANGE = (0.6, 1.4)  # RMSNorm gains ~ U(0.6, 1.4): a loader that drops them fails

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}

MODELS = [
    dict(
        name="tiny-llama-mha",
        seed=1001,
        dtype=torch.float32,
        shard="200KB",
        config_layout="classic",
        config=dict(
            vocab_size=256, hidden_size=80, num_attention_heads=4, num_key_value_heads=4,
            intermediate_size=192, num_hidden_layers=2, rms_norm_eps=1e-6,
            rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
        ),
    ),
    dict(
        name="tiny-llama3-gqa",
        seed=1002,
        dtype=torch.bfloat16,
        shard=None,
        config_layout="classic",
        config=dict(
            vocab_size=256, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, num_hidden_layers=2, rms_norm_eps=1e-5,
            rope_theta=10000.0, max_position_embeddings=256, rope_scaling=dict(LLAMA3_ROPE),
            tie_word_embeddings=False,
        ),
    ),
    dict(
        name="tiny-smol-tied",
        seed=1003,
        dtype=torch.float16,
        shard=None,
        config_layout="transformers5",
        config=dict(
            vocab_size=256, hidden_size=96, num_attention_heads=6, num_key_value_heads=2,
            intermediate_size=160, num_hidden_layers=3, rms_norm_eps=1e-5,
            rope_theta=100000.0, max_position_embeddings=256, tie_word_embeddings=True,
        ),
    ),
]

COMMON_CONFIG = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_act="silu",
                     attention_bias=False, mlp_bias=False, initializer_range=WEIGHT_STD)

DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


# ----------------------------------------------------------------------------- models

def make_config(spec):
    kw = dict(COMMON_CONFIG)
    kw.update(spec["config"])
    rope = {"rope_type": "default", "rope_theta": kw.pop("rope_theta")}
    if "rope_scaling" in kw:
        rope.update(kw.pop("rope_scaling"))
    return LlamaConfig(rope_parameters=rope, **kw)


def init_weights(model, seed):
    """Draw every parameter from our own generator, in sorted-name order."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())  # tied weights appear once
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if p.ndim == 1:  # RMSNorm gains
                lo, hi = NORM_RANGE
                p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=gen))
            else:
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=gen))


def rewrite_config_classic(path, spec):
    """Give config.json the layout real Hub checkpoints have (rope_theta, rope_scaling,
    torch_dtype) instead of transformers 5's rope_parameters / dtype."""
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype")
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_model(spec, cfg):
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(cfg)
    init_weights(model, spec["seed"])
    model = model.to(spec["dtype"])
    out = FIXTURES / spec["name"]
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec['name']}.", dir=FIXTURES))
    kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    model.save_pretrained(tmp, safe_serialization=True, **kw)
    if spec["config_layout"] == "classic":
        rewrite_config_classic(tmp / "config.json", spec)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def load_f32(path, **kw):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 attn_implementation="eager", **kw)
    return model.eval()


# ----------------------------------------------------------------------------- goldens

def golden_inputs(seed, vocab):
    rng = np.random.default_rng(seed)
    ids0 = rng.integers(1, vocab, size=(1, 12))
    lengths = [10, 7, 3]
    ids1 = np.zeros((3, 10), dtype=np.int64)
    mask1 = np.zeros((3, 10), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids1[row, 10 - n:] = rng.integers(1, vocab, size=n)
        mask1[row, 10 - n:] = 1
    gen_ids = rng.integers(1, vocab, size=(1, 6))
    t = lambda a: torch.from_numpy(a).long()  # noqa: E731
    return t(ids0), t(ids1), t(mask1), t(gen_ids)


def greedy_by_hand(model, ids, steps):
    """Plain argmax loop with full recompute: cross-checks generate(). Also returns the
    smallest top-1 minus top-2 logit gap met on the way (how robust the golden is)."""
    margin = math.inf
    for _ in range(steps):
        with torch.no_grad():
            last = model(ids).logits[:, -1]
        top2 = last.topk(2, dim=-1).values
        margin = min(margin, (top2[:, 0] - top2[:, 1]).min().item())
        ids = torch.cat([ids, last.argmax(-1, keepdim=True)], dim=1)
    return ids, margin


def compute_golden(model, seed, vocab):
    ids0, ids1, mask1, gen_ids = golden_inputs(seed, vocab)
    mask0 = torch.ones_like(ids0)
    with torch.no_grad():
        logits0 = model(ids0, attention_mask=mask0).logits.float()
        logits1 = model(ids1, attention_mask=mask1).logits.float()
    logprobs0 = torch.log_softmax(logits0[0, :-1], dim=-1).gather(-1, ids0[0, 1:, None])[:, 0]
    # The generation config must REPLACE the model's: transformers 5 merges a config passed
    # to generate() with model.generation_config, which brings eos_token_id=2 back, and
    # min_new_tokens then masks token 2 out of the argmax (seen on tiny-llama3-gqa).
    # With no EOS at all, generate() is a plain argmax loop (asserted below).
    model.generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=10, min_new_tokens=10,
        eos_token_id=None, bos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(gen_ids, attention_mask=torch.ones_like(gen_ids))
    assert out.shape == (1, 16), out.shape
    by_hand, margin = greedy_by_hand(model, gen_ids, 10)
    assert torch.equal(out, by_hand), "generate() differs from a plain argmax loop"
    i32 = lambda x: x.to(torch.int32).contiguous()  # noqa: E731
    return {
        "case0.input_ids": i32(ids0),
        "case0.attention_mask": i32(mask0),
        "case0.logits": logits0.contiguous(),
        "case0.logprobs": logprobs0[None].contiguous(),
        "case1.input_ids": i32(ids1),
        "case1.attention_mask": i32(mask1),
        "case1.logits": logits1.contiguous(),
        "gen.input_ids": i32(gen_ids),
        "gen.output_ids": i32(out),
    }, margin


def check_positions_claim(model, golden):
    """case1 row 2 (3 real tokens) must equal the same tokens run alone at positions
    7, 8, 9; this pins down the 'positions ignore padding' behaviour documented above."""
    ids = golden["case1.input_ids"][2:3, 7:].long()
    with torch.no_grad():
        alone = model(ids, position_ids=torch.arange(7, 10)[None]).logits
    d = (alone[0] - golden["case1.logits"][2, 7:]).abs().max().item()
    assert d < 1e-5, f"left-pad positions are not arange(T): max |delta| {d}"


def max_delta(a, b):
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- rope

def llama3_inv_freq(theta, head_dim, rs):
    """inv_freq after llama3 scaling, and which band each frequency falls in."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    old = rs["original_max_position_embeddings"]
    lo_wl = old / rs["low_freq_factor"]
    hi_wl = old / rs["high_freq_factor"]
    out, bands, divisors = [], [], []
    for f in inv.tolist():
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(f); bands.append("kept"); divisors.append(1.0)
        elif wl > lo_wl:
            out.append(f / rs["factor"]); bands.append("scaled"); divisors.append(rs["factor"])
        else:
            s = (old / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append((1 - s) * f / rs["factor"] + s * f); bands.append("smoothed")
            divisors.append(1.0 / ((1 - s) / rs["factor"] + s))
    return torch.tensor(out), bands, np.array(divisors, dtype=np.float32)


# With head_dim 16, theta 1e4 the 8 wavelengths 2*pi/f are 6.3, 19.9, 62.8, 199, 628,
# 1987, 6283, 19869; with original ctx 32, low 1, high 4 the band edges are 32/4 = 8 and
# 32/1 = 32, so frequency 0 is kept, 1 is smoothed and 2..7 are scaled by 8 (asserted
# in main()).


# ----------------------------------------------------------------------------- gguf

def permute_rows(w, n_head):
    """HF rotate-half row order -> llama.cpp interleaved pairs, per head (what
    convert_hf_to_gguf.py's LlamaModel.permute does)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(hf_dir, cfg, path):
    sd = {}
    for f in sorted(hf_dir.glob("model*.safetensors")):
        sd.update(load_file(f))
    f32 = lambda name: sd[name].float().numpy()  # noqa: E731  bf16 -> f32 is exact
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // n_head
    rs = cfg.rope_parameters

    tmp = path.with_name(path.name + ".tmp.gguf")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("tiny-llama3-gqa")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(rs["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)

    # llama.cpp's converter emits rope_freqs first (generate_extra_tensors). Note: it reads
    # original_max_position_embeddings from the TOP LEVEL of config.json (default 8192),
    # not from rope_scaling; for real Llama 3.x both are 8192. Our config has it only in
    # rope_scaling (32), so we use that value: this tensor matches HF's llama3 rope.
    _, _, divisors = llama3_inv_freq(rs["rope_theta"], head_dim, rs)
    w.add_tensor("rope_freqs.weight", divisors)
    w.add_tensor("token_embd.weight", f32("model.embed_tokens.weight"))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(p + "input_layernorm.weight"))
        w.add_tensor(f"blk.{i}.attn_q.weight", permute_rows(f32(p + "self_attn.q_proj.weight"), n_head))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute_rows(f32(p + "self_attn.k_proj.weight"), n_kv))
        w.add_tensor(f"blk.{i}.attn_v.weight", f32(p + "self_attn.v_proj.weight"))
        w.add_tensor(f"blk.{i}.attn_output.weight", f32(p + "self_attn.o_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", f32(p + "post_attention_layernorm.weight"))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(p + "mlp.gate_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f32(p + "mlp.up_proj.weight"))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f32(p + "mlp.down_proj.weight"))
    w.add_tensor("output_norm.weight", f32("model.norm.weight"))
    w.add_tensor("output.weight", f32("lm_head.weight"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)


def check_gguf_with_transformers(gguf_path, hf_dir, golden):
    """Load the GGUF with transformers' own loader (which un-permutes Q/K itself)."""
    ids = golden["case0.input_ids"].long()
    report = {}
    model = load_f32(gguf_path.parent, gguf_file=gguf_path.name)
    with torch.no_grad():
        logits = model(ids).logits
    report["as loaded"] = max_delta(logits, golden["case0.logits"])
    report["rope_parameters as loaded"] = dict(model.config.rope_parameters)
    # transformers' GGUF loader ignores rope_freqs.weight (llama3 scaling is lost), so
    # also compare against the same folder with the rope scaling removed, and load the
    # GGUF weights under the folder's own config: both isolate the Q/K permutation.
    plain = load_f32(hf_dir)
    plain.config.rope_parameters = {"rope_type": "default",
                                    "rope_theta": plain.config.rope_parameters["rope_theta"]}
    plain.model.rotary_emb = type(plain.model.rotary_emb)(config=plain.config)
    with torch.no_grad():
        report["vs folder without rope scaling"] = max_delta(logits, plain(ids).logits)
    cfg = transformers.AutoConfig.from_pretrained(hf_dir)
    with_cfg = load_f32(gguf_path.parent, gguf_file=gguf_path.name, config=cfg)
    with torch.no_grad():
        report["loaded with folder's config.json"] = max_delta(with_cfg(ids).logits,
                                                               golden["case0.logits"])
    return report


# ----------------------------------------------------------------------------- main

def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"gguf {importlib.metadata.version('gguf')}")
    goldens = {}
    for spec in MODELS:
        cfg = make_config(spec)
        out = save_model(spec, cfg)
        model = load_f32(out)
        golden, margin = compute_golden(model, spec["seed"], cfg.vocab_size)
        check_positions_claim(model, golden)
        # one metadata key: safetensors writes several in random order (not byte-stable)
        meta = {"generator": f"tests/reference/make_fixtures.py; torch {torch.__version__}; "
                             f"transformers {transformers.__version__}; "
                             f"weights stored as {DTYPE_NAME[spec['dtype']]}"}
        tmp = out / "golden.safetensors.tmp"
        save_file(golden, str(tmp), metadata=meta)
        tmp.rename(out / "golden.safetensors")
        goldens[spec["name"]] = golden
        # reload from disk and recompute: the goldens must be reproduced exactly
        again, _ = compute_golden(load_f32(out), spec["seed"], cfg.vocab_size)
        for k, v in load_file(str(out / "golden.safetensors")).items():
            assert max_delta(again[k].float(), v.float()) == 0, f"{spec['name']} {k} not reproduced"
        lg = golden["case0.logits"]
        print(f"{spec['name']}: reload max|delta| = 0; logits std {lg.std():.3f}, "
              f"max |logit| {lg.abs().max():.3f}; gen {golden['gen.output_ids'][0, 6:].tolist()} "
              f"(smallest greedy top1-top2 gap {margin:.2e})")

    # llama3 rope: every band must be exercised, and HF's inv_freq must equal ours
    spec = MODELS[1]
    hf_dir = FIXTURES / spec["name"]
    model = load_f32(hf_dir)
    rs = model.config.rope_parameters
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    inv, bands, divisors = llama3_inv_freq(rs["rope_theta"], head_dim, rs)
    assert {"kept", "smoothed", "scaled"} <= set(bands), bands
    d = ((model.model.rotary_emb.inv_freq.float() - inv) / inv).abs().max().item()
    assert d < 1e-6, f"HF llama3 inv_freq differs from ours (relative {d})"
    print(f"llama3 rope bands: {bands}; rope_freqs divisors {divisors.tolist()}")

    gguf_path = FIXTURES / "tiny-llama3-gqa.gguf"
    write_gguf(hf_dir, model.config, gguf_path)
    for k, v in check_gguf_with_transformers(gguf_path, hf_dir, goldens[spec["name"]]).items():
        print(f"gguf via transformers: {k}: {v}")

    mine = [gguf_path] + [f for s in MODELS for f in (FIXTURES / s["name"]).iterdir()]
    total = sum(f.stat().st_size for f in mine)
    print(f"fixtures written by this script: {total / 1024:.0f} KiB")
    assert total < 3 * 1024 * 1024


if __name__ == "__main__":
    sys.exit(main())
