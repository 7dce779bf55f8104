#!/usr/bin/env python3
"""Tiny random MobileBERT fixtures and goldens for tests/test_encoder_mobilebert.c.

Writes under tests/fixtures/encoders/ (the same golden layout as make_encoder_goldens.py):
  mobilebert-tok/     MobileBertForTokenClassification, 2 labels: trigram input, bottlenecks with the shared
                      key/query bottleneck, 3 FFNs, NoNorm, classifier_activation false (google/mobilebert-uncased)
  mobilebert-seq/     MobileBertForSequenceClassification, 3 labels: classifier_activation true (pooler),
                      use_bottleneck_attention (Q, K, V and the residual from bottleneck.input; the
                      bottleneck.attention weights exist but are unused: no gradient), 2 FFNs
  mobilebert-seqcls/  MobileBertForSequenceClassification, 2 labels: classifier_activation false (the head reads
                      [CLS] directly), neither key_query_shared_bottleneck nor use_bottleneck_attention
                      (Q, K, V from the layer input, intra_bottleneck_size = hidden_size), 1 FFN
  mobilebert-ln/      MobileBertForTokenClassification, 2 labels: normalization_type layer_norm (eps 1e-5 where
                      transformers builds the LayerNorm without eps), no bottleneck (dropout sites inside the
                      block), no trigram (embedding_transformation E -> D), 2 FFNs
  <name>_golden.safetensors: ids, types, cu, targets, "hidden" (last hidden states), "logits", "loss" (mean
  cross-entropy over the counted targets) and "grad.<name without the mobilebert. prefix>" for every parameter
  that gets a gradient, in eval mode (no dropout).
Each sequence runs on its own (batch of one, no padding): the trigram's zero rows sit at each sequence's edges.
Weights are drawn with a larger spread than transformers' 0.02 (and random NoNorm scales and shifts) so that
every gradient is well above fp32 noise. Seeded: reruns are byte-identical (transformers 5.25, torch, CPU, fp32).
"""
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import MobileBertConfig, MobileBertForSequenceClassification, MobileBertForTokenClassification

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "encoders")
BASE = dict(vocab_size=32, hidden_size=24, embedding_size=8, intra_bottleneck_size=16, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=16, num_feedforward_networks=3, max_position_embeddings=16,
            type_vocab_size=2, hidden_act="relu", layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, trigram_input=True, use_bottleneck=True,
            key_query_shared_bottleneck=True, use_bottleneck_attention=False, normalization_type="no_norm",
            classifier_activation=False)
LENS = [9, 13, 4]
SPECS = [
    ("mobilebert-tok", MobileBertForTokenClassification, 2, dict(), 21),
    ("mobilebert-seq", MobileBertForSequenceClassification, 3,
     dict(classifier_activation=True, use_bottleneck_attention=True, num_feedforward_networks=2), 22),
    ("mobilebert-seqcls", MobileBertForSequenceClassification, 2,
     dict(hidden_size=16, intra_bottleneck_size=16, embedding_size=8, key_query_shared_bottleneck=False,
          num_feedforward_networks=1, intermediate_size=16), 23),
    ("mobilebert-ln", MobileBertForTokenClassification, 2,
     dict(hidden_size=16, embedding_size=8, use_bottleneck=False, trigram_input=False, normalization_type="layer_norm",
          num_feedforward_networks=2, intermediate_size=16), 24),
]


def perturb(model, seed):
    """Linear weights normal(0, 0.8 / sqrt(fan_in)), embeddings normal(0, 0.5), biases normal(0, 0.1),
    norm scales 1 + normal(0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embeddings." in name and "transformation" not in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.8 / p.shape[1] ** 0.5 * torch.randn(p.shape, generator=g))


def inputs(seed, vocab, n_labels, token_head):
    g = torch.Generator().manual_seed(seed)
    ids, types, targets, cu = [], [], [], [0]
    for s, n in enumerate(LENS):
        ids.append(torch.randint(1, vocab, (n,), generator=g))
        t = torch.zeros(n, dtype=torch.long)
        if s == 1:
            t[n // 2:] = 1  # a sentence pair
        types.append(t)
        if token_head:
            y = torch.randint(0, n_labels, (n,), generator=g)
            y[0] = -100
            y[-1] = -100
            targets.append(y)
        cu.append(cu[-1] + n)
    if not token_head:
        targets = [torch.tensor([s % n_labels]) for s in range(len(LENS))]
    return ids, types, targets, cu


def strip(name):
    return name[len("mobilebert."):] if name.startswith("mobilebert.") else name


def run(model, ids, types, targets):
    model.eval()
    model.zero_grad()
    hidden, logits, total, count = [], [], 0.0, 0
    for i, t, y in zip(ids, types, targets):
        out = model(input_ids=i[None], token_type_ids=t[None], output_hidden_states=True)
        hidden.append(out.hidden_states[-1][0])
        lg = out.logits[0] if out.logits.dim() == 3 else out.logits
        logits.append(lg)
        total = total + torch.nn.functional.cross_entropy(lg, y, ignore_index=-100, reduction="sum")
        count += int((y >= 0).sum())
    loss = total / count
    loss.backward()
    res = {"hidden": torch.cat(hidden).detach().contiguous(), "logits": torch.cat(logits).detach().contiguous(),
           "loss": loss.detach().reshape(1)}
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
    for name, cls, n_labels, over, seed in SPECS:
        cfg = MobileBertConfig(**{**BASE, **over}, num_labels=n_labels)
        cfg._attn_implementation = "eager"
        model = cls(cfg)
        perturb(model, seed)
        save_dir(model, name)
        token_head = cls is MobileBertForTokenClassification
        ids, types, targets, cu = inputs(seed + 100, cfg.vocab_size, n_labels, token_head)
        res = run(model, ids, types, targets)
        res["ids"] = torch.cat(ids).to(torch.int32)
        res["types"] = torch.cat(types).to(torch.int32)
        res["cu"] = torch.tensor(cu, dtype=torch.int32)
        res["targets"] = torch.cat(targets).to(torch.int32)
        save_file(res, os.path.join(OUT, name + "_golden.safetensors"), metadata={"format": "pt"})
        n_par = sum(1 for _ in model.named_parameters())
        n_grad = sum(1 for k in res if k.startswith("grad."))
        print(name, {k: list(v.shape) for k, v in res.items() if not k.startswith("grad.")},
              "loss %.6f" % float(res["loss"]), "|logits| max %.3f" % float(res["logits"].abs().max()),
              "params %d, with gradient %d" % (n_par, n_grad))


if __name__ == "__main__":
    main()
