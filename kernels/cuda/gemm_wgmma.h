// weft's Hopper bf16 GEMM (TMA + wgmma, kernels/cuda/gemm_wgmma.cu), one of
// the candidates kernels/gemm_plan.h tries against cuBLAS. Internal to
// kernels/cuda.
#ifndef WEFT_KERNELS_CUDA_GEMM_WGMMA_H_
#define WEFT_KERNELS_CUDA_GEMM_WGMMA_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace weft::cuda {

// Whether the current device runs the kernel: compute capability 9.0 (the
// binary's sm_90a image), a driver with cuTensorMapEncodeTiled, and no
// WEFT_NO_WGMMA in the environment (the escape hatch should the kernel
// misbehave on some driver). Checked once.
bool WgmmaAvailable();

// y[n, m] (fp32, row stride ldy) = x[n, k] · w[m, k]ᵀ, x and w bf16
// row-major with row stride k, in tiles of 128 rows of x × tile_cols (128 or
// 256) rows of w. Needs k % 8 == 0 and 16-byte aligned x, w
// (cudaErrorInvalidValue otherwise); cudaErrorNotSupported where
// !WgmmaAvailable(). Nothing is queued on an error.
cudaError_t LaunchGemmWgmma(int tile_cols, const uint16_t* x,
                            const uint16_t* w, float* y, int64_t n, int64_t m,
                            int64_t k, int64_t ldy, cudaStream_t stream);

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_GEMM_WGMMA_H_
