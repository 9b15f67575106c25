#!/usr/bin/env python3
"""Reference fixtures for weft's tokenizer, made with Hugging Face `tokenizers`.

    python3 tools/make_tokenizer_refs.py \
        [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--llama-cpp-sdist llama_cpp_python-X.tar.gz] [--compare-transformers]

Writes tests/fixtures/tokenizer/<name>.jsonl: one JSON object per line,
    {"text": ..., "ids": [...], "decoded": ...}
`ids` = Tokenizer.encode(text, add_special_tokens=A).ids with A from the
optional "add_special_tokens" field (default false); `decoded` =
Tokenizer.decode(ids, skip_special_tokens=False); "decoded_skip" (only where
it differs) = decode(ids, skip_special_tokens=True). Lines without "text" are
decode-only: ids whose bytes are not valid UTF-8, with HF's decoded string.
Special tokens written in the text are parsed as special tokens (HF default).

The strings are seeded and varied: English prose and contractions (any case),
code, runs of spaces/tabs/newlines/other Unicode spaces, digits and long
numbers (also non-ASCII digits, fractions, roman numerals), CJK, Arabic,
Hebrew, Hindi, Thai, Khmer, Cyrillic, Greek, emoji (skin tones, ZWJ
sequences, flags, keycaps), the family's special tokens written in the text
(whole, partial, adjacent, space-padded), non-NFC text, control and
zero-width characters, random code points with stacked combining marks, and
mixtures. Random code points are drawn only from those assigned in Python's
Unicode database (14.0), so ICU 72 (Unicode 15) and the Rust/Oniguruma
tables behind `tokenizers` agree on their properties.

Families (reference built from the named vocabulary, then saved as a
tokenizer.json and loaded back with tokenizers.Tokenizer.from_str):

  smollm2        the default model's GGUF (not in the repository; CI fetches
                 it). There is no original tokenizer.json here (no model
                 hub), so it is rebuilt: BPE(vocab, merges) from
                 tokenizer.ggml.tokens/merges, pre-tokenizer
                 Sequence[Digits(individual_digits=True),
                 ByteLevel(add_prefix_space=False, use_regex=True)] as in
                 HuggingFaceTB's tokenizer.json, ByteLevel decoder and
                 post-processor, and the 17 CONTROL tokens (ids 0..16,
                 <|endoftext|> .. <empty_output>) as special added tokens.
                 Checked here (asserts):
                   - llama.cpp's fingerprint of the original SmolLM tokenizer:
                     sha256(str(encode(CHK_TXT))) must equal the chkhsh that
                     llama.cpp's convert_hf_to_gguf.py maps to pre "smollm"
                     (855059429035d75a...); CHK_TXT covers whitespace runs,
                     emoji, digit runs, CJK, Khmer, Cyrillic and contractions;
                   - digits are split one by one ("12345" -> 5 tokens);
                   - the special tokens are exactly ids 0..16, all CONTROL.
                 Saved as smollm2/tokenizer.json (+ tokenizer_config.json with
                 bos <|im_start|>, eos <|im_end|> as in SmolLM2-Instruct) so
                 the C++ test also runs FromHfFiles on it.
  llama_spm      llama.cpp's ggml-vocab-llama-spm.gguf (Llama 2 vocabulary,
                 vocab only, 0.7 MB), copied from llama-cpp-python's sdist
                 (vendor/llama.cpp/models). Built in the original Llama 2
                 tokenizer.json layout: normalizer Prepend("▁") +
                 Replace(" ", "▁"), no pre-tokenizer, BPE with byte_fallback
                 and fuse_unk, merges derived from the scores with
                 transformers' generate_merges (as its GGUF conversion does),
                 decoder Replace/ByteFallback/Fuse/Strip, TemplateProcessing
                 "<s> $A". (transformers 5's own GGUF conversion uses Metaspace,
                 which differs on leading spaces; the llama.cpp vectors below
                 were made with the original layout.)
  qwen2          ggml-vocab-qwen2.gguf (Qwen1.5-7B vocabulary, 5.9 MB): NFC
                 normalizer, Split(Qwen2 regex, Isolated) +
                 ByteLevel(use_regex=False), as Qwen2's tokenizer.json.
  llama3_style   a synthetic tokenizer.json (FromHfFiles only): the first
                 8000 Qwen2 tokens and the merges among them, with Llama 3's
                 pre-tokenizer (Split with \\p{N}{1,3}), ignore_merges, NFC,
                 TemplateProcessing BOS, and added tokens using lstrip,
                 rstrip, single_word and normalized.
  spm_metaspace  a synthetic tokenizer.json: the first 6000 Llama 2 tokens,
                 pre-tokenizer Metaspace(prepend_scheme="first", split=False)
                 as in Mistral v0.3 / transformers 5 files, Metaspace decoder.

llama_spm and qwen2 references (and gpt-2 / llama-bpe, if their GGUFs are
given) are checked against llama.cpp's ggml-vocab-*.gguf.inp/.out vectors
(46 strings each, produced by llama.cpp with the original HF tokenizers), and
qwen2 also against its chkhsh. The .inp/.out files are saved beside the GGUFs
and the C++ test checks them too. --compare-transformers also reports how
often transformers' GGUF conversion agrees with each reference.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import tarfile
import unicodedata

from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "tokenizer")
SPACE = "\u2581"

# llama.cpp's convert_hf_to_gguf_update.py test string and the fingerprints
# its convert_hf_to_gguf.py assigns to the pre-tokenizers used here.
CHK_TXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````\"\"\"\"......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'
CHKHSH = {
    "smollm": "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249",
    "qwen2": "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea",
    "llama-bpe": "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5",
    "gpt-2": "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454",
}

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
            r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VOCAB_FILES = ["ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf"]
# The vocabulary GGUFs are not committed: tools/fetch_vocabs.sh puts them here.
VOCAB_DIR = os.path.join(REPO, "models", "vocab")

# --------------------------------------------------------------------------
# GGUF metadata


def read_gguf(path):
    import gguf

    reader = gguf.GGUFReader(path)
    meta = {}
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            if field.types[-1] == gguf.GGUFValueType.STRING:
                meta[key] = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            else:
                meta[key] = [field.parts[i][0].item() for i in field.data]
        elif kind == gguf.GGUFValueType.STRING:
            meta[key] = bytes(field.parts[field.data[0]]).decode("utf-8")
        else:
            meta[key] = field.parts[field.data[0]][0].item()
    return meta


def added_token(content, token_id, special, **flags):
    entry = {"id": token_id, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": special}
    entry.update(flags)
    return entry


def gguf_added_tokens(meta):
    """CONTROL/UNKNOWN and bos/eos/unk/pad tokens special, USER_DEFINED not."""
    tokens = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    named = {meta[k] for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                               "tokenizer.ggml.unknown_token_id",
                               "tokenizer.ggml.padding_token_id") if k in meta}
    out = []
    for i, (token, kind) in enumerate(zip(tokens, types)):
        special = kind in (2, 3) or i in named
        if special or kind == 4:
            out.append(added_token(token, i, special))
    return out


def template(token, token_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": token, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": token, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {token: {"id": token, "ids": [token_id], "tokens": [token]}}}


def bpe_model(vocab, merges, **options):
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges]}
    model.update(options)
    return model


def tokenizer_json(model, added, normalizer=None, pre_tokenizer=None, post_processor=None,
                   decoder=None):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "model": model,
            "post_processor": post_processor, "decoder": decoder}


BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True}


def byte_level_pre(pre):
    split = {"llama-bpe": LLAMA3_RE, "qwen2": QWEN2_RE}.get(pre)
    if split is not None:
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    if pre == "smollm":
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]}
    return byte_level


def byte_level_reference(meta):
    """The original tokenizer.json of a byte-level GGUF vocabulary."""
    pre = meta.get("tokenizer.ggml.pre", "default")
    tokens = meta["tokenizer.ggml.tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [m.split(" ") for m in meta["tokenizer.ggml.merges"]]
    model = bpe_model(vocab, merges, ignore_merges=pre == "llama-bpe")
    post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    if pre == "llama-bpe":
        bos = meta["tokenizer.ggml.bos_token_id"]
        post = {"type": "Sequence", "processors": [post, template(tokens[bos], bos)]}
    normalizer = {"type": "NFC"} if pre == "qwen2" else None
    return tokenizer_json(model, gguf_added_tokens(meta), normalizer=normalizer,
                          pre_tokenizer=byte_level_pre(pre), post_processor=post,
                          decoder=BYTE_LEVEL_DECODER)


def spm_merges(tokens, scores):
    from transformers.tokenization_utils_base import generate_merges

    vocab = {t: i for i, t in enumerate(tokens)}
    return generate_merges(vocab, dict(zip(tokens, scores)))


SPM_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def spm_reference(meta):
    """Llama 2's tokenizer.json layout for a SentencePiece GGUF vocabulary."""
    tokens = meta["tokenizer.ggml.tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    model = bpe_model(vocab, spm_merges(tokens, meta["tokenizer.ggml.scores"]),
                      unk_token=tokens[unk] if unk is not None else None,
                      fuse_unk=True, byte_fallback=True)
    normalizer = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": SPACE},
        {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]}
    bos = meta["tokenizer.ggml.bos_token_id"]
    return tokenizer_json(model, gguf_added_tokens(meta), normalizer=normalizer,
                          post_processor=template(tokens[bos], bos), decoder=SPM_DECODER)


