#!/usr/bin/env python3
"""Writes a synthetic Llama-architecture GGUF of a real model's shape.

Speed does not depend on the weights' values, and no model hub is
reachable here, so the larger-model rows of bench/cpu_vs_llamacpp come from
files like this: random F16 weights (magnitudes in [2^-8, 2^-4), random
signs and mantissas; norms 1), the default model's tokenizer (SmolLM2's 49,152
tokens, copied from its GGUF), and the shape of a published model. The
built llama-quantize then makes Q4_1 / Q8_0 files from the F16 one, as for
the default model's conversions. Standard library only.

    bench/cpu_vs_llamacpp/make_synthetic.py --shape llama3.2-1b \\
        --out models/synthetic-llama3.2-1b.F16.gguf
    .cache/llamacpp/build/bin/llama-quantize --token-embedding-type q8_0 \\
        models/synthetic-llama3.2-1b.F16.gguf models/synthetic-llama3.2-1b.Q4_1.gguf Q4_1

(--token-embedding-type q8_0: llama-quantize's default for the tied
embedding is Q6_K, which weft does not read.)

Shapes: llama3.2-1b (Llama-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV
heads, FFN 8192, tied embeddings) and llama3.2-3b (3072, 28, 24 / 8, 8192);
the vocabulary is the tokenizer's, not Llama-3's 128,256.
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_SOURCE = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SHAPES = {
    # hidden, layers, heads, kv heads, ffn, context, rope base
    "llama3.2-1b": (2048, 16, 32, 8, 8192, 4096, 500000.0),
    "llama3.2-3b": (3072, 28, 24, 8, 8192, 4096, 500000.0),
}
ALIGN = 32
F32, F16 = 0, 1
# GGUF metadata value types and the sizes of the fixed-size ones.
T_U32, T_I32, T_F32, T_STRING, T_ARRAY = 4, 5, 6, 8, 9
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(data: bytes, at: int, vtype: int) -> int:
    """Offset just past one metadata value of type vtype at `at`."""
    if vtype in FIXED:
        return at + FIXED[vtype]
    if vtype == T_STRING:
        (n,) = struct.unpack_from("<Q", data, at)
        return at + 8 + n
    if vtype == T_ARRAY:
        etype, count = struct.unpack_from("<IQ", data, at)
        at += 12
        if etype in FIXED:
            return at + FIXED[etype] * count
        for _ in range(count):
            at = skip_value(data, at, etype)
        return at
    raise ValueError(f"unknown GGUF value type {vtype}")


def tokenizer_entries(path: Path) -> list[bytes]:
    """The raw bytes (key and value) of every tokenizer.* metadata entry."""
    data = path.read_bytes()
    magic, version, _, kv_count = struct.unpack_from("<4sIQQ", data, 0)
    if magic != b"GGUF" or version < 2:
        raise ValueError(f"{path}: not a GGUF v2+ file")
    at, entries = 24, []
    for _ in range(kv_count):
        start = at
        (n,) = struct.unpack_from("<Q", data, at)
        key = data[at + 8:at + 8 + n].decode()
        (vtype,) = struct.unpack_from("<I", data, at + 8 + n)
        at = skip_value(data, at + 12 + n, vtype)
        if key.startswith("tokenizer."):
            entries.append(data[start:at])
    return entries


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", vtype) + payload


def kv_string(key: str, value: str) -> bytes:
    v = value.encode()
    return kv(key, T_STRING, struct.pack("<Q", len(v)) + v)


def random_f16(count: int) -> bytes:
    """count random fp16 values: exponent 7..10 ([2^-8, 2^-4)), random sign
    and mantissa, from os.urandom at C speed."""
    # The high byte: sign, 5 exponent bits, 2 mantissa bits.
    table = bytes(((b & 0x80) | ((7 + (b >> 2) % 4) << 2) | (b & 0x03)) for b in range(256))
    out = bytearray(2 * count)
    out[0::2] = os.urandom(count)
    out[1::2] = os.urandom(count).translate(table)
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama3.2-1b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokenizer-from", type=Path, default=TOKENIZER_SOURCE,
                    help="GGUF whose tokenizer.* metadata is copied (default: the default model)")
    args = ap.parse_args()

    hidden, layers, heads, kv_heads, ffn, context, rope_base = SHAPES[args.shape]
    head_dim = hidden // heads
    tok = tokenizer_entries(args.tokenizer_from)
    vocab = None
    for entry in tok:
        (n,) = struct.unpack_from("<Q", entry, 0)
        if entry[8:8 + n] == b"tokenizer.ggml.tokens":
            (vocab,) = struct.unpack_from("<Q", entry, 8 + n + 4 + 4)
    if vocab is None:
        raise ValueError(f"{args.tokenizer_from}: no tokenizer.ggml.tokens")

    # (name, dims in GGUF order: fastest-varying first, type)
    tensors = [("token_embd.weight", (hidden, vocab), F16), ("output_norm.weight", (hidden,), F32)]
    for i in range(layers):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", (hidden,), F32),
            (b + "attn_q.weight", (hidden, hidden), F16),
            (b + "attn_k.weight", (hidden, kv_heads * head_dim), F16),
            (b + "attn_v.weight", (hidden, kv_heads * head_dim), F16),
            (b + "attn_output.weight", (hidden, hidden), F16),
            (b + "ffn_norm.weight", (hidden,), F32),
            (b + "ffn_gate.weight", (hidden, ffn), F16),
            (b + "ffn_up.weight", (hidden, ffn), F16),
            (b + "ffn_down.weight", (ffn, hidden), F16),
        ]
    meta = [
        kv_string("general.architecture", "llama"),
        kv_string("general.name", f"synthetic {args.shape} (random weights)"),
        kv("general.alignment", T_U32, struct.pack("<I", ALIGN)),
        kv("general.file_type", T_U32, struct.pack("<I", 1)),  # mostly F16
        kv("llama.context_length", T_U32, struct.pack("<I", context)),
        kv("llama.embedding_length", T_U32, struct.pack("<I", hidden)),
        kv("llama.block_count", T_U32, struct.pack("<I", layers)),
        kv("llama.feed_forward_length", T_U32, struct.pack("<I", ffn)),
        kv("llama.attention.head_count", T_U32, struct.pack("<I", heads)),
        kv("llama.attention.head_count_kv", T_U32, struct.pack("<I", kv_heads)),
        kv("llama.rope.dimension_count", T_U32, struct.pack("<I", head_dim)),
        kv("llama.rope.freq_base", T_F32, struct.pack("<f", rope_base)),
        kv("llama.attention.layer_norm_rms_epsilon", T_F32, struct.pack("<f", 1e-5)),
        kv("llama.vocab_size", T_U32, struct.pack("<I", vocab)),
    ] + tok

    infos, offset, sizes = [], 0, []
    for name, dims, ttype in tensors:
        count = 1
        for d in dims:
            count *= d
        size = count * (4 if ttype == F32 else 2)
        n = name.encode()
        infos.append(struct.pack("<Q", len(n)) + n + struct.pack("<I", len(dims)) +
                     b"".join(struct.pack("<Q", d) for d in dims) +
                     struct.pack("<IQ", ttype, offset))
        sizes.append((count, size, ttype))
        offset += (size + ALIGN - 1) // ALIGN * ALIGN

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(meta)))
        for m in meta:
            f.write(m)
        for info in infos:
            f.write(info)
        f.write(b"\0" * (-f.tell() % ALIGN))
        for (name, _, _), (count, size, ttype) in zip(tensors, sizes):
            f.write(struct.pack("<f", 1.0) * count if ttype == F32 else random_f16(count))
            f.write(b"\0" * (-size % ALIGN))
    tmp.replace(args.out)
    params = sum(c for c, _, _ in sizes)
    print(f"{args.out}: {args.shape}, {params / 1e9:.2f} B parameters, vocab {vocab}, "
          f"{args.out.stat().st_size / 2**30:.2f} GiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
