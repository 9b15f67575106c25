#!/usr/bin/env bash
# Builds llama.cpp's llama-bench, llama-batched-bench and llama-quantize
# from the llama.cpp sources vendored in the PyPI sdist of llama-cpp-python
# (the same package tools/fetch_vocabs.sh takes the test vocabularies from),
# into .cache/llamacpp/ (git-ignored). A rerun with the tools present does
# nothing. Prints the directory holding the binaries on its last line.
#
#   bench/cpu_vs_llamacpp/build_llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGE_VERSION=0.3.36
# The llama.cpp commit that llama-cpp-python 0.3.36 vendors (its CHANGELOG:
# "update llama.cpp to ggml-org/llama.cpp@0c1e57098"). The sdist carries no
# .git, and a `git rev-parse` inside .cache/ would name weft's commit, so the
# build info is given explicitly.
LLAMACPP_COMMIT=0c1e57098
CACHE=.cache/llamacpp
SRC=$CACHE/llama_cpp_python-$PACKAGE_VERSION/vendor/llama.cpp
ISA=${LLAMACPP_ISA:-native}
case $ISA in
  native) BUILD=$CACHE/build ;;
  avx2) BUILD=$CACHE/build-avx2 ;;
  avxvnni) BUILD=$CACHE/build-avxvnni ;;
  *) echo "build_llamacpp: LLAMACPP_ISA is native, avx2 or avxvnni, not $ISA" >&2; exit 2 ;;
esac
TOOLS=(llama-bench llama-batched-bench llama-quantize)
# LLAMACPP_SERVER=1: llama-server too, for serve.py (its sources take
# another 10-20 minutes once).
SERVER=OFF
if [[ ${LLAMACPP_SERVER:-0} == 1 ]]; then
  TOOLS+=(llama-server)
  SERVER=ON
fi

# AMX: ggml's AMX kernels (used for Q4_x/Q8_0 matmuls when -march=native
# enables AMX) die with SIGILL on the VM this was written on (`tilezero` in
# tinygemm_kernel_amx, although AMX itself works there once permitted), and
# weft uses no AMX, so it is off unless LLAMACPP_AMX=ON.
if [[ ${LLAMACPP_AMX:-OFF} == ON ]]; then
  ISA_FLAGS=""
else
  ISA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
# avx2: what ggml builds for a processor without AVX-512 (GGML_NATIVE=OFF:
# AVX, AVX2, FMA, F16C, BMI2); avxvnni: the same plus AVX-VNNI (256-bit
# VPDPBUSD), which Intel's Alder Lake and later client processors add.
NATIVE=ON
AVX_VNNI=OFF
if [[ $ISA == avx2 || $ISA == avxvnni ]]; then
  NATIVE=OFF
  ISA_FLAGS=""
fi
[[ $ISA == avxvnni ]] && AVX_VNNI=ON
CONFIG="commit=$LLAMACPP_COMMIT native=$NATIVE avx_vnni=$AVX_VNNI extra_flags=$ISA_FLAGS"

have_all() {
  for t in "${TOOLS[@]}"; do [[ -x $BUILD/bin/$t ]] || return 1; done
  [[ -f $BUILD/weft-config && $(cat "$BUILD/weft-config") == "$CONFIG" ]]
}
if have_all; then
  echo "$BUILD/bin"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -f $SRC/CMakeLists.txt ]]; then
  if ! ls "$CACHE"/llama_cpp_python-$PACKAGE_VERSION.tar.gz >/dev/null 2>&1; then
    echo "build_llamacpp: downloading the llama-cpp-python==$PACKAGE_VERSION sdist from PyPI" >&2
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE" \
      "llama-cpp-python==$PACKAGE_VERSION"
  fi
  tar -xzf "$CACHE"/llama_cpp_python-$PACKAGE_VERSION.tar.gz -C "$CACHE"
fi

echo "build_llamacpp: building ${TOOLS[*]} (Release, GGML_NATIVE=$NATIVE, $ISA_FLAGS) in $BUILD" >&2
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
nice -n 10 cmake -S "$SRC" -B "$BUILD" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=$NATIVE -DGGML_AVX_VNNI=$AVX_VNNI \
  -DCMAKE_C_FLAGS="$ISA_FLAGS" -DCMAKE_CXX_FLAGS="$ISA_FLAGS" \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=$SERVER \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_SUBPROCESS=OFF \
  -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT=$LLAMACPP_COMMIT >&2
nice -n 10 cmake --build "$BUILD" -j "${JOBS:-2}" --target "${TOOLS[@]}" >&2
echo "$CONFIG" >"$BUILD/weft-config"
have_all
echo "$BUILD/bin"
