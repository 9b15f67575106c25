// Shared by the CUDA parity tests: a CUDA backend or a skip, device tensors
// filled from and read back to host vectors, and NaN poisoning of outputs.
#ifndef WEFT_TESTS_KERNELS_CUDA_TEST_UTIL_H_
#define WEFT_TESTS_KERNELS_CUDA_TEST_UTIL_H_

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/dtype.h"
#include "kernels/factory/backend_factory.h"
#include "tests/test_util.h"

namespace weft::test {

// The message every GPU test skips with.
inline constexpr char kNoGpu[] =
    "no CUDA GPU was found (or weft was built without CUDA): skipping the "
    "CUDA parity test";

// The source tree: the compiled-in path unless the environment names
// another (tools/gpu-check's runner does, on a machine where the binaries
// were not built). The model directory is ModelDir() (tests/test_util.h).
inline std::string SourceDir() {
  const char* dir = std::getenv("WEFT_SOURCE_DIR");
  return dir != nullptr && *dir != '\0' ? dir : WEFT_SOURCE_DIR;
}

// Values rounded to bf16 and back, as the CUDA backend stores them.
inline std::vector<float> RoundToBf16(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = Bf16ToFloat(FloatToBf16(v[i]));
  return out;
}

#ifdef WEFT_HAVE_CUDA
// A CUDA backend, or nullptr when no GPU is usable (the caller skips).
inline std::unique_ptr<CudaBackend> MakeCudaOrNull(
    const CudaBackendConfig& config = CudaBackendConfig()) {
  if (!CudaDeviceAvailable()) return nullptr;
  auto backend = CudaBackend::Create(config);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? *std::move(backend) : nullptr;
}

// A device F32 tensor [rows, cols] holding `values`.
inline Tensor DeviceF32(CudaBackend& backend, int64_t rows, int64_t cols,
                        const std::vector<float>& values) {
  auto t = backend.Allocate(DType::kF32, rows, cols);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return Tensor{};
  EXPECT_EQ(static_cast<int64_t>(values.size()), rows * cols);
  EXPECT_TRUE(backend.CopyFromHost(values.data(), &*t).ok());
  return *t;
}

// A device F32 tensor [rows, cols] filled with NaN (an output never written
// shows up as NaN in the comparison).
inline Tensor PoisonedF32(CudaBackend& backend, int64_t rows, int64_t cols) {
  return DeviceF32(backend, rows, cols,
                   std::vector<float>(rows * cols, std::nanf("")));
}

inline std::vector<float> ToHost(CudaBackend& backend, const Tensor& t) {
  std::vector<float> out(t.num_elements());
  absl::Status s = backend.CopyToHost(t, out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}
#endif  // WEFT_HAVE_CUDA

}  // namespace weft::test

#endif  // WEFT_TESTS_KERNELS_CUDA_TEST_UTIL_H_
