#!/usr/bin/env python3
"""Goldens for the Metaspace pre-tokenizer and decoder, which no shared tokenizer.json uses.

    python3 tests/reference/make_metaspace_goldens.py

LLaMA-2's tokenizer.json normalizes with Prepend("▁") + Replace(" ", "▁"). Other
SentencePiece-BPE conversions (transformers' LlamaConverter with legacy=False, OpenLLaMA,
T5-style files) instead use a Metaspace pre-tokenizer. This script derives two such
variants from the shared LLaMA-2 file (same vocabulary and merges) and writes, for the
committed corpus, tests/fixtures/tokenizers/<variant>.golden.jsonl.gz in the format of
make_tokenizer_goldens.py. tests/test_tokenizers.c applies the same edits with jansson
(keep metaspace_variant() there and VARIANTS here in step).

  llama2-metaspace-first: normalizer null; pre_tokenizer Metaspace(prepend_scheme
      "first", split false); decoder unchanged (Replace, ByteFallback, Fuse, Strip).
  llama2-metaspace-split: normalizer null; pre_tokenizer Metaspace(prepend_scheme
      "always", split true); decoder Sequence[Metaspace(prepend_scheme "always"),
      ByteFallback, Fuse].

Deterministic; needs `tokenizers` (0.23.3 made the committed files).
"""
import gzip
import json
import os
from pathlib import Path

from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tests" / "fixtures" / "tokenizers"
OUT = REPO / "tests" / "fixtures" / "tokenizers"

VARIANTS = {
    "llama2-metaspace-first": {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
    },
    "llama2-metaspace-split": {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
    },
}


def main():
    base = json.loads(gzip.open(SHARED / "llama2-tokenizer.json.gz", "rt", encoding="utf-8").read())
    corpus = [json.loads(line) for line in
              gzip.open(OUT / "corpus.jsonl.gz", "rt", encoding="utf-8", newline="\n").read().split("\n") if line]
    for name, edits in VARIANTS.items():
        d = dict(base)
        d.update(edits)
        t = Tokenizer.from_str(json.dumps(d))
        lines = []
        for s in corpus:
            e = t.encode(s, add_special_tokens=True)
            p = t.encode(s, add_special_tokens=False)
            g = {"ids": e.ids, "plain": p.ids, "offsets": [[a, b] for a, b in p.offsets],
                 "decoded": t.decode(e.ids, skip_special_tokens=False),
                 "decoded_skip": t.decode(e.ids, skip_special_tokens=True)}
            lines.append(json.dumps(g, ensure_ascii=True) + "\n")
        data = "".join(lines).encode("utf-8")
        with open(OUT / f"{name}.golden.jsonl.gz", "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as z:
                z.write(data)
        print(f"{name}: {len(corpus)} strings -> {OUT / (name + '.golden.jsonl.gz')}")


if __name__ == "__main__":
    main()
