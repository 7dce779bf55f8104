#!/usr/bin/env python3
"""Golden outputs of the real SmolLM2-135M-Instruct (GGUF Q4_1) from Hugging Face.

Run by hand from the repository root (after `datasets/fetch.sh smollm2`):

    python3 tests/reference/smollm2_golden.py

Reads $ELASTILM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (ELASTILM_CACHE defaults to
~/.cache/elastilm). transformers dequantises the GGUF to float32 (Q4_1 / Q8_0 blocks via
the gguf package) and runs it with eager attention in float32; the tokenizer is the one
transformers builds from the same GGUF's tokenizer.ggml.* keys. Writes
tests/real/smollm2_golden.safetensors:

  input_ids      [3, T]       I32  three texts (English sentence, code snippet, chat
                                   prompt), LEFT-padded with the GGUF's padding token
  attention_mask [3, T]       I32  0 on pads
  check_ids      [3, T, 128]  I32  per position: HF's top-64 ids (best first), then 64
                                   distinct random vocab ids not among them (fixed seed)
  check_logits   [3, T, 128]  F32  HF's float32 logits at check_ids
  gen.input_ids  [1, Tp]      I32  the chat prompt alone, unpadded
  gen.output_ids [1, Tp+24]   I32  greedy continuation, 24 new tokens, no EOS stop

The batch is run as model(input_ids, attention_mask=mask) WITHOUT position_ids, which in
transformers 5.x means positions arange(T) for every row, pads included (a left-padded row
starts at position n_pad), the same convention as tests/fixtures/*/golden.safetensors.
Rows at pad positions are meaningless; compare only where attention_mask == 1.
The generation uses no padding, so positions are 0..Tp+23 there.
"""

import importlib.metadata
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "real" / "smollm2_golden.safetensors"
CACHE = Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm"))
GGUF_DIR = CACHE / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

TOP_K = 64
N_RANDOM = 64
SEED = 20250207
NEW_TOKENS = 24

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n")
TEXTS = [
    "The quick brown fox jumped over 13 lazy dogs near the river bank in 2024.",
    "def add(a, b):\n    return a + b\n",
    CHAT,
]


def load():
    path = GGUF_DIR / GGUF_NAME
    if not path.is_file():
        sys.exit(f"smollm2_golden: {path} not found; run datasets/fetch.sh smollm2")
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME,
                                                 dtype=torch.float32,
                                                 attn_implementation="eager")
    return tok, model.eval()


def left_pad(rows, pad_id):
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, T - len(r):] = torch.tensor(r)
        mask[i, T - len(r):] = 1
    return ids, mask


def pick_check_ids(logits, vocab):
    """Top-64 per position plus 64 distinct random ids outside the top-64."""
    rng = np.random.default_rng(SEED)
    B, T, _ = logits.shape
    top = logits.topk(TOP_K, dim=-1).indices.numpy()
    out = np.zeros((B, T, TOP_K + N_RANDOM), dtype=np.int64)
    for b in range(B):
        for t in range(T):
            taken = set(top[b, t].tolist())
            extra = []
            while len(extra) < N_RANDOM:
                c = int(rng.integers(0, vocab))
                if c not in taken:
                    taken.add(c)
                    extra.append(c)
            out[b, t, :TOP_K] = top[b, t]
            out[b, t, TOP_K:] = extra
    return torch.from_numpy(out)


def greedy(model, prompt_ids):
    model.generation_config = GenerationConfig(  # replace, do not merge: no EOS anywhere
        do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
        eos_token_id=None, bos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids))
        # cross-check against a plain argmax loop (full recompute) and record the margin
        ids, margin = prompt_ids, math.inf
        for _ in range(NEW_TOKENS):
            last = model(ids).logits[0, -1]
            v = last.topk(2).values
            margin = min(margin, (v[0] - v[1]).item())
            ids = torch.cat([ids, last.argmax().view(1, 1)], dim=1)
    assert torch.equal(out, ids), "generate() differs from a plain argmax loop"
    return out, margin


def main():
    torch.manual_seed(0)
    tok, model = load()
    vocab = model.config.vocab_size
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    if hasattr(tok, "apply_chat_template") and tok.chat_template:
        via_template = tok.apply_chat_template(
            [{"role": "system", "content": SYSTEM},
             {"role": "user", "content": "What is the capital of France?"}],
            tokenize=False, add_generation_prompt=True)
        assert via_template == CHAT, f"chat template gives {via_template!r}"
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids, mask = left_pad(rows, pad_id)
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits.float()
    check_ids = pick_check_ids(logits, vocab)
    check_logits = logits.gather(-1, check_ids)

    prompt = torch.tensor([rows[2]])
    out, margin = greedy(model, prompt)

    i32 = lambda x: x.to(torch.int32).contiguous()  # noqa: E731
    tensors = {
        "input_ids": i32(ids),
        "attention_mask": i32(mask),
        "check_ids": i32(check_ids),
        "check_logits": check_logits.contiguous(),
        "gen.input_ids": i32(prompt),
        "gen.output_ids": i32(out),
    }
    meta = {"generator": f"tests/reference/smollm2_golden.py; {GGUF_NAME}; "
                         f"torch {torch.__version__}; transformers {transformers.__version__}; "
                         f"gguf {importlib.metadata.version('gguf')}; pad id {pad_id}"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(OUT.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.rename(OUT)

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"gguf {importlib.metadata.version('gguf')}")
    for t, r in zip(TEXTS, rows):
        print(f"{len(r):3d} tokens: {t!r}")
        print(f"      ids {r}")
    real = mask.bool()
    print(f"T = {ids.shape[1]}, pad id {pad_id}; logits std (real positions) "
          f"{logits[real].std():.3f}")
    cont = tok.decode(out[0, prompt.shape[1]:])
    print(f"greedy continuation ({NEW_TOKENS} tokens, smallest top1-top2 gap {margin:.3f}): {cont!r}")
    print(f"      ids {out[0, prompt.shape[1]:].tolist()}")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1024:.0f} KiB)")
    assert OUT.stat().st_size < 300 * 1024


if __name__ == "__main__":
    main()
