#!/usr/bin/env bash
# Builds the C++ code with AddressSanitizer + UndefinedBehaviorSanitizer
# (WEFT_SANITIZE, CPU only: nvcc code cannot be instrumented) into
# build-asan/ and runs the CTest suite and the end-to-end tests against it.
# Not part of CI (about 32 minutes of building on 2 cores, and the suite runs
# ~2x slower); run it after changes to memory handling, the server or the
# scheduler. Expects tools/test.sh to have run once (packages, model,
# vocabularies, .venv-e2e).
#
#   tools/sanitize.sh                 # build, ctest, e2e
#   tools/sanitize.sh -R Engine       # build, then only the ctest tests matching Engine
# Extra arguments go to ctest after the script's own -E (so a second -E
# replaces it: ctest keeps the last).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" -DWEFT_CUDA=OFF \
  -DWEFT_SANITIZE=address,undefined >/dev/null
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
# Leaks are reported too (LeakSanitizer, part of ASan): a test that leaks fails.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# The fuzz tests (request_, proto_, tokenizer_, gguf_, chat_template_,
# model_dir_fuzz_test): 20-100x their CI length, a few minutes each here;
# chat_template_fuzz_test about 20 (10,000 a template took 7 minutes) and
# model_dir_fuzz_test about 10 (5,000 a fixture took 1.5).
export WEFT_FUZZ_ITERATIONS=${WEFT_FUZZ_ITERATIONS:-30000}
# Left out: two grammar tests bounded by how long a real xgrammar compile
# takes (a slow schema must finish within 30 s, or within the default
# compile timeout), which ASan's instrumentation stretches past the bound.
SLOW_UNDER_ASAN='GrammarTest\.(ASlowCompileTimesOutAndIsCachedWhenDone|CompilesBeyondTheWaitingLimitAreRefused)'
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" \
  -E "$SLOW_UNDER_ASAN" "$@"
if [[ $# -eq 0 ]]; then
  WEFT_BUILD_DIR="$(realpath "$BUILD_DIR")" .venv-e2e/bin/python -m pytest -q \
    -p no:cacheprovider tests/e2e
fi
