// The CUDA backend's memory and small ops against the CPU reference
// (CpuBackend) on seeded random inputs, five or more shapes each (odd sizes,
// one row, sizes past a thread block), outputs NaN-poisoned before each run.
// Tolerances (atol + rtol·|ref|), by what the GPU rounds:
//   weight upload      the CPU's dequantized value rounded to bf16 (the GPU
//                      rounds the same way); ± 1 bf16 ulp allowed: rtol 2⁻⁷
//   Embedding          the CPU's fp32 row within bf16 rounding: rtol 2⁻⁸
//   RmsNorm, SiluMul   fp32 both sides: atol 1e-5, rtol 1e-4 (norm: fp32 vs
//                      double sum of squares; silu: expf vs std::exp)
//   residual add       exact
//   GatherRows         exact
//   MatMul             against the CPU on bf16-rounded x and w (what the GPU
//                      multiplies), so only fp32 summation order differs:
//                      atol 1e-3, rtol 1e-3
// Without a GPU every test skips with a message saying so.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/kernel_test_util.h"

namespace weft {
namespace {

#ifdef WEFT_HAVE_CUDA

using test::ExpectNear;
using test::RandomVector;

// Quantizes `values` (a multiple of 32) into GGML blocks of `dtype` the plain
// way; the tests compare against DequantizeRow of the result, so the
// quantizer's own accuracy does not matter.
std::vector<uint8_t> Quantize(DType dtype, const std::vector<float>& values) {
  const int64_t blocks = values.size() / 32;
  std::vector<uint8_t> out(blocks * DTypeBlockBytes(dtype));
  for (int64_t b = 0; b < blocks; ++b) {
    const float* x = &values[b * 32];
    uint8_t* dst = out.data() + b * DTypeBlockBytes(dtype);
    float lo = x[0], hi = x[0], amax = 0;
    for (int j = 0; j < 32; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
      amax = std::max(amax, std::fabs(x[j]));
    }
    if (dtype == DType::kQ8_0) {
      BlockQ8_0 block;
      block.d = FloatToHalf(amax / 127);
      const float d = HalfToFloat(block.d);
      for (int j = 0; j < 32; ++j) {
        block.qs[j] = static_cast<int8_t>(
            std::clamp<long>(std::lround(d == 0 ? 0 : x[j] / d), -127, 127));
      }
      std::memcpy(dst, &block, sizeof(block));
    } else if (dtype == DType::kQ4_0) {
      BlockQ4_0 block;
      block.d = FloatToHalf(amax / 7);
      const float d = HalfToFloat(block.d);
      auto q = [&](float v) {
        return static_cast<int>(std::clamp<long>(
            std::lround(d == 0 ? 0 : v / d) + 8, 0, 15));
      };
      for (int j = 0; j < 16; ++j) block.qs[j] = uint8_t(q(x[j]) | q(x[j + 16]) << 4);
      std::memcpy(dst, &block, sizeof(block));
    } else {
      BlockQ4_1 block;
      block.d = FloatToHalf((hi - lo) / 15);
      block.m = FloatToHalf(lo);
      const float d = HalfToFloat(block.d), m = HalfToFloat(block.m);
      auto q = [&](float v) {
        return static_cast<int>(
            std::clamp<long>(std::lround(d == 0 ? 0 : (v - m) / d), 0, 15));
      };
      for (int j = 0; j < 16; ++j) block.qs[j] = uint8_t(q(x[j]) | q(x[j + 16]) << 4);
      std::memcpy(dst, &block, sizeof(block));
    }
  }
  return out;
}

// `values` stored as `dtype` (host bytes as a model file holds them).
std::vector<uint8_t> Encode(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> out;
  if (dtype == DType::kF32) {
    out.resize(values.size() * 4);
    std::memcpy(out.data(), values.data(), out.size());
  } else if (dtype == DType::kF16 || dtype == DType::kBF16) {
    out.resize(values.size() * 2);
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t bits =
          dtype == DType::kF16 ? FloatToHalf(values[i]) : FloatToBf16(values[i]);
      std::memcpy(out.data() + 2 * i, &bits, 2);
    }
  } else {
    out = Quantize(dtype, values);
  }
  return out;
}

std::vector<float> Decode(DType dtype, const std::vector<uint8_t>& bytes,
                          int64_t n) {
  std::vector<float> out(n);
  DequantizeRow(dtype, bytes.data(), out.data(), n);
  return out;
}

constexpr DType kAllDTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16,
                                DType::kQ8_0, DType::kQ4_0, DType::kQ4_1};

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = test::MakeCudaOrNull();
    if (backend_ == nullptr) GTEST_SKIP() << test::kNoGpu;
  }
  // Both backends get a small cache so batches can be staged.
  void AllocateCaches() {
    KvCacheShape shape{1, 64, 16, 1, 64, DType::kF32};
    ASSERT_TRUE(cpu_.AllocateKvCache(shape).ok());
    shape.dtype = DType::kBF16;
    ASSERT_TRUE(backend_->AllocateKvCache(shape).ok());
  }
  std::unique_ptr<CudaBackend> backend_;
  CpuBackend cpu_;
};

