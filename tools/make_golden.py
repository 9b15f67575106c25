#!/usr/bin/env python3
"""Generate greedy-decoding reference fixtures for the default SmolLM2 GGUF model.

Writes tests/fixtures/golden/smollm2_q4_1.json: for each prompt, the prompt token
ids and 32 greedy steps (chosen token, logit gap between top-1 and top-2, top-5
log-probabilities), computed in float32 by Hugging Face transformers from the
GGUF weights (transformers dequantizes every tensor to float32 on load).

Prompt ids come from a tokenizer built here from the GGUF vocab/merges with the
original SmolLM2 tokenizer.json pre-tokenizer (Digits(individual_digits) +
ByteLevel), not from transformers' GGUF-converted tokenizer, which drops the
Digits step. No BOS is added (tokenizer.ggml.add_bos_token = false).

Decoding: one prompt forward, then 32 single-token steps with the KV cache;
EOS is ignored and there is no sampling or penalty. Afterwards each sequence is
re-run as one full (teacher-forced) forward as a consistency check, and with
--verify the prompt logits are also recomputed by an independent numpy
implementation working directly on the GGUF tensors (llama.cpp layout, i.e.
Q/K rows kept in GGUF order and RoPE applied to adjacent pairs).

Usage (from the repository root):
  python3 tools/make_golden.py [MODEL.gguf] [--out PATH] [--verify]
"""

import argparse
import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "golden", "smollm2_q4_1.json")
STEPS = 32
TOPK = 5

LONG_PARAGRAPH = (
    "The printing press, developed by Johannes Gutenberg around 1440, changed the way "
    "knowledge spread across Europe. Before its invention, books were copied by hand, "
    "usually by monks working in monasteries, and a single volume could take months or "
    "even years to finish. As a result, books were rare and expensive, and only the "
    "wealthy or the clergy could afford them. Gutenberg combined several existing "
    "technologies, including the screw press used for making wine and olive oil, with "
    "his own system of movable metal type. This allowed pages to be printed quickly and "
    "consistently. Within a few decades, printing shops had opened in hundreds of "
    "cities, and millions of books were in circulation. The lower cost of books helped "
    "literacy rates rise, encouraged the standardization of languages, and made it "
    "possible for new scientific and religious ideas to reach a wide audience. Many "
    "historians consider the printing press one of the most important inventions of "
    "the second millennium, because"
)

