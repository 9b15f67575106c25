#!/usr/bin/env python3
"""Generate tiny random-weight Hugging Face model fixtures with reference logits.

Writes two model directories (each well under 1 MB):

  tests/fixtures/tiny_llama/  LlamaForCausalLM, float32 safetensors, untied lm_head,
                              GQA 4/2 heads, head_dim 16, Llama-3 rope scaling with a
                              small original_max_position_embeddings (32) so all three
                              frequency bands (kept / smoothed / divided by factor) occur;
                              SentencePiece-style BPE tokenizer (Llama-2 tokenizer.json
                              layout: Prepend/Replace normalizer, byte_fallback, <0xNN>
                              tokens, BOS added by the post-processor).
  tests/fixtures/tiny_qwen2/  Qwen2ForCausalLM, bfloat16 safetensors, tied embeddings,
                              nonzero random q/k/v biases, rope_theta 1e6, rms eps 1e-6;
                              byte-level BPE tokenizer (Qwen2 layout: NFC normalizer,
                              Split(regex) + ByteLevel pre-tokenizer, ChatML specials).

Each directory also gets expected.json and expected_logits.f32: the raw
little-endian float32 logits [seq, vocab] of one forward pass over
expected.json's input_ids, computed in float32 with eager attention (for
tiny_qwen2 from the bfloat16 weights upcast to float32, i.e. exactly what is on
disk). expected.json also lists a few tokenizer cases (text -> ids).

config.json is rewritten into the classic layout used by published checkpoints
(top-level rope_theta, rope_scaling, torch_dtype) instead of the
rope_parameters / dtype layout that transformers 5 writes; pass
--native-config to keep transformers' own layout. The script re-loads each
directory with transformers and checks that it reproduces the logits and the
tokenizer cases.

Usage (from the repository root):
  python3 tools/make_tiny_models.py [--out-dir tests/fixtures]
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures")
SEED = 1234
SEQ_LEN = 24

TRAIN_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model is trained on a small text.
Once upon a time, there was a little village at the edge of a great forest. The people
of the village were farmers and builders, and every morning they walked to the fields.
In the evening they sat together, told stories, and sang songs about the river and the hills.
Tokenizers split text into pieces. Byte pair encoding merges the most frequent pairs of
symbols, one merge at a time, until the vocabulary reaches the requested size.
Attention lets every position look at the positions before it. The keys and values are
cached so that each new token only needs one row of queries.
def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, i * 2))

Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 2024 3.14159
Questions? Answers! Lists: apples, bread, cheese; tea & coffee (hot) [cold] {warm} "quoted" 'single'
The weather today is sunny with a light wind. Tomorrow it will rain in the morning and clear up later.
She said that the train would arrive at noon, but it was late, and everyone waited on the platform.
Machine learning models read tokens, compute hidden states, and predict the next token.
La ville est belle. Der Hund läuft schnell. El gato duerme en la casa.
"""

# Not in TRAIN_TEXT on purpose (byte fallback / unseen bytes): emoji, CJK, some accents.
TOKENIZER_CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces and trailing  ",
    "numbers 12345 and 3.14",
    "tabs\tand\nnew\n\nlines",
    "naïve café: 🦙 ollama 中文",
    "def f(x):\n    return x * 2\n",
]

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default=DEFAULT_OUT, help="parent directory (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--native-config", action="store_true",
                   help="keep config.json exactly as transformers writes it")
    return p.parse_args()


# ----------------------------------------------------------------------------- tokenizers

def train_lines():
    return [l for l in TRAIN_TEXT.splitlines() if l.strip()] * 1


def make_spm_bpe_tokenizer(vocab_size=512):
    """Llama-2 style: <unk>,<s>,</s>, 256 <0xNN> byte tokens, then BPE pieces with ▁."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>"]
    n_fixed = len(specials) + 256
    # Train on whitespace-split words (like SentencePiece's split_by_whitespace) ...
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials,
                                  min_frequency=2, show_progress=False)
    t.train_from_iterator(train_lines(), trainer=trainer)
    trained = json.loads(t.to_str())["model"]
    pieces = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in pieces:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    assert len(vocab) <= vocab_size and len(vocab) > n_fixed + 100, len(vocab)

    # ... then assemble the Llama-2 tokenizer.json pipeline.
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.pre_tokenizer = None
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tk


def make_bytelevel_bpe_tokenizer(vocab_size=384):
    """Qwen2 style byte-level BPE; the ChatML specials come after the BPE vocab."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tk.train_from_iterator(train_lines(), trainer=trainer)
    assert tk.get_vocab_size() == vocab_size - len(specials), tk.get_vocab_size()
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tk


