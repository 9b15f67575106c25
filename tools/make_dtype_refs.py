#!/usr/bin/env python3
"""Generate reference data for weft's dtype conversions and dequantization.

Writes tests/fixtures/dtype/{q8_0,q4_0,q4_1,f16,bf16}.json. The references come
from code independent of weft's C++: the `gguf` PyPI package (gguf.quants,
whose quantizers are bit-exact ports of ggml-quants.c and whose BF16 rounding
is ggml_compute_fp32_to_bf16) and numpy's float16 conversions (IEEE
round-to-nearest-even).

Every array is stored as one hex string of its little-endian bytes, so values
(including -0, subnormals, inf and NaN bit patterns) survive exactly:
  q*.json   cases[i] = {name, blocks: raw GGML blocks, expected: fp32}
            "quantized" cases quantize seeded random data with gguf.quants;
            "random_bytes" cases dequantize arbitrary blocks (finite f16
            scales, subnormals included) to test the decoder alone.
  f16.json  to_float:   {half, float}   numpy float16 -> float32
            from_float: {float, half}   numpy float32 -> float16, with exact
                        ties, near-ties, overflow and underflow boundaries.
  bf16.json from_float: {float, bf16}   gguf BF16 quantize (NaN kept NaN)
            to_float:   {bf16, float}

Signalling NaNs are left out of the f16 cases: hardware and software
conversions may quiet them differently, and weft does not promise a payload.

Usage (from the repository root):
  python3 tools/make_dtype_refs.py [--out DIR]
"""

import argparse
import importlib.metadata
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "dtype")
SEED = 20240611
BLOCK = 32


def hexbytes(array):
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes().hex()


