#!/usr/bin/env python3
"""A/B two weft-bench-cpu binaries on a noisy host: paired, alternating runs.

The dev VM's speed drifts by 2x within minutes, so medians of separate
runs of two builds mislead. This runs the two binaries back to back with
the same flags (plus --a-flags / --b-flags, given with `=`, for one side
only: a binary against itself with a knob changed), PAIRS times, in the
order ABBA ABBA ... (so neither build always runs first), and prints each
build's median and the median of the per-pair ratios B/A, the number to
quote.

    bench/ab_pair.py OLD_BINARY NEW_BINARY --pairs 12 -- \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --tests tg
    bench/ab_pair.py BIN BIN --a-flags=--decode_prefetch_bytes=1024 \
        --b-flags=--decode_prefetch_bytes=128 --pairs 4 -- --model ... --tests tg

The metric is the last tokens/s a run prints: `tokens_per_second` of the
pp/tg tests, or `speed_tg` of the batched test (pass one --batch_sizes).
Each run gets --reps 1 unless the flags say otherwise.
"""
import argparse
import json
import statistics
import subprocess
import sys


def metric(binary: str, flags: list[str]) -> float:
    out = subprocess.run([binary] + flags, capture_output=True, text=True, check=True).stdout
    value = None
    for line in out.splitlines():
        try:
            j = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "tokens_per_second" in j:
            value = j["tokens_per_second"]
        elif j.get("test") == "batched":
            value = j["speed_tg"]
    if value is None:
        raise RuntimeError(f"{binary} printed no tokens/s:\n{out}")
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="weft-bench-cpu flags follow a --")
    ap.add_argument("a", help="baseline binary (e.g. a copy of the old weft-bench-cpu)")
    ap.add_argument("b", help="candidate binary")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--a-flags", default="",
                    help="flags only A's runs get (space-separated), e.g. one binary "
                         "against itself with a knob changed")
    ap.add_argument("--b-flags", default="", help="flags only B's runs get")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    flags = argv[split + 1:]
    if not any(f.startswith("--reps") for f in flags):
        flags += ["--reps", "1"]
    a_values, b_values, ratios = [], [], []
    for i in range(args.pairs):
        a_flags = flags + args.a_flags.split()
        b_flags = flags + args.b_flags.split()
        if i % 2 == 0:
            a = metric(args.a, a_flags)
            b = metric(args.b, b_flags)
        else:
            b = metric(args.b, b_flags)
            a = metric(args.a, a_flags)
        a_values.append(a)
        b_values.append(b)
        ratios.append(b / a)
        print(f"pair {i + 1}: A {a:.1f}  B {b:.1f}  B/A {b / a:.3f}", file=sys.stderr)
    print(json.dumps({
        "bench": "ab_pair", "a": args.a, "b": args.b, "flags": flags,
        "a_flags": args.a_flags, "b_flags": args.b_flags, "pairs": args.pairs,
        "a_median": round(statistics.median(a_values), 2),
        "b_median": round(statistics.median(b_values), 2),
        "ratio_median": round(statistics.median(ratios), 4),
        "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