PROMPTS = [
    ("english", "The quick brown fox jumps over the lazy dog. Once upon a time, in a small village,"),
    ("question", "Question: What is the capital of France?\nAnswer:"),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("list", "Here is a shopping list for the week:\n1. Apples\n2. Bread\n3."),
    ("chat", "<|im_start|>user\nWhat are three tips for staying healthy?<|im_end|>\n<|im_start|>assistant\n"),
    ("chat_system",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
     "<|im_start|>user\nWrite a haiku about the ocean.<|im_end|>\n<|im_start|>assistant\n"),
    ("numbers", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,"),
    ("french", "La ville de Paris est la capitale de la France. Elle est célèbre pour"),
    ("german_umlauts", "Über den Wolken muss die Freiheit wohl grenzenlos sein. Größere Städte wie München"),
    ("long_paragraph", LONG_PARAGRAPH),
    ("one_token", "The"),
    # Runs of spaces before digits tokenize differently with and without the Digits pre-tokenizer.
    ("whitespace", "\n\n    Title:\tNotes\n\n\n  - item one  \n\t- item two\n  10  20   30\n\n    "),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="GGUF file (default: %(default)s)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output JSON (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch/numpy (default 1)")
    p.add_argument("--verify", action="store_true",
                   help="also check HF prompt logits against an independent numpy forward on the GGUF tensors")
    return p.parse_args()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_field(reader, key):
    f = reader.fields[key]
    return f.contents()


def build_tokenizer(reader):
    """SmolLM2 tokenizer from GGUF vocab/merges with the original pre-tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens = gguf_field(reader, "tokenizer.ggml.tokens")
    merges = gguf_field(reader, "tokenizer.ggml.merges")
    types = gguf_field(reader, "tokenizer.ggml.token_type")
    assert gguf_field(reader, "tokenizer.ggml.model") == "gpt2"
    assert not gguf_field(reader, "tokenizer.ggml.add_bos_token")
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens in GGUF vocab"
    merge_pairs = []
    for m in merges:
        a, b = m.split(" ")
        merge_pairs.append((a, b))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    control = [i for i, t in enumerate(types) if t == 3]
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in control])
    for i in control:
        assert tk.token_to_id(tokens[i]) == i
    return tk, control


def numpy_reference_logits(reader, ids):
    """Independent float64 llama forward on GGUF tensors (llama.cpp conventions)."""
    import numpy as np
    from gguf import dequantize

    T = {t.name: t for t in reader.tensors}

    def W(name):
        t = T[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64)

    n_layer = int(gguf_field(reader, "llama.block_count"))
    n_head = int(gguf_field(reader, "llama.attention.head_count"))
    n_kv = int(gguf_field(reader, "llama.attention.head_count_kv"))
    eps = float(gguf_field(reader, "llama.attention.layer_norm_rms_epsilon"))
    base = float(gguf_field(reader, "llama.rope.freq_base"))
    emb = W("token_embd.weight")
    d = emb.shape[1]
    hd = d // n_head
    n = len(ids)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    pos = np.arange(n)[:, None]
    inv = base ** (-np.arange(0, hd, 2) / hd)
    ang = pos * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope_adjacent(x):  # x: [n, heads, hd]; rotate pairs (2i, 2i+1) (GGML_ROPE_TYPE_NORM)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    x = emb[ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms(x, W(p + "attn_norm.weight"))
        q = (h @ W(p + "attn_q.weight").T).reshape(n, n_head, hd)
        k = (h @ W(p + "attn_k.weight").T).reshape(n, n_kv, hd)
        v = (h @ W(p + "attn_v.weight").T).reshape(n, n_kv, hd)
        q, k = rope_adjacent(q), rope_adjacent(k)
        att = np.empty((n, n_head, hd))
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            s = q[:, hh] @ k[:, kv].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            att[:, hh] = s @ v[:, kv]
        x = x + att.reshape(n, d) @ W(p + "attn_output.weight").T
        h = rms(x, W(p + "ffn_norm.weight"))
        g = h @ W(p + "ffn_gate.weight").T
        u = h @ W(p + "ffn_up.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ W(p + "ffn_down.weight").T
    x = rms(x, W("output_norm.weight"))
    out_w = W("output.weight") if "output.weight" in T else emb
    return x @ out_w.T


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch
    import transformers
    from gguf import GGUFReader

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    model_path = os.path.abspath(args.model)
    t0 = time.time()
    digest = sha256(model_path)
    reader = GGUFReader(model_path)
    tk, control_ids = build_tokenizer(reader)
    eos_id = int(gguf_field(reader, "tokenizer.ggml.eos_token_id"))

    # Compare with transformers' GGUF-converted tokenizer (informational only).
    hf_tok = transformers.AutoTokenizer.from_pretrained(
        os.path.dirname(model_path), gguf_file=os.path.basename(model_path))

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(model_path), gguf_file=os.path.basename(model_path),
        dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    assert cfg.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    print(f"loaded {os.path.basename(model_path)} in {time.time() - t0:.1f}s: layers={cfg.num_hidden_layers} "
          f"hidden={cfg.hidden_size} heads={cfg.num_attention_heads}/{cfg.num_key_value_heads} "
          f"vocab={cfg.vocab_size} rope={getattr(cfg, 'rope_parameters', None)} eps={cfg.rms_norm_eps}",
          file=sys.stderr)

    # transformers >= 5.x renamed forward(past_key_values=) to forward(cache=).
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    results = []
    for name, prompt in PROMPTS:
        enc = tk.encode(prompt, add_special_tokens=False)
        ids = enc.ids
        assert tk.decode(ids, skip_special_tokens=False) == prompt, name
        hf_ids = hf_tok(prompt, add_special_tokens=False).input_ids
        if hf_ids != ids:
            print(f"[{name}] note: transformers' GGUF tokenizer differs: {hf_ids} vs {ids}", file=sys.stderr)
        if name == "one_token":
            assert len(ids) == 1, ids

        steps, gen, step_logits = [], [], []
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), use_cache=True)
            past = getattr(out, "past_key_values", None) or out.cache
            logits = out.logits[0, -1].float()
            for _ in range(STEPS):
                step_logits.append(logits.clone())
                logp = torch.log_softmax(logits.double(), dim=-1)
                top = torch.topk(logits, 2)
                top5 = torch.topk(logp, TOPK)
                tok = int(top.indices[0])
                assert tok == int(torch.argmax(logits))
                steps.append({
                    "token": tok,
                    "top2_gap": round(float(top.values[0] - top.values[1]), 5),
                    "top5": [[int(i), round(float(v), 5)] for v, i in zip(top5.values, top5.indices)],
                })
                gen.append(tok)
                out = model(input_ids=torch.tensor([[tok]]), use_cache=True, **{cache_kw: past})
                past = getattr(out, "past_key_values", None) or out.cache
                logits = out.logits[0, -1].float()
            # Consistency: teacher-forced full-sequence forward must agree.
            full = model(input_ids=torch.tensor([ids + gen[:-1]]), use_cache=False).logits[0, len(ids) - 1:]
        inc = torch.stack(step_logits)
        diff = float((full - inc).abs().max())
        argmax_ok = bool((full.argmax(-1) == inc.argmax(-1)).all())
        min_gap = min(s["top2_gap"] for s in steps)
        text = tk.decode(gen, skip_special_tokens=False)
        print(f"[{name}] {len(ids)} prompt tokens, min top2_gap {min_gap:.4f}, "
              f"kv-vs-full max|dlogit| {diff:.2e}{'' if argmax_ok else ' ARGMAX MISMATCH'}\n"
              f"    -> {text!r}", file=sys.stderr)
        if eos_id in gen:
            print(f"    (EOS {eos_id} generated at step {gen.index(eos_id)}; ignored)", file=sys.stderr)
        results.append({"name": name, "prompt": prompt, "prompt_ids": ids, "steps": steps,
                        "min_top2_gap": min_gap, "generated_text": text})

    if args.verify:
        worst = 0.0
        for r in results[:3] + [r for r in results if r["name"] == "chat"]:
            ids = r["prompt_ids"]
            ref = numpy_reference_logits(reader, ids)
            with torch.no_grad():
                hf = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
            d = float(np.abs(ref - hf).max())
            same = bool((ref.argmax(-1) == hf.argmax(-1)).all())
            worst = max(worst, d)
            print(f"[verify {r['name']}] numpy(GGUF layout) vs transformers: max|dlogit| {d:.2e} over "
                  f"{len(ids)} positions, argmax {'identical' if same else 'DIFFERS'}", file=sys.stderr)
        assert worst < 1e-2, worst

    doc = {
        "model_file": os.path.basename(model_path),
        "model_sha256": digest,
        "generator": f"transformers {transformers.__version__} / torch {torch.__version__} / "
                     f"gguf {importlib.metadata.version('gguf')} / tokenizers {importlib.metadata.version('tokenizers')}",
        "command": "python3 tools/make_golden.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]",
        "notes": ("float32 compute (GGUF tensors dequantized to float32), eager attention, greedy argmax, "
                  f"{STEPS} steps with KV cache, EOS ignored; no BOS; prompt ids from GGUF vocab/merges with "
                  "pre-tokenizer Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false)], "
                  "control tokens (GGUF token_type 3) matched as special tokens; top2_gap is a raw-logit "
                  "difference, top5 entries are [token_id, log-probability]"),
        "special_token_ids": control_ids,
        "eos_token_id": eos_id,
        "prompts": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(dumps(doc))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t0:.0f}s", file=sys.stderr)


def dumps(doc):
    """Pretty JSON with one line per decoding step (small and diff-friendly)."""
    def j(x):
        return json.dumps(x, ensure_ascii=False)

    lines = ["{"]
    top = [k for k in doc if k != "prompts"]
    for k in top:
        lines.append(f"  {j(k)}: {j(doc[k])},")
    lines.append('  "prompts": [')
    for pi, p in enumerate(doc["prompts"]):
        lines.append("    {")
        for k in p:
            if k == "steps":
                continue
            lines.append(f"      {j(k)}: {j(p[k])},")
        lines.append('      "steps": [')
        for si, s in enumerate(p["steps"]):
            lines.append(f"        {j(s)}{',' if si + 1 < len(p['steps']) else ''}")
        lines.append("      ]")
        lines.append("    }" + ("," if pi + 1 < len(doc["prompts"]) else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(doc))
    return text


if __name__ == "__main__":
    main()
