// W4, the CUDA backend's repacking of Q4_0/Q4_1 (kernels/w4_pack.h): every
// element dequantizes to exactly what the GGML source gives, rows keep their
// byte length, and the reference CPU backend multiplies W4 weights exactly
// as it multiplies the source.
#include "kernels/w4_pack.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_cpu_backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace weft {
namespace {

using test::RandomQ4;

TEST(W4PackTest, RowsHaveTheByteLengthOfQ4_1) {
  for (int64_t cols : {32, 64, 576, 4096}) {
    EXPECT_EQ(RowBytes(DType::kW4, cols), RowBytes(DType::kQ4_1, cols));
  }
  EXPECT_EQ(DTypeName(DType::kW4), "W4");
}

TEST(W4PackTest, EveryElementDequantizesToTheSourceValueExactly) {
  std::mt19937 rng(11);
  for (DType dtype : {DType::kQ4_0, DType::kQ4_1}) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 32}, {3, 64},
                              {5, 576}, {2, 4096}, {7, 96}}) {
      SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " " << rows
                                      << "x" << cols);
      const std::vector<uint8_t> src = RandomQ4(dtype, rows, cols, rng);
      std::vector<uint8_t> packed(rows * RowBytes(DType::kW4, cols), 0xAB);
      ASSERT_TRUE(RepackToW4(dtype, src.data(), rows, cols, packed.data()).ok());
      std::vector<float> want(cols), got(cols);
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(dtype, src.data() + r * RowBytes(dtype, cols),
                      want.data(), cols);
        DequantizeRow(DType::kW4, packed.data() + r * RowBytes(DType::kW4, cols),
                      got.data(), cols);
        // Equal as floats (Q4_0's d·(8 − 8) with d < 0 is −0, W4's
        // d·8 + (−8d) is +0; the values are the same).
        ASSERT_EQ(got, want) << "row " << r;
      }
    }
  }
}

TEST(W4PackTest, RejectsOtherDtypesRaggedRowsAndHugeQ4_0Scales) {
  std::vector<uint8_t> src(4096), dst(4096);
  EXPECT_EQ(RepackToW4(DType::kQ8_0, src.data(), 1, 32, dst.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RepackToW4(DType::kQ4_1, src.data(), 1, 48, dst.data()).code(),
            absl::StatusCode::kInvalidArgument);
  BlockQ4_0 block{};
  block.d = FloatToHalf(60000.0f);  // -8d overflows f16
  EXPECT_EQ(RepackToW4(DType::kQ4_0, &block, 1, 32, dst.data()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(W4PackTest, ReferenceMatMulOfW4EqualsThatOfTheSource) {
  std::mt19937 rng(12);
  const int64_t n = 3, m = 9, k = 128;
  const std::vector<uint8_t> src = RandomQ4(DType::kQ4_1, m, k, rng);
  std::vector<uint8_t> packed(m * RowBytes(DType::kW4, k));
  ASSERT_TRUE(RepackToW4(DType::kQ4_1, src.data(), m, k, packed.data()).ok());
  std::vector<float> x = test::RandomVector(n * k, rng);
  CpuBackend cpu;
  std::vector<float> y_src(n * m), y_w4(n * m);
  auto w_src = cpu.UploadWeight(DType::kQ4_1, m, k, src.data());
  auto w_w4 = cpu.UploadWeight(DType::kW4, m, k, packed.data());
  ASSERT_TRUE(w_src.ok() && w_w4.ok());
  Tensor xt{DType::kF32, n, k, x.data()};
  Tensor ys{DType::kF32, n, m, y_src.data()}, yw{DType::kF32, n, m, y_w4.data()};
  ASSERT_TRUE(cpu.MatMul(xt, *w_src, nullptr, &ys).ok());
  ASSERT_TRUE(cpu.MatMul(xt, *w_w4, nullptr, &yw).ok());
  EXPECT_EQ(y_w4, y_src);
}

TEST(W4PackTest, FastCpuBackendRefusesW4) {
  auto fast = FastCpuBackend::Create(CpuBackendConfig{});
  if (!fast.ok()) GTEST_SKIP() << "no AVX2 here: " << fast.status();
  std::vector<uint8_t> bytes(RowBytes(DType::kW4, 64) * 2);
  EXPECT_EQ((*fast)->UploadWeight(DType::kW4, 2, 64, bytes.data()).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace weft
