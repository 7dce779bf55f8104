#!/usr/bin/env python3
r"""Golden outputs of OpenAI's tiktoken (cl100k_base) for the C loader of .tiktoken files.

Run by hand from the repository root when the golden must change:

    datasets/fetch.sh tiktoken
    python3 -m venv --system-site-packages /tmp/tkvenv && /tmp/tkvenv/bin/pip install tiktoken
    /tmp/tkvenv/bin/python tests/reference/make_tiktoken_goldens.py

Options: --bpe FILE (default $ELASTILM_CACHE/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken,
cache default ~/.cache/elastilm), --out FILE (default
tests/fixtures/tokenizers/cl100k.golden.jsonl.gz).

The encoding is built from the file itself, exactly as tiktoken builds cl100k_base
(tiktoken_ext/openai_public.py: the same pat_str and special tokens), so no network is
needed. The file's sha256 is checked first.

Writes one JSON object per line of tests/fixtures/tokenizers/corpus.jsonl.gz, in the format
of the other goldens there (see tests/fixtures/tokenizers/README.md), so that
tu_check_tokenizer() checks it:

  {"ids":          enc.encode(text, allowed_special="all")   (cl100k has no BOS: ids == plain)
   "plain":        the same,
   "offsets":      [[start, end], ...] code point indices: a token covering UTF-8 bytes
                   [bs, be) of the text gets [char(bs), char(be - 1) + 1], i.e. every token
                   touching a character gets that whole character's span (Hugging Face's
                   byte-level rule, which the C tokenizer follows),
   "decoded":      enc.decode(ids)  (errors="replace": a token list that splits a character
                   decodes to U+FFFD, as the C decoder does),
   "decoded_skip": enc.decode(ids without the special-token ids)}

allowed_special="all": special-token text in the input ("<|endoftext|>", ...) is matched as
the special token, as Hugging Face's added tokens are. tiktoken's default
(disallowed_special="all") would raise instead; encode_ordinary would treat it as text.

gzip -9, no file name, mtime 0: a second run gives byte-identical output.
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import tiktoken

SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# tiktoken_ext/openai_public.py, cl100k_base
PAT_STR = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
           r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
           "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
CORPUS = Path("tests/fixtures/tokenizers/corpus.jsonl.gz")


def load_encoding(path):
    data = Path(path).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256:
        raise SystemExit(f"{path}: sha256 {got}, expected {SHA256}")
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name="cl100k_base", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=SPECIAL)


def gz_bytes(text):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(text.encode("utf-8"))
    return buf.getvalue()


def dumps(obj):
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return s.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def char_offsets(enc, text, ids):
    raw = text.encode("utf-8")
    char_of = []  # byte index -> code point index
    for ci, ch in enumerate(text):
        char_of += [ci] * len(ch.encode("utf-8"))
    out, pos = [], 0
    for t in ids:
        n = len(enc.decode_single_token_bytes(t))
        out.append([char_of[pos], char_of[pos + n - 1] + 1])
        pos += n
    assert pos == len(raw)
    return out


def main():
    cache = os.environ.get("ELASTILM_CACHE", os.path.expanduser("~/.cache/elastilm"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bpe", default=f"{cache}/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken")
    ap.add_argument("--out", default="tests/fixtures/tokenizers/cl100k.golden.jsonl.gz")
    args = ap.parse_args()
    enc = load_encoding(args.bpe)
    corpus = gzip.decompress(CORPUS.read_bytes()).decode("utf-8").split("\n")
    corpus = [json.loads(line) for line in corpus if line]
    specials = set(SPECIAL.values())
    lines = []
    for text in corpus:
        ids = enc.encode(text, allowed_special="all")
        assert enc.decode_bytes(ids) == text.encode("utf-8")
        lines.append(dumps({"ids": ids, "plain": ids, "offsets": char_offsets(enc, text, ids),
                            "decoded": enc.decode(ids),
                            "decoded_skip": enc.decode([i for i in ids if i not in specials])}))
    Path(args.out).write_bytes(gz_bytes("".join(line + "\n" for line in lines)))
    print(f"{args.out}: {len(lines)} lines, tiktoken {tiktoken.__version__}")


if __name__ == "__main__":
    main()
