// Every op of FastCpuBackend against the reference CpuBackend on seeded
// random inputs, for each ISA this processor runs (AVX-512 VNNI when
// present, and AVX2 forced) and for 1 and 3 threads. Outputs are poisoned
// (NaN) before each run.
//
// Tolerances: float-weight matmuls and the fp32 small ops within
// 1e-5 + 1e-4·|ref| (only summation order differs); quantized matmuls
// quantize the activations to two int8 levels per block of 32 (dx =
// max|x|/127; rounding error ≤ dx/508 per element), so each output is
// allowed Σ_i |w_i|·dx(i)/508 — the worst case of that rounding — plus
// 1e-4·|ref|.
#include "kernels/cpu/fast_cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace weft {
namespace {

using test::ExpectNear;
using test::RandomVector;
using test::ScatteredBatch;
using test::SeqSpec;

// Random weights of `dtype`, rows × cols, as raw bytes (GGML layouts for the
// quantized types: random scales, minimums and quants).
std::vector<uint8_t> RandomWeights(DType dtype, int64_t rows, int64_t cols,
                                   std::mt19937& rng) {
  std::vector<uint8_t> bytes(rows * RowBytes(dtype, cols));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const int64_t n = rows * cols;
  switch (dtype) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float v = normal(rng) * 0.1f;
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      }
      break;
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const float v = normal(rng) * 0.1f;
        const uint16_t h = dtype == DType::kF16 ? FloatToHalf(v) : FloatToBf16(v);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
      break;
    default: {
      const int64_t block_bytes = DTypeBlockBytes(dtype);
      for (int64_t b = 0; b < n / kQuantBlockSize; ++b) {
        uint8_t* block = bytes.data() + b * block_bytes;
        for (int64_t i = 0; i < block_bytes; ++i) block[i] = byte(rng);
        const uint16_t d = FloatToHalf(scale(rng));
        std::memcpy(block, &d, 2);
        if (dtype == DType::kQ4_1) {
          const uint16_t m = FloatToHalf(-8 * scale(rng));
          std::memcpy(block + 2, &m, 2);
        }
      }
    }
  }
  return bytes;
}

// The kernels a variant runs: the best this processor has, plain AVX2, or
// AVX2 with AVX-VNNI's quantized matmuls.
enum class Isa { kBest, kAvx2, kAvxVnni };

struct Variant {
  Isa isa;
  int threads;
};

std::string VariantName(const ::testing::TestParamInfo<Variant>& info) {
  const char* isa = info.param.isa == Isa::kBest   ? "Best"
                    : info.param.isa == Isa::kAvx2 ? "Avx2"
                                                   : "AvxVnni";
  return std::string(isa) + "Threads" + std::to_string(info.param.threads);
}

CpuBackendConfig VariantConfig(Isa isa, int threads) {
  CpuBackendConfig config;
  config.num_threads = threads;
  config.force_avx2 = isa != Isa::kBest;
  config.allow_avx_vnni = isa != Isa::kAvx2;
  return config;
}

class FastCpuBackendTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    auto backend = FastCpuBackend::Create(VariantConfig(GetParam().isa, GetParam().threads));
    if (!backend.ok()) GTEST_SKIP() << backend.status();
    fast_ = *std::move(backend);
    ASSERT_EQ(fast_->num_threads(), GetParam().threads);
    if (GetParam().isa == Isa::kAvx2) {
      ASSERT_EQ(fast_->isa(), "avx2");
    }
    if (GetParam().isa == Isa::kAvxVnni && fast_->isa() != "avx2+avx-vnni") {
      GTEST_SKIP() << "no AVX-VNNI here (isa " << fast_->isa() << ")";
    }
  }
  std::unique_ptr<FastCpuBackend> fast_;
  CpuBackend reference_;
};

struct MatMulCase {
  DType dtype;
  int64_t m, rows, cols;
  bool bias;
};

// The worst case of the activations' rounding for one output: Σ_i |w_i| ·
// dx(i) / divisor, dx = max|x| / 127 of x_i's block of 32; divisor 508 for
// two int8 levels (error ≤ dx/508 per element), 2 for one (≤ dx/2).
double ActivationRoundingBound(const float* x, const float* w, int64_t cols,
                               double divisor) {
  double bound = 0;
  for (int64_t blk = 0; blk < cols / kQuantBlockSize; ++blk) {
    float amax = 0;
    for (int i = 0; i < kQuantBlockSize; ++i) {
      amax = std::max(amax, std::fabs(x[blk * 32 + i]));
    }
    for (int i = 0; i < kQuantBlockSize; ++i) {
      bound += std::fabs(w[blk * 32 + i]) * amax / 127.0 / divisor;
    }
  }
  return bound;
}

