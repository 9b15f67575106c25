#!/usr/bin/env bash
# The CLIs refuse a bad model file with a non-zero exit and one line on
# stderr naming the problem, never a crash.
#   bad_model_test.sh <weft-generate> <weft-tokenize>
set -u
generate=$1
tokenize=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

check() {  # name, expected substring, command...
  local name=$1 want=$2
  shift 2
  "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [[ $rc -eq 0 || $rc -ge 128 ]]; then
    echo "FAIL $name: exit code $rc"; fail=1
  elif [[ $lines -ne 1 ]]; then
    echo "FAIL $name: $lines lines on stderr:"; cat "$tmp/err"; fail=1
  elif ! grep -q -- "$want" "$tmp/err"; then
    echo "FAIL $name: stderr lacks '$want':"; cat "$tmp/err"; fail=1
  else
    echo "ok   $name: $(cat "$tmp/err")"
  fi
}

printf 'NOPE0000000000000000000000000000' >"$tmp/magic.gguf"
printf 'GGUF\x03\x00\x00\x00\x01' >"$tmp/truncated.gguf"
: >"$tmp/empty.gguf"
mkdir "$tmp/hf" && echo '{"model_type": "llama", ' >"$tmp/hf/config.json"

for tool in "$generate" "$tokenize"; do
  name=$(basename "$tool")
  check "$name missing" "not found" "$tool" --model "$tmp/absent.gguf"
  check "$name magic" "bad magic" "$tool" --model "$tmp/magic.gguf"
  check "$name truncated" "truncated" "$tool" --model "$tmp/truncated.gguf"
  check "$name empty" "truncated" "$tool" --model "$tmp/empty.gguf"
  check "$name bad json" "bad JSON" "$tool" --model "$tmp/hf"
done
exit $fail
