#!/usr/bin/env bash
# run.sh (written into the bundle by tools/gpu-check): runs on the GPU
# machine. Finds that machine's CUDA 13 cuBLAS, reassembles the default
# model from stashed parts (sha256-checked) when they are there, runs every
# GPU test, the end-to-end checks and the kernel benchmark, and prints a
# compact table last. Results go to $OUT (or ./gpu-check-out or the first
# argument) as two files, rewritten after every step so that a call cut
# short still returns what it ran: report.json and logs.tar.gz (each
# step's log and gtest JSON; the device tool returns at most 8 files).
#
# Each step has a time limit (ops 60 + attention 90 + gemm-wgmma 45 + gemm
# 60 + model 120 + default-model 120 + engine 100 + generate 2 × 30 + bench
# 90 s; a passing run takes far less), cut to what is left before
# WEFT_GPU_DEADLINE_S (default 560 s after the start: a call of
# timeout_s 600 ends with its report written) less 10 s; a step left under
# 10 s of that is recorded as not run. tools/gpu-check's header splits the steps over
# two calls. The serving sweep (synthetic Llama-3-8B, up to 420 s) and the
# compute-sanitizer steps ("sanitize") run only when WEFT_GPU_STEPS names
# them, each in a call of its own.
#
# A step's status: ok, fail(rc), timeout, skipped (every test skipped:
# e.g. no usable GPU), or not-run (deadline, or no default model).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
result_dir="${1:-${OUT:-$here/../gpu-check-out}}"
mkdir -p "$result_dir"
# Every log goes to a work folder first; publish copies the report and an
# archive of the folder to result_dir.
out="$(mktemp -d "${TMPDIR:-/tmp}/weft-gpu-work.XXXXXX")"
start=$(date +%s)
deadline=${WEFT_GPU_DEADLINE_S:-560}
log() { echo "[gpu-check $(( $(date +%s) - start ))s] $*"; }

# --- results -----------------------------------------------------------------
names=() statuses=() seconds=() summaries=()
model_status="not looked for yet"
# Writes result_dir/report.json and result_dir/logs.tar.gz from what has
# run so far (each through a temporary file, so a kill leaves the last
# complete pair).
# (A here-document's body starts at the first line its command line ends
# on: a line ending in && or || continues the command after the body, so
# such lines before the body are read as the body.)
publish() {
  if python3 - "$out" "$(( $(date +%s) - start ))" "$model_status" "${#names[@]}" \
       "${names[@]}" "${statuses[@]}" "${seconds[@]}" "${summaries[@]}" \
       > "$result_dir/.report.json.tmp" <<'EOF'
import json, os, sys
out, total, model, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rest = sys.argv[5:]
steps = [dict(name=rest[i], status=rest[n + i], seconds=int(rest[2 * n + i]),
              tests=rest[3 * n + i]) for i in range(n)]
try:
    device = open(os.path.join(out, "device.txt")).read().strip()
except OSError:
    device = None
report = dict(device=device, total_seconds=total, default_model=model,
              steps=steps)
for key in ("bench", "serving"):
    try:
        report[key] = json.load(open(os.path.join(out, key + ".json")))
    except Exception:
        report[key] = None
print(json.dumps(report, indent=2))
EOF
  then
    mv "$result_dir/.report.json.tmp" "$result_dir/report.json"
  else
    rm -f "$result_dir/.report.json.tmp"
  fi
  # gzip, not xz: every image has it (python's tarfile where tar fails).
  if ! tar -C "$out" -czf "$result_dir/.logs.tmp" . 2>/dev/null; then
    python3 -c 'import sys, tarfile
with tarfile.open(sys.argv[2], "w:gz") as t: t.add(sys.argv[1], arcname=".")' \
      "$out" "$result_dir/.logs.tmp" || echo "could not archive the logs of $out"
  fi
  [[ -f "$result_dir/.logs.tmp" ]] && mv "$result_dir/.logs.tmp" "$result_dir/logs.tar.gz"
  return 0
}

