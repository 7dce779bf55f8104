"""What the PyTorch reference benchmarks share: thread lists, a quiet offline
transformers, and SmolLM2 loaded from its GGUF in fp32 with SDPA attention."""
import os
import sys
from pathlib import Path


def parse_threads(parser, text):
    """'1,2' (or '1 2') -> [1, 2]; a usage error otherwise."""
    try:
        threads = [int(t) for t in text.replace(" ", ",").split(",") if t]
    except ValueError:
        parser.error(f"--threads: not a list of integers: {text!r}")
    if not threads or min(threads) < 1:
        parser.error("need at least one thread count >= 1")
    return threads


def quiet_offline_hf():
    """No hub access, no logging, no progress bars, no deprecation chatter (set before
    transformers is imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's bar; read at tqdm import
    # transformers >= 5.25 warns on every forward that passes past_key_values (renamed `cache`);
    # the old name is kept so that older releases still run.
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*past_key_values.*")


def load_gguf_fp32(path, prog):
    """The GGUF model dequantized to fp32, SDPA attention; exits 2 when the file is missing."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    gguf = Path(path)
    if not gguf.is_file():
        print(f"{prog}: {gguf}: no such file (run datasets/fetch.sh smollm2)", file=sys.stderr)
        sys.exit(2)
    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                attn_implementation="sdpa")
