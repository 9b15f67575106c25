#!/usr/bin/env bash
# weft-server and the weft client end to end as processes, on the tiny
# model: health, generate, tokenize, load, a bad request's exit code, and
# a SIGTERM drain that exits 0.
#   server_cli_test.sh <weft-server> <weft> <model dir>
set -u
server=$1
client=$2
model=$3
log=$(mktemp)
trap 'kill -9 $pid 2>/dev/null; rm -f "$log"' EXIT

"$server" --model "$model" --host 127.0.0.1 --port 0 --http-port 0 --kv-cache-memory 10000000 \
  --drain-timeout 5 2>"$log" &
pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.* on 127.0.0.1:\([0-9]*\)$/\1/p' "$log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { echo "FAIL: server did not start"; cat "$log"; exit 1; }
fail=0
expect() {  # name, expected exit code, command...
  local name=$1 want=$2
  shift 2
  "$@" >/tmp/weft_cli_out.$$ 2>&1
  local rc=$?
  if [[ $rc -ne $want ]]; then
    echo "FAIL $name: exit $rc, wanted $want"; cat /tmp/weft_cli_out.$$; fail=1
  else
    echo "ok   $name: $(head -c 200 /tmp/weft_cli_out.$$ | tr '\n' ' ')"
  fi
}
expect health 0 "$client" health --server "127.0.0.1:$port"
expect generate 0 "$client" generate --server "127.0.0.1:$port" --prompt "Hello" --max-tokens 5
expect tokenize 0 "$client" tokenize --server "127.0.0.1:$port" --text "Hello"
expect load 0 "$client" load --server "127.0.0.1:$port"
expect bad-request 1 "$client" generate --server "127.0.0.1:$port" --prompt "x" --top-p 2
grep -q "sampling.top_p" /tmp/weft_cli_out.$$ || { echo "FAIL: field not named"; fail=1; }
# Structured output: the tiny model's random weights, held to the pattern.
expect regex 0 "$client" generate --server "127.0.0.1:$port" --prompt "Hello" \
  --max-tokens 20 --regex "[0-9]{3}-[a-z]{2}"
grep -qxE "[0-9]{3}-[a-z]{2}" /tmp/weft_cli_out.$$ || { echo "FAIL: regex not kept"; fail=1; }
expect bad-regex 1 "$client" generate --server "127.0.0.1:$port" --prompt "x" \
  --max-tokens 5 --regex "(ab"
grep -q "structured_output" /tmp/weft_cli_out.$$ || { echo "FAIL: field not named"; fail=1; }
rm -f /tmp/weft_cli_out.$$

# SIGTERM while 8 streams run: each completes or ends UNAVAILABLE (14),
# none hangs, and the server exits 0 within the drain timeout.
clients=()
for i in $(seq 8); do
  timeout 20 "$client" generate --server "127.0.0.1:$port" --prompt "stream $i" \
    --max-tokens 240 >/dev/null 2>"$log.client$i" &
  clients+=($!)
done
sleep 0.2
start=$(date +%s)
kill -TERM $pid
timeout 15 tail --pid=$pid -f /dev/null
wait $pid
rc=$?
elapsed=$(( $(date +%s) - start ))
if [[ $rc -ne 0 ]]; then echo "FAIL drain: exit $rc"; cat "$log"; fail=1
elif [[ $elapsed -gt 7 ]]; then echo "FAIL drain: took ${elapsed}s"; fail=1
else echo "ok   drain: exit 0 after ${elapsed}s"; fi
for i in $(seq 8); do
  wait ${clients[$((i-1))]}
  crc=$?
  if [[ $crc -eq 0 ]] || grep -q "^weft: 14 " "$log.client$i"; then
    echo "ok   stream $i: exit $crc $(cat "$log.client$i" | tr '\n' ' ' | head -c 120)"
  else
    echo "FAIL stream $i: exit $crc"; cat "$log.client$i"; fail=1
  fi
  rm -f "$log.client$i"
done
exit $fail