def reference_for_gguf(meta):
    if meta["tokenizer.ggml.model"] == "gpt2":
        return byte_level_reference(meta)
    return spm_reference(meta)


def load(definition):
    return Tokenizer.from_str(json.dumps(definition, ensure_ascii=False))


# --------------------------------------------------------------------------
# Synthetic tokenizer.json files (small vocabularies, generic components)


def subset_merges(vocab, merges):
    return [m for m in merges if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]


def llama3_style(qwen2_meta, size=8000):
    tokens = qwen2_meta["tokenizer.ggml.tokens"][:size]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = subset_merges(vocab, [m.split(" ") for m in qwen2_meta["tokenizer.ggml.merges"]])
    added = [
        added_token("<|begin_of_text|>", size, True),
        added_token("<|end_of_text|>", size + 1, True),
        added_token("<|eot_id|>", size + 2, True),
        added_token("<tool>", size + 3, False, lstrip=True),
        added_token("</tool>", size + 4, False, rstrip=True),
        added_token("[SW]", size + 5, False, single_word=True),
        added_token("Ω-norm", size + 6, False, normalized=True),
        added_token("<|pad|>", size + 7, True, lstrip=True, rstrip=True),
    ]
    definition = tokenizer_json(
        bpe_model(vocab, merges, ignore_merges=True), added, normalizer={"type": "NFC"},
        pre_tokenizer=byte_level_pre("llama-bpe"),
        post_processor={"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
             "use_regex": True},
            template("<|begin_of_text|>", size)]},
        decoder=BYTE_LEVEL_DECODER)
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    return definition, config