TEST_P(FastCpuBackendTest, MatMulMatchesReferenceForEveryWeightType) {
  std::vector<MatMulCase> cases;
  for (DType dtype : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kF16,
                      DType::kBF16, DType::kF32}) {
    cases.push_back({dtype, 1, 37, 64, false});     // decode, partial group
    cases.push_back({dtype, 2, 576, 576, true});     // two decodes
    cases.push_back({dtype, 3, 100, 96, false});
    cases.push_back({dtype, 4, 64, 160, true});
    cases.push_back({dtype, 13, 33, 1536, false});   // prefill tiles of 8 + 5
    cases.push_back({dtype, 70, 16, 32, true});      // one group, one block
  }
  std::mt19937 rng(7);
  // Uploaded weights must outlive the backend (UploadWeight's contract).
  std::vector<std::vector<uint8_t>> all_weights;
  for (const MatMulCase& c : cases) {
    SCOPED_TRACE(std::string(DTypeName(c.dtype)) + " m=" + std::to_string(c.m) +
                 " rows=" + std::to_string(c.rows) + " cols=" +
                 std::to_string(c.cols));
    all_weights.push_back(RandomWeights(c.dtype, c.rows, c.cols, rng));
    const std::vector<uint8_t>& weights = all_weights.back();
    std::vector<float> x = RandomVector(c.m * c.cols, rng);
    std::vector<float> bias = RandomVector(c.rows, rng);
    Tensor bias_t{DType::kF32, 1, c.rows, bias.data()};
    auto w_fast = fast_->UploadWeight(c.dtype, c.rows, c.cols, weights.data());
    auto w_ref = reference_.UploadWeight(c.dtype, c.rows, c.cols, weights.data());
    ASSERT_TRUE(w_fast.ok() && w_ref.ok());
    Tensor x_t{DType::kF32, c.m, c.cols, x.data()};
    std::vector<float> got(c.m * c.rows, NAN), want(c.m * c.rows, NAN);
    Tensor got_t{DType::kF32, c.m, c.rows, got.data()};
    Tensor want_t{DType::kF32, c.m, c.rows, want.data()};
    const Tensor* b = c.bias ? &bias_t : nullptr;
    ASSERT_TRUE(fast_->MatMul(x_t, *w_fast, b, &got_t).ok());
    ASSERT_TRUE(reference_.MatMul(x_t, *w_ref, b, &want_t).ok());
    if (!IsQuantized(c.dtype)) {
      ExpectNear(got, want, 1e-5f, 1e-4f);
      continue;
    }
    // The bound of the activations' rounding: Σ_i |w_i| · dx(i) / 508.
    std::vector<float> w_row(c.cols);
    for (int64_t r = 0; r < c.rows; ++r) {
      DequantizeRow(c.dtype, w_ref->Rows(r, 1).data, w_row.data(), c.cols);
      for (int64_t t = 0; t < c.m; ++t) {
        const double bound =
            ActivationRoundingBound(&x[t * c.cols], w_row.data(), c.cols, 508.0);
        const float ref = want[t * c.rows + r];
        ASSERT_NEAR(got[t * c.rows + r], ref,
                    bound * 1.001 + 1e-4 * std::fabs(ref) + 1e-5)
            << "row " << r << " token " << t;
      }
    }
  }
}

// activation_levels = 1 (llama.cpp's scheme): every quantized matmul
// within one level's rounding of the fp32 reference — and, somewhere,
// outside two levels' (the second level really is dropped).
TEST_P(FastCpuBackendTest, OneActivationLevelStaysWithinItsRounding) {
  CpuBackendConfig config = VariantConfig(GetParam().isa, GetParam().threads);
  config.activation_levels = 1;
  auto one_level = FastCpuBackend::Create(config);
  ASSERT_TRUE(one_level.ok()) << one_level.status();
  std::mt19937 rng(11);
  std::vector<std::vector<uint8_t>> all_weights;
  int64_t beyond_two_levels = 0;
  for (DType dtype : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0}) {
    // Decode tiles (1, 2 rows), the tile-order kernel (3+), AMX (16+).
    for (auto [m, rows, cols] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 37, 64}, {2, 48, 576}, {3, 21, 160}, {16, 48, 1536}, {33, 16, 96}}) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " m=" + std::to_string(m));
      all_weights.push_back(RandomWeights(dtype, rows, cols, rng));
      auto w_fast = (*one_level)->UploadWeight(dtype, rows, cols, all_weights.back().data());
      auto w_ref = reference_.UploadWeight(dtype, rows, cols, all_weights.back().data());
      ASSERT_TRUE(w_fast.ok() && w_ref.ok());
      std::vector<float> x = RandomVector(m * cols, rng);
      Tensor x_t{DType::kF32, m, cols, x.data()};
      std::vector<float> got(m * rows, NAN), want(m * rows, NAN);
      Tensor got_t{DType::kF32, m, rows, got.data()};
      Tensor want_t{DType::kF32, m, rows, want.data()};
      ASSERT_TRUE((*one_level)->MatMul(x_t, *w_fast, nullptr, &got_t).ok());
      ASSERT_TRUE(reference_.MatMul(x_t, *w_ref, nullptr, &want_t).ok());
      std::vector<float> w_row(cols);
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(dtype, w_ref->Rows(r, 1).data, w_row.data(), cols);
        for (int64_t t = 0; t < m; ++t) {
          const float ref = want[t * rows + r];
          const double error = std::fabs(got[t * rows + r] - ref);
          const double slack = 1e-4 * std::fabs(ref) + 1e-5;
          ASSERT_LE(error, ActivationRoundingBound(&x[t * cols], w_row.data(), cols, 2.0) *
                                   1.001 + slack)
              << "row " << r << " token " << t;
          if (error > ActivationRoundingBound(&x[t * cols], w_row.data(), cols, 508.0) *
                              1.001 + slack) {
            ++beyond_two_levels;
          }
        }
      }
    }
  }
  EXPECT_GT(beyond_two_levels, 0);
}