TEST_F(CudaOpsTest, UploadWeightConvertsEveryDTypeToBf16OnTheGpu) {
  std::mt19937 rng(11);
  for (DType dtype : kAllDTypes) {
    for (auto [rows, cols] : {std::pair{2, 32}, {3, 64}, {7, 96}, {33, 576},
                              {2, 4096}, {1025, 32}}) {
      SCOPED_TRACE(testing::Message() << DTypeName(dtype) << " " << rows
                                      << "x" << cols);
      const std::vector<float> values = RandomVector(size_t(rows) * cols, rng);
      const std::vector<uint8_t> bytes = Encode(dtype, values);
      auto w = backend_->UploadWeight(dtype, rows, cols, bytes.data());
      ASSERT_TRUE(w.ok()) << w.status();
      EXPECT_EQ(w->dtype, DType::kBF16);
      const std::vector<float> want =
          test::RoundToBf16(Decode(dtype, bytes, int64_t{rows} * cols));
      ExpectNear(test::ToHost(*backend_, *w), want, 1e-7f, 1.0f / 128);
    }
  }
}

TEST_F(CudaOpsTest, OneRowF32WeightsStayF32) {
  std::mt19937 rng(12);
  for (int cols : {1, 7, 64, 576, 4097}) {
    const std::vector<float> values = RandomVector(cols, rng);
    auto w = backend_->UploadWeight(DType::kF32, 1, cols, values.data());
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->dtype, DType::kF32);
    ExpectNear(test::ToHost(*backend_, *w), values, 0, 0);
  }
}

TEST_F(CudaOpsTest, EmbeddingMatchesCpu) {
  AllocateCaches();
  std::mt19937 rng(13);
  for (auto [vocab, hidden, n] : {std::tuple{5, 64, 1}, {37, 96, 17},
                                  {100, 576, 33}, {1000, 128, 64},
                                  {3, 32, 5}}) {
    for (DType dtype : {DType::kF32, DType::kQ4_1, DType::kQ8_0}) {
      SCOPED_TRACE(testing::Message() << vocab << "x" << hidden << " n=" << n
                                      << " " << DTypeName(dtype));
      const std::vector<uint8_t> table = Encode(
          dtype, RandomVector(size_t(vocab) * hidden, rng));
      std::mt19937 layout(1);
      BatchMetadata batch = test::ScatteredBatch({{n, n}}, 16, 64, layout);
      std::uniform_int_distribution<int> id(0, vocab - 1);
      for (int32_t& t : batch.token_ids) t = id(rng);
      batch.token_ids[0] = vocab - 1;
      auto cpu_table = cpu_.UploadWeight(dtype, vocab, hidden, table.data());
      auto gpu_table = backend_->UploadWeight(dtype, vocab, hidden, table.data());
      ASSERT_TRUE(cpu_table.ok() && gpu_table.ok());
      std::vector<float> want(size_t(n) * hidden);
      Tensor want_t{DType::kF32, n, hidden, want.data()};
      auto cpu_view = cpu_.StageBatch(batch);
      ASSERT_TRUE(cpu_view.ok()) << cpu_view.status();
      ASSERT_TRUE(cpu_.Embedding(*cpu_table, *cpu_view, &want_t).ok());
      Tensor out = test::PoisonedF32(*backend_, n, hidden);
      auto view = backend_->StageBatch(batch);
      ASSERT_TRUE(view.ok()) << view.status();
      ASSERT_TRUE(backend_->Embedding(*gpu_table, *view, &out).ok());
      ExpectNear(test::ToHost(*backend_, out), want, 1e-6f, 1.0f / 256);
    }
  }
}

