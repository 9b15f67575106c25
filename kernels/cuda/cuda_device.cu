#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace weft {

absl::StatusOr<CudaDeviceInfo> QueryCudaDevice(int ordinal) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the non-sticky error
    return absl::NotFoundError(absl::StrCat(
        "no CUDA device: ",
        err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0"));
  }
  if (ordinal < 0 || ordinal >= count) {
    return absl::NotFoundError(
        absl::StrCat("CUDA device ", ordinal, " of ", count, " requested"));
  }
  cudaDeviceProp prop;
  err = cudaGetDeviceProperties(&prop, ordinal);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return absl::InternalError(absl::StrCat("cudaGetDeviceProperties: ",
                                            cudaGetErrorString(err)));
  }
  CudaDeviceInfo info;
  info.ordinal = ordinal;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  info.multiprocessors = prop.multiProcessorCount;
  return info;
}

}  // namespace weft
