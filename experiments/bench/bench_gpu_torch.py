#!/usr/bin/env python3
"""PyTorch/transformers reference for the GPU benchmark (bench_gpu.c), same shapes, same GPU.

    python3 experiments/bench/bench_gpu_torch.py --shape llama2-7b|smollm2-135m
        [--batch 8] [--prefill 512] [--decode-prompt 128] [--decode-steps 128] [--reps 5]

Builds LlamaForCausalLM(config) with random weights (transformers' own init,
normal(0, initializer_range)) directly on cuda:0 in bfloat16, attention through
PyTorch SDPA (attn_implementation="sdpa"), eager mode (no torch.compile, no CUDA
graphs), and measures what bench_gpu.c measures:

  prefill: one forward of batch x prefill tokens (no padding) into an empty
           DynamicCache, logits of the last position only (logits_to_keep=1,
           as the C side's LOGITS_LAST) -> prefill_tok_s, mfu
  decode:  batch 1, a decode-prompt-token prompt (not timed), then decode-steps
           greedy steps model(next_token, past_key_values=cache), argmax on the
           GPU -> decode_ms_tok

each the median of --reps timed runs after one warm-up, sync()
before every clock read. Token ids: (1000 + 7919 i) mod V, as the C bench.
MFU = 2 * N_matmul * tokens / seconds / peak with N_matmul the per-token matmul
parameters (q, k, v, o, gate, up, down of every layer) and the dense bf16 peak of
the device named by torch.cuda.get_device_name (H100/H200 SXM: 989 TFLOP/s).

Prints one line:  torch shape=<s> prefill_tok_s=<x> mfu=<m> decode_ms_tok=<y> ...
Exit status: 0 ok; 3 the reference cannot run here (no torch, transformers or GPU);
2 usage. Needs nothing from the network.
"""

import argparse
import os
import statistics
import sys
import time

SHAPES = {
    # name: (vocab, dim, ffn, layers, heads, kv_heads, head_dim, max_pos, rope_theta, tied)
    "llama2-7b": (32000, 4096, 11008, 32, 32, 32, 128, 4096, 10000.0, False),
    "smollm2-135m": (49152, 576, 1536, 30, 9, 3, 64, 8192, 100000.0, True),
}


def peak_tflops(name):
    if "H200" in name:
        return 989.4
    if "H100" in name and "PCIe" in name:
        return 756.0
    if "H100" in name and "NVL" in name:
        return 835.0
    if "H100" in name:
        return 989.4
    if "A100" in name:
        return 312.0
    return 0.0


def matmul_params(s):
    vocab, d, f, layers, h, kv, hd = s[:7]
    qd, kvd = h * hd, kv * hd
    return layers * (qd * d + 2 * kvd * d + d * qd + 3 * f * d)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", required=True, choices=sorted(SHAPES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--decode-prompt", type=int, default=128)
    p.add_argument("--decode-steps", type=int, default=128)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cuda:0", help="cuda:0; 'cpu' only smoke-tests this script")
    args = p.parse_args()
    if min(args.batch, args.prefill, args.decode_prompt, args.decode_steps, args.reps) < 1:
        p.error("sizes and --reps must be >= 1")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import torch
        import transformers
        from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(f"bench_gpu_torch: reference unavailable: {e}", file=sys.stderr)
        sys.exit(3)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu_torch: reference unavailable: torch sees no CUDA device", file=sys.stderr)
        sys.exit(3)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    s = SHAPES[args.shape]
    vocab, d, f, layers, h, kv, hd, max_pos, theta, tied = s
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=d, intermediate_size=f, num_hidden_layers=layers,
        num_attention_heads=h, num_key_value_heads=kv, head_dim=hd, max_position_embeddings=max_pos,
        rms_norm_eps=1e-5, rope_theta=theta, tie_word_embeddings=tied, initializer_range=0.02,
        bos_token_id=1, eos_token_id=2, attn_implementation="sdpa")
    torch.manual_seed(0)
    t_init = time.perf_counter()
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with dev:
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old_dtype)
    model = model.to(device=dev, dtype=torch.bfloat16).eval()
    if getattr(model.config, "_attn_implementation", None) != "sdpa" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("sdpa")
    sync()
    t_init = time.perf_counter() - t_init
    attn = getattr(model.config, "_attn_implementation", "?")
    w_std = model.model.layers[0].mlp.down_proj.weight.float().std().item()
    if not w_std > 0:
        print("bench_gpu_torch: the weights are zero: refusing to time them", file=sys.stderr)
        sys.exit(1)

    B, T, P, S, R = args.batch, args.prefill, args.decode_prompt, args.decode_steps, args.reps
    ids = torch.tensor([(1000 + 7919 * i) % vocab for i in range(B * T)], dtype=torch.long, device=dev).view(B, T)
    prompt = ids.reshape(-1)[:P].view(1, P)

    def prefill_once():
        with torch.inference_mode():
            sync()
            t0 = time.perf_counter()
            cache = DynamicCache(config=model.config)
            out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            sync()
            t1 = time.perf_counter()
        del out, cache
        return t1 - t0

    def decode_once():
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            out = model(prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            sync()
            t0 = time.perf_counter()
            for _ in range(S):
                out = model(nxt, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            sync()
            t1 = time.perf_counter()
        del out, cache
        return t1 - t0

    prefill_once()  # warm-up (cuBLAS handles, kernels, allocator)
    prefill = statistics.median(prefill_once() for _ in range(R))
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    decode_once()
    decode = statistics.median(decode_once() for _ in range(R))

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    peak = peak_tflops(name)
    tokens = B * T
    mfu = 2.0 * matmul_params(s) * tokens / prefill / (peak * 1e12) if peak else float("nan")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# torch device: {name}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"attention {attn}, weight std {w_std:.4f}")
    print(f"torch shape={args.shape} dtype=bf16 params={n_params} batch={B} prefill_len={T} "
          f"prefill_ms={prefill * 1e3:.2f} prefill_tok_s={tokens / prefill:.1f} mfu={mfu:.4f} "
          f"decode_prompt={P} decode_steps={S} decode_ms_tok={decode / S * 1e3:.3f} "
          f"decode_tok_s={S / decode:.1f} reps={R} init_s={t_init:.1f}", flush=True)


if __name__ == "__main__":
    main()
