#!/usr/bin/env python3
"""Rendered prompts of the ElastiLM artifact, derived from its own source.

Run by hand from the repository root:

    python3 tests/reference/extract_artifact_prompts.py [--src SRC] [--data DATA]

SRC is the artifact's source: a checkout (a folder with ELASTICLLM/) or a bare git
directory (read with `git show HEAD:...`); default $ELASTILM_ARTIFACT_SRC, else
/work/.mirror/yinwangsong+ElastiLM/repo. DATA is the artifact's ELASTICLLM/Data (the
folder with Octopus_refined/ and LlamaTouch/); default
datasets/elastilm-artifact (the copy bundled in the repository; --data DIR for another).

Nothing is copied by hand: each ELASTICLLM/<DS>.py is parsed with the ast module, the
module-level statements that build the prompt are picked out by the names they assign
(apps, data_dir, task, dev_df, doc, apps_doc, SYS_PROMPT, QUERY, LABELS, and the `for`
loops that extend SYS_PROMPT / apps_doc), and those statements are executed as they
are, with pandas, inside a scratch folder whose ELASTICLLM/Data links to DATA (the
scripts use relative paths). Then, as the scripts' non-compressed path does:

    TEMPLATE = SYS_PROMPT + QUERY
    prompt = TEMPLATE.format(question="What is X?")

and tests/fixtures/prompts/<DS>.txt receives `prompt` (UTF-8, bytes as Python has
them, no newline translation). tests/fixtures/prompts/llamatouch_apps.txt gets the
`apps` list of LlamaTouch.py, one per line. The Octopus 1900-token guard needs a
tokenizer and is not applied (it never fires on these prompts: see
tests/reference/eval_reference.py, which prints the token counts).

Needs pandas (the artifact reads the dev files with pandas.read_csv).
"""

import argparse
import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "prompts"
QUESTION = "What is X?"
DATASETS = ["ARC_E", "OBQA", "PIQA", "SCIQ", "Octopus", "LlamaTouch"]
WANTED = {"apps", "data_dir", "task", "dev_df", "doc", "apps_doc", "SYS_PROMPT", "QUERY", "LABELS"}


def read_source(src, name):
    rel = f"ELASTICLLM/{name}.py"
    p = Path(src)
    if (p / rel).is_file():
        return (p / rel).read_text(encoding="utf-8")
    return subprocess.run(["git", "-C", str(p), "show", f"HEAD:{rel}"], check=True,
                          capture_output=True).stdout.decode("utf-8")


def assigned_names(node):
    """Names that a top-level statement binds or extends."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
    return names


def prompt_statements(tree):
    keep = []
    for node in tree.body:
        names = assigned_names(node)
        if isinstance(node, ast.For):
            # the loops over dev rows / apps: keep those that extend the prompt
            if names & {"SYS_PROMPT", "apps_doc"}:
                keep.append(node)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.With)) and names & WANTED:
            keep.append(node)
    return keep


def extract(src, data, name):
    tree = ast.parse(read_source(src, name), filename=f"{name}.py")
    body = prompt_statements(tree)
    module = ast.Module(body=body, type_ignores=[])
    code = compile(module, f"ELASTICLLM/{name}.py (selected statements)", "exec")
    env = {"pd": pd, "os": os, "__name__": "artifact_prompt"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ELASTICLLM").mkdir()
        (Path(tmp) / "ELASTICLLM" / "Data").symlink_to(Path(data).resolve())
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            exec(code, env)
        finally:
            os.chdir(cwd)
    lines = sorted({n.lineno for n in body})
    template = env["SYS_PROMPT"] + env["QUERY"]
    return template.format(question=QUESTION), env, (lines[0], lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.environ.get("ELASTILM_ARTIFACT_SRC",
                                                    "/work/.mirror/yinwangsong+ElastiLM/repo"))
    ap.add_argument("--data", default=os.path.join(str(ROOT), "datasets", "elastilm-artifact"))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        prompt, env, (first, last) = extract(args.src, args.data, name)
        if "{" in env["SYS_PROMPT"] or "}" in env["SYS_PROMPT"]:
            print(f"{name}: SYS_PROMPT contains a brace; format() reinterpreted it", file=sys.stderr)
        with open(OUT / f"{name}.txt", "w", encoding="utf-8", newline="") as f:
            f.write(prompt)
        print(f"{name}: statements from lines {first}-{last}, {len(prompt)} chars -> {OUT / (name + '.txt')}")
        if name == "LlamaTouch":
            with open(OUT / "llamatouch_apps.txt", "w", encoding="utf-8", newline="") as f:
                f.write("".join(a + "\n" for a in env["apps"]))
            print(f"LlamaTouch: {len(env['apps'])} apps -> {OUT / 'llamatouch_apps.txt'}")


if __name__ == "__main__":
    main()