def spm_metaspace(spm_meta, size=6000):
    tokens = spm_meta["tokenizer.ggml.tokens"][:size]
    scores = spm_meta["tokenizer.ggml.scores"][:size]
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [added_token(tokens[i], i, True) for i in range(3)]
    added.append(added_token("<mask>", size, False))
    added.append(added_token("[INST]", size + 1, True))
    definition = tokenizer_json(
        bpe_model(vocab, spm_merges(tokens, scores), unk_token="<unk>", fuse_unk=True,
                  byte_fallback=True),
        added,
        pre_tokenizer={"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
                       "split": False},
        post_processor=template("<s>", 1),
        decoder={"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
             "split": False},
            {"type": "ByteFallback"}, {"type": "Fuse"}]})
    config = {"bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>"}
    return definition, config


# --------------------------------------------------------------------------
# Test strings

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could people "
         "my than first water been call who oil its now find long down day did get come made may "
         "part tokenizer Byte-Pair Encoding inference server GPU kernel attention batch").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'lL",
                "'D", "'M", "'ſ", "’s", "'x", "''"]
PHRASES = [
    "我想在apple工作1314151天～", "今日は良い天気ですね。", "東京都渋谷区", "한국어 문장입니다.",
    "中华人民共和国成立于1949年。", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "مرحبا بالعالم، كيف حالك؟",
    "اللغة العربية ١٢٣٤٥٦٧٨٩٠", "שלום עולם", "नमस्ते दुनिया, आप कैसे हैं?", "हिन्दी में १२३ अंक",
    "สวัสดีครับ ประเทศไทย", "កាន់តែពិសេសអាចខលចេញ", "Привет, мир! Как дела?", "нещо на Български",
    "Ελληνικά: Γειά σου Κόσμε", "Cửa Việt", "Äpfel über Öl", "naïve café résumé",
    "Zürich ß ẞ Straße", "İstanbul ıi", "ǅemal ǈ ǋ", "ﬁ ﬂ ﬃ ligatures", "Ω Å K µ",
]
EMOJI = ["🚀", "😶\u200d🌫️", "✅", "🦙", "😁", "👍🏽", "👨\u200d👩\u200d👧\u200d👦",
         "🏳️\u200d🌈", "🇺🇸", "🇯🇵", "1️⃣", "#️⃣", "❤️", "🧑🏿\u200d💻", "👩\u200d❤️\u200d💋\u200d👨",
         "🤷\u200d♀️", "⚡", "🐈\u200d⬛", "🫠", "©", "™"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\t\t", "\u00a0", "\u3000",
          "\u2003", "\u2009", "\u200b", "\x0b", "\x0c", "\x85", "\u2028", "\u1680", "\u202f",
          "    ", "\n    ", " \t \n"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "—", "–", "«", "»", "¿", "¡", "…",
                                                     "“", "”", "‘", "’", "•", "°", "€", "£", "¥"]