TEST(CudaOpsInt4Test, EmbeddingOfAW4TableEqualsTheCpuExactly) {
  CudaBackendConfig config;
  config.weight_format = CudaWeightFormat::kInt4;
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  CpuBackend cpu;
  KvCacheShape shape{1, 64, 16, 1, 64, DType::kF32};
  ASSERT_TRUE(cpu.AllocateKvCache(shape).ok());
  shape.dtype = DType::kBF16;
  ASSERT_TRUE(backend->AllocateKvCache(shape).ok());
  std::mt19937 rng(14);
  const int vocab = 50, hidden = 128, n = 9;
  const std::vector<uint8_t> table = test::RandomQ4(DType::kQ4_1, vocab, hidden, rng);
  auto gpu_table = backend->UploadWeight(DType::kQ4_1, vocab, hidden, table.data());
  auto cpu_table = cpu.UploadWeight(DType::kQ4_1, vocab, hidden, table.data());
  ASSERT_TRUE(gpu_table.ok() && cpu_table.ok());
  ASSERT_EQ(gpu_table->dtype, DType::kW4);
  std::mt19937 layout(1);
  BatchMetadata batch = test::ScatteredBatch({{n, n}}, 16, 64, layout);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  for (int32_t& t : batch.token_ids) t = id(rng);
  std::vector<float> want(n * hidden);
  Tensor want_t{DType::kF32, n, hidden, want.data()};
  auto cpu_view = cpu.StageBatch(batch);
  ASSERT_TRUE(cpu_view.ok());
  ASSERT_TRUE(cpu.Embedding(*cpu_table, *cpu_view, &want_t).ok());
  Tensor out = test::PoisonedF32(*backend, n, hidden);
  auto view = backend->StageBatch(batch);
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_TRUE(backend->Embedding(*gpu_table, *view, &out).ok());
  EXPECT_EQ(test::ToHost(*backend, out), want);
}

