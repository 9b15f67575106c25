#!/usr/bin/env bash
# The GPU runner (tools/gpu_check_runner.sh, the bundle's run.sh) on a
# machine without a GPU and without the bundle's binaries, no steps
# (WEFT_GPU_STEPS=none): it still writes report.json and logs.tar.gz (what
# a device call returns), and reassembles the default model from
# xz-compressed parts as tools/gpu-check makes them, refusing a corrupt
# part. A stand-in file of random bytes plays the model: only its
# reassembly is under test.
#   gpu_check_runner_test.sh <repo root>
set -u
repo=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
model_name=SmolLM2-135M-Instruct.Q4_1.gguf

mkdir -p "$tmp/bundle" "$tmp/cublas" "$tmp/parts"
cp "$repo/tools/gpu_check_runner.sh" "$tmp/bundle/run.sh"
# find_cublas stops at the first folder holding these names (the runner
# only puts it on LD_LIBRARY_PATH), instead of searching the disk.
touch "$tmp/cublas/libcublas.so.13" "$tmp/cublas/libcublasLt.so.13"

head -c 300000 /dev/urandom > "$tmp/$model_name"
xz -T1 -1 -c "$tmp/$model_name" > "$tmp/parts/$model_name.xz"
size=$(stat -c %s "$tmp/parts/$model_name.xz")
split -b $(( (size + 3) / 4 )) -d -a 2 "$tmp/parts/$model_name.xz" \
  "$tmp/parts/$model_name.xz.part-"
rm "$tmp/parts/$model_name.xz"
(cd "$tmp/parts" && sha256sum "$model_name".xz.part-* > SHA256SUMS &&
   cd "$tmp" && sha256sum "$model_name" >> parts/SHA256SUMS)

run() {  # result dir
  TMPDIR="$tmp" WEFT_GPU_STEPS=none WEFT_GPU_DEADLINE_S=60 WEFT_CUBLAS_DIR="$tmp/cublas" \
    WEFT_MODEL_PARTS="$tmp/parts" WEFT_MODEL_OUT_DIR="$tmp/models" \
    timeout 120 bash "$tmp/bundle/run.sh" "$1" > "$1.stdout" 2>&1
}
report_field() {  # report.json, field
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}
check() {  # name, condition...
  local name=$1
  shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fail=1; fi
}

run "$tmp/out1"
check "runner exits 0" test $? -eq 0
check "report.json written" test -s "$tmp/out1/report.json"
check "logs.tar.gz written" test -s "$tmp/out1/logs.tar.gz"
check "model reassembled" cmp -s "$tmp/$model_name" "$tmp/models/$model_name"
check "report says the model is ok" \
  test "$(report_field "$tmp/out1/report.json" default_model 2>&1)" = ok
check "logs hold the device query" \
  bash -c "tar -tzf '$tmp/out1/logs.tar.gz' | grep -q '^./device.txt$'"

# One part damaged (a byte flipped): refused, and no model left behind.
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(10); b = f.read(1); f.seek(10); f.write(bytes([b[0] ^ 0xFF]))' \
  "$tmp/parts/$model_name.xz.part-01"
rm -rf "$tmp/models"
run "$tmp/out2"
check "corrupt part: report written" test -s "$tmp/out2/report.json"
check "corrupt part: report says so" bash -c \
  "[[ \"\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"default_model\"])' \
       '$tmp/out2/report.json')\" == 'missing or corrupt parts in $tmp/parts' ]]"
check "corrupt part: no model" test ! -e "$tmp/models/$model_name"

if (( fail )); then
  for f in "$tmp"/out*.stdout; do echo "--- $f"; cat "$f"; done
fi
exit $fail
