#!/usr/bin/env python3
"""Writes tests/fixtures/quant.gguf, the fixture of tests/test_gguf.c.

Run by hand from the repository root when the fixture must change:

    python3 tests/reference/make_gguf_fixtures.py

Needs numpy and the `gguf` package from PyPI (0.19). For each stored type the
file holds a tensor "<name>" in that type and a float32 tensor "<name>.expected"
with gguf-py's own dequantization of the stored bytes, the independent reference
that elastilm's reader must reproduce. A few metadata keys of various types let
the tests check the typed getters. general.alignment is left at its default.
"""

import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "quant.gguf")

# name -> (GGML type, numpy shape [rows, cols]; GGUF stores ne = [cols, rows])
TENSORS = [
    ("f32", Q.F32, (3, 64)),
    ("f16", Q.F16, (2, 96)),
    ("bf16", Q.BF16, (3, 64)),
    ("q8_0", Q.Q8_0, (2, 96)),
    ("q4_0", Q.Q4_0, (3, 64)),
    ("q4_1", Q.Q4_1, (2, 96)),
    ("f32_vec", Q.F32, (7,)),
    ("q8_0_3d", Q.Q8_0, (2, 2, 32)),
]


def sample(rng, qtype, shape):
    """Random values with a few blocks that exercise extremes."""
    x = rng.standard_normal(shape).astype(np.float32) * 2.0
    flat = x.reshape(-1)
    if flat.size >= 96:
        flat[0:32] = 0.0                                # an all-zero block (scale 0)
        flat[32:64] = np.linspace(-1.0, 1.0, 32)       # a ramp through zero
        flat[33] = -7.5                                 # the block's largest magnitude, negative
    if flat.size >= 64 and flat.size < 96:
        flat[0:32] = 3.25                               # a constant block (Q4_1: d = 0)
        flat[40] = -100.0                               # one large negative
    if qtype == Q.F16 and flat.size >= 9:
        flat[1:9] = [65504.0, -65504.0, 6.0e-8, -6.0e-8, 1.0e-5, np.inf, -np.inf, np.nan]
    if qtype in (Q.BF16, Q.F32) and flat.size >= 8:
        flat[1:8] = [3.0e38, -3.0e38, 1.0e-38, -1.0e-40, np.inf, -np.inf, np.nan]
    return x


def main():
    rng = np.random.default_rng(20240611)
    w = gguf.GGUFWriter(OUT, arch="elastilm-test")
    w.add_uint32("test.u32", 123456789)
    w.add_uint8("test.u8", 200)
    w.add_int32("test.i32", -42)
    w.add_int32("test.i32_pos", 77)
    w.add_uint64("test.u64_big", 1 << 40)
    w.add_float32("test.f32", 0.15625)
    w.add_float64("test.f64", -2.5)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo, gguf")
    w.add_array("test.str_array", ["alpha", "", "gamma delta"])
    w.add_array("test.nested", [[1, 2, 3], [4], [5, 6]])
    for name, qtype, shape in TENSORS:
        data = sample(rng, qtype, shape)
        stored = gguf.quants.quantize(data, qtype)
        expected = gguf.quants.dequantize(stored, qtype).astype(np.float32).reshape(shape)
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, stored)
        else:
            w.add_tensor(name, stored, raw_dtype=qtype)
        w.add_tensor(name + ".expected", np.ascontiguousarray(expected))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    size = os.path.getsize(OUT)
    assert size < 50 * 1024, size
    print(f"wrote {os.path.relpath(OUT)} ({size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
