#!/usr/bin/env python3
"""Check that `elastilm lora`'s peft export is a faithful peft adapter.

Run by hand from the repository root, after `make`:

    python3 tests/reference/check_peft_export.py [--elastilm ./elastilm] [--keep DIR]

Exit status 0 when every check passes, 1 on any mismatch (each failure is printed),
2 when elastilm or a fixture is missing. Needs torch, transformers and peft (CPU is
enough). About 100 short runs of elastilm (one thread each) on the tiny fixtures: some
seconds on an idle machine.

For each tiny fixture (tests/fixtures/tiny-llama-mha, tests/fixtures/tiny-llama3-gqa; the
byte-level tokenizer tests/fixtures/train/byte-tokenizer.json; the alpaca records
tests/fixtures/train/alpaca.jsonl) it runs elastilm lora with --dropout 0 and a
rank / alpha / target list that differ from peft's defaults (so that the config is really
read), then loads the base model in transformers (float32, eager attention) and applies
OUT/adapter with PeftModel.from_pretrained. Checks:

 (a) LOAD. peft loads the adapter with no unexpected key and no missing lora_ key
     (set_peft_model_state_dict's result), the adapter's state dict inside peft equals the
     file tensor by tensor, the config reads back as given (r, lora_alpha, target_modules,
     lora_dropout 0), exactly the chosen projections of every layer are wrapped, each with
     scaling alpha / r, and every lora_B is non-zero (the training moved it).

 (b) LOSS. peft's validation loss equals elastilm's, within 1e-5 relative. The loss is
     transformers' causal-LM loss of one sequence: the mean cross entropy over the counted
     next-token positions (labels -100 on the alpaca prompt). A sequence is what
     host/train/data.c makes of an alpaca record: the Alpaca template + the output,
     tokenized by the `tokenizers` library from the same tokenizer.json (this byte-level
     one adds no BOS and maps each byte to the token id of its value), cut to the cutoff
     (256, elastilm's default), then EOS (the model config's eos_token_id) appended when
     nothing was cut, the prompt's tokens masked.

     elastilm picks its validation split by a seeded shuffle that this script does NOT
     re-implement. Instead both sides are made to evaluate a set that the shuffle cannot
     change, in files whose records are all the same record:

     b1 (direct, the training run itself). A training file of one record repeated 16 times
        with --val-size 4 and validation after every step: whichever 4 copies are held out,
        the validation set is that record, so result.json's best_val_loss is the loss of
        the best adapter -- the one exported -- on it. peft's loss of OUT/adapter on that
        record must equal best_val_loss (and best_step must be > 0, so the adapter is a
        trained one).

     b2 (every record, a realistic run). A training run on all of alpaca.jsonl
        (--val-size 8, validation after every step, lr 5e-2 for 5 epochs: high enough that
        the validation loss peaks before the last step, best_step 22 of 25 for both models
        when this was written). Its adapter is then evaluated record by record by elastilm
        itself: for each record r, a file [r, r] and
          elastilm lora --adapter OUT/adapter --data [r,r] --val-size 1 --batch 1
                        --max-steps 1 --lr 0 --warmup 0 --dropout 0
        whose first_val_loss is the adapter's loss on r (the held-out copy is r, whichever
        it is; lr 0 leaves the adapter as it is). Also checked: that run's one training
        step processed as many tokens (train_log.tsv) as this script's sequence for r has,
        so both sides tokenized r alike. Each record's loss, and the token-weighted mean
        over all records, must match peft's. (b2 ties the two forwards together on the
        file's contents; an error in what the file holds would be read alike by both, and
        is b1's to catch: scaling one lora_B matrix by 1.001 fails b1 for both models.)

     b3 (the exported adapter is the best one). The b2 adapter re-evaluated by elastilm with
        the training run's own --data, --val-size and --seed (so the same split, chosen by
        elastilm both times) and --lr 0: its first_val_loss must equal the training run's
        best_val_loss. This one is elastilm against itself; b2 ties elastilm to peft.

elastilm prints losses with 6 decimals (about 1e-7 relative here), well inside 1e-5.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
from peft import PeftConfig, PeftModel  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TOKENIZER = FIX / "train" / "byte-tokenizer.json"
ALPACA = FIX / "train" / "alpaca.jsonl"
RTOL = 1e-5
CUTOFF = 256

SHORT = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
         "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
BLOCK = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
         "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}

# model, LoRA rank, alpha, targets (elastilm's --targets syntax)
CASES = [
    ("tiny-llama-mha", 6, 3.0, "q,v,o,down"),
    ("tiny-llama3-gqa", 4, 12.0, "q,k,v,o,gate,up,down"),
]

# host/train/data.c's Alpaca template (LLM-Pruner's)
PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")

failures = []


def check(ok, what):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)
    return ok


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


# ---------------------------------------------------------------------------- elastilm

def elastilm(binary, model, data, out, *extra):
    cmd = [str(binary), "lora", "--model", str(model), "--tokenizer", str(TOKENIZER), "--data", str(data),
           "--out", str(out), "--quiet", "--threads", "1", *[str(x) for x in extra]]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"check_peft_export: elastilm failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    res = json.loads((Path(out) / "result.json").read_text())
    stdout = json.loads(p.stdout.strip().splitlines()[-1])
    if stdout != res:
        sys.exit(f"check_peft_export: result.json differs from stdout: {res} vs {stdout}")
    return res


def train_log(out):
    rows = (Path(out) / "train_log.tsv").read_text().strip().splitlines()
    head = rows[0].split("\t")
    return [dict(zip(head, r.split("\t"))) for r in rows[1:]]


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


# ---------------------------------------------------------------------------- sequences

def load_tokenizer():
    """The byte-level tokenizer.json through the `tokenizers` library. The fixture file is
    minimal (no version, post_processor, trim_offsets, ...); the absent fields are filled
    in with the library's defaults, which is what elastilm's loader assumes too."""
    t = json.loads(TOKENIZER.read_text())
    pre = {"trim_offsets": True, **t["pre_tokenizer"]}
    dec = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True, **t["decoder"]}
    model = {"dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
             "fuse_unk": False, "byte_fallback": False, **t["model"]}
    full = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": pre, "post_processor": None, "decoder": dec, "model": model}
    return Tokenizer.from_str(json.dumps(full))


def encode_record(tok, rec, eos_id):
    """(ids, labels) of one alpaca record, as host/train/data.c builds it."""
    inp = rec.get("input") or ""
    user = (PROMPT_INPUT.format(instruction=rec["instruction"], input=inp) if inp
            else PROMPT_NO_INPUT.format(instruction=rec["instruction"]))
    ids = tok.encode(user + rec["output"]).ids
    assert ids == list((user + rec["output"]).encode()), "byte tokenizer: token id = byte value"
    masked = len(tok.encode(user).ids)
    ids = ids[:CUTOFF]  # truncated to the cutoff; EOS only when nothing was cut and it is absent
    if eos_id is not None and len(ids) < CUTOFF and ids[-1] != eos_id:
        ids = ids + [eos_id]
    assert masked < len(ids), "the fixture records all have a response within the cutoff"
    labels = [-100] * masked + ids[masked:]
    return torch.tensor([ids]), torch.tensor([labels])


def peft_loss(model, ids, labels):
    """(mean CE over counted positions, number of counted positions): transformers' loss."""
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss.item()
    return loss, int((labels[0, 1:] != -100).sum())


