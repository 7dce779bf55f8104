#!/usr/bin/env python3
"""Check that an exported model computes the same function as the original.

    python3 tests/reference/check_export.py ORIG_DIR EXPORT_DIR [--ids SEED] [--batch B] [--seq T]

Both folders are Hugging Face LlamaForCausalLM folders (config.json + model.safetensors or
a sharded index); EXPORT_DIR may lack generation_config.json and tokenizer files (what
`elastilm` writes after permuting neurons). Both are loaded with transformers, float32,
attn_implementation="eager", on the CPU, one thread, deterministic algorithms. One batch of
B x T token ids (default 2 x 12) drawn with torch.randint(1, vocab) from a
torch.Generator seeded SEED (default 0; --ids picks another batch) is run through both,
without an attention mask (all ones), and

    max |logits_export - logits_orig|   vs   1e-5 * max |logits_orig|

is printed. Exit status 0 when within, 1 when above (or when shapes / vocab differ),
2 when a folder cannot be loaded. A consistent permutation of attention units (q/k/v rows and
o columns in whole head / kv-group blocks) and FFN channels (gate/up rows, down columns)
changes only the summation order, i.e. ~1e-7 relative; a broken one changes the logits at
O(1).
"""

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

REL_TOL = 1e-5


def load(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("orig")
    ap.add_argument("export")
    ap.add_argument("--ids", type=int, default=0, metavar="SEED",
                    help="seed of the random id batch (default 0)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=12)
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        orig, exp = load(args.orig), load(args.export)
    except Exception as e:  # noqa: BLE001
        print(f"check_export: cannot load: {type(e).__name__}: {e}", file=sys.stderr)
        return 2

    V = orig.config.vocab_size
    if exp.config.vocab_size != V:
        print(f"FAIL: vocab {exp.config.vocab_size} != {V}")
        return 1
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "intermediate_size"):
        a, b = getattr(orig.config, k), getattr(exp.config, k)
        if a != b:
            print(f"note: config {k} differs: {a} (orig) vs {b} (export)")

    gen = torch.Generator().manual_seed(args.ids)
    ids = torch.randint(1, V, (args.batch, args.seq), generator=gen)
    with torch.no_grad():
        lo = orig(input_ids=ids, use_cache=False).logits
        le = exp(input_ids=ids, use_cache=False).logits
    if lo.shape != le.shape:
        print(f"FAIL: logits shape {tuple(le.shape)} != {tuple(lo.shape)}")
        return 1
    d = (le - lo).abs().max().item()
    ref = lo.abs().max().item()
    tol = REL_TOL * ref
    ok = d <= tol
    print(f"{'OK' if ok else 'FAIL'}: ids {args.batch}x{args.seq} seed {args.ids}: "
          f"max |dlogits| {d:.3e}, max |logits| {ref:.3f}, tolerance {tol:.3e} "
          f"(rel {d / ref if ref else float('inf'):.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
