#!/usr/bin/env python3
"""PyTorch/transformers + peft reference for the CPU LoRA training benchmark (SmolLM2-135M, fp32).

    python3 experiments/bench/bench_lora_torch.py [--threads 1,2] [--steps 5] [--warmup 2] [--gguf PATH]

Loads SmolLM2-135M-Instruct from the same GGUF the C harness reads
($ELASTILM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, cache default ~/.cache/elastilm;
transformers dequantises it to float32), wraps it with peft -- the recipe `elastilm lora`
uses by default:

  LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
             target_modules=q,k,v,o,gate,up,down _proj of every layer), base frozen

and, for each thread count (torch.set_num_threads), times optimizer steps of one
micro-batch each (global batch = micro-batch = 4 sequences of 256 tokens):

  model.train(); loss = model(input_ids=x, labels=x).loss   (mean CE over 4 x 255 positions)
  loss.backward(); clip_grad_norm_(lora params, 1.0); AdamW(lr 1e-4, weight_decay 0).step();
  zero_grad(set_to_none=True)

x is a fresh [4, 256] batch of uniform random token ids per step (fixed seed; the cost of a
step does not depend on the ids). --warmup steps (default 2) run first and are not timed;
then --steps steps are timed together (time.perf_counter around the whole loop), and it
prints one line per thread count:

  torch threads=<n> steps=<k> step_s=<seconds per step> tok_s=<4*256 / step_s>

Attention is PyTorch's SDPA (transformers' default), the fastest stock CPU path; no
gradient checkpointing (elastilm lora's default is no recomputation either).

Exit status: 0 ok; 3 the reference cannot run here (torch, transformers, peft, gguf or
accelerate not installed), so the shell bench can skip it; 2 usage error or no model file.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import load_gguf_fp32, parse_threads, quiet_offline_hf  # noqa: E402
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes

SEQ = 256
MICRO_BATCH = 4
RANK, ALPHA, DROPOUT = 8, 16, 0.05
LR = 1e-4
MAX_GRAD_NORM = 1.0
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def need_modules():
    missing = []
    for mod in ("torch", "transformers", "peft", "gguf", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        print(f"bench_lora_torch: reference unavailable: Python module(s) not installed: "
              f"{', '.join(missing)} (pip install torch transformers peft gguf accelerate)",
              file=sys.stderr)
        sys.exit(3)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm"))
    p.add_argument("--gguf", default=str(cache / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per thread count")
    p.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps before them")
    args = p.parse_args()
    threads = parse_threads(p, args.threads)
    if args.steps < 1 or args.warmup < 0:
        p.error("need --steps >= 1 and --warmup >= 0")

    quiet_offline_hf()
    need_modules()
    import torch
    from peft import LoraConfig, get_peft_model
    base = load_gguf_fp32(args.gguf, "bench_lora_torch")
    cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS,
                     bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1234)

    def step():
        x = torch.randint(0, vocab, (MICRO_BATCH, SEQ), generator=gen)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for n in threads:
        torch.set_num_threads(n)
        for _ in range(args.warmup):
            step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        dt = (time.perf_counter() - t0) / args.steps
        print(f"torch threads={n} steps={args.steps} step_s={dt:.4f} tok_s={MICRO_BATCH * SEQ / dt:.1f}",
              flush=True)


if __name__ == "__main__":
    main()
