// weft's own bf16 GEMM kernels (kernels/cuda/gemm_bf16.cu, gemm_wgmma.cu on
// Hopper) and the CUDA
// backend's GEMM autotune, against a double-precision CPU reference on the
// same bf16 operands, so only the GPU's fp32 accumulation differs: at most
// ~100 k16 partial-sum additions of running sums up to ~40 (k ≤ 1544, unit
// normal operands), each off by ≤ 1 ulp (2⁻²³ relative; tensor cores may
// truncate): atol 1e-3 + rtol 1e-4. Shapes cover one
// row, sizes that are not multiples of any tile, K not a multiple of the
// 32-element stage, and an output row stride wider than m (the padding
// columns must stay untouched). Outputs are NaN-poisoned before each run.
// Without a GPU every test skips with a message saying so.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef WEFT_HAVE_CUDA
#include "kernels/cuda/gemm_wgmma.h"
#endif
#include "kernels/gemm_plan.h"
#include "kernels/w4_pack.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/kernel_test_util.h"

namespace weft {
namespace {

#ifdef WEFT_HAVE_CUDA

// A device bf16 matrix [rows, cols] holding `values` rounded to bf16, and
// those rounded values on the host.
struct Bf16Matrix {
  Tensor device;
  std::vector<float> rounded;
};
Bf16Matrix UploadBf16(CudaBackend& backend, int64_t rows, int64_t cols,
                      std::mt19937& rng) {
  std::vector<float> values = test::RandomVector(rows * cols, rng);
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = FloatToBf16(values[i]);
  auto t = backend.UploadWeight(DType::kBF16, rows, cols, bits.data());
  EXPECT_TRUE(t.ok()) << t.status();
  return Bf16Matrix{t.ok() ? *t : Tensor{}, test::RoundToBf16(values)};
}

// y[i, j] = Σ x[i, :] · w[j, :] in double.
std::vector<float> Reference(const std::vector<float>& x,
                             const std::vector<float>& w, int64_t n,
                             int64_t m, int64_t k) {
  std::vector<float> y(n * m);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double sum = 0;
      for (int64_t e = 0; e < k; ++e) sum += double(x[i * k + e]) * w[j * k + e];
      y[i * m + j] = static_cast<float>(sum);
    }
  }
  return y;
}

// Runs `kernel` into a NaN-poisoned y with row stride m + 3, checks the
// three padding columns stayed NaN and the rest is within tolerance of
// `want`.
void ExpectKernelMatches(CudaBackend& backend, GemmKernelId kernel,
                         const Bf16Matrix& x, const Bf16Matrix& w, int64_t n,
                         int64_t m, int64_t k, const std::vector<float>& want) {
  const int64_t ldy = m + 3;
  Tensor y = test::PoisonedF32(backend, n, ldy);
  absl::Status s = backend.GemmBf16With(kernel, x.device.data, w.device.data,
                                        static_cast<float*>(y.data), n, m, k,
                                        ldy);
  ASSERT_TRUE(s.ok()) << s;
  const std::vector<float> got = test::ToHost(backend, y);
  std::vector<float> dense(n * m);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < ldy; ++j) {
      if (j < m) {
        dense[i * m + j] = got[i * ldy + j];
      } else {
        ASSERT_TRUE(std::isnan(got[i * ldy + j]))
            << "padding written at row " << i << " col " << j;
      }
    }
  }
  test::ExpectNear(dense, want, 1e-3f, 1e-4f);
}

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // n, m, k
constexpr Shape kShapes[] = {{1, 64, 64},    {7, 33, 40},     {64, 128, 32},
                             {130, 200, 8},  {257, 129, 1544}, {33, 576, 576},
                             {200, 1000, 96},
                             // wgmma: 17 K stages (the ring wraps), 3 × 3
                             // tiles of 128 × 256, ragged on every side.
                             {300, 520, 1032},
                             // 9 row tiles of 128 (17 of 64): the blocks'
                             // grouped order ends in a partial group.
                             {1100, 136, 72}};

// Every kernel of ours that `wanted` selects, on every shape of kShapes.
void ExpectOwnKernelsMatch(CudaBackend& backend, bool (*wanted)(GemmKernelId)) {
  std::mt19937 rng(5);
  for (auto [n, m, k] : kShapes) {
    const Bf16Matrix x = UploadBf16(backend, n, k, rng);
    const Bf16Matrix w = UploadBf16(backend, m, k, rng);
    const std::vector<float> want = Reference(x.rounded, w.rounded, n, m, k);
    for (GemmKernelId kernel : kOwnGemmKernels) {
      if (!wanted(kernel)) continue;
      SCOPED_TRACE(testing::Message() << GemmKernelName(kernel) << " n=" << n
                                      << " m=" << m << " k=" << k);
      ExpectKernelMatches(backend, kernel, x, w, n, m, k, want);
    }
  }
}