def added_tokens_decoder(tk):
    out = {}
    for tid, tok in sorted(tk.get_added_tokens_decoder().items()):
        out[str(tid)] = {"content": tok.content, "lstrip": tok.lstrip, "normalized": tok.normalized,
                         "rstrip": tok.rstrip, "single_word": tok.single_word, "special": tok.special}
    return out


def write_tokenizer(tk, path, config):
    tk.save(os.path.join(path, "tokenizer.json"))
    cfg = dict(config)
    cfg["added_tokens_decoder"] = added_tokens_decoder(tk)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2, ensure_ascii=False)
        f.write("\n")


# ----------------------------------------------------------------------------- models

def randomize(model, torch, gen, *, embed_std, qk_gain, bias_std):
    """Deterministic, non-degenerate random weights (HF init is too flat: std 0.02, unit norms, zero biases)."""
    import math
    for name, p in sorted(model.named_parameters()):
        shape = tuple(p.shape)
        if name.endswith("norm.weight"):
            v = 0.5 + torch.rand(shape, generator=gen)  # U(0.5, 1.5)
        elif name.endswith(".bias"):
            v = torch.randn(shape, generator=gen) * bias_std
        elif "embed_tokens" in name:
            v = torch.randn(shape, generator=gen) * embed_std
        else:
            std = 1.0 / math.sqrt(shape[1])
            if "q_proj" in name or "k_proj" in name:
                std *= qk_gain
            if "lm_head" in name:
                std *= 2.0
            v = torch.randn(shape, generator=gen) * std
        with torch.no_grad():
            p.copy_(v)


