#!/usr/bin/env bash
# Installs the parts of the CUDA toolkit weft builds with (nvcc, the CUDA
# runtime, cuBLAS, CCCL) from NVIDIA's wheels on PyPI into CUDA_HOME
# (default /usr/local/cuda), laid out as NVIDIA's installer lays them out, so
# CMake's FindCUDAToolkit and nvcc find everything. For machines and images
# that reach Debian and PyPI but not NVIDIA's apt repository (the Dockerfile
# uses it). The versions are the ones CI builds with. The GPU driver is not
# part of this: on a GPU machine it comes with the host (and, in a
# container, from the NVIDIA container toolkit).
#
#   tools/install_cuda.sh                  into /usr/local/cuda (needs root)
#   CUDA_HOME=$HOME/cuda tools/install_cuda.sh
set -euo pipefail

CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
WHEELS=(
  nvidia-cuda-nvcc==13.0.88     # nvcc, ptxas, fatbinary, nvlink
  nvidia-cuda-crt==13.0.88      # nvcc's own headers (crt/)
  nvidia-nvvm==13.0.88          # cicc and libdevice
  nvidia-cuda-runtime==13.0.96  # cudart (weft links it statically) and its headers
  nvidia-cuda-cccl==13.0.85     # cub, thrust, libcu++ headers
  nvidia-cublas==13.1.0.3       # cuBLAS and cuBLASLt (linked; also needed at run time)
)

if [[ -x "$CUDA_HOME/bin/nvcc" ]]; then
  echo "install_cuda: $CUDA_HOME/bin/nvcc is there already; nothing to do"
  exit 0
fi
if [[ $(uname -m) != x86_64 ]]; then
  echo "install_cuda: only x86-64 is supported (this is $(uname -m))" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install_cuda: downloading ${WHEELS[*]} from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/wheels" "${WHEELS[@]}"
mkdir -p "$tmp/unpacked"
for wheel in "$tmp"/wheels/*.whl; do
  python3 -m zipfile -e "$wheel" "$tmp/unpacked"
done

mkdir -p "$CUDA_HOME"
cp -a "$tmp/unpacked/nvidia/cu13/." "$CUDA_HOME/"
rm -rf "$CUDA_HOME/.metadata"
cd "$CUDA_HOME"
# zipfile drops the execute bits.
chmod 0755 bin/* nvvm/bin/*
chmod 0644 bin/nvcc.profile
# The unversioned names the linker looks for, lib64, and the target
# directory nvcc.profile points at.
for lib in lib/lib*.so.*; do
  ln -sf "$(basename "$lib")" "${lib%%.so.*}.so"
done
ln -sfn lib lib64
mkdir -p targets/x86_64-linux
ln -sfn ../../include targets/x86_64-linux/include
ln -sfn ../../lib targets/x86_64-linux/lib
"$CUDA_HOME/bin/nvcc" --version | tail -n 2
echo "install_cuda: done; put $CUDA_HOME/bin on PATH (or pass -DCMAKE_CUDA_COMPILER=$CUDA_HOME/bin/nvcc)"
