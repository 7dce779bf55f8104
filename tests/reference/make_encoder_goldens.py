#!/usr/bin/env python3
"""Tiny random BERT fixtures and goldens for tests/test_encoder.c.

Writes under tests/fixtures/encoders/:
  bert-tok/   BertForTokenClassification, 2 labels (save_pretrained: "bert."-prefixed body, bare classifier, no pooler)
  bert-seq/   BertForSequenceClassification, 3 labels (prefixed, with pooler)
  bert-base/  BertModel (bare names, like all-MiniLM-L6-v2; with pooler)
  <name>_golden.safetensors: the inputs (ids, types, cu, targets), the last hidden states of every token
  ("hidden"), the head's logits, the mean cross-entropy over the counted targets ("loss") and the gradient of
  that loss for every parameter ("grad.<name without the bert. prefix>"), in eval mode (no dropout).
Each sequence is run on its own (attention within each sequence only), losses are summed over sequences and
divided by the total count, as the C trainer does with loss_scale = 1/counted.
Seeded: reruns are byte-identical (transformers 5.25, torch 2.15, CPU, fp32).
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification, BertModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "encoders")
CFG = dict(vocab_size=48, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
           max_position_embeddings=24, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
LENS = [9, 13, 4]


def perturb(model, seed):
    """Weights big enough that every gradient is well above fp32 noise; norms away from (1, 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def inputs(seed, n_labels, token_head):
    g = torch.Generator().manual_seed(seed)
    ids, types, targets, cu = [], [], [], [0]
    for s, n in enumerate(LENS):
        ids.append(torch.randint(1, CFG["vocab_size"], (n,), generator=g))
        t = torch.zeros(n, dtype=torch.long)
        if s == 1:
            t[n // 2:] = 1  # a sentence pair
        types.append(t)
        if token_head:
            y = torch.randint(0, n_labels, (n,), generator=g)
            y[0] = -100  # [CLS]-like and last positions not counted
            y[-1] = -100
            targets.append(y)
        cu.append(cu[-1] + n)
    if not token_head:
        targets = [torch.tensor([s % n_labels]) for s in range(len(LENS))]
    return ids, types, targets, cu


def strip(name):
    return name[len("bert."):] if name.startswith("bert.") else name


def run(model, ids, types, targets, head):
    """hidden [N, D], logits, mean CE over counted, grads {name: tensor}."""
    model.eval()
    model.zero_grad()
    hidden, logits, total, count = [], [], 0.0, 0
    for i, t, y in zip(ids, types, targets):
        kw = dict(input_ids=i[None], token_type_ids=t[None], output_hidden_states=True)
        out = model(**kw)
        hidden.append(out.hidden_states[-1][0] if head else out.last_hidden_state[0])
        if head:
            lg = out.logits[0] if out.logits.dim() == 3 else out.logits
            logits.append(lg)
            total = total + torch.nn.functional.cross_entropy(lg, y, ignore_index=-100, reduction="sum")
            count += int((y >= 0).sum())
    res = {"hidden": torch.cat(hidden).detach().contiguous()}
    if head:
        loss = total / count
        loss.backward()
        res["logits"] = torch.cat(logits).detach().contiguous()
        res["loss"] = loss.detach().reshape(1)
        for name, p in model.named_parameters():
            if p.grad is not None:
                res["grad." + strip(name)] = p.grad.detach().clone().contiguous()
    return res


def save_dir(model, name):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save_pretrained(path)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    specs = [("bert-tok", BertForTokenClassification, 2, True, 11),
             ("bert-seq", BertForSequenceClassification, 3, False, 12),
             ("bert-base", BertModel, 0, None, 13)]
    for name, cls, n_labels, token_head, seed in specs:
        cfg = BertConfig(**CFG, num_labels=max(n_labels, 2))
        cfg._attn_implementation = "eager"
        model = cls(cfg)
        perturb(model, seed)
        save_dir(model, name)
        ids, types, targets, cu = inputs(seed + 100, max(n_labels, 2), bool(token_head))
        res = run(model, ids, types, targets, n_labels > 0)
        res["ids"] = torch.cat(ids).to(torch.int32)
        res["types"] = torch.cat(types).to(torch.int32)
        res["cu"] = torch.tensor(cu, dtype=torch.int32)
        if n_labels > 0:
            res["targets"] = torch.cat(targets).to(torch.int32)
        save_file(res, os.path.join(OUT, name + "_golden.safetensors"), metadata={"format": "pt"})
        print(name, {k: list(v.shape) for k, v in res.items() if not k.startswith("grad.")},
              "loss", float(res["loss"]) if "loss" in res else None)


if __name__ == "__main__":
    main()
