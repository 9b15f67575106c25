// Decode-sized MatMuls (n ≤ 16 rows of x) that stream the weights once:
// y[n, m] (fp32, row stride ldy) = x[n, k] · w[m, k]ᵀ with x bf16 and w
// bf16 or W4 (kernels/dtype.h). Internal to kernels/cuda.
#ifndef WEFT_KERNELS_CUDA_SKINNY_GEMM_H_
#define WEFT_KERNELS_CUDA_SKINNY_GEMM_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/gemm_plan.h"

namespace weft::cuda {

// Shape rules (cudaErrorInvalidValue otherwise, nothing queued;
// kSkinnyGemmMaxRows = 16):
//   bf16 w: 1 ≤ n ≤ 16, k % 32 == 0, x and w 16-byte aligned.
//   W4 w:   1 ≤ n ≤ 16, k % 64 == 0, x 16-byte and w 8-byte aligned.
bool SkinnyBf16Supports(const void* x, const void* w, int64_t n, int64_t k);
bool SkinnyW4Supports(const void* x, const void* w, int64_t n, int64_t k);

cudaError_t LaunchSkinnyBf16(const uint16_t* x, const uint16_t* w, float* y,
                             int64_t n, int64_t m, int64_t k, int64_t ldy,
                             cudaStream_t stream);
cudaError_t LaunchSkinnyW4(const uint16_t* x, const uint8_t* w, float* y,
                           int64_t n, int64_t m, int64_t k, int64_t ldy,
                           cudaStream_t stream);

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_SKINNY_GEMM_H_
