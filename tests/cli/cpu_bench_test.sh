#!/usr/bin/env bash
# weft-bench-cpu on the tiny fixture model: every test prints one JSON line
# per rep with positive timings whose tokens/s agree with tokens / seconds,
# for both CPU backends; a bad --tests value fails. Cheap (< 10 s).
#   cpu_bench_test.sh <weft-bench-cpu> <model dir>
set -u
bench=$1
model=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

check_json() {  # name, file with the bench's stdout
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(path) if l.strip()]
want = {"info": 1, "pp24": 2, "tg8": 2, "tg8-engine": 2, "batched": 4}
got = {}
for j in lines:
    assert j["bench"] == "weft-bench-cpu", j
    got[j["test"]] = got.get(j["test"], 0) + 1
assert got == want, f"tests {got}, want {want}"
info = lines[0]
assert info["test"] == "info" and info["threads"] >= 1 and info["num_layers"] == 2, info
for j in lines[1:]:
    if j["test"] == "batched":
        assert j["pl"] in (1, 3) and j["pp"] == 8 and j["tg"] == 4, j
        for k in ("t_pp", "t_tg", "speed_pp", "speed_tg"):
            assert j[k] > 0, j
        assert abs(j["speed_tg"] * j["t_tg"] - j["pl"] * j["tg"]) < 1e-6 * j["pl"] * j["tg"] + 1e-9, j
    else:
        n = j.get("n_prompt") or j.get("n_gen")
        assert j["seconds"] > 0 and j["tokens_per_second"] > 0, j
        assert abs(j["tokens_per_second"] * j["seconds"] - n) < 1e-6 * n, j
print(f"ok   {name}: {len(lines)} JSON lines")
PY
}

run() {  # name, args...
  local name=$1
  shift
  "$bench" --model "$model" --tests pp,tg,engine,batched --n-prompt 24 \
    --n-gen 8 --batched-prompt 8 --batched-gen 4 --batch-sizes 1,3 --reps 2 \
    --max-num-batched-tokens 16 "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [[ $rc -ne 0 ]] && grep -q "FAILED_PRECONDITION" "$tmp/err"; then
    echo "skip $name: $(cat "$tmp/err")"  # the fast backend needs AVX2+FMA+F16C
  elif [[ $rc -ne 0 ]]; then
    echo "FAIL $name: exit code $rc"; cat "$tmp/err"; fail=1
  elif ! check_json "$name" "$tmp/out"; then
    echo "FAIL $name:"; cat "$tmp/out"; fail=1
  fi
}

# --max-num-batched-tokens 16 makes pp24 two chunks and the batched prefill
# of 3 × 8 tokens two forwards.
run reference --backend reference
run fast --backend fast --threads 2

if "$bench" --model "$model" --tests pp,bogus >"$tmp/out" 2>"$tmp/err"; then
  echo "FAIL bad --tests: exit code 0"; fail=1
elif ! grep -q "unknown test 'bogus'" "$tmp/err"; then
  echo "FAIL bad --tests: stderr:"; cat "$tmp/err"; fail=1
else
  echo "ok   bad --tests: $(cat "$tmp/err")"
fi
exit $fail