# ---------------------------------------------------------------------------- checks

def check_load(base_dir, adir, rank, alpha, targets):
    """(a): returns the PeftModel."""
    cfg = PeftConfig.from_pretrained(adir)
    want = {SHORT[t] for t in targets.split(",")}
    check(cfg.peft_type == "LORA" and cfg.r == rank and float(cfg.lora_alpha) == alpha
          and set(cfg.target_modules) == want and cfg.lora_dropout == 0.0,
          f"config reads back: r={cfg.r} lora_alpha={cfg.lora_alpha} lora_dropout={cfg.lora_dropout} "
          f"target_modules={sorted(cfg.target_modules)}")

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, adir)
    key_warnings = [str(w.message) for w in caught if "key" in str(w.message).lower()]
    check(not key_warnings, f"PeftModel.from_pretrained gave no key warning {key_warnings or ''}")
    model.eval()

    sd = load_file(Path(adir) / "adapter_model.safetensors")
    res = set_peft_model_state_dict(model, sd)
    missing = [k for k in res.missing_keys if "lora_" in k]
    check(not res.unexpected_keys and not missing,
          f"set_peft_model_state_dict: {len(res.unexpected_keys)} unexpected, {len(missing)} missing lora keys "
          f"{(res.unexpected_keys + missing)[:4]}")
    inside = get_peft_model_state_dict(model)
    same = set(inside) == set(sd) and all(torch.equal(inside[k], sd[k]) for k in sd)
    check(same, f"peft's adapter state dict == the file's {len(sd)} tensors")

    n_layers = model.config.num_hidden_layers
    want_mods = {f"base_model.model.model.layers.{l}.{BLOCK[t]}.{t}" for l in range(n_layers) for t in want}
    got_mods = {n for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    check(got_mods == want_mods, f"LoRA wraps exactly {len(want_mods)} modules ({len(want)} per layer)")
    scalings = {m.scaling["default"] for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    check(scalings == {alpha / rank}, f"scaling alpha/r = {alpha / rank:g} (peft: {sorted(scalings)})")
    b_norms = [sd[k].norm().item() for k in sd if ".lora_B." in k]
    check(len(b_norms) == len(want_mods) and min(b_norms) > 0,
          f"all {len(b_norms)} lora_B non-zero (smallest norm {min(b_norms):.3g})")
    return model


def run_case(binary, work, name, rank, alpha, targets):
    print(f"== {name}: rank {rank}, alpha {alpha:g}, targets {targets}")
    base_dir = FIX / name
    eos_id = json.loads((base_dir / "config.json").read_text()).get("eos_token_id")
    tok = load_tokenizer()
    records = [json.loads(line) for line in ALPACA.read_text().splitlines() if line.strip()]
    lora = ["--rank", rank, "--alpha", alpha, "--targets", targets, "--dropout", 0]

    # b1: the training run's own best_val_loss, on a one-record file
    rec1 = records[0]
    one = work / f"{name}-one.jsonl"
    write_jsonl(one, [rec1] * 16)
    out1 = work / f"{name}-one"
    r1 = elastilm(binary, base_dir, one, out1, *lora, "--val-size", 4, "--batch", 4, "--micro-batch", 2,
                  "--epochs", 3, "--warmup", 1, "--lr", 1e-2, "--eval-every", 1)
    print(f"  b1 train (1 record x16): {json.dumps(r1)}")
    model = check_load(base_dir, out1 / "adapter", rank, alpha, targets)
    ids, labels = encode_record(tok, rec1, eos_id)
    pl, counted = peft_loss(model, ids, labels)
    check(r1["best_step"] > 0, f"b1 best_step {r1['best_step']} > 0 (a trained adapter is exported)")
    check(rel(pl, r1["best_val_loss"]) <= RTOL,
          f"b1 peft val loss {pl:.7f} == result.json best_val_loss {r1['best_val_loss']:.6f} "
          f"(rel {rel(pl, r1['best_val_loss']):.1e}, {counted} counted tokens)")

    # b2: a realistic run; its adapter on every record, elastilm vs peft
    out2 = work / f"{name}-alpaca"
    r2 = elastilm(binary, base_dir, ALPACA, out2, *lora, "--val-size", 8, "--batch", 8, "--micro-batch", 2,
                  "--epochs", 5, "--warmup", 2, "--lr", 5e-2, "--eval-every", 1)
    print(f"  b2 train (alpaca.jsonl): {json.dumps(r2)}")
    adir = out2 / "adapter"
    model = check_load(base_dir, adir, rank, alpha, targets)
    worst, n_bad, len_bad = 0.0, 0, 0
    sums = [0.0, 0.0, 0]  # elastilm loss sum, peft loss sum, counted tokens
    for i, rec in enumerate(records):
        pair = work / f"{name}-rec{i}.jsonl"
        write_jsonl(pair, [rec, rec])
        oute = work / f"{name}-eval{i}"
        re_ = elastilm(binary, base_dir, pair, oute, "--adapter", adir, "--dropout", 0, "--val-size", 1,
                       "--batch", 1, "--micro-batch", 1, "--max-steps", 1, "--lr", 0, "--warmup", 0,
                       "--eval-every", 0, "--save-every", 0)
        ids, labels = encode_record(tok, rec, eos_id)
        pl, counted = peft_loss(model, ids, labels)
        el = re_["first_val_loss"]
        tokens = float(train_log(oute)[0]["tokens"])
        len_bad += tokens != ids.shape[1]
        r = rel(pl, el)
        worst = max(worst, r)
        n_bad += r > RTOL
        sums[0] += el * counted
        sums[1] += pl * counted
        sums[2] += counted
        shutil.rmtree(oute)
        pair.unlink()
    check(len_bad == 0, f"b2 elastilm's sequence lengths == this script's for all {len(records)} records")
    check(n_bad == 0, f"b2 per-record loss, elastilm == peft for {len(records) - n_bad}/{len(records)} records "
                      f"(worst rel {worst:.1e})")
    me, mp = sums[0] / sums[2], sums[1] / sums[2]
    check(rel(mp, me) <= RTOL, f"b2 mean over all {len(records)} records ({sums[2]} counted tokens): "
                               f"peft {mp:.7f} == elastilm {me:.7f} (rel {rel(mp, me):.1e})")

    # b3: the exported adapter is the best one of the run
    out3 = work / f"{name}-reeval"
    r3 = elastilm(binary, base_dir, ALPACA, out3, "--adapter", adir, "--dropout", 0, "--val-size", 8,
                  "--batch", 8, "--micro-batch", 2, "--max-steps", 1, "--lr", 0, "--warmup", 0,
                  "--eval-every", 0, "--save-every", 0)
    check(r2["best_step"] > 0 and rel(r3["first_val_loss"], r2["best_val_loss"]) <= RTOL,
          f"b3 exported adapter on the run's own validation split: {r3['first_val_loss']:.6f} == best_val_loss "
          f"{r2['best_val_loss']:.6f} (best_step {r2['best_step']} of {r2['steps']}"
          f"{'' if r2['best_step'] < r2['steps'] else '; NOTE: the last step, so best vs last is not exercised'})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--elastilm", default=str(ROOT / "elastilm"))
    p.add_argument("--keep", help="work in this directory and keep it (default: a temporary one)")
    args = p.parse_args()
    binary = Path(args.elastilm).resolve()
    if not binary.is_file():
        print(f"check_peft_export: {binary}: not found (run make)", file=sys.stderr)
        sys.exit(2)
    for need in [TOKENIZER, ALPACA] + [FIX / c[0] for c in CASES]:
        if not need.exists():
            print(f"check_peft_export: {need}: missing fixture", file=sys.stderr)
            sys.exit(2)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="check_peft_export.")
        work = Path(tmp.name)
    try:
        own = work / "elastilm"  # a private copy: immune to a `make` relinking the binary meanwhile
        shutil.copy2(binary, own)
        for case in CASES:
            run_case(own, work, *case)
    finally:
        if tmp:
            tmp.cleanup()
    if failures:
        print(f"check_peft_export: {len(failures)} check(s) FAILED", file=sys.stderr)
        sys.exit(1)
    print("check_peft_export: all checks passed")


if __name__ == "__main__":
    main()