TEST(CudaGemmTest, EveryOwnKernelMatchesTheReference) {
  auto backend = test::MakeCudaOrNull();
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  // The wgmma kernels: WgmmaKernelsMatchTheReference.
  ExpectOwnKernelsMatch(*backend, [](GemmKernelId id) { return !IsWgmmaGemm(id); });
}

// Apart, so tools/gpu-check's runner can run it first and turn the Hopper
// kernels off (WEFT_NO_WGMMA) for its later steps if it fails.
TEST(CudaGemmTest, WgmmaKernelsMatchTheReference) {
  auto backend = test::MakeCudaOrNull();
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  if (!cuda::WgmmaAvailable()) {
    GTEST_SKIP() << "not a compute capability 9.0 GPU, or WEFT_NO_WGMMA set";
  }
  ExpectOwnKernelsMatch(*backend, IsWgmmaGemm);
}

TEST(CudaGemmTest, SkinnyKernelMatchesTheReferenceUpToSixteenRows) {
  auto backend = test::MakeCudaOrNull();
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  std::mt19937 rng(9);
  for (auto [m, k] : {std::pair<int64_t, int64_t>{16, 32}, {33, 96},
                      {200, 576}, {1000, 1536}, {7, 4096}}) {
    const Bf16Matrix w = UploadBf16(*backend, m, k, rng);
    for (int64_t n : {1, 2, 3, 8, 9, 16}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " m=" << m << " k=" << k);
      const Bf16Matrix x = UploadBf16(*backend, n, k, rng);
      const std::vector<float> want = Reference(x.rounded, w.rounded, n, m, k);
      ExpectKernelMatches(*backend, GemmKernelId::kSkinny, x, w, n, m, k,
                          want);
    }
  }
}

// --weight_dtype int4: Q4 matrices become W4 and MatMul multiplies them
// with the W4A16 kernel (n ≤ 64, 16 rows at a time: Σ (d·q + m)·x in fp32,
// checked against the reference backend on the same W4 weight and the
// bf16-rounded x) or by dequantizing to bf16 first (n > 64: checked against
// the bf16-rounded weights). Tolerances as for MatMul in cuda_ops_test: atol 1e-3, rtol 1e-3.
TEST(CudaGemmTest, Int4WeightsMultiplyAsTheReference) {
  CudaBackendConfig config;
  config.weight_format = CudaWeightFormat::kInt4;
  config.max_num_tokens = 128;
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  CpuBackend cpu;
  std::mt19937 rng(10);
  for (DType dtype : {DType::kQ4_1, DType::kQ4_0}) {
    for (auto [m, k] : {std::pair<int64_t, int64_t>{16, 64}, {33, 576},
                        {300, 1536}, {9, 4096}}) {
      const std::vector<uint8_t> q = test::RandomQ4(dtype, m, k, rng);
      auto gw = backend->UploadWeight(dtype, m, k, q.data());
      ASSERT_TRUE(gw.ok()) << gw.status();
      ASSERT_EQ(gw->dtype, DType::kW4);
      std::vector<uint8_t> packed(m * RowBytes(DType::kW4, k));
      ASSERT_TRUE(RepackToW4(dtype, q.data(), m, k, packed.data()).ok());
      std::vector<float> w_exact(m * k);
      for (int64_t r = 0; r < m; ++r) {
        DequantizeRow(DType::kW4, packed.data() + r * RowBytes(DType::kW4, k),
                      &w_exact[r * k], k);
      }
      for (int64_t n : {1, 5, 16, 40, 100}) {
        SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " n=" << n
                                        << " m=" << m << " k=" << k);
        std::vector<float> x = test::RandomVector(n * k, rng);
        const std::vector<float> x_ref = test::RoundToBf16(x);
        const std::vector<float> w_ref =
            n > 64 ? test::RoundToBf16(w_exact) : w_exact;
        std::vector<float> want(n * m);
        Tensor xt{DType::kF32, n, k, const_cast<float*>(x_ref.data())};
        Tensor wt{DType::kF32, m, k, const_cast<float*>(w_ref.data())};
        Tensor yt{DType::kF32, n, m, want.data()};
        ASSERT_TRUE(cpu.UploadWeight(DType::kF32, m, k, w_ref.data()).ok());
        ASSERT_TRUE(cpu.MatMul(xt, wt, nullptr, &yt).ok());
        Tensor gx = test::DeviceF32(*backend, n, k, x);
        Tensor gy = test::PoisonedF32(*backend, n, m);
        absl::Status s = backend->MatMul(gx, *gw, nullptr, &gy);
        ASSERT_TRUE(s.ok()) << s;
        test::ExpectNear(test::ToHost(*backend, gy), want, 1e-3f, 1e-3f);
      }
    }
  }
}

