#!/usr/bin/env python3
"""Hugging Face `tokenizers` reference for the tokenizer throughput benchmark.

    python3 experiments/bench/bench_tokenizers.py [--corpus PATH] [--tokenizers-dir DIR]...
                                                  [--names llama2,llama3,smollm2,minilm]
                                                  [--seconds 2]

For each tokenizer (llama2, llama3, smollm2, minilm) it loads <name>-tokenizer.json.gz (or
<name>-tokenizer.json) with tokenizers.Tokenizer.from_str, the same file the C tokenizer
reads, and encodes the corpus string by string (Tokenizer.encode(s,
add_special_tokens=False), a plain Python loop, one thread: RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false are set before the import), once to warm up and then in
whole passes over the corpus until --seconds (default 2) have passed. It prints one line
per tokenizer:

  hf tokenizer=<name> mb_s=<x>

where x = UTF-8 bytes of input encoded / seconds / 1e6. The per-call cost of the Python
binding (building the Encoding object, offsets included) is part of the figure.

Defaults: --corpus tests/fixtures/tokenizers/corpus.jsonl.gz (one JSON string per line;
made by tests/reference/make_tokenizer_goldens.py); --tokenizers-dir, which may be given
several times and is searched in order, defaults to tests/fixtures/tokenizers (all four, relative to the repository
root). minilm's tokenizer.json carries padding (Fixed 128) and truncation (128) settings;
they are switched off, as in the goldens, so every string is encoded whole and unpadded.

Exit status: 0 ok; 3 the reference cannot run here (`tokenizers` not installed), so the
shell bench can skip it; 2 usage error or a missing corpus / tokenizer file.
"""

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAMES = ("llama2", "llama3", "smollm2", "minilm")
DEFAULT_DIRS = (REPO / "tests" / "fixtures" / "tokenizers",)


def fail(msg, code=2):
    print(f"bench_tokenizers: {msg}", file=sys.stderr)
    sys.exit(code)


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def load_corpus(path: Path):
    if not path.exists():
        fail(f"{path}: no such corpus (run tests/reference/make_tokenizer_goldens.py)")
    # Records are "\n"-separated; str.splitlines() would also split at U+2028 etc.
    return [json.loads(line) for line in read_text(path).split("\n") if line]


def find_tokenizer(name, dirs):
    for d in dirs:
        for fn in (f"{name}-tokenizer.json.gz", f"{name}-tokenizer.json"):
            p = Path(d) / fn
            if p.exists():
                return p
    fail(f"no {name}-tokenizer.json[.gz] in " + ", ".join(str(d) for d in dirs))


def bench(tok, corpus, nbytes, seconds):
    enc = tok.encode
    for s in corpus:  # warm-up pass
        enc(s, add_special_tokens=False)
    passes = 0
    t0 = time.perf_counter()
    while True:
        for s in corpus:
            enc(s, add_special_tokens=False)
        passes += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return passes * nbytes / dt / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path,
                    default=REPO / "tests" / "fixtures" / "tokenizers" / "corpus.jsonl.gz")
    ap.add_argument("--tokenizers-dir", type=Path, action="append", default=None,
                    help="folder with <name>-tokenizer.json[.gz]; repeatable, searched in order "
                         "(default: tests/fixtures/tokenizers)")
    ap.add_argument("--names", default=",".join(NAMES),
                    help="comma-separated subset of " + ",".join(NAMES))
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    try:
        from tokenizers import Tokenizer
    except ImportError:
        fail("reference unavailable: Python module 'tokenizers' not installed "
             "(pip install tokenizers)", 3)

    names = [n for n in args.names.split(",") if n]
    for n in names:
        if n not in NAMES:
            fail(f"unknown tokenizer '{n}' (one of {', '.join(NAMES)})")
    if args.seconds <= 0:
        fail("--seconds must be > 0")
    dirs = args.tokenizers_dir or list(DEFAULT_DIRS)

    corpus = load_corpus(args.corpus)
    nbytes = sum(len(s.encode("utf-8")) for s in corpus)
    if nbytes == 0:
        fail(f"{args.corpus}: empty corpus")
    for name in names:
        tok = Tokenizer.from_str(read_text(find_tokenizer(name, dirs)))
        tok.no_truncation()
        tok.no_padding()
        mb_s = bench(tok, corpus, nbytes, args.seconds)
        print(f"hf tokenizer={name} mb_s={mb_s:.2f}", flush=True)


if __name__ == "__main__":
    main()
