#include "kernels/factory/backend_factory.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

#ifdef WEFT_HAVE_CUDA
#include "kernels/cuda/cuda_device.h"
#endif

namespace weft {

absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view name) {
  if (name == "cpu") return DeviceKind::kCpu;
  if (name == "cuda") return DeviceKind::kCuda;
  if (name == "auto") return DeviceKind::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be cpu, cuda or auto, not '", name, "'"));
}

absl::Status ParseCudaKernelOptions(absl::string_view gemm,
                                    absl::string_view weight_dtype,
                                    CudaBackendConfig* cuda) {
  auto policy = ParseGemmPolicy(gemm);
  if (!policy.ok()) return policy.status();
  auto format = ParseCudaWeightFormat(weight_dtype);
  if (!format.ok()) return format.status();
  cuda->gemm = *policy;
  cuda->weight_format = *format;
  // Batch invariance needs attention's too: every query token through the
  // prefill kernel, whatever the length of its chunk.
  if (*policy == GemmPolicy::kInvariant) cuda->prefill_min_query_len = 1;
  return absl::OkStatus();
}

bool CudaBackendBuilt() {
#ifdef WEFT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool CudaDeviceAvailable() {
#ifdef WEFT_HAVE_CUDA
  return QueryCudaDevice(0).ok();
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(
    const BackendOptions& options, std::string* description) {
  DeviceKind device = options.device;
  if (device == DeviceKind::kAuto) {
    device = CudaDeviceAvailable() ? DeviceKind::kCuda : DeviceKind::kCpu;
    if (device == DeviceKind::kCuda && options.model_head_dim > 0 &&
        !CudaAttentionSupportsHeadDim(options.model_head_dim)) {
      std::fprintf(stderr,
                   "weft: --device auto: the CUDA attention kernels support "
                   "head_dim 64 and 128, this model has %d; serving on the CPU\n",
                   options.model_head_dim);
      device = DeviceKind::kCpu;
    }
  }
  if (device == DeviceKind::kCuda) {
#ifdef WEFT_HAVE_CUDA
    return MakeCudaBackend(options.cuda, description);
#else
    return absl::FailedPreconditionError(
        "--device cuda: this weft was built without CUDA (WEFT_CUDA=OFF or "
        "no toolkit found)");
#endif
  }
  auto cpu = MakeCpuBackend(options.cpu, description);
  if (!cpu.ok()) return cpu.status();
  return std::unique_ptr<Backend>(std::move(*cpu));
}

}  // namespace weft
