#!/usr/bin/env python3
"""Checks a score head exported by `elastilm tlm score --export DIR` in transformers: the directory loads as a
token classifier with no missing or unexpected keys, tokenizes like elastilm, and gives the logits that
`elastilm tlm scores --tlm DIR` prints (and, when an artifact is given, that the artifact's copy prints), within
1e-4 absolute.

    python3 tests/reference/check_score_export.py DIR [ARTIFACT.h5] [ELASTILM_BIN]
"""
import os
import subprocess
import sys

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

TEXTS = [
    "Question: Which gas do plants take in for photosynthesis? Answer: carbon dioxide.",
    "The redback spider is one of the few spider species that can be seriously harmful to humans; its liking for "
    "habitats in built structures has led it to being responsible for many bites in Australia.",
    "Examples: \nQuestion: How to make Strawberry Kiwi Sauce at home. Answer: Boil 1 cup Kiwi (chopped).",
    "naïve café résumé — 1,234 items (approx.) can't won't",
]


def c_scores(binary, tlm, text):
    out = subprocess.run([binary, "tlm", "scores", "--tlm", tlm, "--text", text], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    rows = [line.split("\t") for line in out[1:]]
    return [r[0] for r in rows], torch.tensor([[float(r[3]), float(r[4])] for r in rows])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    artifact = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    binary = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("ELASTILM_BIN", "./elastilm")
    model, info = AutoModelForTokenClassification.from_pretrained(path, output_loading_info=True,
                                                                  attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        sys.exit(f"{path}: {bad}")
    model.eval()
    tok = AutoTokenizer.from_pretrained(path)
    worst = 0.0
    for text in TEXTS:
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            ref = model(**enc).logits[0, 1:-1]
        pieces = tok.convert_ids_to_tokens(enc["input_ids"][0, 1:-1])
        for src in [path] + ([artifact] if artifact else []):
            got_pieces, got = c_scores(binary, src, text)
            if got_pieces != pieces:
                sys.exit(f"{src}: pieces differ:\n{got_pieces}\n{pieces}")
            err = (got - ref).abs().max().item()
            worst = max(worst, err)
            if err > 1e-4:
                sys.exit(f"{src}: max |logit difference| {err:.3g} on {text!r}")
    print(f"ok: {len(TEXTS)} texts, max |logit difference| {worst:.2g} (transformers vs elastilm)")


if __name__ == "__main__":
    main()