// Batch invariance: a row's output is bit-identical whether it is
// multiplied alone (decode tiles) or among others (prefill tiles).
TEST_P(FastCpuBackendTest, MatMulRowDoesNotDependOnTheBatch) {
  std::mt19937 rng(17);
  std::vector<std::vector<uint8_t>> all_weights;
  for (DType dtype : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kF16,
                      DType::kBF16, DType::kF32}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    const int64_t m = 61, rows = 200, cols = 320;
    all_weights.push_back(RandomWeights(dtype, rows, cols, rng));
    auto w = fast_->UploadWeight(dtype, rows, cols, all_weights.back().data());
    ASSERT_TRUE(w.ok());
    std::vector<float> x = RandomVector(m * cols, rng);
    std::vector<float> bias = RandomVector(rows, rng);
    Tensor bias_t{DType::kF32, 1, rows, bias.data()};
    std::vector<float> all(m * rows, NAN);
    Tensor x_t{DType::kF32, m, cols, x.data()};
    Tensor all_t{DType::kF32, m, rows, all.data()};
    ASSERT_TRUE(fast_->MatMul(x_t, *w, &bias_t, &all_t).ok());
    for (int64_t first : {0, 5, 60}) {
      for (int64_t count : {1, 2, 3, 7}) {
        if (first + count > m) continue;
        std::vector<float> part(count * rows, NAN);
        Tensor px{DType::kF32, count, cols, x.data() + first * cols};
        Tensor py{DType::kF32, count, rows, part.data()};
        ASSERT_TRUE(fast_->MatMul(px, *w, &bias_t, &py).ok());
        for (int64_t i = 0; i < count * rows; ++i) {
          ASSERT_EQ(part[i], all[first * rows + i])
              << "rows " << first << "+" << count << " element " << i;
        }
      }
    }
  }
}

// MatMuls (one input, several weights in one job, the input quantized
// once) equals one MatMul per weight bit for bit: for all-quantized and
// all-float targets, a mix of both, a view the backend did not pack, and
// more targets than one job takes.
TEST_P(FastCpuBackendTest, MatMulsEqualsSeparateMatMuls) {
  struct Target {
    DType dtype;
    int64_t rows;
    bool bias;
  };
  const std::vector<std::vector<Target>> cases = {
      {{DType::kQ4_1, 96, true}, {DType::kQ4_1, 32, false}, {DType::kQ4_1, 40, true}},
      {{DType::kQ8_0, 16, false}, {DType::kQ4_0, 70, true}},
      {{DType::kF16, 48, false}, {DType::kBF16, 17, true}, {DType::kF32, 33, false}},
      {{DType::kQ8_0, 48, true}, {DType::kF16, 20, false}},
      {{DType::kQ4_1, 16, false}, {DType::kQ4_1, 16, false}, {DType::kQ8_0, 32, true},
       {DType::kQ4_0, 48, false}, {DType::kQ4_1, 33, true}},
  };
  const int64_t cols = 320;
  std::mt19937 rng(23);
  std::vector<std::vector<uint8_t>> all_weights;
  for (size_t k = 0; k < cases.size(); ++k) {
    for (int64_t m : {1, 3, 16, 21}) {
      SCOPED_TRACE("case " + std::to_string(k) + " m=" + std::to_string(m));
      std::vector<float> x = RandomVector(m * cols, rng);
      Tensor x_t{DType::kF32, m, cols, x.data()};
      std::vector<Tensor> weights, biases;
      std::vector<std::vector<float>> bias_data, got, want;
      for (const Target& t : cases[k]) {
        all_weights.push_back(RandomWeights(t.dtype, t.rows, cols, rng));
        auto w = fast_->UploadWeight(t.dtype, t.rows, cols, all_weights.back().data());
        ASSERT_TRUE(w.ok());
        weights.push_back(*w);
        bias_data.push_back(RandomVector(t.rows, rng));
        biases.push_back(Tensor{DType::kF32, 1, t.rows, bias_data.back().data()});
        got.emplace_back(m * t.rows, NAN);
        want.emplace_back(m * t.rows, NAN);
      }
      if (k == 3) weights[0] = weights[0].Rows(16, 32);  // not packed as such
      std::vector<Tensor> got_t, want_t;
      for (size_t i = 0; i < weights.size(); ++i) {
        got_t.push_back(Tensor{DType::kF32, m, weights[i].rows, got[i].data()});
        want_t.push_back(Tensor{DType::kF32, m, weights[i].rows, want[i].data()});
      }
      std::vector<Backend::MatMulTarget> targets;
      for (size_t i = 0; i < weights.size(); ++i) {
        const Tensor* b = cases[k][i].bias ? &biases[i] : nullptr;
        if (b != nullptr && b->cols != weights[i].rows) b = nullptr;
        targets.push_back({&weights[i], b, &got_t[i]});
        ASSERT_TRUE(fast_->MatMul(x_t, weights[i], b, &want_t[i]).ok());
      }
      ASSERT_TRUE(fast_->MatMuls(x_t, targets).ok());
      for (size_t i = 0; i < weights.size(); ++i) {
        for (int64_t e = 0; e < m * weights[i].rows; ++e) {
          ASSERT_EQ(got[i][e], want[i][e]) << "target " << i << " element " << e;
        }
      }
    }
  }
}