TEST(CudaGemmTest, Int4QuantizesFloatsAndKeepsBf16WhereW4CannotGo) {
  CudaBackendConfig config;
  config.weight_format = CudaWeightFormat::kInt4;
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  std::mt19937 rng(11);
  // Rows of 96 (not a multiple of 64) and Q8_0 stay bf16; float matrices
  // are quantized to W4.
  std::vector<float> f32(4 * 64, 0.25f);
  auto tf = backend->UploadWeight(DType::kF32, 4, 64, f32.data());
  ASSERT_TRUE(tf.ok());
  EXPECT_EQ(tf->dtype, DType::kW4);
  const std::vector<uint8_t> q96 = test::RandomQ4(DType::kQ4_1, 4, 96, rng);
  auto t96 = backend->UploadWeight(DType::kQ4_1, 4, 96, q96.data());
  ASSERT_TRUE(t96.ok());
  EXPECT_EQ(t96->dtype, DType::kBF16);
  std::vector<uint8_t> q8(4 * RowBytes(DType::kQ8_0, 64));
  auto t8 = backend->UploadWeight(DType::kQ8_0, 4, 64, q8.data());
  ASSERT_TRUE(t8.ok());
  EXPECT_EQ(t8->dtype, DType::kBF16);
}

TEST(CudaGemmTest, OwnKernelsRejectKNotAMultipleOf8) {
  auto backend = test::MakeCudaOrNull();
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  std::mt19937 rng(6);
  const Bf16Matrix x = UploadBf16(*backend, 4, 36, rng);
  const Bf16Matrix w = UploadBf16(*backend, 8, 36, rng);
  Tensor y = test::PoisonedF32(*backend, 4, 8);
  EXPECT_EQ(backend
                ->GemmBf16With(GemmKernelId::kTiled64x64, x.device.data,
                               w.device.data, static_cast<float*>(y.data), 4,
                               8, 36, 8)
                .code(),
            absl::StatusCode::kInvalidArgument);
  // cuBLAS takes it.
  EXPECT_TRUE(backend
                  ->GemmBf16With(GemmKernelId::kCublas, x.device.data,
                                 w.device.data, static_cast<float*>(y.data),
                                 4, 8, 36, 8)
                  .ok());
}

// MatMul through the backend with each policy gives the same result within
// summation order (the MatMul parity test in cuda_ops_test covers cuBLAS
// against the CPU).
TEST(CudaGemmTest, MatMulAgreesAcrossGemmPolicies) {
  std::mt19937 rng(7);
  const int64_t n = 77, m = 300, k = 576;
  const std::vector<float> x = test::RandomVector(n * k, rng);
  const std::vector<float> w = test::RandomVector(m * k, rng, 0.1f);
  std::vector<std::vector<float>> results;
  for (GemmPolicy policy :
       {GemmPolicy::kCublas, GemmPolicy::kOwn, GemmPolicy::kInvariant}) {
    CudaBackendConfig config;
    config.gemm = policy;
    config.max_num_tokens = 128;
    auto backend = test::MakeCudaOrNull(config);
    if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
    auto wt = backend->UploadWeight(DType::kF32, m, k, w.data());
    ASSERT_TRUE(wt.ok()) << wt.status();
    Tensor xt = test::DeviceF32(*backend, n, k, x);
    Tensor yt = test::PoisonedF32(*backend, n, m);
    ASSERT_TRUE(backend->MatMul(xt, *wt, nullptr, &yt).ok());
    results.push_back(test::ToHost(*backend, yt));
  }
  test::ExpectNear(results[1], results[0], 1e-3f, 1e-3f);
  test::ExpectNear(results[2], results[0], 1e-3f, 1e-3f);
}

