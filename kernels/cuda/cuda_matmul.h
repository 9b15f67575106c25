// The one function every CUDA MatMul goes through, so part 2 can put its own
// GEMM kernels behind it and compare them with cuBLAS.
#ifndef WEFT_KERNELS_CUDA_CUDA_MATMUL_H_
#define WEFT_KERNELS_CUDA_CUDA_MATMUL_H_

#include <cublas_v2.h>

#include <cstdint>

#include "absl/status/status.h"

namespace weft::cuda {

// y[n, m] (fp32, row stride ldy) = x[n, k] · w[m, k]ᵀ, x and w bf16
// row-major (row strides k); fp32 accumulation (CUBLAS_COMPUTE_32F). Queued
// on the handle's stream, with the handle's workspace.
absl::Status GemmBf16(cublasHandle_t handle, const uint16_t* x,
                      const uint16_t* w, float* y, int64_t n, int64_t m,
                      int64_t k, int64_t ldy);

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_CUDA_MATMUL_H_