CODE = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "if __name__ == \"__main__\":\n    main()",
    "const auto& [key, value] = *it;",
    "{\"key\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": \"b\"}}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "x = y ** 2 // 3 % 4 != 5 && z || !w",
    "#include <vector>\nstd::vector<int> v{1,2,3};",
    "    indented\n        more\n\t\ttabs\n",
    "// comment\n/* block */\n# hash\n-- dash",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.com 192.168.0.1 0xDEADBEEF 0b1010",
    "a_b_c CamelCase snake_case kebab-case SCREAMING_CASE",
]
NUMBERS_EXTRA = ["3.14159", "1,234,567", "1e-10", "-42", "+7", "2024-01-01", "12:30:45",
                 "$100.00", "50%", "1/2", "½", "¾", "²", "³", "Ⅻ", "ⅷ", "١٢٣", "१२३", "௧௨",
                 "１２３", "๓๔", "〇一二三", "₁₂", "⑴⑵", "3..3", "3...3", "007", "0"]
CONTROL = ["\x00", "\x01", "\x1b[0m", "\x7f", "\u200d", "\u200c", "\ufeff", "\u202e", "\u2066",
           "\u00ad", "\ufffd", "\U000e0001", "\ue000", "\U000f0000"]
NON_NFC = ["e\u0301", "A\u030a", "\u212b", "\u1100\u1161\u11a8", "o\u0308\u0301",
           "\u0041\u0328\u0301", "\u2126", "\ufb01", "\u00c5", "n\u0303a"]


def assigned_code_points():
    points = []
    for cp in range(0x20, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        category = unicodedata.category(chr(cp))
        if category not in ("Cn", "Cs"):
            points.append(cp)
    return points


ASSIGNED = assigned_code_points()
COMBINING = [cp for cp in ASSIGNED if unicodedata.category(chr(cp)) == "Mn" and cp < 0x2000]


def number(rng):
    length = rng.choice([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 20, 40])
    return "".join(rng.choice("0123456789") for _ in range(length))


def sentence(rng):
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 12))]
    out = []
    for word in words:
        r = rng.random()
        if r < 0.1:
            word = word.capitalize()
        elif r < 0.15:
            word = word.upper()
        if rng.random() < 0.12:
            word += rng.choice(CONTRACTIONS)
        if rng.random() < 0.08:
            word += rng.choice(PUNCT)
        out.append(word)
    text = " ".join(out)
    return text[:1].upper() + text[1:] + rng.choice([".", "!", "?", "", ",", ";"])


def random_unicode(rng, length):
    chars = []
    for _ in range(length):
        chars.append(chr(rng.choice(ASSIGNED)))
        while rng.random() < 0.2:
            chars.append(chr(rng.choice(COMBINING)))
    return "".join(chars)


