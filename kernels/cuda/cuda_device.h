// Which NVIDIA GPU, if any, this process can use. The CUDA backend itself
// (kernels, weights in device memory) is built on this in its own issue.
#ifndef WEFT_KERNELS_CUDA_CUDA_DEVICE_H_
#define WEFT_KERNELS_CUDA_CUDA_DEVICE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace weft {

struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int64_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

// NotFound when no CUDA device is present (or no driver is installed).
absl::StatusOr<CudaDeviceInfo> QueryCudaDevice(int ordinal);

}  // namespace weft

#endif  // WEFT_KERNELS_CUDA_CUDA_DEVICE_H_