// GemmPolicy::kInvariant: a row's output has the same bits whatever the
// number of rows it is multiplied with (decode, small and large batches,
// the W4 paths below and above 64 rows included).
TEST(CudaGemmTest, InvariantPolicyGivesARowTheSameBitsAtEveryRowCount) {
  std::mt19937 rng(11);
  const int64_t m = 300, k = 576, max_n = 200;
  const std::vector<float> x = test::RandomVector(max_n * k, rng);
  const std::vector<float> w = test::RandomVector(m * k, rng, 0.1f);
  for (CudaWeightFormat format : {CudaWeightFormat::kBf16, CudaWeightFormat::kInt4}) {
    CudaBackendConfig config;
    config.gemm = GemmPolicy::kInvariant;
    config.weight_format = format;
    config.max_num_tokens = max_n;
    auto backend = test::MakeCudaOrNull(config);
    if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
    auto wt = backend->UploadWeight(DType::kF32, m, k, w.data());
    ASSERT_TRUE(wt.ok()) << wt.status();
    std::vector<float> first;  // row 0's output, from a MatMul of 1 row
    for (int64_t n : {1, 3, 16, 17, 64, 65, 200}) {
      SCOPED_TRACE(absl::StrCat(format == CudaWeightFormat::kInt4 ? "int4" : "bf16",
                                ", ", n, " rows"));
      Tensor xt = test::DeviceF32(*backend, n, k,
                                  std::vector<float>(x.begin(), x.begin() + n * k));
      Tensor yt = test::PoisonedF32(*backend, n, m);
      ASSERT_TRUE(backend->MatMul(xt, *wt, nullptr, &yt).ok());
      const std::vector<float> y = test::ToHost(*backend, yt);
      const std::vector<float> row0(y.begin(), y.begin() + m);
      if (first.empty()) {
        first = row0;
      } else {
        ASSERT_EQ(std::memcmp(row0.data(), first.data(), m * sizeof(float)), 0);
      }
    }
  }
}

TEST(CudaGemmTest, WarmUpTunesEveryWeightShapeAndReportsIt) {
  CudaBackendConfig config;
  config.max_num_tokens = 96;  // buckets 1-16 (skinny), 32, 64, 128 (at 96 rows)
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  std::mt19937 rng(8);
  for (auto [m, k] : {std::pair<int64_t, int64_t>{576, 576}, {1536, 576},
                      {576, 1536}}) {
    std::vector<float> w = test::RandomVector(m * k, rng, 0.05f);
    ASSERT_TRUE(backend->UploadWeight(DType::kF32, m, k, w.data()).ok());
  }
  std::string report;
  absl::Status s = backend->WarmUp(&report);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_FALSE(backend->gemm_plan().empty());
  for (const char* shape : {"gemm 576x576:", "gemm 1536x576:", "gemm 576x1536:"}) {
    EXPECT_NE(report.find(shape), std::string::npos) << report;
  }
  EXPECT_NE(report.find(" 128:"), std::string::npos) << report;
  // The tuned plan computes what cuBLAS computes.
  const int64_t n = 70, m = 1536, k = 576;
  std::vector<float> w = test::RandomVector(m * k, rng, 0.05f);
  auto wt = backend->UploadWeight(DType::kF32, m, k, w.data());
  ASSERT_TRUE(wt.ok());
  Tensor xt = test::DeviceF32(*backend, n, k, test::RandomVector(n * k, rng));
  Tensor tuned = test::PoisonedF32(*backend, n, m);
  ASSERT_TRUE(backend->MatMul(xt, *wt, nullptr, &tuned).ok());
  std::printf("%s", report.c_str());
  // cuBLAS on the same operands (x rounded to bf16 by MatMul's own path is
  // what both see, so round it the same way here).
  std::vector<float> x_host = test::ToHost(*backend, xt);
  std::vector<uint16_t> x_bits(x_host.size());
  for (size_t i = 0; i < x_host.size(); ++i) x_bits[i] = FloatToBf16(x_host[i]);
  auto xb = backend->UploadWeight(DType::kBF16, n, k, x_bits.data());
  ASSERT_TRUE(xb.ok());
  Tensor ref = test::PoisonedF32(*backend, n, m);
  ASSERT_TRUE(backend
                  ->GemmBf16With(GemmKernelId::kCublas, xb->data, wt->data,
                                 static_cast<float*>(ref.data), n, m, k, m)
                  .ok());
  test::ExpectNear(test::ToHost(*backend, tuned), test::ToHost(*backend, ref),
                   1e-3f, 1e-3f);
}

#else  // !WEFT_HAVE_CUDA

TEST(CudaGemmTest, SkippedWithoutCuda) { GTEST_SKIP() << test::kNoGpu; }

#endif  // WEFT_HAVE_CUDA

}  // namespace
}  // namespace weft
