#include "kernels/cuda/cuda_status.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace weft {
namespace {

// Errors after which the CUDA context is unusable: every later call fails
// until the process restarts.
bool IsSticky(cudaError_t error) {
  switch (error) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const bool sticky = IsSticky(error);
  std::string message = absl::StrCat("CUDA: ", what, ": ",
                                     cudaGetErrorName(error), " (",
                                     cudaGetErrorString(error), ")");
  if (sticky) {
    absl::StrAppend(&message,
                    "; the CUDA context is unusable, restart the process");
    // DESIGN.md: a sticky CUDA error is fatal and logged (once).
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      std::fprintf(stderr, "weft: fatal %s\n", message.c_str());
    }
  }
  return absl::InternalError(message);
}

absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuBLAS: ", what, ": ",
                                          cublasGetStatusName(status), " (",
                                          cublasGetStatusString(status), ")"));
}

}  // namespace weft
