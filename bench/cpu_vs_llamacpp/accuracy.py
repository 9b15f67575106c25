#!/usr/bin/env python3
"""How far weft's and llama.cpp's next-token log-probs are from the Hugging
Face reference on the same GGUF file: the golden test's measure, for both.

    bench/cpu_vs_llamacpp/accuracy.py            # default model, 2 threads

The reference is tests/fixtures/golden/smollm2_q4_1.json (transformers on
the GGUF dequantized to fp32, tools/make_golden.py): 12 prompts, 32 greedy
steps each, every step's top-5 token log-probs. Both engines are
teacher-forced along the reference's tokens with the golden test's rule
(compare a prompt's steps until the first whose reference top-2 logit gap
is below 0.01), and a step's error is the largest |log-prob − reference|
over the reference's top 5 tokens.

- weft: tests/golden_test's fast-kernel cases in --build-dir (what
  weft-server runs: int8 activations at two levels, F16 KV cache), whose
  printed worst error per prompt is read back; and its cases at one
  activation level (`--activation_levels 1`, llama.cpp's scheme).
- llama.cpp: llama-server built by build_llamacpp.sh (LLAMACPP_SERVER=1),
  one `/completion` request per step (the prompt's ids plus the reference
  tokens so far, n_predict 1, n_probs 20, greedy, prompt cache on, so each
  step is one incremental decode as in generation), its default settings
  otherwise (Q8_1 activations for Q4_1 weights, F16 KV cache).

Prints one JSON line per engine and prompt, then a table. Python 3.11
standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import ROOT, Server, build_llama_server, free_port, log  # noqa: E402

import http.client  # noqa: E402

GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "smollm2_q4_1.json"
MIN_GAP = 0.01  # tests/model/golden_test.cc kMinGap
N_PROBS = 20


def llama_step(port: int, ids: list[int]) -> dict[int, float]:
    body = json.dumps({"prompt": ids, "n_predict": 1, "n_probs": N_PROBS,
                       "temperature": 0, "cache_prompt": True})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    probs = json.loads(data)["completion_probabilities"][0]["top_logprobs"]
    return {p["id"]: p["logprob"] for p in probs}


def llama_prompt(port: int, prompt: dict) -> dict:
    ids = list(prompt["prompt_ids"])
    compared = mismatches = missing = 0
    worst = 0.0
    for step in prompt["steps"]:
        if step["top2_gap"] < MIN_GAP:
            break
        got = llama_step(port, ids)
        if max(got, key=got.get) != step["token"]:
            mismatches += 1
        for token, ref in step["top5"]:
            if token not in got:
                missing += 1  # below llama.cpp's top N_PROBS: not compared
                continue
            worst = max(worst, abs(got[token] - ref))
        compared += 1
        ids.append(step["token"])
    return {"engine": "llama.cpp", "prompt": prompt["name"], "steps": compared,
            "worst_error": worst, "greedy_mismatches": mismatches,
            "top5_not_in_top20": missing}


def weft_prompts(build_dir: Path, one_level: bool) -> list[dict]:
    binary = build_dir / "tests" / "golden_test"
    subprocess.run(["cmake", "--build", build_dir, "--target", "golden_test"],
                   check=True, stdout=subprocess.DEVNULL)
    cases = "*/FastOneLevel*" if one_level else "*/Fast?:*/Fast??"
    run = subprocess.run([binary, f"--gtest_filter={cases}"],
                         capture_output=True, text=True)
    rows = []
    for name, steps, worst, flips in re.findall(
            r"^(\S+): (\d+) steps compared, worst top-5 logprob error (\S+)"
            r"(?:, greedy token != reference at (\d+))?$", run.stdout, re.M):
        rows.append({"engine": "weft, 1 level" if one_level else "weft",
                     "prompt": name, "steps": int(steps), "worst_error": float(worst),
                     "greedy_mismatches": int(flips or 0), "top5_not_in_top20": 0})
    if run.returncode != 0 or not rows:
        raise RuntimeError("golden_test failed or skipped (is the model in the "
                           f"build's model directory?):\n{run.stdout[-2000:]}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2,
                    help="llama.cpp's threads (weft's golden test uses one per core; "
                         "its results do not depend on the thread count)")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    args = ap.parse_args()
    golden = json.loads(GOLDEN.read_text())
    # golden_test reads the model from the directory the build was
    # configured with (WEFT_MODEL_DIR, by default models/): the same file.
    model = ROOT / "models" / golden["model_file"]
    (ROOT / ".cache" / "cpu_vs_llamacpp").mkdir(parents=True, exist_ok=True)

    log("weft: golden_test's fast-kernel cases")
    rows = weft_prompts(args.build_dir, one_level=False)
    log("weft at one activation level (llama.cpp's scheme)")
    rows += weft_prompts(args.build_dir, one_level=True)
    bin_dir = build_llama_server()
    port = free_port()
    server = Server("llama.cpp-accuracy", [
        bin_dir / "llama-server", "-m", model, "--host", "127.0.0.1", "--port", port,
        "-t", args.threads, "-np", 1, "-c", 1024, "--no-webui"], port, "/health")
    try:
        for prompt in golden["prompts"]:
            rows.append(llama_prompt(port, prompt))
    finally:
        server.stop()

    for row in rows:
        print(json.dumps(row))
    by = {(r["engine"], r["prompt"]): r for r in rows}
    engines = ("weft", "weft, 1 level", "llama.cpp")
    print("\n| prompt | steps | worst error: " + " / ".join(engines) +
          " | greedy ≠ reference: " + " / ".join(engines) + " |")
    print("| --- | --: | --: | --: |")
    for prompt in golden["prompts"]:
        r = [by[(e, prompt["name"])] for e in engines]
        print(f"| {prompt['name']} | {r[0]['steps']} | "
              + " / ".join(f"{x['worst_error']:.2e}" for x in r) + " | "
              + " / ".join(str(x["greedy_mismatches"]) for x in r) + " |")
    for engine in engines:
        errors = sorted(r["worst_error"] for r in rows if r["engine"] == engine)
        flips = sum(r["greedy_mismatches"] for r in rows if r["engine"] == engine)
        print(f"{engine}: worst {errors[-1]:.2e}, median over prompts "
              f"{errors[len(errors) // 2]:.2e}, greedy ≠ reference at {flips} steps")


if __name__ == "__main__":
    main()