def f32_from_bits(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def quant_cases(qtype, rng):
    cases = []

    def add_quantized(name, values):
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        assert values.size % BLOCK == 0
        blocks = quants.quantize(values, qtype)
        expected = quants.dequantize(blocks, qtype).astype(np.float32)
        cases.append({"name": name, "blocks": hexbytes(blocks), "expected": hexbytes(expected)})

    # Gaussian blocks over six orders of magnitude of scale, some shifted so
    # that the block minimum (Q4_1) or the sign of the extreme (Q4_0) varies.
    scales = 10.0 ** rng.uniform(-3, 3, size=16)
    shifts = rng.uniform(-2, 2, size=16) * scales
    normal = rng.standard_normal((16, BLOCK)) * scales[:, None] + shifts[:, None]
    add_quantized("quantized_normal", normal)

    edge = [
        np.zeros(BLOCK),                                   # d = 0
        np.full(BLOCK, 0.75),                              # constant
        np.full(BLOCK, -3.0),
        np.eye(1, BLOCK, 7).ravel() * 5.0,                 # one spike
        np.eye(1, BLOCK, 30).ravel() * -5.0,
        np.tile([1.0, -1.0], BLOCK // 2),                  # alternating
        rng.standard_normal(BLOCK) * 1e-6,                 # scale underflows to f16 subnormal
        np.linspace(-1.0, 1.0, BLOCK),
        np.linspace(0.0, 15.0, BLOCK),
        rng.uniform(1000.0, 2000.0, BLOCK),                # all positive, large
    ]
    add_quantized("quantized_edge", np.stack(edge))

    # Arbitrary block bytes: finite f16 scales (and minima) of any exponent,
    # subnormal included, and arbitrary quants.
    block_bytes = {QT.Q8_0: 34, QT.Q4_0: 18, QT.Q4_1: 20}[qtype]
    num_blocks = 16
    raw = rng.integers(0, 256, size=(num_blocks, block_bytes), dtype=np.uint8)
    num_halves = 2 if qtype == QT.Q4_1 else 1
    halves = rng.integers(0, 1 << 16, size=(num_blocks, num_halves), dtype=np.uint32)
    halves = np.where((halves & 0x7C00) == 0x7C00, halves & 0xBFFF, halves)  # finite only
    halves[0, 0] = 0x0001  # smallest subnormal
    halves[1, 0] = 0x8000  # -0
    halves[2, 0] = 0x7BFF  # largest finite
    raw[:, : 2 * num_halves] = halves.astype(np.uint16).view(np.uint8).reshape(num_blocks, -1)
    expected = quants.dequantize(raw, qtype).astype(np.float32)
    cases.append({"name": "random_bytes", "blocks": hexbytes(raw), "expected": hexbytes(expected)})
    return {"type": qtype.name, "cases": cases}


def f16_refs(rng):
    # half -> float: every subnormal and zero of both signs, infinities, quiet
    # NaNs, the first and last normal binades, and random halves.
    halves = set(range(0x0000, 0x0400)) | set(range(0x8000, 0x8400))
    halves |= {0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7E01, 0x7FFF, 0xFFFF}
    halves |= set(range(0x0400, 0x0440)) | set(range(0xFBC0, 0xFC00))
    for h in rng.integers(0, 1 << 16, size=600):
        h = int(h)
        if (h & 0x7C00) == 0x7C00 and (h & 0x03FF) and not (h & 0x0200):
            continue  # signalling NaN
        halves.add(h)
    halves = np.array(sorted(halves), dtype=np.uint16)
    to_float = halves.view(np.float16).astype(np.float32)

    # float -> half.
    finite = [h for h in range(0, 0x7C00)]
    ties, near = [], []
    for h in finite:
        if h == 0x7BFF:
            upper = 65536.0  # the tie above the largest finite half is 65520
        else:
            upper = float(np.uint16(h + 1).view(np.float16))
        lower = float(np.uint16(h).view(np.float16))
        ties.append(np.float32((lower + upper) / 2))
    ties = np.array(ties, dtype=np.float32)
    # Ties at both ends of the subnormal range, at the top of the normal range,
    # and a random sample.
    pick = np.concatenate([np.arange(0, 0x40), np.arange(0x3C0, 0x440), np.arange(0x7BE0, 0x7C00),
                           rng.choice(np.arange(0x420, 0x7BE0), size=200, replace=False)])
    tie_values = ties[pick]
    near = np.concatenate([np.nextafter(tie_values, np.float32(np.inf)),
                           np.nextafter(tie_values, np.float32(0))])
    specials = f32_from_bits([
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
        0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
        0x33000000,  # 2^-25: tie between 0 and the smallest subnormal -> 0
        0x33000001,  # just above -> smallest subnormal
        0x33C00000,  # 3 * 2^-25: tie between 1 and 2 subnormal units -> 2
        0x38800000,  # 2^-14, the smallest normal half
        0x387FC000,  # tie between the largest subnormal and the smallest normal
        0x477FE000,  # 65504
        0x477FEFFF,  # just below the 65520 tie
        0x477FF000,  # 65520 -> inf
        0x477FFFFF, 0x47800000, 0xC77FF000,
    ])
    random_bits = rng.integers(0, 1 << 32, size=600, dtype=np.uint64).astype(np.uint32)
    random_bits = random_bits[(random_bits & 0x7F800000) != 0x7F800000]  # no inf/NaN
    # Bias half of them toward the half range, where rounding matters most.
    in_range = (rng.integers(0x33000000, 0x47800000, size=600, dtype=np.uint64).astype(np.uint32)
                | (rng.integers(0, 2, size=600, dtype=np.uint64).astype(np.uint32) << 31))
    floats = np.concatenate([specials, tie_values, -tie_values[::7], near,
                             f32_from_bits(random_bits), f32_from_bits(in_range)]).astype(np.float32)
    with np.errstate(over="ignore"):
        from_float = floats.astype(np.float16)
    return {
        "to_float": {"half": hexbytes(halves), "float": hexbytes(to_float)},
        "from_float": {"float": hexbytes(floats), "half": hexbytes(from_float.view(np.uint16))},
    }


def bf16_refs(rng):
    specials = np.array([
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7FFFFFFF,
        0x00000001, 0x007FFFFF, 0x00008000, 0x00018000,  # subnormal ties
        0x3F808000, 0x3F818000, 0xBF808000, 0xBF818000,  # normal ties, even and odd
        0x3F807FFF, 0x3F808001, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7FFFFF,
    ], dtype=np.uint32)
    random_bits = rng.integers(0, 1 << 32, size=1500, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 1 << 16, size=300, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000
    floats = f32_from_bits(np.concatenate([specials, random_bits, ties]))
    bf16 = quants.quantize(floats, QT.BF16).view(np.uint16)
    halves = np.concatenate([np.array([0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x807F],
                                      dtype=np.uint16),
                             rng.integers(0, 1 << 16, size=300, dtype=np.uint64).astype(np.uint16)])
    to_float = quants.dequantize(halves.view(np.uint8), QT.BF16).astype(np.float32)
    return {
        "from_float": {"float": hexbytes(floats), "bf16": hexbytes(bf16)},
        "to_float": {"bf16": hexbytes(halves), "float": hexbytes(to_float)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    generator = {
        "tool": "tools/make_dtype_refs.py",
        "seed": SEED,
        "gguf": importlib.metadata.version("gguf"),
        "numpy": np.__version__,
    }
    rng = np.random.default_rng(SEED)
    outputs = {
        "q8_0.json": quant_cases(QT.Q8_0, rng),
        "q4_0.json": quant_cases(QT.Q4_0, rng),
        "q4_1.json": quant_cases(QT.Q4_1, rng),
        "f16.json": f16_refs(rng),
        "bf16.json": bf16_refs(rng),
    }
    total = 0
    for name, data in outputs.items():
        path = os.path.join(args.out, name)
        with open(path, "w") as f:
            json.dump({"generator": generator, **data}, f, indent=1)
            f.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
