#!/usr/bin/env python3
"""weft-server vs llama.cpp's llama-server over HTTP, on the same GGUF file
and thread count: C concurrent clients, each streaming completions of a
fixed length one after another, as a chat backend's users do.

    bench/cpu_vs_llamacpp/serve.py                     # 1, 4, 16 clients, 3 rounds
    bench/cpu_vs_llamacpp/serve.py --clients 16 --rounds 5 --threads 2

Python 3.11 standard library only. llama-server is built from the same
llama-cpp-python sdist as the other tools (build_llamacpp.sh with
LLAMACPP_SERVER=1), weft-server in --build-dir (default build-bench/).
Each round starts one server, warms it up, runs every client count, stops
it, then the other (which goes first alternates), so only one server has
the CPU at a time. Every request is a `/v1/completions` call with the same
prompt text (tokenized by each server from the same GGUF vocabulary),
`max_tokens` N, `ignore_eos` (so every request generates exactly N
tokens), greedy, `stream: true`. Per client count it reports the output
tokens per second over the whole run (all clients' tokens / wall time),
the median time to first token and the median gap between tokens seen by
clients, medians over the rounds. Tokens are counted from each stream's
usage chunk (`stream_options.include_usage`). Raw lines go to --raw
(.cache/cpu_vs_llamacpp/serve-<time>.jsonl): per run also every request's
time to first token by wave (a client's r-th request), and per server and
round each prompt's usage (prompt tokens, prefix-cache hits).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works to a ten-year-old.",
    "List some tips for learning to play the guitar as an adult.",
    "Describe the water cycle and why it matters for agriculture.",
]


def log(msg: str) -> None:
    print(f"[serve] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def build_llama_server() -> Path:
    """llama-server from the same sdist as the other tools (build_llamacpp.sh
    with LLAMACPP_SERVER=1, once): the directory holding it."""
    log("building llama-server")
    bin_dir = Path(subprocess.run(
        [ROOT / "bench" / "cpu_vs_llamacpp" / "build_llamacpp.sh"], check=True,
        capture_output=True, text=True, env={**os.environ, "LLAMACPP_SERVER": "1"},
    ).stdout.strip().splitlines()[-1])
    return bin_dir if bin_dir.is_absolute() else ROOT / bin_dir


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, health: str):
        self.name, self.port = name, port
        self.log = open(ROOT / ".cache" / "cpu_vs_llamacpp" / f"serve-{name}.log", "w")
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_ready(port, health, self.proc)
        except Exception:
            self.proc.kill()  # no server left running into later rounds
            self.proc.wait()
            self.log.close()
            raise

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def stream_completion(port: int, prompt: str, max_tokens: int) -> dict:
    """One streamed completion; returns the start and end times, the times
    of the chunks that carried text, and the tokens the server says it
    generated (its usage chunk)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    chunks = []
    tokens = None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        choices = event.get("choices") or []
        if choices and choices[0].get("text"):
            chunks.append(time.perf_counter())
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    end = time.perf_counter()
    conn.close()
    if tokens is None:
        raise RuntimeError("the stream reported no usage")
    return {"start": start, "chunks": chunks, "end": end, "tokens": tokens}


