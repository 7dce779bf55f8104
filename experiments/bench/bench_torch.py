#!/usr/bin/env python3
"""PyTorch/transformers reference for the CPU benchmark (SmolLM2-135M, float32).

    python3 experiments/bench/bench_torch.py [--threads 1,2] [--reps 3] [--gguf PATH]
    python3 experiments/bench/bench_torch.py --check     (exit 0 and print the versions, or 3)
    python3 experiments/bench/bench_torch.py --serve     (load once; one round per stdin line)

Loads SmolLM2-135M-Instruct from the same GGUF the C harness reads
($ELASTILM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, cache default ~/.cache/elastilm;
transformers dequantises it to float32) and, for each thread count
(torch.set_num_threads), measures

  prefill: one forward of a batch of 1 x 128 tokens (building the KV cache)
           -> prefill_tok_s = 128 / seconds
  decode:  after that prefill, 64 greedy steps of model(next_token, past_key_values=...),
           one token each, argmax on the host side (not generate(), to match the C loop)
           -> decode_tok_s = 64 / seconds

each the best of --reps runs after one warm-up run, and prints one line per thread count
(with --serve, experiments/bench/bench_cpu.sh asks for one such measurement per round and
takes the median over the rounds, without reloading the model):

  torch threads=<n> prefill_tok_s=<x> decode_tok_s=<y>

The prompt is the same recipe the C bench uses: ids[i] = (1000 + 7919 * i) % 49152.
Attention is PyTorch's SDPA (transformers' default), the fastest stock CPU path.

Exit status: 0 ok; 3 the reference cannot run here (torch, transformers, gguf or
accelerate not installed), so the shell bench can skip it; 2 usage error or no model file.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import load_gguf_fp32, parse_threads, quiet_offline_hf  # noqa: E402
import time
from pathlib import Path

PREFILL = 128
DECODE = 64
VOCAB = 49152


def need_modules():
    missing = []
    for mod in ("torch", "transformers", "gguf", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        print(f"bench_torch: reference unavailable: Python module(s) not installed: "
              f"{', '.join(missing)} (pip install torch transformers gguf accelerate)",
              file=sys.stderr)
        sys.exit(3)


def prompt_ids():
    return [(1000 + 7919 * i) % VOCAB for i in range(PREFILL)]


def run(model, ids, torch, DynamicCache):
    """Returns (prefill_seconds, decode_seconds) of one prefill + decode pass."""
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        t0 = time.perf_counter()
        out = model(ids, past_key_values=cache, use_cache=True)
        t1 = time.perf_counter()
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        cache = out.past_key_values
        for _ in range(DECODE):
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm"))
    p.add_argument("--gguf", default=str(cache / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--serve", action="store_true",
                   help="load once, then measure one round per line of stdin (bench_cpu.sh)")
    p.add_argument("--check", action="store_true",
                   help="only check that the modules are installed and print their versions")
    args = p.parse_args()
    threads = parse_threads(p, args.threads)
    if args.reps < 1:
        p.error("--reps must be >= 1")

    quiet_offline_hf()
    need_modules()
    import torch
    if args.check:
        import transformers
        print(f"torch {torch.__version__} + transformers {transformers.__version__}")
        return
    from transformers import DynamicCache
    model = load_gguf_fp32(args.gguf, "bench_torch").eval()
    ids = torch.tensor([prompt_ids()], dtype=torch.long)

    def measure(n):
        torch.set_num_threads(n)
        run(model, ids, torch, DynamicCache)  # warm-up
        prefill = decode = float("inf")
        for _ in range(args.reps):
            tp, td = run(model, ids, torch, DynamicCache)
            prefill, decode = min(prefill, tp), min(decode, td)
        print(f"torch threads={n} prefill_tok_s={PREFILL / prefill:.1f} "
              f"decode_tok_s={DECODE / decode:.1f}", flush=True)

    if not args.serve:
        for n in threads:
            measure(n)
        return
    # --serve: the model stays loaded; each line on stdin is one round ("1,2": thread counts,
    # or empty for --threads), answered by its lines and a line "done". Ends at end of input.
    print("ready", flush=True)
    for line in sys.stdin:
        for n in (parse_threads(p, line) if line.strip() else threads):
            measure(n)
        print("done", flush=True)

if __name__ == "__main__":
    main()