def special_text(rng, specials):
    s = rng.choice(specials)
    pick = rng.randrange(8)
    if pick == 0:
        return s[: rng.randint(1, max(1, len(s) - 1))]  # partial
    if pick == 1:
        return s + s
    if pick == 2:
        return " " + s + " "
    if pick == 3:
        return s + "\n" + sentence(rng)
    if pick == 4:
        return s[0] + " " + s[1:]
    return s


def fragment(rng, specials):
    kind = rng.randrange(14)
    if kind == 0:
        return sentence(rng)
    if kind == 1:
        return rng.choice(CODE)
    if kind == 2:
        return rng.choice(SPACES) * rng.randint(1, 3)
    if kind == 3:
        return rng.choice([number(rng), rng.choice(NUMBERS_EXTRA), " " + number(rng),
                           "abc" + number(rng) + "def"])
    if kind == 4:
        return rng.choice(PHRASES)
    if kind == 5:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
    if kind == 6:
        return special_text(rng, specials)
    if kind == 7:
        return random_unicode(rng, rng.randint(1, 12))
    if kind == 8:
        return rng.choice(NON_NFC)
    if kind == 9:
        return rng.choice(CONTROL)
    if kind == 10:
        return rng.choice(PUNCT) * rng.randint(1, 8)
    if kind == 11:
        return rng.choice(CONTRACTIONS) + rng.choice(WORDS)
    if kind == 12:
        word = rng.choice(WORDS)
        return rng.choice([word, " " + word, word.upper()]) + rng.choice(SPACES)
    return rng.choice([" ", "", "\n"]) + rng.choice(WORDS)


FIXED = ["", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", "Hello world", " Hello world",
         "Hello World!", "ied 4 ½ months", "Äpfel", " (", "\n =", "' era", "!!!!!!", "3", "33",
         "333", "3333", "33333", "333333333", " discards", "a" * 300, "9" * 200,
         "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it", CHK_TXT,
         "\u00a0\u00a0x", "x\u3000\u3000", " \u0301", "\u0301", "e\u0301\u0301\u0301"]


def make_strings(rng, count, specials):
    strings = list(FIXED)
    for s in specials[:6]:
        strings += [s, s + s, "a" + s + "b", " " + s + " ", s + "\n" + s]
    strings.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    while len(strings) < count:
        pieces = [fragment(rng, specials) for _ in range(rng.choice([1, 1, 2, 3, 4, 6]))]
        glue = rng.choice(["", " ", "", "\n"])
        strings.append(glue.join(pieces)[:600])
    return strings


# --------------------------------------------------------------------------
# Decode-only cases: token sequences whose bytes are not valid UTF-8.

INTERESTING_BYTES = [0x61, 0x20, 0x80, 0x8F, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xDF, 0xE0,
                     0xE1, 0xE4, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF, 0xB8, 0x88]
PARTIALS = [b"\xe4\xb8", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xe2\x82", b"\xed\xa0\x80",
            b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xc2"]


def decode_cases(rng, tokenizer, byte_ids, word_ids, count=120):
    """`byte_ids[b]`: the token id for byte b (bytes that never occur in UTF-8,
    like 0xC0, may have none); `word_ids`: ids of ordinary tokens."""
    partials = [p for p in PARTIALS if all(b in byte_ids for b in p)]
    singles = [b for b in INTERESTING_BYTES if b in byte_ids]
    cases = []
    for i in range(count):
        ids = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.45:
                ids += [byte_ids[b] for b in rng.choice(partials)]
            elif r < 0.8:
                ids.append(byte_ids[rng.choice(singles)])
            else:
                ids.append(rng.choice(word_ids))
        cases.append(ids)
    return cases


# --------------------------------------------------------------------------


def line_for(tokenizer, text=None, ids=None, add_special_tokens=False):
    entry = {}
    if text is not None:
        entry["text"] = text
        ids = tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        if add_special_tokens:
            entry["add_special_tokens"] = True
    entry["ids"] = ids
    entry["decoded"] = tokenizer.decode(ids, skip_special_tokens=False)
    skipped = tokenizer.decode(ids, skip_special_tokens=True)
    if skipped != entry["decoded"]:
        entry["decoded_skip"] = skipped
    return entry


def write_jsonl(path, entries):
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"  wrote {os.path.relpath(path, REPO)}: {len(entries)} lines, "
          f"{os.path.getsize(path) / 1e6:.2f} MB")


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
    print(f"  wrote {os.path.relpath(path, REPO)}: {os.path.getsize(path) / 1e6:.2f} MB")