def classic_config(path, torch_dtype):
    """Rewrite transformers-5 config.json (rope_parameters/dtype) into the published-checkpoint layout."""
    p = os.path.join(path, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters", None)
    if rp is not None:
        rp = dict(rp)
        cfg["rope_theta"] = rp.pop("rope_theta")
        if rp.get("rope_type", "default") == "default":
            cfg["rope_scaling"] = None
        else:
            cfg["rope_scaling"] = rp
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = torch_dtype
    with open(p, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")


def forward_logits(model, torch, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def build(kind, out_dir, native_config):
    import numpy as np
    import torch
    import transformers

    path = os.path.join(out_dir, f"tiny_{kind}")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    rng = np.random.default_rng(SEED)

    if kind == "llama":
        tk = make_spm_bpe_tokenizer()
        V = tk.get_vocab_size(with_added_tokens=True)
        config = transformers.LlamaConfig(
            vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
            max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 32},
            attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=None)
        config._attn_implementation = "eager"
        model = transformers.LlamaForCausalLM(config)
        randomize(model, torch, gen, embed_std=1.0, qk_gain=1.5, bias_std=0.0)
        save_dtype, dtype_name = torch.float32, "float32"
        ids = [1] + rng.integers(3, V, SEQ_LEN - 1).tolist()  # BOS + random non-special ids
        tok_cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
                   "legacy": True, "model_max_length": 256, "sp_model_kwargs": {},
                   "tokenizer_class": "PreTrainedTokenizerFast"}
    else:
        tk = make_bytelevel_bpe_tokenizer()
        V = tk.get_vocab_size(with_added_tokens=True)
        eot, im_start, im_end = (tk.token_to_id(s) for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
        config = transformers.Qwen2Config(
            vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
            max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            use_sliding_window=False, max_window_layers=2,
            bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot)
        config._attn_implementation = "eager"
        model = transformers.Qwen2ForCausalLM(config)
        randomize(model, torch, gen, embed_std=0.25, qk_gain=1.5, bias_std=0.5)
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        # Make every weight exactly representable in bfloat16, so the float32 reference
        # logits are those of the bf16 checkpoint upcast to float32.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
        save_dtype, dtype_name = torch.bfloat16, "bfloat16"
        ids = rng.integers(0, eot, SEQ_LEN).tolist()  # random non-special ids
        tok_cfg = {"add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace",
                   "clean_up_tokenization_spaces": False, "split_special_tokens": False,
                   "model_max_length": 256, "chat_template": CHATML_TEMPLATE,
                   "tokenizer_class": "Qwen2Tokenizer"}

    model.eval()
    logits = forward_logits(model, torch, ids)
    assert logits.shape == (SEQ_LEN, V) and np.isfinite(logits).all()

    model.to(save_dtype).save_pretrained(path, safe_serialization=True)
    if not native_config:
        classic_config(path, dtype_name)
    write_tokenizer(tk, path, tok_cfg)
    logits.astype("<f4").tofile(os.path.join(path, "expected_logits.f32"))

    cases = []
    for text in TOKENIZER_CASES + (["<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"]
                                   if kind == "qwen2" else ["<s>text after a special token</s>"]):
        enc = tk.encode(text, add_special_tokens=True)
        cases.append({"text": text, "ids": enc.ids, "tokens": enc.tokens})
    expected = {
        "input_ids": ids,
        "logits_file": "expected_logits.f32",
        "logits_dtype": "float32 little-endian, row-major [seq, vocab]",
        "shape": [SEQ_LEN, V],
        "compute": f"float32, eager attention, single forward over input_ids; weights stored as {dtype_name}",
        "tokenizer_cases_note": "ids from tokenizer.json with add_special_tokens=true",
        "tokenizer_cases": cases,
        "generator": f"transformers {transformers.__version__} / torch {torch.__version__} / "
                     f"tokenizers {__import__('tokenizers').__version__}",
        "command": "python3 tools/make_tiny_models.py",
    }
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    verify(path, kind, expected, logits)
    sizes = {n: os.path.getsize(os.path.join(path, n)) for n in sorted(os.listdir(path))}
    print(f"{path}: vocab {V}, total {sum(sizes.values())} bytes {sizes}", file=sys.stderr)


def numpy_forward(path, ids):
    """Independent float64 re-implementation from config.json + model.safetensors (HF conventions:
    q/k/v rows in HF order, RoPE rotates halves (i, i + head_dim/2))."""
    import math
    import numpy as np
    import torch
    from safetensors.torch import load_file as load_pt

    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    W = {k: v.to(torch.float64).numpy() for k, v in load_pt(os.path.join(path, "model.safetensors")).items()}
    H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"]
    hd = c.get("head_dim") or D // H
    eps, n = c["rms_norm_eps"], len(ids)
    inv = c["rope_theta"] ** (-np.arange(0, hd, 2) / hd)
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        f, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        scaled = np.where(wl > old / lo, inv / f, inv)
        smooth = (old / wl - lo) / (hi - lo)
        medium = ~(wl < old / hi) & ~(wl > old / lo)
        inv = np.where(medium, (1 - smooth) * scaled / f + smooth * scaled, scaled)
    else:
        assert rs is None, rs
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1))[:, None], np.sin(np.concatenate([ang, ang], -1))[:, None]

    def rope(x):
        rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rot * sin

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rope(lin(h, p + "self_attn.q_proj").reshape(n, H, hd))
        k = rope(lin(h, p + "self_attn.k_proj").reshape(n, KV, hd))
        v = lin(h, p + "self_attn.v_proj").reshape(n, KV, hd)
        o = np.empty((n, H, hd))
        for i in range(H):
            s = q[:, i] @ k[:, i // (H // KV)].T / math.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, i] = (s / s.sum(-1, keepdims=True)) @ v[:, i // (H // KV)]
        x = x + lin(o.reshape(n, H * hd), p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T, inv


def verify(path, kind, expected, logits):
    """Reload from disk with transformers and check logits and tokenizer cases."""
    import numpy as np
    import torch
    import transformers
    from safetensors import safe_open

    with safe_open(os.path.join(path, "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        keys = list(f.keys())
    want = {"llama": {"F32"}, "qwen2": {"BF16"}}[kind]
    assert dtypes == want, dtypes
    assert ("lm_head.weight" in keys) == (kind == "llama"), keys
    m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    ref = np.fromfile(os.path.join(path, expected["logits_file"]), dtype="<f4").reshape(expected["shape"])
    got = forward_logits(m, torch, expected["input_ids"])
    d = float(np.abs(got - ref).max())
    assert np.array_equal(ref, logits)
    print(f"[verify tiny_{kind}] reloaded max|dlogit| {d:.2e}, logits std {ref.std():.3f}, "
          f"rope {m.config.rope_parameters}", file=sys.stderr)
    assert d < 1e-5, d
    ind, inv = numpy_forward(path, expected["input_ids"])
    d2 = float(np.abs(ind - ref).max())
    print(f"[verify tiny_{kind}] independent numpy forward max|dlogit| {d2:.2e}; inv_freq {np.round(inv, 6).tolist()}",
          file=sys.stderr)
    assert d2 < 1e-3, d2
    # Reloaded in its stored dtype too (bf16 compute for qwen2) -- informational.
    m2 = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    print(f"[verify tiny_{kind}] default-dtype reload: {next(m2.parameters()).dtype}", file=sys.stderr)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    for c in expected["tokenizer_cases"]:
        ids = tok(c["text"]).input_ids
        if ids != c["ids"]:
            print(f"[verify tiny_{kind}] transformers tokenizer ({type(tok).__name__}) differs on {c['text']!r}:"
                  f" {ids} vs {c['ids']}", file=sys.stderr)
        if "<" not in c["text"]:  # plain text round-trips (BOS skipped)
            back = tok.decode(c["ids"], skip_special_tokens=True)
            assert back == c["text"], (back, c["text"])
    if kind == "qwen2":
        chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
        assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", chat


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    for kind in ("llama", "qwen2"):
        build(kind, args.out_dir, args.native_config)


if __name__ == "__main__":
    main()
