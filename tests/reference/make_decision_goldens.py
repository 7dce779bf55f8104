#!/usr/bin/env python3
"""Tiny random decision-head fixture and goldens for tests/test_decision_head.c.

The TLM's decision head as the artifact builds it: a BERT whose vocabulary grew by the 14 SLO tokens
(resize_token_embeddings), and two independent linear heads over the pooled output, 10 prompt-ratio classes
and 9 model-ratio classes, trained on CE(prompt head) + CE(model head) with the lower half of the encoder and
the old embeddings frozen. elastilm stores the two heads as ONE classifier of 19 rows whose labels split
into groups [10, 9] (config.json "elastilm_label_groups"), each group its own softmax.

Writes under tests/fixtures/encoders/:
  bert-decision/  BertForSequenceClassification, vocabulary 64 + 14 (the resized model itself: rows 64..77
                  are the new tokens' rows), with pooler, num_labels 19, "elastilm_label_groups": [10, 9];
                  classifier = cat(prompt head, model head) along the rows.
  bert-decision_golden.safetensors: the inputs (ids, types, cu, targets [n_seq, 2] row-major: prompt class,
                  model class; -100 = not counted), the head's logits [n_seq, 19], the per-sequence,
                  per-group cross-entropies "ce" [n_seq, 2] (0 where not counted), their sum "loss" (the C
                  step at loss_scale 1), and the gradient of that summed loss for every parameter that
                  trains with freeze_below = 1, freeze_embeddings = true, train_word_rows_from = 64:
                  "grad.<name>" for layer 1, pooler and classifier, and "grad.word_new" = the word-embedding
                  gradient's rows 64..77 (rows below get zero gradient in C; torch's are not used).
  bert-decision_tokens.json: the SLO tokens added to all-MiniLM-L6-v2's WordPiece tokenizer
                  (tests/fixtures/tokenizers/minilm-tokenizer.json.gz) by transformers' add_tokens, the
                  added_tokens entries the tokenizer.json then holds, and the encodings (ids with and
                  without special tokens, character offsets) of a few strings that use them.
The reference model is a BertModel with two nn.Linear heads (not BertForSequenceClassification), run per
sequence (attention within each sequence only), eval mode (no dropout). Seeded: reruns are byte-identical
(transformers 5.25, tokenizers 0.23.3, torch 2.15, CPU, fp32).
"""
import gzip
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

from make_encoder_goldens import perturb  # the same weight scaling as the other encoder goldens

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "encoders")
MINILM = os.path.join(HERE, "..", "fixtures", "tokenizers", "minilm-tokenizer.json.gz")
NAME = "bert-decision"
CFG = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
           max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
N_NEW = 14  # the SLO tokens [02]..[09] (prompt ratio) and <05>..<10> (model ratio)
GROUPS = [10, 9]
SLO_TOKENS = ["[%02d]" % i for i in range(2, 10)] + ["<%02d>" % i for i in range(5, 11)]
LENS = [7, 12, 5]
STRINGS = [
    "[03] <07> Question: what is it? Answer:",
    "[09] <10> [cls]-like text",
    "[02]<05>no spaces[04]x<06>y",
    "[05] <09> UPPER [CLS] [SEP] <10>[08]",
    "[10] <04> [2] <5> not added",
]


class DecisionHead(torch.nn.Module):
    """The artifact's shape: BertModel -> pooler_output -> two independent linear heads."""

    def __init__(self, cfg):
        super().__init__()
        self.bert = BertModel(cfg, add_pooling_layer=True)
        self.prompt_head = torch.nn.Linear(cfg.hidden_size, GROUPS[0])
        self.model_head = torch.nn.Linear(cfg.hidden_size, GROUPS[1])

    def forward(self, ids, types):
        pooled = self.bert(input_ids=ids, token_type_ids=types).pooler_output
        return self.prompt_head(pooled), self.model_head(pooled)