not_run() {  # name reason: a step recorded as not run, and published
  names+=("$1"); statuses+=(not-run); seconds+=(0); summaries+=("$2")
  publish
}

# A wgmma failure in an earlier call on this machine holds for this one.
no_wgmma_marker=/tmp/weft-gpu-no-wgmma
if [[ -f "$no_wgmma_marker" ]]; then
  export WEFT_NO_WGMMA=1
  log "an earlier call's wgmma GEMM failed on this machine: WEFT_NO_WGMMA=1"
fi

# --- cuBLAS ------------------------------------------------------------------
find_cublas() {
  local d
  for d in "${WEFT_CUBLAS_DIR:-}" /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 \
           /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [[ -n "$d" && -e "$d/libcublas.so.13" && -e "$d/libcublasLt.so.13" ]] && { echo "$d"; return; }
  done
  d="$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 / {print $NF; exit}')"
  [[ -n "$d" ]] && { dirname "$d"; return; }
  d="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)"
  [[ -n "$d" && -e "$d/libcublas.so.13" ]] && { echo "$d"; return; }
  d="$(find / -xdev -name 'libcublas.so.13' -print -quit 2>/dev/null)"
  [[ -n "$d" ]] && dirname "$d"
}
cublas_dir="$(find_cublas)"
if [[ -z "$cublas_dir" ]]; then
  log "no libcublas.so.13 found; set WEFT_CUBLAS_DIR"
else
  log "cuBLAS: $cublas_dir"
fi
export LD_LIBRARY_PATH="$here/lib${cublas_dir:+:$cublas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The GPU image's own C++ runtime first; the build machine's (which needs a
# newer glibc) only if the binaries do not start without it.
if ! "$here/bin/cuda_ops_test" --gtest_list_tests > /dev/null 2> "$out/startup.log"; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$here/lib-fallback"
  log "binaries did not start with the system libstdc++ ($(head -c 300 "$out/startup.log")); using the bundled one"
  "$here/bin/cuda_ops_test" --gtest_list_tests > /dev/null 2>> "$out/startup.log" ||
    log "binaries still do not start: see $out/startup.log"
fi
export WEFT_SOURCE_DIR="$here/fixtures"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  > "$out/device.txt" 2>&1 || echo "nvidia-smi failed" > "$out/device.txt"
log "device: $(cat "$out/device.txt")"

# --- the default model ---------------------------------------------------------
model_name="SmolLM2-135M-Instruct.Q4_1.gguf"
model_dir="${WEFT_MODEL_OUT_DIR:-/tmp/weft-models}"
model_status="absent"
# WEFT_MODEL_PARTS, when set, is the only place looked in (as it is the
# only place stash-model-part.sh writes to).
if [[ -n "${WEFT_MODEL_PARTS:-}" ]]; then
  parts_dirs=("$WEFT_MODEL_PARTS")
else
  parts_dirs=(/tmp/weft-model-parts "$here/../model-parts")
fi
for parts_dir in "${parts_dirs[@]}"; do
  [[ -f "$parts_dir/SHA256SUMS" ]] || continue
  if (cd "$parts_dir" && grep "part-" SHA256SUMS | sha256sum -c --quiet -); then
    mkdir -p "$model_dir"
    # Parts of the xz-compressed model (tools/gpu-check); python's lzma
    # where the image has no xz.
    if command -v xz > /dev/null; then
      cat "$parts_dir/$model_name".xz.part-* | xz -dc > "$model_dir/$model_name"
    else
      cat "$parts_dir/$model_name".xz.part-* |
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' \
        > "$model_dir/$model_name"
    fi
    want="$(awk -v m="$model_name" '$2 == m {print $1}' "$parts_dir/SHA256SUMS")"
    got="$(sha256sum "$model_dir/$model_name" | cut -d' ' -f1)"
    if [[ -n "$want" && "$want" == "$got" ]]; then model_status="ok"; break; fi
    model_status="sha256 mismatch"
    rm -f "$model_dir/$model_name"
  else
    model_status="missing or corrupt parts in $parts_dir"
  fi
