#include "kernels/cuda/cuda_matmul.h"

#include <climits>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"

namespace weft::cuda {

absl::Status GemmBf16(cublasHandle_t handle, const uint16_t* x,
                      const uint16_t* w, float* y, int64_t n, int64_t m,
                      int64_t k, int64_t ldy) {
  if (n <= 0 || m <= 0 || k <= 0 || ldy < m || n > INT_MAX || m > INT_MAX ||
      k > INT_MAX || ldy > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("GemmBf16: bad shape n=", n, " m=", m, " k=", k));
  }
  // cuBLAS is column-major: row-major y[n, m] is column-major yᵀ[m, n] =
  // wᵀ-as-stored (column-major k × m, transposed) · x-as-stored (k × n).
  const float alpha = 1.0f, beta = 0.0f;
  WEFT_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(
      handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m),
      static_cast<int>(n), static_cast<int>(k), &alpha, w, CUDA_R_16BF,
      static_cast<int>(k), x, CUDA_R_16BF, static_cast<int>(k), &beta, y,
      CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
  return absl::OkStatus();
}

}  // namespace weft::cuda