def check_length(port: int, max_tokens: int) -> None:
    """A whole (not streamed) request must report max_tokens generated
    tokens: ignore_eos honoured, so both servers do the same work."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps(
        {"prompt": PROMPTS[0], "max_tokens": max_tokens, "temperature": 0,
         "ignore_eos": True}), {"Content-Type": "application/json"})
    usage = json.loads(conn.getresponse().read())["usage"]
    conn.close()
    if usage["completion_tokens"] != max_tokens:
        raise RuntimeError(f"asked for {max_tokens} tokens, the server made "
                           f"{usage['completion_tokens']}")


def prompt_usage(port: int) -> list[dict]:
    """Each prompt's usage from a 1-token completion: its prompt tokens and,
    where the server reports them, those served from its prefix cache."""
    usage = []
    for prompt in PROMPTS:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request("POST", "/v1/completions", json.dumps(
            {"prompt": prompt, "max_tokens": 1, "temperature": 0}),
            {"Content-Type": "application/json"})
        usage.append(json.loads(conn.getresponse().read())["usage"])
        conn.close()
    return usage


def run_clients(port: int, clients: int, requests_per_client: int, max_tokens: int) -> dict:
    results: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for r in range(requests_per_client):
            try:
                out = stream_completion(port, PROMPTS[(i + r) % len(PROMPTS)], max_tokens)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))
                return
            out["wave"] = r
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    ttft = [r["chunks"][0] - r["start"] for r in results if r["chunks"]]
    gaps = [b - a for r in results for a, b in zip(r["chunks"], r["chunks"][1:])]
    tokens = sum(r["tokens"] for r in results)
    return {"wall_s": wall, "requests": len(results), "tokens": tokens,
            "short_requests": sum(r["tokens"] < max_tokens for r in results),
            "tokens_per_s": tokens / wall,
            "ttft_ms": 1000 * statistics.median(ttft),
            "itl_ms": 1000 * statistics.median(gaps) if gaps else None,
            # Each request's time to first token, sorted, by wave (a
            # client's r-th request): what the medians hide.
            "ttft_ms_by_wave": [
                sorted(round(1000 * (r["chunks"][0] - r["start"]), 1)
                       for r in results if r["chunks"] and r["wave"] == w)
                for w in range(requests_per_client)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    ap.add_argument("--raw", type=Path)
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    top = max(clients)
    (ROOT / ".cache" / "cpu_vs_llamacpp").mkdir(parents=True, exist_ok=True)
    raw = args.raw or ROOT / ".cache" / "cpu_vs_llamacpp" / (
        "serve-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".jsonl")

    log("building weft-server")
    if not (args.build_dir / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", ROOT, "-B", args.build_dir, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release"], check=True)
    subprocess.run(["cmake", "--build", args.build_dir, "--target", "weft-server"],
                   check=True, stdout=subprocess.DEVNULL)
    bin_dir = build_llama_server()

    def weft() -> Server:
        port = free_port()
        return Server("weft", [
            args.build_dir / "server" / "weft-server", "--model", args.model,
            "--host", "127.0.0.1", "--port", "0", "--http-port", port,
            "--threads", args.threads, "--max-num-seqs", top], port, "/health")

    def llama() -> Server:
        port = free_port()
        # One slot per client, each with room for prompt + output.
        return Server("llama.cpp", [
            bin_dir / "llama-server", "-m", args.model, "--host", "127.0.0.1",
            "--port", port, "-t", args.threads, "-tb", args.threads, "-np", top,
            "-c", top * 512, "--no-webui"], port, "/health")

    rows: dict[tuple[str, int], list[dict]] = {}
    with open(raw, "w") as out:
        for round_index in range(args.rounds):
            order = [("weft", weft), ("llama.cpp", llama)]
            if round_index % 2:
                order.reverse()
            for name, start in order:
                log(f"round {round_index + 1}/{args.rounds}: {name}")
                server = start()
                try:
                    check_length(server.port, args.max_tokens)  # and warm-up
                    for c in clients:
                        result = run_clients(server.port, c, args.requests, args.max_tokens)
                        result.update(server=name, clients=c, round=round_index,
                                      threads=args.threads, max_tokens=args.max_tokens)
                        out.write(json.dumps(result) + "\n")
                        out.flush()
                        rows.setdefault((name, c), []).append(result)
                        log(f"  {name} {c} clients: {result['tokens_per_s']:.1f} t/s")
                    # After the measured calls, so it cannot warm a cache for them.
                    out.write(json.dumps({"server": name, "round": round_index,
                                          "prompt_usage": prompt_usage(server.port)}) + "\n")
                finally:
                    server.stop()

    def median(key: str, name: str, c: int) -> float | None:
        values = [r[key] for r in rows[(name, c)] if r[key] is not None]
        return statistics.median(values) if values else None

    print(f"\nmodel {args.model.name}, {args.threads} threads, {args.max_tokens} tokens "
          f"per request ({args.requests} per client), medians of {args.rounds} rounds; "
          f"raw: {raw.relative_to(ROOT) if raw.is_relative_to(ROOT) else raw}\n")
    print("| clients | llama-server t/s | weft t/s | weft / llama | TTFT ms llama / weft "
          "| inter-token ms llama / weft |")
    print("| --: | --: | --: | --: | --: | --: |")
    for c in clients:
        lt, wt = median("tokens_per_s", "llama.cpp", c), median("tokens_per_s", "weft", c)
        print(f"| {c} | {lt:.1f} | {wt:.1f} | {wt / lt:.2f}x "
              f"| {median('ttft_ms', 'llama.cpp', c):.0f} / {median('ttft_ms', 'weft', c):.0f} "
              f"| {median('itl_ms', 'llama.cpp', c):.1f} / {median('itl_ms', 'weft', c):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