done
log "default model: $model_status"
export WEFT_MODEL_DIR="$model_dir"

# --- steps -------------------------------------------------------------------
run_step() {  # name limit_s command...
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s) rc
  local left=$(( deadline - (t0 - start) - 10 ))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    log "skip $name: the deadline (${deadline}s) is near"
    not_run "$name" deadline
    return
  fi
  log "run $name (limit ${limit}s)"
  timeout --kill-after=5 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 )) summary="" passed=-1 skipped=0
  if [[ -f "$out/$name.json" && "$name" != bench ]]; then
    summary="$(python3 - "$out/$name.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
run = fail = skip = 0
for suite in d.get("testsuites", []):
    for t in suite.get("testsuite", []):
        run += 1
        if t.get("failures"): fail += 1
        elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN": skip += 1
print(f"{run - fail - skip} passed, {fail} failed, {skip} skipped")
EOF
)"
    [[ "$summary" =~ ^([0-9]+)\ passed,\ [0-9]+\ failed,\ ([0-9]+)\ skipped$ ]] &&
      passed=${BASH_REMATCH[1]} skipped=${BASH_REMATCH[2]}
  fi
  local status=ok
  # A step whose every test skipped checked nothing (no usable GPU?).
  (( rc == 0 && passed == 0 && skipped > 0 )) && status=skipped
  (( rc == 124 || rc == 137 )) && status=timeout
  (( rc != 0 && rc != 124 && rc != 137 )) && status="fail($rc)"
  names+=("$name"); statuses+=("$status"); seconds+=("$dt"); summaries+=("$summary")
  tail -n 5 "$out/$name.log"
  publish
}

gtest() {  # name limit binary [filter]
  local name="$1" limit="$2" bin="$3" filter="${4:-*}"
  run_step "$name" "$limit" "$here/bin/$bin" --gtest_filter="$filter" \
    --gtest_output="json:$out/$name.json" --gtest_brief=0
}

# WEFT_GPU_STEPS (space-separated step names) runs a subset, e.g. the steps
# that need no model file in one device call and the model's in the next.
want() { [[ -z "${WEFT_GPU_STEPS:-}" || " $WEFT_GPU_STEPS " == *" $1 "* ]]; }
want ops && gtest ops 60 cuda_ops_test
want attention && gtest attention 90 cuda_attention_test
if want gemm; then
  # The Hopper (wgmma) GEMM first: if it fails, the later steps (autotune in
  # the model, engine, generate and bench steps) run without it, so one bad
  # kernel does not cost the rest of the call.
  gtest gemm-wgmma 45 cuda_gemm_test 'CudaGemmTest.Wgmma*'
  # A failure or a timeout, not a skip (no GPU, not sm_90) or a deadline.
  if [[ "${statuses[-1]}" == fail* || "${statuses[-1]}" == timeout ]]; then
    export WEFT_NO_WGMMA=1
    touch "$no_wgmma_marker"  # for the later calls on this machine too
    log "the wgmma GEMM failed: later steps run with WEFT_NO_WGMMA=1"
  fi
  gtest gemm 60 cuda_gemm_test '-CudaGemmTest.Wgmma*'
fi
want model && gtest model 120 cuda_model_test '-CudaModelTest.DefaultModel*'
if want default-model && [[ "$model_status" != ok ]]; then
  not_run default-model "no default model: $model_status"
elif want default-model; then
  gtest default-model 120 cuda_model_test 'CudaModelTest.DefaultModel*'
fi
want engine && gtest engine 100 default_model_engine_test '*Cuda*'
if want generate && [[ "$model_status" != ok ]]; then
  not_run generate "no default model: $model_status"
