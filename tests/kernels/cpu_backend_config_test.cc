// CpuBackendConfig: validation, the KV cache dtype, the activation levels,
// and the decode prefetch distance the fast backend gives its packed weights.
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fast_cpu_backend.h"

namespace weft {
namespace {

TEST(CpuBackendConfigTest, RejectsNegativeThreads) {
  CpuBackendConfig config;
  config.num_threads = -1;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_GE(NumPhysicalCores(), 1);
}

TEST(CpuBackendConfigTest, KvCacheIsF16ByDefaultAndF32OnRequest) {
  CpuBackendConfig config;
  EXPECT_EQ(config.kv_cache_dtype, DType::kF16);
  auto f16 = MakeCpuBackend(config);
  ASSERT_TRUE(f16.ok()) << f16.status();
  EXPECT_EQ((*f16)->kv_cache_dtype(), DType::kF16);
  config.kv_cache_dtype = DType::kF32;
  auto f32 = MakeCpuBackend(config);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ((*f32)->kv_cache_dtype(), DType::kF32);
  config.kv_cache_dtype = DType::kBF16;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeCpuBackend(config).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The flag: auto keeps the reference kernels' cache exact.
  EXPECT_EQ(*ParseCpuKvCacheDtype("auto", false), DType::kF16);
  EXPECT_EQ(*ParseCpuKvCacheDtype("auto", true), DType::kF32);
  EXPECT_EQ(*ParseCpuKvCacheDtype("f16", true), DType::kF16);
  EXPECT_EQ(*ParseCpuKvCacheDtype("f32", false), DType::kF32);
  EXPECT_EQ(ParseCpuKvCacheDtype("bf16", false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CpuBackendConfigTest, ActivationLevelsAreTwoByDefaultOneOnRequest) {
  CpuBackendConfig config;
  EXPECT_EQ(config.activation_levels, 2);
  std::string description;
  ASSERT_TRUE(MakeCpuBackend(config, &description).ok());
  if (description.find("avx") == std::string::npos) {
    GTEST_SKIP() << "the reference kernels here (no AVX2): " << description;
  }
  EXPECT_EQ(description.find("activation level"), std::string::npos) << description;
  config.activation_levels = 1;
  ASSERT_TRUE(MakeCpuBackend(config, &description).ok());
  EXPECT_NE(description.find("one activation level"), std::string::npos) << description;
  for (int levels : {0, 3, -1}) {
    config.activation_levels = levels;
    EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument) << levels;
    EXPECT_EQ(MakeCpuBackend(config).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CpuBackendConfigTest, DecodePrefetchDistanceIsValidatedAndChosenPerKernel) {
  CpuBackendConfig config;
  EXPECT_EQ(config.decode_prefetch_bytes, -1);  // the processor's choice
  EXPECT_TRUE(config.Validate().ok());
  config.decode_prefetch_bytes = 0;
  EXPECT_TRUE(config.Validate().ok());
  config.decode_prefetch_bytes = -2;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  config.decode_prefetch_bytes = (1 << 16) + 1;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  // AVX2's quantized kernels keep the long distance on every processor.
  EXPECT_EQ(cpu::DecodePrefetchBytesFor(/*quantized=*/true, /*avx512=*/false),
            cpu::kDecodePrefetchBytes);
}

TEST(CpuBackendConfigTest, DecodeL2PrefetchDistanceIsValidatedAndOnlyForAvx512Quant) {
  CpuBackendConfig config;
  EXPECT_EQ(config.decode_l2_prefetch_bytes, -1);  // the processor's choice
  config.decode_l2_prefetch_bytes = 0;
  EXPECT_TRUE(config.Validate().ok());
  config.decode_l2_prefetch_bytes = -2;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  config.decode_l2_prefetch_bytes = (1 << 16) + 1;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  // Measured only there: float weights and AVX2's kernels never get it.
  EXPECT_EQ(cpu::DecodeL2PrefetchBytesFor(/*quantized=*/false, /*avx512=*/true), 0);
  EXPECT_EQ(cpu::DecodeL2PrefetchBytesFor(/*quantized=*/true, /*avx512=*/false), 0);
  const int64_t avx512_quant =
      cpu::DecodeL2PrefetchBytesFor(/*quantized=*/true, /*avx512=*/true);
  EXPECT_TRUE(avx512_quant == 0 || avx512_quant == cpu::kAmdDecodeL2PrefetchBytes);
  // The policy is AVX-512's only.
  EXPECT_FALSE(cpu::L2PolicyFor(/*avx512=*/false));
}

}  // namespace
}  // namespace weft
