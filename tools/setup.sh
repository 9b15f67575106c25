#!/usr/bin/env bash
# Installs what weft needs on Debian 12, fetches the default model and builds.
#   tools/setup.sh            everything
#   tools/setup.sh deps       only the package install (the Dockerfile's first layer)
#   WEFT_SKIP_APT=1 ...       skip the package install (already done)
#   WEFT_SETUP_TESTS=1 ...    also install what only the tests need (tools/test.sh)
# Environment: BUILD_DIR (default build), WEFT_CUDA (AUTO|ON|OFF),
# CMAKE_CUDA_ARCHITECTURES (default 90a), JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
if [[ $MODE != all && $MODE != deps ]] || (($# > 1)); then
  echo "setup: usage: tools/setup.sh [deps]" >&2
  exit 2
fi

# What each package is for: see README.md, "Dependencies".
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libabsl-dev                                  # Status, StrCat, flags, containers
  libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc  # the gRPC API
  libssl-dev openssl                           # API key hashes; test certificates
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and micro-benchmarks
  nlohmann-json3-dev                           # config.json, tokenizer.json, safetensors headers
  libicu-dev                                   # Unicode classes for pre-tokenizer regexes
  libxxhash-dev                                # prefix-cache block hashes (serving core)
  libcpp-httplib-dev                           # the OpenAI-compatible HTTP API (server/http_server.cc)
  python3 python3-pip python3-venv ca-certificates  # model fetch; e2e test clients
)
# tools/test.sh adds what only the tests use.
if [[ "${WEFT_SETUP_TESTS:-0}" == 1 ]]; then
  PACKAGES+=(nginx-light)  # the load balancer of deploy/nginx, under test in tests/e2e
  PACKAGES+=(xz-utils)     # tools/gpu-check's model parts, under test in tests/cli
fi

if [[ "${WEFT_SKIP_APT:-0}" != 1 ]]; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -q
    # Through env: sudo resets the environment, DEBIAN_FRONTEND included.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

if [[ $MODE == deps ]]; then exit 0; fi

tools/fetch_model.sh
tools/fetch_xgrammar.sh  # structured output's grammar engine (C++ source)

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DWEFT_CUDA="${WEFT_CUDA:-AUTO}" \
  -DCMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90a}"
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