TEST_P(FastCpuBackendTest, RmsNormAndAddRmsNormMatchReference) {
  std::mt19937 rng(11);
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 576}, {5, 7}, {3, 64}, {70, 1000}}) {
    std::vector<float> x = RandomVector(rows * cols, rng, 3.0f);
    std::vector<float> delta = RandomVector(rows * cols, rng);
    std::vector<float> weight = RandomVector(cols, rng);
    Tensor w{DType::kF32, 1, cols, weight.data()};
    Tensor x_t{DType::kF32, rows, cols, x.data()};
    std::vector<float> got(rows * cols, NAN), want(rows * cols, NAN);
    Tensor got_t{DType::kF32, rows, cols, got.data()};
    Tensor want_t{DType::kF32, rows, cols, want.data()};
    ASSERT_TRUE(fast_->RmsNorm(x_t, w, 1e-5f, &got_t).ok());
    ASSERT_TRUE(reference_.RmsNorm(x_t, w, 1e-5f, &want_t).ok());
    ExpectNear(got, want, 1e-5f, 1e-4f);

    std::vector<float> res_fast = x, res_ref = x;
    Tensor rf{DType::kF32, rows, cols, res_fast.data()};
    Tensor rr{DType::kF32, rows, cols, res_ref.data()};
    Tensor d_t{DType::kF32, rows, cols, delta.data()};
    std::fill(got.begin(), got.end(), NAN);
    ASSERT_TRUE(fast_->AddRmsNorm(&rf, d_t, w, 1e-5f, &got_t).ok());
    ASSERT_TRUE(reference_.AddRmsNorm(&rr, d_t, w, 1e-5f, &want_t).ok());
    ExpectNear(res_fast, res_ref, 0, 0);
    ExpectNear(got, want, 1e-5f, 1e-4f);
  }
}

TEST_P(FastCpuBackendTest, SiluMulMatchesReferenceIncludingSaturation) {
  std::mt19937 rng(13);
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1536}, {3, 13}, {40, 1536}}) {
    std::vector<float> gate = RandomVector(rows * cols, rng, 4.0f);
    gate[0] = -120.0f;  // exp overflows in silu's denominator
    gate[1] = 95.0f;
    std::vector<float> up = RandomVector(rows * cols, rng);
    Tensor g{DType::kF32, rows, cols, gate.data()};
    Tensor u{DType::kF32, rows, cols, up.data()};
    std::vector<float> got(rows * cols, NAN), want(rows * cols, NAN);
    Tensor got_t{DType::kF32, rows, cols, got.data()};
    Tensor want_t{DType::kF32, rows, cols, want.data()};
    ASSERT_TRUE(fast_->SiluMul(g, u, &got_t).ok());
    ASSERT_TRUE(reference_.SiluMul(g, u, &want_t).ok());
    ExpectNear(got, want, 1e-6f, 1e-5f);
  }
}

// A row's SiLU·mul bits do not depend on the rows beside it, also when
// cols % 8 != 0 (the kernel's vector body and scalar tail round e^x
// differently; a span of several rows moved a row's last elements between
// them).
TEST_P(FastCpuBackendTest, SiluMulRowsAreTheSameAloneAndInABatch) {
  std::mt19937 rng(17);
  const int64_t rows = 40, cols = 1541;
  std::vector<float> gate = RandomVector(rows * cols, rng, 4.0f);
  std::vector<float> up = RandomVector(rows * cols, rng);
  Tensor g{DType::kF32, rows, cols, gate.data()};
  Tensor u{DType::kF32, rows, cols, up.data()};
  std::vector<float> batch(rows * cols, NAN);
  Tensor batch_t{DType::kF32, rows, cols, batch.data()};
  ASSERT_TRUE(fast_->SiluMul(g, u, &batch_t).ok());
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> alone(cols, NAN);
    Tensor gr{DType::kF32, 1, cols, gate.data() + r * cols};
    Tensor ur{DType::kF32, 1, cols, up.data() + r * cols};
    Tensor alone_t{DType::kF32, 1, cols, alone.data()};
    ASSERT_TRUE(fast_->SiluMul(gr, ur, &alone_t).ok());
    ASSERT_EQ(std::memcmp(alone.data(), batch.data() + r * cols, cols * sizeof(float)), 0)
        << "row " << r;
  }
}

