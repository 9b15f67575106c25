// W4, the CUDA backend's repacking of Q4_0/Q4_1 (kernels/w4_pack.h): every
// element dequantizes to exactly what the GGML source gives, rows keep their
// byte length, and the reference CPU backend multiplies W4 weights exactly
// as it multiplies the source.
#include "kernels/w4_pack.h"

#include <algorithm>
#include <cmath>
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

TEST(W4PackTest, QuantizingFloatsKeepsEveryElementWithinHalfAStep) {
  std::mt19937 rng(13);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const int64_t rows = 5, cols = 576;
    std::vector<float> values = test::RandomVector(rows * cols, rng, 0.05f);
    values[7] = 0.4f;  // an outlier widens its group's step
    std::vector<uint16_t> bf16(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      bf16[i] = FloatToBf16(values[i]);
      if (dtype == DType::kBF16) values[i] = Bf16ToFloat(bf16[i]);
    }
    const void* src = dtype == DType::kF32 ? static_cast<const void*>(values.data())
                                           : static_cast<const void*>(bf16.data());
    std::vector<uint8_t> packed(rows * RowBytes(DType::kW4, cols));
    ASSERT_TRUE(QuantizeToW4(dtype, src, rows, cols, packed.data()).ok());
    std::vector<float> got(cols);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = packed.data() + r * RowBytes(DType::kW4, cols);
      DequantizeRow(DType::kW4, row, got.data(), cols);
      for (int64_t g = 0; g < cols / 32; ++g) {
        float lo = values[r * cols + g * 32], hi = lo;
        for (int j = 0; j < 32; ++j) {
          lo = std::min(lo, values[r * cols + g * 32 + j]);
          hi = std::max(hi, values[r * cols + g * 32 + j]);
        }
        // Half a step, plus f16 rounding of d (×15 steps) and of m.
        const float step = (hi - lo) / 15;
        const float bound = step / 2 + 15 * step * 1e-3f + std::fabs(lo) * 1e-3f;
        for (int j = 0; j < 32; ++j) {
          const int64_t c = g * 32 + j;
          ASSERT_NEAR(got[c], values[r * cols + c], bound)
              << DTypeName(dtype) << " row " << r << " col " << c;
        }
      }
    }
  }
  std::vector<uint8_t> dst(64);
  std::vector<float> q8(32);
  EXPECT_EQ(QuantizeToW4(DType::kQ8_0, q8.data(), 1, 32, dst.data()).code(),
            absl::StatusCode::kInvalidArgument);
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

TEST(W4PackTest, QuantizingRefusesValuesW4CannotHold) {
  std::vector<uint8_t> dst(2 * RowBytes(DType::kW4, 64));
  auto quantize = [&](std::vector<float> row) {
    return QuantizeToW4(DType::kF32, row.data(), 1, 64, dst.data()).code();
  };
  std::vector<float> fine(64, 1.0f);
  fine[40] = -3.0f;
  EXPECT_EQ(quantize(fine), absl::StatusCode::kOk);
  std::vector<float> range = fine;  // the minimum -7e4 overflows f16
  range[1] = -7e4f;
  EXPECT_EQ(quantize(range), absl::StatusCode::kInvalidArgument);
  std::vector<float> large = fine;  // min -6e4 and d = 1.2e5 / 15 both fit
  large[33] = 6e4f;
  large[34] = -6e4f;
  EXPECT_EQ(quantize(large), absl::StatusCode::kOk);
  std::vector<float> wide(64, 0.0f);  // d = 1.06e6 / 15 overflows f16
  wide[0] = -6e4f;
  wide[1] = 1e6f;
  EXPECT_EQ(quantize(wide), absl::StatusCode::kInvalidArgument);
  for (float bad : {NAN, INFINITY}) {
    std::vector<float> row = fine;
    row[63] = bad;  // the second group
    EXPECT_EQ(quantize(row), absl::StatusCode::kInvalidArgument) << bad;
  }
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
