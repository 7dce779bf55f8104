#!/usr/bin/env python3
"""Loads encoder directories written by encoder_save_hf with transformers and compares their logits on the
golden batch with the C model's (which test_encoder.c checks against the fixture goldens).

    ELASTILM_ENCODER_EXPORT_DIR=/tmp/encx build/tests/run_tests --filter 'encoder/save_hf_round_trip'
    python3 tests/reference/check_encoder_export.py /tmp/encx

The test saves <dir>/tok (bert-tok reloaded: token head) and <dir>/seq (bert-base with a fresh sequence head);
the last save of each wins. tests/test_encoder_mobilebert.c (filter 'encoder_mobilebert/save_hf_round_trip') saves
<dir>/mb-tok, mb-seq, mb-seqcls, mb-ln (the MobileBERT fixtures reloaded): each is loaded with transformers (no
missing or unexpected keys) and its logits compared with the fixture's golden. For tok the reference is the fixture golden's logits; for seq, transformers' own
BertForSequenceClassification of the fixture weights is not available (the head is new), so the check is that
transformers loads it with no missing or unexpected keys and that the logits are finite and equal to a forward
written out here from the same weights (pooler tanh over each sequence's first token).
"""
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

HERE = os.path.dirname(os.path.abspath(__file__))
GOLD = os.path.join(HERE, "..", "fixtures", "encoders")


def batch():
    g = load_file(os.path.join(GOLD, "bert-tok_golden.safetensors"))
    cu = g["cu"].tolist()
    seqs = [(g["ids"][cu[i]:cu[i + 1]].long(), g["types"][cu[i]:cu[i + 1]].long()) for i in range(len(cu) - 1)]
    return g, seqs


def load(cls, path):
    model, info = cls.from_pretrained(path, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        sys.exit(f"{path}: {bad}")
    return model.eval()


def check_mobilebert(path, fixture):
    g = load_file(os.path.join(GOLD, fixture + "_golden.safetensors"))
    cu = g["cu"].tolist()
    seqs = [(g["ids"][cu[i]:cu[i + 1]].long(), g["types"][cu[i]:cu[i + 1]].long()) for i in range(len(cu) - 1)]
    token = g["logits"].shape[0] == g["ids"].shape[0]
    model = load(AutoModelForTokenClassification if token else AutoModelForSequenceClassification, path)
    with torch.no_grad():
        out = [model(input_ids=i[None], token_type_ids=t[None]).logits for i, t in seqs]
        lg = torch.cat([o[0] for o in out]) if token else torch.cat(out)
    d = (lg - g["logits"]).abs().max().item() / g["logits"].abs().max().item()
    print(f"{os.path.basename(path)}: {model.config.architectures} vs {fixture} golden: max rel diff {d:.2e}")
    return d


def main():
    root = sys.argv[1]
    g, seqs = batch()
    worst = 0.0
    tok = load(AutoModelForTokenClassification, os.path.join(root, "tok"))
    with torch.no_grad():
        lg = torch.cat([tok(input_ids=i[None], token_type_ids=t[None]).logits[0] for i, t in seqs])
    d = (lg - g["logits"]).abs().max().item() / g["logits"].abs().max().item()
    print(f"tok: transformers logits vs golden: max rel diff {d:.2e}")
    worst = max(worst, d)
    seq = load(AutoModelForSequenceClassification, os.path.join(root, "seq"))
    with torch.no_grad():
        lg = torch.cat([seq(input_ids=i[None], token_type_ids=t[None]).logits for i, t in seqs])
        hid = [seq.bert(input_ids=i[None], token_type_ids=t[None]).last_hidden_state[0, 0] for i, t in seqs]
        pooled = torch.tanh(torch.stack(hid) @ seq.bert.pooler.dense.weight.T + seq.bert.pooler.dense.bias)
        ref = pooled @ seq.classifier.weight.T + seq.classifier.bias
    d = (lg - ref).abs().max().item() / ref.abs().max().item()
    print(f"seq: {seq.config.architectures} {seq.config.num_labels} labels, logits {lg.shape}: rel diff {d:.2e}")
    worst = max(worst, d)
    for name in ("mb-tok", "mb-seq", "mb-seqcls", "mb-ln"):
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        d = check_mobilebert(path, "mobilebert-" + name[3:])
        worst = max(worst, d)
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