TEST_F(CudaOpsTest, EmbeddingRejectsTokenOutsideTable) {
  AllocateCaches();
  std::vector<float> table(4 * 32, 1.0f);
  auto t = backend_->UploadWeight(DType::kF32, 4, 32, table.data());
  ASSERT_TRUE(t.ok());
  std::mt19937 layout(1);
  BatchMetadata batch = test::ScatteredBatch({{2, 2}}, 16, 64, layout);
  batch.token_ids[1] = 4;
  auto view = backend_->StageBatch(batch);
  ASSERT_TRUE(view.ok());
  Tensor out = test::PoisonedF32(*backend_, 2, 32);
  EXPECT_EQ(backend_->Embedding(*t, *view, &out).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaOpsTest, RmsNormAndAddRmsNormMatchCpu) {
  std::mt19937 rng(14);
  for (auto [rows, cols] : {std::pair{1, 64}, {3, 576}, {17, 1000},
                            {64, 4096}, {5, 33}, {2, 257}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << cols);
    std::vector<float> x = RandomVector(size_t(rows) * cols, rng);
    std::vector<float> residual = RandomVector(x.size(), rng);
    std::vector<float> weight = RandomVector(cols, rng);
    // CPU.
    std::vector<float> want_norm(x.size()), want_add(x.size());
    std::vector<float> cpu_residual = residual;
    Tensor xt{DType::kF32, rows, cols, x.data()};
    Tensor wt{DType::kF32, 1, cols, weight.data()};
    Tensor rt{DType::kF32, rows, cols, cpu_residual.data()};
    Tensor o1{DType::kF32, rows, cols, want_norm.data()};
    Tensor o2{DType::kF32, rows, cols, want_add.data()};
    ASSERT_TRUE(cpu_.RmsNorm(xt, wt, 1e-5f, &o1).ok());
    ASSERT_TRUE(cpu_.AddRmsNorm(&rt, xt, wt, 1e-5f, &o2).ok());
    // GPU.
    Tensor gx = test::DeviceF32(*backend_, rows, cols, x);
    Tensor gr = test::DeviceF32(*backend_, rows, cols, residual);
    auto gw = backend_->UploadWeight(DType::kF32, 1, cols, weight.data());
    ASSERT_TRUE(gw.ok());
    Tensor g1 = test::PoisonedF32(*backend_, rows, cols);
    Tensor g2 = test::PoisonedF32(*backend_, rows, cols);
    ASSERT_TRUE(backend_->RmsNorm(gx, *gw, 1e-5f, &g1).ok());
    ASSERT_TRUE(backend_->AddRmsNorm(&gr, gx, *gw, 1e-5f, &g2).ok());
    ExpectNear(test::ToHost(*backend_, g1), want_norm, 1e-5f, 1e-4f);
    ExpectNear(test::ToHost(*backend_, gr), cpu_residual, 0, 0);
    ExpectNear(test::ToHost(*backend_, g2), want_add, 1e-5f, 1e-4f);
  }
}

TEST_F(CudaOpsTest, SiluMulMatchesCpuAlsoInPlace) {
  std::mt19937 rng(15);
  for (auto [rows, cols] : {std::pair{1, 1}, {3, 1536}, {17, 33},
                            {64, 4097}, {5, 7}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << cols);
    std::vector<float> gate = RandomVector(size_t(rows) * cols, rng, 3);
    std::vector<float> up = RandomVector(gate.size(), rng);
    std::vector<float> want(gate.size());
    Tensor gt{DType::kF32, rows, cols, gate.data()};
    Tensor ut{DType::kF32, rows, cols, up.data()};
    Tensor wt{DType::kF32, rows, cols, want.data()};
    ASSERT_TRUE(cpu_.SiluMul(gt, ut, &wt).ok());
    Tensor g = test::DeviceF32(*backend_, rows, cols, gate);
    Tensor u = test::DeviceF32(*backend_, rows, cols, up);
    Tensor out = test::PoisonedF32(*backend_, rows, cols);
    ASSERT_TRUE(backend_->SiluMul(g, u, &out).ok());
    ExpectNear(test::ToHost(*backend_, out), want, 1e-5f, 1e-4f);
    ASSERT_TRUE(backend_->SiluMul(g, u, &g).ok());  // out aliases gate
    ExpectNear(test::ToHost(*backend_, g), want, 1e-5f, 1e-4f);
  }
}

TEST_F(CudaOpsTest, GatherRowsCopiesTheLogitsRows) {
  AllocateCaches();
  std::mt19937 rng(16);
  for (auto [n, cols] : {std::pair{1, 64}, {17, 576}, {33, 49}, {64, 4096},
                         {5, 1}}) {
    SCOPED_TRACE(testing::Message() << n << "x" << cols);
    std::mt19937 layout(2);
    BatchMetadata batch = test::ScatteredBatch({{n, n}}, 16, 64, layout);
    batch.logits_rows.clear();
    for (int i = n - 1; i >= 0; i -= 2) batch.logits_rows.push_back(i);
    batch.logits_rows.push_back(0);
    const int num_logits = static_cast<int>(batch.logits_rows.size());
    std::vector<float> x = RandomVector(size_t(n) * cols, rng);
    std::vector<float> want(size_t(num_logits) * cols);
    auto cpu_view = cpu_.StageBatch(batch);
    ASSERT_TRUE(cpu_view.ok());
    Tensor xt{DType::kF32, n, cols, x.data()};
    Tensor wt{DType::kF32, num_logits, cols, want.data()};
    ASSERT_TRUE(cpu_.GatherRows(xt, *cpu_view, &wt).ok());
    Tensor gx = test::DeviceF32(*backend_, n, cols, x);
    Tensor out = test::PoisonedF32(*backend_, num_logits, cols);
    auto view = backend_->StageBatch(batch);
    ASSERT_TRUE(view.ok()) << view.status();
    ASSERT_TRUE(backend_->GatherRows(gx, *view, &out).ok());
    ExpectNear(test::ToHost(*backend_, out), want, 0, 0);
  }
}

// Greedy sampling's argmax on the GPU against the host scan (ArgMaxRows):
// ties to the lowest index, all -inf rows, +inf, NaN rows (-1), widths
// that are and are not multiples of 4 (the vector and scalar loads), the
// Llama-3 vocabulary; the ids are poisoned first.
TEST_F(CudaOpsTest, ArgMaxRowsMatchesTheHostScan) {
  AllocateCaches();  // plans the device result buffer
  std::mt19937 rng(21);
  const float inf = std::numeric_limits<float>::infinity();
  for (auto [rows, cols] : {std::pair{1, 1}, {7, 49}, {16, 576}, {3, 49152},
                            {9, 128256}, {5, 1001}}) {
    SCOPED_TRACE(testing::Message() << rows << "x" << cols);
    std::vector<float> x = RandomVector(size_t(rows) * cols, rng);
    // Integers make ties likely; row 1 all -inf, row 2 a late +inf twice,
    // row 3 a NaN, row 4 a tie between the first and the last column.
    for (float& v : x) v = std::round(v * 3);
    auto row = [&](int r) { return x.data() + size_t(r) * cols; };
    if (rows > 1) std::fill(row(1), row(1) + cols, -inf);
    if (rows > 2) row(2)[cols - 1] = row(2)[cols / 2] = inf;
    if (rows > 3) row(3)[cols / 3] = std::numeric_limits<float>::quiet_NaN();
    if (rows > 4) row(4)[0] = row(4)[cols - 1] = 100;
    std::vector<int32_t> want(rows);
    ArgMaxRows(x.data(), rows, cols, want.data());
    Tensor gx = test::DeviceF32(*backend_, rows, cols, x);
    std::vector<int32_t> got(rows, -7);
    ASSERT_TRUE(backend_->ArgMaxRowsToHost(gx, got.data()).ok());
    EXPECT_EQ(got, want);
    if (rows > 3) {
      EXPECT_EQ(got[3], -1);
    }
  }
}

TEST_F(CudaOpsTest, MatMulMatchesCpuOnTheBf16RoundedOperands) {
  std::mt19937 rng(17);
  for (auto [n, m, k] : {std::tuple{1, 7, 32}, {5, 33, 96}, {17, 64, 576},
                         {64, 1536, 576}, {129, 257, 64}, {3, 4099, 128}}) {
    for (DType dtype : {DType::kF32, DType::kQ4_1, DType::kQ8_0, DType::kQ4_0}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(testing::Message() << n << "x" << m << "x" << k << " "
                                        << DTypeName(dtype) << " bias "
                                        << with_bias);
        const std::vector<uint8_t> w_bytes =
            Encode(dtype, RandomVector(size_t(m) * k, rng, 0.1f));
        std::vector<float> w_ref =
            test::RoundToBf16(Decode(dtype, w_bytes, int64_t{m} * k));
        std::vector<float> x = RandomVector(size_t(n) * k, rng);
        std::vector<float> x_ref = test::RoundToBf16(x);
        std::vector<float> bias = RandomVector(m, rng);
        std::vector<float> want(size_t(n) * m);
        Tensor xt{DType::kF32, n, k, x_ref.data()};
        Tensor wt{DType::kF32, m, k, w_ref.data()};
        Tensor bt{DType::kF32, 1, m, bias.data()};
        Tensor yt{DType::kF32, n, m, want.data()};
        ASSERT_TRUE(cpu_.UploadWeight(DType::kF32, m, k, w_ref.data()).ok());
        ASSERT_TRUE(cpu_.MatMul(xt, wt, with_bias ? &bt : nullptr, &yt).ok());

        auto gw = backend_->UploadWeight(dtype, m, k, w_bytes.data());
        ASSERT_TRUE(gw.ok()) << gw.status();
        auto gb = backend_->UploadWeight(DType::kF32, 1, m, bias.data());
        ASSERT_TRUE(gb.ok());
        Tensor gx = test::DeviceF32(*backend_, n, k, x);
        Tensor gy = test::PoisonedF32(*backend_, n, m);
        absl::Status s =
            backend_->MatMul(gx, *gw, with_bias ? &*gb : nullptr, &gy);
        ASSERT_TRUE(s.ok()) << s;
        ExpectNear(test::ToHost(*backend_, gy), want, 1e-3f, 1e-3f);
      }
    }
  }
}