def fixture(name, tokenizer, specials, count, seed, byte_ids, word_ids, with_bos=False):
    rng = random.Random(seed)
    strings = make_strings(rng, count, specials)
    entries = [line_for(tokenizer, text=s) for s in strings]
    if with_bos:
        entries += [line_for(tokenizer, text=s, add_special_tokens=True) for s in strings[:40]]
    entries += [line_for(tokenizer, ids=ids)
                for ids in decode_cases(rng, tokenizer, byte_ids, word_ids)]
    write_jsonl(os.path.join(OUT_DIR, f"{name}.jsonl"), entries)
    return strings


def byte_level_ids(definition):
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = definition["model"]["vocab"]
    return {b: vocab[c] for b, c in bytes_to_unicode().items() if c in vocab}


def spm_byte_ids(definition):
    vocab = definition["model"]["vocab"]
    return {b: vocab[f"<0x{b:02X}>"] for b in range(256) if f"<0x{b:02X}>" in vocab}


def word_ids(definition, rng, count=200):
    vocab = definition["model"]["vocab"]
    ids = sorted(vocab.values())
    return rng.sample(ids, count) + [a["id"] for a in definition["added_tokens"]][:5]


# --------------------------------------------------------------------------
# Checks


def check_vectors(name, tokenizer, directory):
    """llama.cpp's HF-made test vectors for ggml-vocab-<name>.gguf."""
    base = os.path.join(directory, f"ggml-vocab-{name}.gguf")
    if not os.path.exists(base + ".inp"):
        print(f"  {name}: no .inp/.out vectors")
        return
    with open(base + ".inp", encoding="utf-8", newline="") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")[:-1]
    with open(base + ".out", encoding="utf-8") as f:
        expected = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    bad = [t for t, e in zip(texts, expected)
           if tokenizer.encode(t, add_special_tokens=False).ids != e]
    assert not bad, f"{name}: reference disagrees with llama.cpp vectors on {bad[:3]!r}"
    print(f"  {name}: reference matches all {len(texts)} llama.cpp/HF vectors")


def check_chkhsh(pre, tokenizer, add_special_tokens):
    ids = tokenizer.encode(CHK_TXT, add_special_tokens=add_special_tokens).ids
    digest = hashlib.sha256(str(ids).encode()).hexdigest()
    assert digest == CHKHSH[pre], f"{pre}: chkhsh {digest} != llama.cpp's {CHKHSH[pre]}"
    print(f"  {pre}: chkhsh matches llama.cpp's fingerprint of the original tokenizer")


def compare_transformers(name, gguf_path, tokenizer, strings):
    from transformers import AutoTokenizer

    converted = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path),
                                              gguf_file=os.path.basename(gguf_path))
    same = sum(converted(s, add_special_tokens=False)["input_ids"] ==
               tokenizer.encode(s, add_special_tokens=False).ids for s in strings)
    print(f"  {name}: transformers' GGUF conversion agrees on {same}/{len(strings)} strings")


