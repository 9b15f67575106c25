// CUDA and cuBLAS results as absl::Status (internal to kernels/cuda). Every
// runtime and cuBLAS call of the backend goes through one of these macros.
#ifndef WEFT_KERNELS_CUDA_CUDA_STATUS_H_
#define WEFT_KERNELS_CUDA_CUDA_STATUS_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace weft {

// OK for cudaSuccess, else Internal naming `what` and CUDA's message.
absl::Status CudaStatus(cudaError_t error, const char* what);
absl::Status CublasStatus(cublasStatus_t status, const char* what);

}  // namespace weft

#define WEFT_CUDA_RETURN_IF_ERROR(expr)                              \
  do {                                                               \
    if (const cudaError_t weft_err_ = (expr); weft_err_ != cudaSuccess) \
      return ::weft::CudaStatus(weft_err_, #expr);                   \
  } while (0)

#define WEFT_CUBLAS_RETURN_IF_ERROR(expr)                                 \
  do {                                                                    \
    if (const cublasStatus_t weft_st_ = (expr);                           \
        weft_st_ != CUBLAS_STATUS_SUCCESS)                                \
      return ::weft::CublasStatus(weft_st_, #expr);                       \
  } while (0)

#define WEFT_RETURN_IF_ERROR_STATUS(expr)        \
  do {                                           \
    if (absl::Status s_ = (expr); !s_.ok()) {    \
      return s_;                                 \
    }                                            \
  } while (0)

#endif  // WEFT_KERNELS_CUDA_CUDA_STATUS_H_