def inputs(seed, old_vocab, new_vocab):
    g = torch.Generator().manual_seed(seed)
    ids, types, targets, cu = [], [], [], [0]
    for s, n in enumerate(LENS):
        x = torch.randint(1, old_vocab, (n,), generator=g)
        # the SLO tokens right after [CLS]-like position 0, as the TLM's input puts them, plus one inside
        x[1] = old_vocab + (2 * s) % 8                  # a prompt-ratio token [02].. (ids 64..71)
        x[2] = old_vocab + 8 + (3 * s) % 6              # a model-ratio token <05>.. (ids 72..77)
        x[n - 2] = old_vocab + (5 * s + 3) % (new_vocab - old_vocab)
        ids.append(x)
        t = torch.zeros(n, dtype=torch.long)
        if s == 1:
            t[n // 2:] = 1
        types.append(t)
        y = torch.tensor([(3 * s + 2) % GROUPS[0], (4 * s + 1) % GROUPS[1]])
        if s == 2:
            y[1] = -100  # the model group of the last sequence is not counted
        targets.append(y)
        cu.append(cu[-1] + n)
    return ids, types, targets, cu


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cfg = BertConfig(**CFG)
    cfg._attn_implementation = "eager"
    ref = DecisionHead(cfg)
    perturb(ref, 21)
    V0, V = CFG["vocab_size"], CFG["vocab_size"] + N_NEW
    # resize_token_embeddings keeps the old rows; the new rows are then set to seeded values (transformers
    # 5.25 draws them from the old rows' mean/covariance by default, mean_resizing=True): what the C side
    # reads is the resized table itself, so only "old rows kept, shape grown" is asserted here.
    old = ref.bert.embeddings.word_embeddings.weight.detach().clone()
    ref.bert.resize_token_embeddings(V, mean_resizing=False)
    w = ref.bert.embeddings.word_embeddings.weight
    assert tuple(w.shape) == (V, CFG["hidden_size"]) and torch.equal(w[:V0].detach(), old)
    g = torch.Generator().manual_seed(22)
    with torch.no_grad():
        w[V0:] = 0.3 * torch.randn((N_NEW, CFG["hidden_size"]), generator=g)
    ref.eval()

    # the HF directory elastilm loads: one classifier of 19 rows
    hf_cfg = BertConfig(**dict(CFG, vocab_size=V), num_labels=sum(GROUPS), elastilm_label_groups=GROUPS)
    hf = BertForSequenceClassification(hf_cfg)
    sd = {"bert." + k: v for k, v in ref.bert.state_dict().items()}
    sd["classifier.weight"] = torch.cat([ref.prompt_head.weight, ref.model_head.weight]).detach()
    sd["classifier.bias"] = torch.cat([ref.prompt_head.bias, ref.model_head.bias]).detach()
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing), (missing,
                                                                                                   unexpected)
    path = os.path.join(OUT, NAME)
    if os.path.exists(path):
        shutil.rmtree(path)
    hf.save_pretrained(path)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))

    # freezing as the C options freeze_below = 1, freeze_embeddings = true, train_word_rows_from = V0
    for name, p in ref.named_parameters():
        frozen = (name.startswith("bert.embeddings.") and "word_embeddings" not in name) or \
                 name.startswith("bert.encoder.layer.0.")
        p.requires_grad_(not frozen)
    ids, types, targets, cu = inputs(31, V0, V)
    ref.zero_grad()
    logits, ce, total = [], torch.zeros(len(LENS), 2), 0.0
    for s, (i, t, y) in enumerate(zip(ids, types, targets)):
        lp, lm = ref(i[None], t[None])
        logits.append(torch.cat([lp, lm], dim=1)[0])
        hf_lg = hf.eval()(input_ids=i[None], token_type_ids=t[None]).logits[0]
        assert torch.allclose(hf_lg, logits[-1], atol=1e-6), "the 19-row classifier is not the two heads"
        for k, (lg, yk) in enumerate(((lp, y[0]), (lm, y[1]))):
            if yk >= 0:
                c = torch.nn.functional.cross_entropy(lg, yk[None], reduction="sum")
                ce[s, k] = c.detach()
                total = total + c
    total.backward()
    res = {
        "ids": torch.cat(ids).to(torch.int32),
        "types": torch.cat(types).to(torch.int32),
        "cu": torch.tensor(cu, dtype=torch.int32),
        "targets": torch.stack(targets).reshape(-1).to(torch.int32),
        "logits": torch.stack(logits).detach().contiguous(),
        "ce": ce.contiguous(),
        "loss": total.detach().reshape(1),
        "grad.word_new": w.grad[V0:].detach().clone().contiguous(),
    }
    head = {"prompt_head": 0, "model_head": GROUPS[0]}
    gw = {k: torch.zeros(sum(GROUPS), CFG["hidden_size"]) for k in ("weight",)}
    gb = torch.zeros(sum(GROUPS))
    for name, p in ref.named_parameters():
        if p.grad is None or "word_embeddings" in name:
            continue
        if name.split(".")[0] in head:
            off = head[name.split(".")[0]]
            if name.endswith("weight"):
                gw["weight"][off:off + p.shape[0]] = p.grad
            else:
                gb[off:off + p.shape[0]] = p.grad
            continue
        res["grad." + name[len("bert."):]] = p.grad.detach().clone().contiguous()
    res["grad.classifier.weight"] = gw["weight"].contiguous()
    res["grad.classifier.bias"] = gb.contiguous()
    save_file(res, os.path.join(OUT, NAME + "_golden.safetensors"), metadata={"format": "pt"})
    print(NAME, {k: list(v.shape) for k, v in res.items() if not k.startswith("grad.")}, "loss", float(res["loss"]),
          "grads", sorted(k for k in res if k.startswith("grad.")))

    # the SLO tokens added to a WordPiece tokenizer
    text = gzip.open(MINILM, "rt", encoding="utf-8").read()
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(text))
    first_id = len(tok)
    assert tok.add_tokens(SLO_TOKENS) == len(SLO_TOKENS)
    raw = Tokenizer.from_str(text)  # tokenizers' own add_tokens agrees (without the file's padding to 128)
    raw.no_padding()
    raw.add_tokens(SLO_TOKENS)
    added = json.loads(tok.backend_tokenizer.to_str())["added_tokens"]
    assert added == json.loads(raw.to_str())["added_tokens"]
    cases = []
    for s in STRINGS:
        e = tok(s, add_special_tokens=True, return_offsets_mapping=True)
        assert raw.encode(s).ids == e["input_ids"]
        cases.append({"text": s, "ids": e["input_ids"],
                      "ids_no_special": tok(s, add_special_tokens=False)["input_ids"],
                      "offsets": [list(o) for o in e["offset_mapping"]]})
    doc = {"tokenizer": "tests/fixtures/tokenizers/minilm-tokenizer.json.gz", "tokens": SLO_TOKENS,
           "first_id": first_id, "added_tokens": [a for a in added if a["id"] >= first_id], "cases": cases}
    with open(os.path.join(OUT, NAME + "_tokens.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for c in cases:
        print(c["text"], c["ids"])


if __name__ == "__main__":
    main()