TEST_F(CudaOpsTest, MatMulRejectsMismatchedShapes) {
  std::vector<float> w(4 * 64, 0.5f);
  auto wt = backend_->UploadWeight(DType::kF32, 4, 64, w.data());
  ASSERT_TRUE(wt.ok());
  Tensor x = test::PoisonedF32(*backend_, 3, 32);
  Tensor y = test::PoisonedF32(*backend_, 3, 4);
  EXPECT_EQ(backend_->MatMul(x, *wt, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
}

// Configurations that would fail later, in a step or a graph capture, are
// refused up front (no GPU needed).
TEST(CudaBackendConfigTest, ValidateRefusesWhatWouldFailInAStep) {
  EXPECT_TRUE(CudaBackendConfig().Validate().ok());
  CudaBackendConfig no_scratch;
  no_scratch.split_scratch_bytes = 0;
  EXPECT_EQ(no_scratch.Validate().code(), absl::StatusCode::kInvalidArgument);
  no_scratch.split_chunk_tokens = 0;  // splitting off: no scratch needed
  EXPECT_TRUE(no_scratch.Validate().ok());
  no_scratch.split_chunk_tokens = 256;
  no_scratch.max_decode_splits = 1;
  EXPECT_TRUE(no_scratch.Validate().ok());
  CudaBackendConfig no_workspace;
  no_workspace.cublas_workspace_bytes = 0;
  EXPECT_EQ(no_workspace.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CudaBackendPlanTest, StageBatchRejectsBatchLargerThanPlanned) {
  CudaBackendConfig config;
  config.max_num_tokens = 4;
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  ASSERT_TRUE(backend->AllocateKvCache({1, 8, 4, 1, 64, DType::kBF16}).ok());
  std::mt19937 layout(3);
  BatchMetadata batch = test::ScatteredBatch({{5, 5}}, 4, 8, layout);
  auto view = backend->StageBatch(batch);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CudaBackendPlanTest, KvCacheMustBeBf16WithHeadDim64Or128) {
  auto backend = test::MakeCudaOrNull();
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  EXPECT_EQ(backend->AllocateKvCache({1, 8, 4, 1, 64, DType::kF32}).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(backend->AllocateKvCache({1, 8, 4, 1, 96, DType::kBF16}).code(),
            absl::StatusCode::kUnimplemented);
}

// A graph's launches bake in the staged batch's sizes: BeginCapture and
// Replay take only a graph-staged batch, Replay only one of the sizes the
// graph was captured with, and staging is refused while capturing.
TEST(CudaBackendPlanTest, GraphsReplayOnlyTheSizesTheyWereCapturedFor) {
  CudaBackendConfig config;
  config.max_num_tokens = 8;
  config.max_num_seqs = 8;
  auto backend = test::MakeCudaOrNull(config);
  if (backend == nullptr) GTEST_SKIP() << test::kNoGpu;
  ASSERT_TRUE(backend->AllocateKvCache({1, 16, 4, 1, 64, DType::kBF16}).ok());
  std::mt19937 layout(5);
  const BatchMetadata two = test::ScatteredBatch({{5, 1}, {9, 1}}, 4, 16, layout);
  const BatchMetadata three =
      test::ScatteredBatch({{5, 1}, {9, 1}, {2, 1}}, 4, 16, layout);
  // One op to record: an RmsNorm of 2 rows.
  static const std::vector<float> ones(64, 1.0f);
  auto weight = backend->UploadWeight(DType::kF32, 1, 64, ones.data());
  auto x = backend->Allocate(DType::kF32, 2, 64);
  auto out = backend->Allocate(DType::kF32, 2, 64);
  ASSERT_TRUE(weight.ok() && x.ok() && out.ok());

  ASSERT_TRUE(backend->StageBatch(two).ok());
  EXPECT_EQ(backend->BeginCapture().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->StageBatchForGraph(two, 0).ok());
  ASSERT_TRUE(backend->BeginCapture().ok());
  EXPECT_EQ(backend->StageBatch(three).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(backend->StageBatchForGraph(three, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const absl::Status ops = backend->RmsNorm(*x, *weight, 1e-5f, &*out);
  ASSERT_TRUE(backend->EndCapture(ops.ok() ? 7 : -1).ok());
  ASSERT_TRUE(ops.ok()) << ops;

  ASSERT_TRUE(backend->StageBatchForGraph(two, 0).ok());
  EXPECT_TRUE(backend->Replay(7).ok());
  ASSERT_TRUE(backend->StageBatchForGraph(three, 0).ok());
  EXPECT_EQ(backend->Replay(7).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->StageBatch(two).ok());
  EXPECT_EQ(backend->Replay(7).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->StageBatchForGraph(two, 0).ok());
  EXPECT_EQ(backend->Replay(8).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(backend->Replay(7).ok());
  EXPECT_TRUE(backend->Synchronize().ok());
}

#else  // !WEFT_HAVE_CUDA

TEST(CudaOpsTest, SkippedWithoutCuda) { GTEST_SKIP() << test::kNoGpu; }

#endif  // WEFT_HAVE_CUDA

}  // namespace
}  // namespace weft