elif want generate; then
  # The CLI end to end: --device cuda picks the GPU and generates greedily.
  # The production path: GEMM autotune and a decode graph (the defaults),
  # with bf16 weights, then with the Q4_1 weights kept 4-bit (W4A16).
  run_step generate 30 "$here/bin/weft-generate" --device cuda \
    --model "$model_dir/$model_name" --prompt "The capital of France is" \
    --max_tokens 16 --max_model_len 256
  run_step generate-int4 30 "$here/bin/weft-generate" --device cuda \
    --weight_dtype int4 --model "$model_dir/$model_name" \
    --prompt "The capital of France is" --max_tokens 16 --max_model_len 256
fi
# Opt-in (WEFT_GPU_STEPS="sanitize", a call of its own, ~8 min at most):
# the kernel tests under compute-sanitizer (memcheck: out-of-bounds and
# misaligned accesses; racecheck: shared-memory hazards; synccheck: barrier
# misuse), for when a parity test has failed and the log alone does not
# say why. A step fails when the tool reports an error (exit code 9).
if [[ " ${WEFT_GPU_STEPS:-} " == *" sanitize "* ]]; then
  sanitizer="$(command -v compute-sanitizer 2>/dev/null ||
               ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)"
  if [[ -z "$sanitizer" ]]; then
    log "no compute-sanitizer on this machine: the sanitize steps are skipped"
    not_run sanitize "no compute-sanitizer"
  else
    sanitize() {  # name limit tool binary filter
      run_step "$1" "$2" "$sanitizer" --tool "$3" --error-exitcode 9 \
        "$here/bin/$4" --gtest_filter="$5" --gtest_output="json:$out/$1.json" \
        --gtest_brief=0
    }
    # racecheck and synccheck are slow: the small cases of both kernels.
    small='*PrefillOnly_B16_H8_2_D64_*:*PrefillOnly_B4_H9_3_D64_*:'
    small+='*DecodeOnly_B16_H8_2_D64_*:*SplitDecode_B16_H16_1_D128_*'
    sanitize memcheck-attention 120 memcheck cuda_attention_test '*'
    sanitize racecheck-attention 100 racecheck cuda_attention_test "$small"
    sanitize synccheck-attention 60 synccheck cuda_attention_test "$small"
    sanitize memcheck-gemm 120 memcheck cuda_gemm_test '-CudaGemmTest.WarmUp*'
    sanitize memcheck-ops 80 memcheck cuda_ops_test '*'
  fi
fi
want bench && run_step bench 90 "$here/bin/weft-bench-cuda-kernels" --iters 20 --json "$out/bench.json"
# Serving throughput of the synthetic Llama-3-8B (issue #7; bench/cuda_serving):
# not in the default steps (several minutes); WEFT_GPU_STEPS="serving".
if [[ " ${WEFT_GPU_STEPS:-} " == *" serving "* ]]; then
  copy_gb_s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["copy_gb_s"])' \
                "$out/bench.json" 2>/dev/null || echo 0)
  run_step serving 420 "$here/bin/weft-bench-offline" --model synthetic:llama3-8b \
    --device cuda --max_num_batched_tokens 2048 --copy_gb_s "$copy_gb_s" \
    --weight_dtype "${WEFT_SERVING_WEIGHT_DTYPE:-bf16}" \
    --sweep "${WEFT_SERVING_SWEEP:-1:128x128,8:128x128,64:128x128,256:128x128,1:1000x1000,8:1000x1000,64:1000x1000,256:1000x1000}" \
    --json "$out/serving.json"
fi

# --- report ------------------------------------------------------------------
publish  # the final report and archive (every step published its own too)
echo
echo "bench (from the bench step's log):"
sed -n '/^kernel /,$p' "$out/bench.log" 2>/dev/null
[[ -f "$out/serving.log" ]] && sed -n '/^batch:prompt/,$p' "$out/serving.log"
echo
printf "%-20s %-12s %6s  %s\n" step status sec tests
for i in "${!names[@]}"; do
  printf "%-20s %-12s %6s  %s\n" "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${summaries[$i]}"
done
echo "model: $model_status   total: $(( $(date +%s) - start ))s   results: $result_dir/report.json, $result_dir/logs.tar.gz"
