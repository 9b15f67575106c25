// weft's own bf16 GEMM (tensor cores), beside cuBLAS behind cuda_matmul.h.
// Internal to kernels/cuda; which one runs is kernels/gemm_plan.h's choice.
#ifndef WEFT_KERNELS_CUDA_GEMM_BF16_H_
#define WEFT_KERNELS_CUDA_GEMM_BF16_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/gemm_plan.h"

namespace weft::cuda {

// y[n, m] (fp32, row stride ldy) = x[n, k] · w[m, k]ᵀ with x and w bf16,
// row-major with row stride k, fp32 accumulation, on `stream`.
// `kernel` is one of kOwnGemmKernels. Needs k % 8 == 0 and x, w 16-byte
// aligned (cudaErrorInvalidValue otherwise, nothing queued); any n, m ≥ 1.
cudaError_t LaunchGemmBf16(GemmKernelId kernel, const uint16_t* x,
                           const uint16_t* w, float* y, int64_t n, int64_t m,
                           int64_t k, int64_t ldy, cudaStream_t stream);

// Whether LaunchGemmBf16 accepts these operands (the shape rule above).
bool GemmBf16Supports(const void* x, const void* w, int64_t n, int64_t m,
                      int64_t k, int64_t ldy);

// count += the number of i < size with |a[i] − b[i]| > atol + rtol·|b[i]|
// (NaN counts). For the autotuner's check of a candidate against cuBLAS.
cudaError_t LaunchCountMismatches(const float* a, const float* b,
                                  int64_t size, float atol, float rtol,
                                  unsigned long long* count,
                                  cudaStream_t stream);

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_GEMM_BF16_H_