def extract_sdist(sdist, directory):
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            base = os.path.basename(member.name)
            if "/vendor/llama.cpp/models/" in member.name and base.startswith("ggml-vocab-") and \
                    any(base.startswith(v) for v in VOCAB_FILES + ["ggml-vocab-gpt-2.gguf",
                                                                   "ggml-vocab-llama-bpe.gguf"]):
                data = tar.extractfile(member).read()
                keep = any(base.startswith(v) for v in VOCAB_FILES)
                target = (VOCAB_DIR if base.endswith(".gguf") else OUT_DIR) if keep else directory
                with open(os.path.join(target, base), "wb") as f:
                    f.write(data)
                print(f"  extracted {base} -> {os.path.relpath(target, REPO)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(REPO, "models",
                                                        "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--llama-cpp-sdist", help="llama-cpp-python sdist (pip download "
                        "--no-deps --no-binary :all: llama-cpp-python) to copy the vocab "
                        "GGUFs and their .inp/.out vectors from")
    parser.add_argument("--extra-vocab-dir", default="/tmp/weft-tokenizer-vocabs",
                        help="where gpt-2/llama-bpe vocabs from the sdist go (checked, "
                        "not committed)")
    parser.add_argument("--compare-transformers", action="store_true")
    args = parser.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    os.makedirs(VOCAB_DIR, exist_ok=True)
    os.makedirs(args.extra_vocab_dir, exist_ok=True)
    if args.llama_cpp_sdist:
        extract_sdist(args.llama_cpp_sdist, args.extra_vocab_dir)

    # smollm2 ---------------------------------------------------------------
    print("smollm2")
    meta = read_gguf(args.model)
    assert meta.get("tokenizer.ggml.pre") == "smollm"
    definition = byte_level_reference(meta)
    specials = [a for a in definition["added_tokens"] if a["special"]]
    assert [a["id"] for a in specials] == list(range(17)), specials
    assert all(meta["tokenizer.ggml.token_type"][i] == 3 for i in range(17))
    tok = load(definition)
    check_chkhsh("smollm", tok, add_special_tokens=False)
    assert len(tok.encode("12345").ids) == 5, "digits must be split one by one"
    write_json(os.path.join(OUT_DIR, "smollm2", "tokenizer.json"), definition)
    write_json(os.path.join(OUT_DIR, "smollm2", "tokenizer_config.json"),
               {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>", "add_bos_token": False})
    rng = random.Random(7)
    strings = fixture("smollm2", tok, [a["content"] for a in specials], 2200, 1,
                      byte_level_ids(definition), word_ids(definition, rng))
    if args.compare_transformers:
        compare_transformers("smollm2", args.model, tok,
                             [s for s in strings if not any(c.isnumeric() for c in s)][:300])

    # GGUF vocabularies from llama.cpp ----------------------------------------
    metas = {}
    for name, pre, count, seed, extra_specials in [
            ("llama-spm", None, 500, 2, ["<s>", "</s>", "<unk>"]),
            ("qwen2", "qwen2", 500, 3, ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                        "[PAD151650]"]),
            ("gpt-2", "gpt-2", 0, 0, []),
            ("llama-bpe", "llama-bpe", 0, 0, [])]:
        path = os.path.join(VOCAB_DIR if count else args.extra_vocab_dir, f"ggml-vocab-{name}.gguf")
        if not os.path.exists(path):
            assert not count, f"{path} is missing: run tools/fetch_vocabs.sh"
            print(f"{name}: {path} absent, skipped")
            continue
        print(name)
        meta = read_gguf(path)
        metas[name] = meta
        definition = reference_for_gguf(meta)
        tok = load(definition)
        check_vectors(name, tok, OUT_DIR if count else os.path.dirname(path))
        if pre is not None:
            check_chkhsh(pre, tok, add_special_tokens=True)
        if not count:
            continue
        spm = meta["tokenizer.ggml.model"] == "llama"
        byte_ids = spm_byte_ids(definition) if spm else byte_level_ids(definition)
        strings = fixture(name.replace("-", "_"), tok, extra_specials, count, seed, byte_ids,
                          word_ids(definition, random.Random(seed)), with_bos=spm)
        if args.compare_transformers:
            compare_transformers(name, path, tok, strings)

    # Synthetic tokenizer.json files -------------------------------------------
    for name, build, source, specials, seed in [
            ("llama3_style", llama3_style, "qwen2",
             ["<|begin_of_text|>", "<|eot_id|>", "<tool>", "</tool>", "[SW]", "Ω-norm", "<|pad|>",
              "\u2126-norm", " <tool> x </tool> ", "a[SW]b [SW] c"], 4),
            ("spm_metaspace", spm_metaspace, "llama-spm",
             ["<s>", "</s>", "<mask>", "[INST]", "<unk>"], 5)]:
        print(name)
        definition, config = build(metas[source])
        write_json(os.path.join(OUT_DIR, name, "tokenizer.json"), definition)
        write_json(os.path.join(OUT_DIR, name, "tokenizer_config.json"), config)
        tok = load(definition)
        byte_ids = (spm_byte_ids(definition) if source == "llama-spm"
                    else byte_level_ids(definition))
        fixture(name, tok, specials, 400, seed, byte_ids,
                word_ids(definition, random.Random(seed)), with_bos=True)


if __name__ == "__main__":
    sys.exit(main())