// PagedAttention refuses head counts the cache was not made for (another
// KV head count indexed past each block; zero query heads divided by zero)
// and a q with fewer rows than the batch, on both backends.
TEST_P(FastCpuBackendTest, PagedAttentionRefusesShapesTheCacheWasNotMadeFor) {
  KvCacheShape shape;
  shape.dtype = DType::kF32;
  shape.num_layers = 1;
  shape.num_blocks = 8;
  shape.block_size = 4;
  shape.num_kv_heads = 2;
  shape.head_dim = 64;
  CpuBackend reference;
  ASSERT_TRUE(fast_->AllocateKvCache(shape).ok());
  ASSERT_TRUE(reference.AllocateKvCache(shape).ok());
  std::mt19937 rng(3);
  const BatchMetadata batch = ScatteredBatch({{6, 2}}, 4, shape.num_blocks, rng);
  std::vector<float> q(2 * 8 * 64, 0.5f), out(2 * 8 * 64, NAN);
  for (CpuBackend* backend : {static_cast<CpuBackend*>(fast_.get()), &reference}) {
    auto view = backend->StageBatch(batch);
    ASSERT_TRUE(view.ok()) << view.status();
    auto attend = [&](AttentionParams params, int64_t q_rows) {
      const int64_t cols = int64_t{params.num_q_heads} * params.head_dim;
      Tensor qt{DType::kF32, q_rows, cols, q.data()};
      Tensor ot{DType::kF32, 2, cols, out.data()};
      return backend->PagedAttention(params, *view, qt, backend->kv_layer(0), &ot).code();
    };
    EXPECT_EQ(attend({4, 2, 64, 0.125f}, 2), absl::StatusCode::kOk);
    EXPECT_EQ(attend({8, 4, 64, 0.125f}, 2), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(attend({0, 2, 64, 0.125f}, 2), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(attend({4, 2, 64, 0.125f}, 1), absl::StatusCode::kInvalidArgument);
  }
}

struct AttentionCase {
  int block_size, num_q_heads, num_kv_heads, head_dim;
  RopeStyle style;
  std::vector<SeqSpec> seqs;
};

// RopeAndWriteKv then PagedAttention on both backends, the cache filled
// with the same random history first: rotated q/k, the cache contents and
// the attention outputs must agree; and a token attended alone must give
// bit-for-bit the output it got inside the batch (batch invariance).
TEST_P(FastCpuBackendTest, RopeKvWriteAndPagedAttentionMatchReference) {
  const std::vector<AttentionCase> cases = {
      {16, 4, 4, 64, RopeStyle::kNeox, {{1, 1}}},
      {16, 9, 3, 64, RopeStyle::kInterleaved, {{33, 5}, {7, 1}, {16, 16}}},
      {4, 8, 2, 128, RopeStyle::kNeox, {{17, 1}, {9, 9}}},
      {1, 6, 3, 40, RopeStyle::kInterleaved, {{12, 3}, {2, 1}}},
      {16, 9, 3, 64, RopeStyle::kInterleaved, {{300, 64}, {257, 1}, {40, 40}}},
      // Odd block size: key chunks of 8 straddle block edges; prompt tiles
      // of 32 + 5 tokens and one of exactly the tiling threshold (4).
      {7, 4, 2, 64, RopeStyle::kNeox, {{50, 37}, {9, 4}, {3, 1}}},
      // Long context: the AVX-512 kernel cuts the 21-token chunk into tiles
      // of 5 (its score rows are bounded), head_dim 128 in rows of 2.
      {16, 8, 2, 128, RopeStyle::kNeox, {{1400, 21}, {1399, 1}}},
      // Chunks of 512 keys (AVX-512) that start inside blocks of 7; a
      // prompt tile whose first rows see fewer keys than one chunk.
      {7, 4, 2, 64, RopeStyle::kNeox, {{600, 9}, {520, 1}, {530, 30}}},
      // Enough tasks (32) that the batch runs each tile's chunks in one
      // task, where a token alone (8 tasks) gets one task per chunk.
      {16, 8, 8, 64, RopeStyle::kInterleaved, {{700, 40}, {530, 1}, {600, 2}}},
      // Head sizes 96 (AVX2: three slices of 4 vectors in the value pass;
      // AVX-512: 6 vectors) and 32 (one slice), a chunked row of each.
      {16, 6, 2, 96, RopeStyle::kNeox, {{45, 3}, {600, 1}}},
      {8, 4, 4, 32, RopeStyle::kInterleaved, {{20, 20}, {515, 2}}},
  };
  std::mt19937 rng(17);
  for (DType kv_dtype : {DType::kF32, DType::kF16}) {
    for (const AttentionCase& c : cases) {
      SCOPED_TRACE("KV " + std::string(DTypeName(kv_dtype)) + " head_dim " +
                   std::to_string(c.head_dim) + " block " +
                   std::to_string(c.block_size));
      KvCacheShape shape;
      shape.dtype = kv_dtype;
      shape.num_layers = 1;
      shape.num_blocks = 96;
      for (const SeqSpec& seq : c.seqs) {
        shape.num_blocks += seq.context_len / c.block_size + 1;
      }
      shape.block_size = c.block_size;
      shape.num_kv_heads = c.num_kv_heads;
      shape.head_dim = c.head_dim;
      if (c.block_size == 1) shape.num_blocks = 64;
      FastCpuBackend& fast = *fast_;
      CpuBackend reference;
      ASSERT_TRUE(fast.AllocateKvCache(shape).ok());
      ASSERT_TRUE(reference.AllocateKvCache(shape).ok());
      std::vector<float> inv_freq(c.head_dim / 2);
      for (int i = 0; i < c.head_dim / 2; ++i) {
        inv_freq[i] = std::pow(10000.0f, -2.0f * i / c.head_dim);
      }
      RopeParams rope{c.style, c.head_dim, c.head_dim,
                      Tensor{DType::kF32, 1, c.head_dim / 2, inv_freq.data()}};
      AttentionParams attention{c.num_q_heads, c.num_kv_heads, c.head_dim,
                                1.0f / std::sqrt(float(c.head_dim))};
      const int q_cols = c.num_q_heads * c.head_dim;
      const int kv_cols = c.num_kv_heads * c.head_dim;

      // History: every token of every context, written by the reference into
      // both caches (so the test compares this step alone).
      std::vector<SeqSpec> full = c.seqs;
      for (SeqSpec& s : full) s.query_len = s.context_len;
      std::mt19937 layout_a(99), layout_b(99);
      BatchMetadata fill =
          ScatteredBatch(full, c.block_size, shape.num_blocks, layout_a);
      BatchMetadata step =
          ScatteredBatch(c.seqs, c.block_size, shape.num_blocks, layout_b);
      const int total = fill.num_tokens();
      std::vector<float> k_hist = RandomVector(size_t(total) * kv_cols, rng);
      std::vector<float> v_hist = RandomVector(size_t(total) * kv_cols, rng);
      for (CpuBackend* backend : {static_cast<CpuBackend*>(&fast), &reference}) {
        std::vector<float> q_fill(size_t(total) * q_cols, 0.0f);
        std::vector<float> k_fill = k_hist;
        Tensor q{DType::kF32, total, q_cols, q_fill.data()};
        Tensor k{DType::kF32, total, kv_cols, k_fill.data()};
        Tensor v{DType::kF32, total, kv_cols, v_hist.data()};
        auto view = backend->StageBatch(fill);
        ASSERT_TRUE(view.ok()) << view.status();
        ASSERT_TRUE(backend
                        ->CpuBackend::RopeAndWriteKv(rope, attention, *view, &q,
                                                     &k, v, backend->kv_layer(0))
                        .ok());
      }
      // The step: fresh q/k/v for the new tokens.
      const int n = step.num_tokens();
      const std::vector<float> q0 = RandomVector(size_t(n) * q_cols, rng, 2.0f);
      const std::vector<float> k0 = RandomVector(size_t(n) * kv_cols, rng);
      const std::vector<float> v0 = RandomVector(size_t(n) * kv_cols, rng);
      std::vector<float> q_fast = q0, q_ref = q0, k_fast = k0, k_ref = k0;
      std::vector<float> out_fast(size_t(n) * q_cols, NAN), out_ref(out_fast);
      auto run = [&](CpuBackend& backend, std::vector<float>& qv,
                     std::vector<float>& kv, std::vector<float>& out) {
        auto view = backend.StageBatch(step);
        ASSERT_TRUE(view.ok()) << view.status();
        Tensor q{DType::kF32, n, q_cols, qv.data()};
        Tensor k{DType::kF32, n, kv_cols, kv.data()};
        Tensor v{DType::kF32, n, kv_cols, const_cast<float*>(v0.data())};
        Tensor o{DType::kF32, n, q_cols, out.data()};
        ASSERT_TRUE(backend.RopeAndWriteKv(rope, attention, *view, &q, &k, v,
                                           backend.kv_layer(0)).ok());
        ASSERT_TRUE(backend.PagedAttention(attention, *view, q,
                                           backend.kv_layer(0), &o).ok());
      };
      run(fast, q_fast, k_fast, out_fast);
      run(reference, q_ref, k_ref, out_ref);
      ExpectNear(q_fast, q_ref, 0, 0);  // same formula, same order
      ExpectNear(k_fast, k_ref, 0, 0);
      // The caches byte for byte (F16: the same rounding to nearest even).
      const int64_t cache = shape.layer_elements() * DTypeBlockBytes(kv_dtype);
      for (int kind = 0; kind < 2; ++kind) {
        const uint8_t* a = static_cast<const uint8_t*>(
            kind == 0 ? fast.kv_layer(0).k : fast.kv_layer(0).v);
        const uint8_t* b = static_cast<const uint8_t*>(
            kind == 0 ? reference.kv_layer(0).k : reference.kv_layer(0).v);
        ASSERT_TRUE(std::equal(a, a + cache, b)) << (kind == 0 ? "K" : "V");
      }
      ExpectNear(out_fast, out_ref, 1e-5f, 1e-4f);

      // Batch invariance: every token of the step attended alone (a
      // decode-shaped step over the keys it sees in the same cache) gives
      // bit-identical output — also where the batch ran its tile as chunks
      // of a long context (kAttentionKeyChunk) and the token alone sees
      // fewer keys than one chunk, or a different number of chunks.
      for (int row = 0; row < n; ++row) {
        const int s = static_cast<int>(
            std::upper_bound(step.query_indptr.begin(), step.query_indptr.end(), row) -
            step.query_indptr.begin() - 1);
        const int visible = c.seqs[s].context_len - c.seqs[s].query_len +
                            (row - step.query_indptr[s]) + 1;
        const int blocks = (visible + c.block_size - 1) / c.block_size;
        BatchMetadata alone;
        alone.token_ids = {0};
        alone.positions = {step.positions[row]};
        alone.slot_mapping = {step.slot_mapping[row]};
        alone.query_indptr = {0, 1};
        alone.kv_indptr = {0, blocks};
        alone.kv_indices.assign(step.kv_indices.begin() + step.kv_indptr[s],
                                step.kv_indices.begin() + step.kv_indptr[s] + blocks);
        alone.kv_last_block_len = {visible - (blocks - 1) * c.block_size};
        alone.logits_rows = {0};
        auto view = fast.StageBatch(alone);
        ASSERT_TRUE(view.ok()) << view.status();
        std::vector<float> q_row(q_fast.begin() + int64_t{row} * q_cols,
                                 q_fast.begin() + int64_t{row + 1} * q_cols);
        std::vector<float> out_row(q_cols, NAN);
        Tensor q{DType::kF32, 1, q_cols, q_row.data()};
        Tensor o{DType::kF32, 1, q_cols, out_row.data()};
        ASSERT_TRUE(
            fast.PagedAttention(attention, *view, q, fast.kv_layer(0), &o).ok());
        ASSERT_TRUE(std::equal(out_row.begin(), out_row.end(),
                               out_fast.begin() + int64_t{row} * q_cols))
            << "sequence " << s << " token " << row << " (" << visible
            << " keys) differs when attended alone";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, FastCpuBackendTest,
                         ::testing::Values(Variant{Isa::kBest, 1}, Variant{Isa::kBest, 3},
                                           Variant{Isa::kAvx2, 1}, Variant{Isa::kAvx2, 3},
                                           Variant{Isa::kAvxVnni, 1},
                                           Variant{Isa::kAvxVnni, 3}),
                         VariantName);

// MatMul on backends `a` and `b` for every dtype × (m, rows, cols), the
// same weights and inputs: the outputs must be equal bit for bit.
void ExpectSameMatMulBits(FastCpuBackend& a, FastCpuBackend& b,
                          const std::vector<DType>& dtypes,
                          const std::vector<std::tuple<int64_t, int64_t, int64_t>>& shapes,
                          uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<uint8_t>> all_weights;
  for (DType dtype : dtypes) {
    for (auto [m, rows, cols] : shapes) {
      SCOPED_TRACE(std::string(DTypeName(dtype)) + " m=" + std::to_string(m) +
                   " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
      all_weights.push_back(RandomWeights(dtype, rows, cols, rng));
      auto wa = a.UploadWeight(dtype, rows, cols, all_weights.back().data());
      auto wb = b.UploadWeight(dtype, rows, cols, all_weights.back().data());
      ASSERT_TRUE(wa.ok() && wb.ok());
      std::vector<float> x = RandomVector(m * cols, rng);
      std::vector<float> bias = RandomVector(rows, rng);
      Tensor bias_t{DType::kF32, 1, rows, bias.data()};
      Tensor x_t{DType::kF32, m, cols, x.data()};
      std::vector<float> got(m * rows, NAN), want(m * rows, NAN);
      Tensor got_t{DType::kF32, m, rows, got.data()};
      Tensor want_t{DType::kF32, m, rows, want.data()};
      ASSERT_TRUE(a.MatMul(x_t, *wa, &bias_t, &got_t).ok());
      ASSERT_TRUE(b.MatMul(x_t, *wb, &bias_t, &want_t).ok());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], want[i]) << "element " << i;
      }
    }
  }
}

// AMX-INT8 (batches) against the AVX-512 VNNI kernels: the same integer
// sums and the same fp32 epilogue, so the outputs must be equal bit for bit.
TEST(FastCpuBackendAmxTest, AmxMatchesVnniBitForBit) {
  CpuBackendConfig with_amx, without_amx;
  with_amx.num_threads = without_amx.num_threads = 2;
  without_amx.allow_amx = false;
  auto amx = FastCpuBackend::Create(with_amx);
  auto vnni = FastCpuBackend::Create(without_amx);
  ASSERT_TRUE(amx.ok() && vnni.ok());
  if ((*amx)->isa() != "avx512-vnni+amx") {
    GTEST_SKIP() << "no AMX-INT8 here (isa " << (*amx)->isa() << ")";
  }
  ASSERT_EQ((*vnni)->isa(), "avx512-vnni");
  ExpectSameMatMulBits(**amx, **vnni, {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0},
                       {{8, 37, 64}, {11, 21, 160}, {16, 48, 576}, {17, 100, 96},
                        {33, 16, 1536}, {70, 50, 32}},
                       23);
}

// The AVX2 kernels against the best this processor has (AVX-512 VNNI, AMX
// from 8 rows): quantized weights give the same integer sums and the same
// fp32 epilogue, packed float weights the same multiply-add chain per
// output, so a model computes the same bits on a processor with AVX2 only
// as on one with AVX-512.
TEST(FastCpuBackendAvx2Test, MatMulMatchesAvx512BitForBit) {
  auto best = FastCpuBackend::Create(VariantConfig(Isa::kBest, 2));
  auto avx2 = FastCpuBackend::Create(VariantConfig(Isa::kAvx2, 2));
  ASSERT_TRUE(best.ok() && avx2.ok());
  if ((*best)->isa().substr(0, 6) != "avx512") GTEST_SKIP() << "no AVX-512 here";
  ASSERT_EQ((*avx2)->isa(), "avx2");
  // 1 and 3 rows: decode tiles on both; 2 and 5: the AVX2 multi-row
  // kernels against VNNI; 16 and more: against AMX where present; 1,536
  // columns: 48 blocks, more than one prepared chunk. Float: decode tiles
  // of 4, 2 and 1 groups, row tiles of 1-4, passes of 48 rows.
  ExpectSameMatMulBits(**avx2, **best,
                       {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kF16,
                        DType::kBF16, DType::kF32},
                       {{1, 37, 64}, {2, 48, 576}, {3, 21, 160}, {5, 100, 96},
                        {16, 48, 1536}, {33, 16, 1056}, {70, 50, 32}, {1, 150, 64}},
                       29);
}

// With one activation level, AVX-512's and AVX2's kernels skip the second
// level's products (except AVX2's Q8_0, which joins both levels in one
// product, and AMX, which computes them as zeros): still the same bits.
TEST(FastCpuBackendAvx2Test, OneActivationLevelMatchesAvx512BitForBit) {
  CpuBackendConfig best_config = VariantConfig(Isa::kBest, 2);
  CpuBackendConfig avx2_config = VariantConfig(Isa::kAvx2, 2);
  best_config.activation_levels = avx2_config.activation_levels = 1;
  auto best = FastCpuBackend::Create(best_config);
  auto avx2 = FastCpuBackend::Create(avx2_config);
  ASSERT_TRUE(best.ok() && avx2.ok());
  if ((*best)->isa().substr(0, 6) != "avx512") GTEST_SKIP() << "no AVX-512 here";
  ExpectSameMatMulBits(**avx2, **best, {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0},
                       {{1, 37, 64}, {2, 48, 576}, {3, 21, 160}, {5, 100, 96},
                        {16, 48, 1536}, {33, 16, 1056}},
                       31);
}

// AVX-VNNI's quantized matmuls against plain AVX2's (and so, by the test
// above, AVX-512's): the same exact integer sums (VPDPBUSD, unsigned Q8_0
// bytes, against VPMADDUBSW/VPMADDWD, signed ones) and the same epilogue.
// Both activation levels and one (where both skip the second level).
TEST(FastCpuBackendAvxVnniTest, QuantMatMulMatchesAvx2BitForBit) {
  for (int levels : {2, 1}) {
    SCOPED_TRACE(testing::Message() << levels << " activation levels");
    CpuBackendConfig vnni_config = VariantConfig(Isa::kAvxVnni, 2);
    CpuBackendConfig avx2_config = VariantConfig(Isa::kAvx2, 2);
    vnni_config.activation_levels = avx2_config.activation_levels = levels;
    auto vnni = FastCpuBackend::Create(vnni_config);
    auto avx2 = FastCpuBackend::Create(avx2_config);
    ASSERT_TRUE(vnni.ok() && avx2.ok());
    if ((*vnni)->isa() != "avx2+avx-vnni") GTEST_SKIP() << "no AVX-VNNI here";
    ASSERT_EQ((*avx2)->isa(), "avx2");
    ExpectSameMatMulBits(**vnni, **avx2, {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0},
                         {{1, 37, 64}, {2, 48, 576}, {3, 21, 160}, {5, 100, 96},
                          {16, 48, 1536}, {33, 16, 1056}, {70, 50, 32}, {1, 150, 64}},
                         37);
  }
}

// The AVX-512 activation quantizer writes exactly what the AVX2 one does
// (levels, scales, sums), row-major and in the AMX tile order.
TEST(QuantizeRowsTest, Avx512MatchesAvx2BitForBit) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq")) {
    GTEST_SKIP() << "no AVX-512";
  }
  std::mt19937 rng(31);
  // 6 blocks a row, 16 + 3 (the AVX-512 code takes 16 blocks at a time)
  // and 3 × 16.
  for (const int64_t cols : {192, 608, 1536}) {
    const int64_t rows = 21, blocks = cols / kQuantBlockSize;
    std::vector<float> x = RandomVector(rows * cols, rng);
    for (int i = 0; i < kQuantBlockSize; ++i) x[2 * cols + i] = 0.0f;  // all-zero block
    for (int i = 0; i < kQuantBlockSize; ++i) x[4 * cols + cols - 32 + i] = 0.0f;
    x[3 * cols + 5] = 1e4f;  // an outlier
    x[5 * cols + cols - 7] = -3e3f;
    for (bool tiles : {false, true}) {
      SCOPED_TRACE(testing::Message() << (tiles ? "amx tiles" : "row-major") << ", "
                                      << cols << " columns");
      const size_t levels = static_cast<size_t>(cpu::AmxTileBytes(rows, cols));
      std::vector<int8_t> q2(levels, 1), r2(levels, 1), q5(levels, 2), r5(levels, 2);
      std::vector<float> f2(3 * rows * blocks), f5(3 * rows * blocks, 1.0f);
      std::vector<int32_t> s2(2 * rows * blocks), s5(2 * rows * blocks, 1);
      auto run = [&](bool avx512, int8_t* q, int8_t* r, float* f, int32_t* s) {
        const int64_t n = rows * blocks;
        (avx512 ? cpu::avx512::QuantizeRows : cpu::avx2::QuantizeRows)(
            x.data(), cols, cols, 0, rows, q, r, f, f + n, s, s + n, f + 2 * n, tiles);
      };
      run(false, q2.data(), r2.data(), f2.data(), s2.data());
      run(true, q5.data(), r5.data(), f5.data(), s5.data());
      const size_t written = tiles ? levels : static_cast<size_t>(rows * cols);
      for (size_t i = 0; i < written; ++i) {
        // Tile order: 1024 bytes per (16-row tile, block), 32 per row in
        // each level's half. The last tile's padding rows are not written.
        const size_t row = i / 1024 / blocks * 16 + i % 512 / 32;
        if (tiles && row >= static_cast<size_t>(rows)) continue;
        ASSERT_EQ(q5[i], q2[i]) << "q byte " << i;
        if (!tiles) {
          ASSERT_EQ(r5[i], r2[i]) << "r byte " << i;
        }
      }
      EXPECT_EQ(f5, f2);
      EXPECT_EQ(s5, s2);
    }
  }
}

}  // namespace
}  // namespace weft
