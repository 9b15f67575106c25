// The start-up flags the backend factory parses for every main.
#include "kernels/factory/backend_factory.h"

#include "gtest/gtest.h"

namespace weft {
namespace {

TEST(ParseCudaKernelOptionsTest, SetsPolicyAndWeightFormat) {
  CudaBackendConfig cuda;
  ASSERT_TRUE(ParseCudaKernelOptions("own", "int4", &cuda).ok());
  EXPECT_EQ(cuda.gemm, GemmPolicy::kOwn);
  EXPECT_EQ(cuda.weight_format, CudaWeightFormat::kInt4);
  ASSERT_TRUE(ParseCudaKernelOptions("cublas", "bf16", &cuda).ok());
  EXPECT_EQ(cuda.gemm, GemmPolicy::kCublas);
  EXPECT_EQ(cuda.weight_format, CudaWeightFormat::kBf16);
}

TEST(ParseCudaKernelOptionsTest, InvariantAlsoSendsEveryTokenThroughPrefill) {
  CudaBackendConfig cuda;
  ASSERT_GT(cuda.prefill_min_query_len, 1);
  ASSERT_TRUE(ParseCudaKernelOptions("invariant", "bf16", &cuda).ok());
  EXPECT_EQ(cuda.gemm, GemmPolicy::kInvariant);
  EXPECT_EQ(cuda.prefill_min_query_len, 1);
  CudaBackendConfig other;
  ASSERT_TRUE(ParseCudaKernelOptions("own", "bf16", &other).ok());
  EXPECT_EQ(other.prefill_min_query_len, CudaBackendConfig().prefill_min_query_len);
}

TEST(ParseCudaKernelOptionsTest, RejectsUnknownValuesAndLeavesTheConfig) {
  CudaBackendConfig cuda;
  EXPECT_EQ(ParseCudaKernelOptions("fast", "bf16", &cuda).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCudaKernelOptions("own", "int8", &cuda).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda.gemm, GemmPolicy::kAutotune);
  EXPECT_EQ(cuda.weight_format, CudaWeightFormat::kBf16);
}

TEST(ParseDeviceKindTest, AcceptsCpuCudaAuto) {
  EXPECT_EQ(*ParseDeviceKind("cpu"), DeviceKind::kCpu);
  EXPECT_EQ(*ParseDeviceKind("cuda"), DeviceKind::kCuda);
  EXPECT_EQ(*ParseDeviceKind("auto"), DeviceKind::kAuto);
  EXPECT_EQ(ParseDeviceKind("gpu").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft
