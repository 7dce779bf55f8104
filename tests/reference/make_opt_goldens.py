#!/usr/bin/env python3
"""Tiny random OPT models (transformers' OPTForCausalLM) and their golden outputs.

Run by hand from the repository root when the goldens must change:

    python3 tests/reference/make_opt_goldens.py

Deterministic: fixed seeds, every parameter drawn by this script (biases and
LayerNorm parameters perturbed away from transformers' 0 / 1 initialisation), no
hub access. It writes, under tests/fixtures/opt/:

  pre-ln/tokenizer.json  a tiny GPT-2-style byte-level BPE (vocab 320: <s> <pad> </s> <unk>,
                     the 256 bytes, 60 merges) trained with `tokenizers` on a few hundred
                     words; ByteLevel pre-tokenizer (add_prefix_space False), ByteLevel
                     decoder, post-processor TemplateProcessing "</s> $A" as OPT's fast
                     tokenizer (beside the pre-ln weights: tokenizer_load_for_model).
  tokenizer_golden.json  [{"text", "ids", "ids_special"}] from the HF tokenizer.
  pre-ln/            opt-125m style: do_layer_norm_before True, vocab 320, hidden 32,
                     2 layers, 4 heads, ffn 64, max_pos 24, word_embed_proj_dim 32 (no
                     project_in/out), relu, biases, tied embeddings.
  post-ln/           opt-350m style: do_layer_norm_before False (no final LayerNorm),
                     hidden 32, word_embed_proj_dim 16 (project_in / project_out), 2 layers,
                     4 heads, ffn 48, relu, tied.
  variant/           pre-LN, activation "gelu", enable_bias False, layer_norm_elementwise_affine
                     False, tie_word_embeddings False (lm_head.weight stored), hidden 16,
                     1 layer, 2 heads, ffn 32.

Every model folder gets golden.safetensors (float32, eager attention, no position_ids given:
OPT derives them from the mask, cumsum(mask) * mask - 1, table row = that + 2):

  case0.input_ids      [2, 10] I32  row 0 full, row 1 LEFT-padded (4 pads, pad id 1)
  case0.attention_mask [2, 10] I32
  case0.logits         [2, 10, V] F32
  prefix.input_ids     [2, 11] I32  both rows share their first 6 tokens; row 1's
                                    7th token is a pad in the middle (mask 0)
  prefix.attention_mask[2, 11] I32
  prefix.logits        [2, 11, V] F32

Logits at pad positions carry no meaning; compare where attention_mask == 1.
"""

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import OPTConfig, OPTForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "opt"
V = 320

WORDS = """the quick brown fox jumps over the lazy dog while a small model reads every token
of the sentence and predicts what comes next in the stream of bytes that the tokenizer makes
from plain text with spaces newlines and punctuation marks like commas, periods. and questions?
language models learn from data, they attend to earlier positions and sum what they see into
a hidden state; open pretrained transformers came in many sizes from one hundred million to one
hundred seventy five billion parameters trained on public datasets with the same recipe
elastic serving picks a smaller view of the model when the deadline is tight and the full model
when there is time to spare the prompt may be compressed first to save work on long inputs
numbers such as 12 345 and 2024 appear too as do names like Alice Bob Carol and Dave
""".split()


def make_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=V,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)] * 3
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A </s> $B", special_tokens=[("</s>", 2)]
    )
    assert tok.token_to_id("</s>") == 2 and tok.token_to_id("<pad>") == 1
    return tok


TEXTS = [
    "the quick brown fox",
    " leading space and  double  spaces",
    "Hello, World! How are you?",
    "numbers 12345 and 2024-06-01",
    "newlines\nand\ttabs\n\n",
    "unicode: café naïve — 東京 🙂",
    "elastic serving of the full model",
    "</s> a special token inside text </s>",
    "'s 're 've 'll 'd contractions it's",
    "",
    "x",
]


def tokenizer_golden(tok):
    out = []
    for t in TEXTS:
        out.append(
            {
                "text": t,
                "ids": tok.encode(t, add_special_tokens=False).ids,
                "ids_special": tok.encode(t, add_special_tokens=True).ids,
            }
        )
    return out


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def make_model(name, cfg_kwargs, seed):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = OPTConfig(
        vocab_size=V,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        dropout=0.0,
        attention_dropout=0.0,
        **cfg_kwargs,
    )
    model = OPTForCausalLM(cfg).eval()
    randomize(model, gen)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if (d / extra).exists():
            (d / extra).unlink()
    # golden from the folder as stored
    model = OPTForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()

    g = torch.Generator().manual_seed(seed + 1)
    T = 10
    ids0 = torch.randint(3, V, (2, T), generator=g)
    mask0 = torch.ones(2, T, dtype=torch.long)
    mask0[1, :4] = 0
    ids0[1, :4] = 1
    P, T2 = 6, 11
    shared = torch.randint(3, V, (P,), generator=g)
    ids1 = torch.randint(3, V, (2, T2), generator=g)
    ids1[:, :P] = shared
    mask1 = torch.ones(2, T2, dtype=torch.long)
    mask1[1, P] = 0
    ids1[1, P] = 1
    golden = {}
    with torch.no_grad():
        for key, ids, mask in (("case0", ids0, mask0), ("prefix", ids1, mask1)):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            golden[f"{key}.input_ids"] = ids.to(torch.int32).contiguous()
            golden[f"{key}.attention_mask"] = mask.to(torch.int32).contiguous()
            golden[f"{key}.logits"] = logits.contiguous()
        # sanity: the padded row equals the same tokens run alone (positions follow the mask)
        alone = model(input_ids=ids0[1:, 4:]).logits
        diff = (alone[0] - golden["case0.logits"][1, 4:]).abs().max().item()
        assert diff < 1e-5, diff
    save_file(golden, str(d / "golden.safetensors"))
    for p in d.iterdir():
        p.chmod(0o644)
    return model


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    tok = make_tokenizer()
    assert tok.get_vocab_size() == V, tok.get_vocab_size()
    tok_json = tok.to_str(pretty=True)
    make_model(
        "pre-ln",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, max_position_embeddings=24,
             word_embed_proj_dim=32, do_layer_norm_before=True, activation_function="relu"),
        seed=11,
    )
    (OUT / "pre-ln" / "tokenizer.json").write_text(tok_json)
    hf = Tokenizer.from_file(str(OUT / "pre-ln" / "tokenizer.json"))
    with open(OUT / "tokenizer_golden.json", "w") as f:
        json.dump(tokenizer_golden(hf), f, ensure_ascii=False, indent=0)
        f.write("\n")
    make_model(
        "post-ln",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48, max_position_embeddings=24,
             word_embed_proj_dim=16, do_layer_norm_before=False, activation_function="relu"),
        seed=12,
    )
    make_model(
        "variant",
        dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, max_position_embeddings=24,
             word_embed_proj_dim=16, do_layer_norm_before=True, activation_function="gelu", enable_bias=False,
             layer_norm_elementwise_affine=False, tie_word_embeddings=False),
        seed=13,
    )
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
