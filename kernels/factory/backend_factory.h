// Picks and builds the backend once, at startup: the only code besides
// server/main.cc and the tools' mains that knows which backends exist.
//   --device cpu    the fast CPU backend (or the reference one on request)
//   --device cuda   the CUDA backend; fails when weft was built without CUDA
//                   or no GPU is usable
//   --device auto   cuda when weft was built with CUDA, a GPU is usable and
//                   the CUDA kernels support the model's head size, else cpu
// weft_backend_factory links the CUDA library only when WEFT_HAVE_CUDA.
#ifndef WEFT_KERNELS_FACTORY_BACKEND_FACTORY_H_
#define WEFT_KERNELS_FACTORY_BACKEND_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/backend.h"
#include "kernels/cpu/fast_cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"

namespace weft {

enum class DeviceKind { kCpu, kCuda, kAuto };

// "cpu", "cuda" or "auto"; InvalidArgument otherwise.
absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view name);

// Whether this binary was built with the CUDA backend.
bool CudaBackendBuilt();
// Whether the CUDA backend is built and a GPU is usable (device 0).
bool CudaDeviceAvailable();

struct BackendOptions {
  DeviceKind device = DeviceKind::kAuto;
  // The model's head size (0: unknown). With kAuto, a head size the CUDA
  // attention kernels lack selects the CPU (a line on stderr says so).
  int model_head_dim = 0;
  CpuBackendConfig cpu;
  CudaBackendConfig cuda;
};

// Sets `cuda`'s GEMM policy and weight format from the --gemm
// (autotune|cublas|own|invariant) and --weight_dtype (bf16|int4) flags'
// values; InvalidArgument naming the flag otherwise. "invariant" also
// routes every query token through the prefill attention kernel
// (prefill_min_query_len 1): a sequence's results then do not depend on
// what it is batched with. For every main that builds a backend.
absl::Status ParseCudaKernelOptions(absl::string_view gemm,
                                    absl::string_view weight_dtype,
                                    CudaBackendConfig* cuda);

// The backend `options` ask for. `description` (optional) receives e.g.
// "cpu (avx512-vnni, 2 threads)" or "cuda (NVIDIA H200, sm_90, ...)".
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(
    const BackendOptions& options, std::string* description = nullptr);

}  // namespace weft

#endif  // WEFT_KERNELS_FACTORY_BACKEND_FACTORY_H_
