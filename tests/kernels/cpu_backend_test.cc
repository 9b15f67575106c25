// The CPU backend against naive dense formulas written independently here,
// on seeded random inputs: paged attention over scattered blocks (prefill
// chunks and decodes mixed, GQA), RoPE in both layouts, quantized matmul,
// RMSNorm; and ValidateBatch's rejections.
#include "kernels/cpu/cpu_backend.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace weft {
namespace {

using ::testing::HasSubstr;

using test::ExpectNear;
using test::RandomVector;
using test::ScatteredBatch;
using test::SeqSpec;

struct AttentionCase {
  int block_size, num_q_heads, num_kv_heads, head_dim;
  std::vector<SeqSpec> seqs;
};

class PagedAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

void ExpectMatchesDenseAttention(const AttentionCase& c, DType kv_dtype) {
  std::mt19937 rng(1234 + c.block_size + c.head_dim);
  CpuBackend backend;
  KvCacheShape shape;
  shape.dtype = kv_dtype;
  shape.num_layers = 1;
  shape.num_blocks = 64;
  shape.block_size = c.block_size;
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  ASSERT_TRUE(backend.AllocateKvCache(shape).ok());

  // Fill each sequence's whole context through RopeAndWriteKv with an
  // identity rotation (inv_freq = 0), in one batch of every token.
  std::vector<SeqSpec> full = c.seqs;
  for (SeqSpec& s : full) s.query_len = s.context_len;
  std::mt19937 layout_rng(99);
  BatchMetadata fill = ScatteredBatch(full, c.block_size, shape.num_blocks,
                                      layout_rng);
  const int kv_cols = c.num_kv_heads * c.head_dim;
  const int q_cols = c.num_q_heads * c.head_dim;
  const int total = fill.num_tokens();
  std::vector<float> k_all = RandomVector(size_t(total) * kv_cols, rng);
  std::vector<float> v_all = RandomVector(size_t(total) * kv_cols, rng);
  // What the cache holds (RopeAndWriteKv rotates k in place, by zero here).
  std::vector<float> k_held = k_all, v_held = v_all;
  if (kv_dtype == DType::kF16) {
    for (float& x : k_held) x = HalfToFloat(FloatToHalf(x));
    for (float& x : v_held) x = HalfToFloat(FloatToHalf(x));
  }
  std::vector<float> zeros(c.head_dim / 2, 0.0f);
  RopeParams rope{RopeStyle::kNeox, c.head_dim, c.head_dim,
                  Tensor{DType::kF32, 1, c.head_dim / 2, zeros.data()}};
  AttentionParams attention{c.num_q_heads, c.num_kv_heads, c.head_dim,
                            1.0f / std::sqrt(float(c.head_dim))};
  std::vector<float> q_fill(size_t(total) * q_cols, 0.0f);
  {
    auto view = backend.StageBatch(fill);
    ASSERT_TRUE(view.ok()) << view.status();
    Tensor q{DType::kF32, total, q_cols, q_fill.data()};
    Tensor k{DType::kF32, total, kv_cols, k_all.data()};
    Tensor v{DType::kF32, total, kv_cols, v_all.data()};
    ASSERT_TRUE(backend.RopeAndWriteKv(rope, attention, *view, &q, &k, v,
                                       backend.kv_layer(0)).ok());
  }

  // Now attend with only each sequence's last query_len tokens, using the
  // same block tables.
  BatchMetadata step;
  step.query_indptr = {0};
  step.kv_indptr = fill.kv_indptr;
  step.kv_indices = fill.kv_indices;
  step.kv_last_block_len = fill.kv_last_block_len;
  std::vector<int> source_rows;  // row of `fill` each query token comes from
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    for (int i = c.seqs[s].context_len - c.seqs[s].query_len;
         i < c.seqs[s].context_len; ++i) {
      const int row = fill.query_indptr[s] + i;
      source_rows.push_back(row);
      step.token_ids.push_back(0);
      step.positions.push_back(fill.positions[row]);
      step.slot_mapping.push_back(fill.slot_mapping[row]);
    }
    step.query_indptr.push_back(step.num_tokens());
  }
  const int n = step.num_tokens();
  std::vector<float> q_data = RandomVector(size_t(n) * q_cols, rng);
  std::vector<float> out(size_t(n) * q_cols, NAN);  // poisoned
  auto view = backend.StageBatch(step);
  ASSERT_TRUE(view.ok()) << view.status();
  Tensor q{DType::kF32, n, q_cols, q_data.data()};
  Tensor o{DType::kF32, n, q_cols, out.data()};
  ASSERT_TRUE(
      backend.PagedAttention(attention, *view, q, backend.kv_layer(0), &o).ok());

  // Dense reference in double.
  std::vector<float> want(out.size());
  const int group = c.num_q_heads / c.num_kv_heads;
  for (int t = 0; t < n; ++t) {
    const int row = source_rows[t];
    int s = 0;
    while (fill.query_indptr[s + 1] <= row) ++s;
    const int first = fill.query_indptr[s];
    const int position = row - first;
    for (int h = 0; h < c.num_q_heads; ++h) {
      const int g = h / group;
      std::vector<double> scores(position + 1);
      double max_score = -1e300;
      for (int j = 0; j <= position; ++j) {
        double dot = 0;
        for (int d = 0; d < c.head_dim; ++d) {
          dot += double(q_data[t * q_cols + h * c.head_dim + d]) *
                 k_held[size_t(first + j) * kv_cols + g * c.head_dim + d];
        }
        scores[j] = dot / std::sqrt(double(c.head_dim));
        max_score = std::max(max_score, scores[j]);
      }
      double sum = 0;
      for (double& x : scores) sum += (x = std::exp(x - max_score));
      for (int d = 0; d < c.head_dim; ++d) {
        double acc = 0;
        for (int j = 0; j <= position; ++j) {
          acc += scores[j] / sum *
                 v_held[size_t(first + j) * kv_cols + g * c.head_dim + d];
        }
        want[t * q_cols + h * c.head_dim + d] = float(acc);
      }
    }
  }
  ExpectNear(out, want, 1e-5f, 1e-4f);
}

// Both cache dtypes: with F16, the dense reference uses K and V rounded to
// half (to nearest even) as the cache holds them.
TEST_P(PagedAttentionTest, MatchesDenseCausalAttention) {
  for (DType kv_dtype : {DType::kF32, DType::kF16}) {
    SCOPED_TRACE(DTypeName(kv_dtype));
    ExpectMatchesDenseAttention(GetParam(), kv_dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionTest,
    ::testing::Values(
        AttentionCase{16, 4, 4, 64, {{1, 1}}},                  // first token
        AttentionCase{16, 8, 2, 64, {{17, 17}, {16, 1}}},       // block edges
        AttentionCase{4, 9, 3, 64, {{33, 5}, {7, 1}, {12, 12}}},  // SmolLM2 GQA
        AttentionCase{1, 4, 1, 128, {{9, 3}, {2, 1}}},          // 1-token blocks
        AttentionCase{16, 6, 3, 32, {{50, 1}, {31, 31}, {64, 16}}}));

// F16 blocks are copied whole (every layer, K and V); BF16 is refused.
TEST(KvCacheTest, F16CacheCopiesBlocksAndOtherDtypesAreRefused) {
  CpuBackend backend(DType::kF16);
  EXPECT_EQ(backend.kv_cache_dtype(), DType::kF16);
  KvCacheShape shape;
  shape.num_layers = 2;
  shape.num_blocks = 4;
  shape.block_size = 3;
  shape.num_kv_heads = 2;
  shape.head_dim = 8;
  shape.dtype = DType::kBF16;
  EXPECT_EQ(backend.AllocateKvCache(shape).code(), absl::StatusCode::kUnimplemented);
  shape.dtype = DType::kF16;
  ASSERT_TRUE(backend.AllocateKvCache(shape).ok());
  const int64_t block = shape.block_elements();  // halves per block
  for (int layer = 0; layer < 2; ++layer) {
    for (void* cache : {backend.kv_layer(layer).k, backend.kv_layer(layer).v}) {
      uint16_t* h = static_cast<uint16_t*>(cache);
      for (int64_t i = 0; i < block * shape.num_blocks; ++i) {
        h[i] = static_cast<uint16_t>(i * 7 + layer + (cache == backend.kv_layer(layer).v));
      }
    }
  }
  ASSERT_TRUE(backend.CopyKvBlocks({1, 3}, {2, 0}).ok());
  for (int layer = 0; layer < 2; ++layer) {
    for (void* cache : {backend.kv_layer(layer).k, backend.kv_layer(layer).v}) {
      const uint16_t* h = static_cast<const uint16_t*>(cache);
      const int extra = layer + (cache == backend.kv_layer(layer).v);
      for (int64_t i = 0; i < block; ++i) {
        ASSERT_EQ(h[2 * block + i], static_cast<uint16_t>((block + i) * 7 + extra));
        ASSERT_EQ(h[0 * block + i], static_cast<uint16_t>((3 * block + i) * 7 + extra));
        ASSERT_EQ(h[1 * block + i], static_cast<uint16_t>((block + i) * 7 + extra));
      }
    }
  }
}

TEST(RopeTest, InterleavedOnPermutedHeadEqualsNeox) {
  // llama.cpp permutes Q/K rows so that interleaved rotation of the
  // permuted head equals rotate-half of the original head.
  const int head_dim = 16, half = head_dim / 2;
  std::mt19937 rng(7);
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / head_dim);
  std::vector<float> head = RandomVector(head_dim, rng);
  std::vector<float> permuted(head_dim);
  for (int i = 0; i < half; ++i) {
    permuted[2 * i] = head[i];
    permuted[2 * i + 1] = head[i + half];
  }
  CpuBackend backend;
  KvCacheShape shape{1, 4, 16, 1, head_dim, DType::kF32};
  ASSERT_TRUE(backend.AllocateKvCache(shape).ok());
  std::mt19937 layout(1);
  BatchMetadata batch = ScatteredBatch({{38, 1}}, 16, 4, layout);
  auto view = backend.StageBatch(batch);
  ASSERT_TRUE(view.ok()) << view.status();
  AttentionParams attention{1, 1, head_dim, 1.0f};
  std::vector<float> neox_q = head, inter_q = permuted;
  std::vector<float> k(head_dim, 0.0f), v(head_dim, 0.0f);
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    std::vector<float>& data = style == RopeStyle::kNeox ? neox_q : inter_q;
    Tensor q{DType::kF32, 1, head_dim, data.data()};
    Tensor kt{DType::kF32, 1, head_dim, k.data()};
    Tensor vt{DType::kF32, 1, head_dim, v.data()};
    RopeParams rope{style, head_dim, head_dim,
                    Tensor{DType::kF32, 1, half, inv_freq.data()}};
    ASSERT_TRUE(backend.RopeAndWriteKv(rope, attention, *view, &q, &kt, vt,
                                       backend.kv_layer(0)).ok());
  }
  for (int i = 0; i < half; ++i) {
    EXPECT_NEAR(inter_q[2 * i], neox_q[i], 1e-6);
    EXPECT_NEAR(inter_q[2 * i + 1], neox_q[i + half], 1e-6);
    // Rotation by angle 37 * inv_freq[i] (position 37).
    const double angle = 37.0 * inv_freq[i];
    EXPECT_NEAR(neox_q[i], head[i] * std::cos(angle) - head[i + half] * std::sin(angle), 1e-4);
  }
}

// Quantizes `values` (a multiple of 32) to Q4_1 the simple way, for a
// weight whose dequantized values the test then knows exactly.
std::vector<BlockQ4_1> QuantizeQ4_1(const std::vector<float>& values) {
  std::vector<BlockQ4_1> blocks(values.size() / 32);
  for (size_t b = 0; b < blocks.size(); ++b) {
    const float* x = &values[b * 32];
    const float lo = *std::min_element(x, x + 32), hi = *std::max_element(x, x + 32);
    const float d = (hi - lo) / 15;
    blocks[b].d = FloatToHalf(d);
    blocks[b].m = FloatToHalf(lo);
    const float dd = HalfToFloat(blocks[b].d), mm = HalfToFloat(blocks[b].m);
    for (int j = 0; j < 16; ++j) {
      auto q = [&](float v) {
        return std::clamp(int(std::lround((v - mm) / (dd == 0 ? 1 : dd))), 0, 15);
      };
      blocks[b].qs[j] = uint8_t(q(x[j]) | q(x[j + 16]) << 4);
    }
  }
  return blocks;
}

TEST(MatMulTest, QuantizedAndPlainWeightsMatchNaiveProduct) {
  std::mt19937 rng(3);
  for (auto [n, m, k] : {std::tuple{1, 7, 32}, {5, 33, 96}, {17, 64, 576}}) {
    std::vector<float> w_values = RandomVector(size_t(m) * k, rng, 0.1f);
    std::vector<BlockQ4_1> w_q4 = QuantizeQ4_1(w_values);
    std::vector<float> w_deq(w_values.size());
    DequantizeRow(DType::kQ4_1, w_q4.data(), w_deq.data(), w_deq.size());
    std::vector<float> x = RandomVector(size_t(n) * k, rng);
    std::vector<float> bias = RandomVector(m, rng);
    CpuBackend backend;
    for (bool quantized : {false, true}) {
      auto w = quantized
                   ? backend.UploadWeight(DType::kQ4_1, m, k, w_q4.data())
                   : backend.UploadWeight(DType::kF32, m, k, w_values.data());
      ASSERT_TRUE(w.ok());
      const std::vector<float>& w_ref = quantized ? w_deq : w_values;
      std::vector<float> y(size_t(n) * m, NAN);
      Tensor xt{DType::kF32, n, k, x.data()};
      Tensor yt{DType::kF32, n, m, y.data()};
      Tensor bt{DType::kF32, 1, m, bias.data()};
      ASSERT_TRUE(backend.MatMul(xt, *w, &bt, &yt).ok());
      std::vector<float> want(y.size());
      for (int r = 0; r < n; ++r) {
        for (int c = 0; c < m; ++c) {
          double acc = bias[c];
          for (int i = 0; i < k; ++i) acc += double(x[r * k + i]) * w_ref[c * k + i];
          want[r * m + c] = float(acc);
        }
      }
      ExpectNear(y, want, 1e-4f, 1e-4f);
    }
  }
}

TEST(MatMulTest, RejectsMismatchedShapes) {
  CpuBackend backend;
  std::vector<float> w(64 * 4), x(3 * 32), y(3 * 64);
  auto wt = backend.UploadWeight(DType::kF32, 4, 64, w.data());
  ASSERT_TRUE(wt.ok());
  Tensor xt{DType::kF32, 3, 32, x.data()};
  Tensor yt{DType::kF32, 3, 4, y.data()};
  absl::Status s = backend.MatMul(xt, *wt, nullptr, &yt);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("do not fit"));
}

// A refused AddRmsNorm leaves the residual as it was (it used to add x
// first, then let RmsNorm refuse the weight or out).
TEST(RmsNormTest, ARefusedAddRmsNormLeavesTheResidual) {
  CpuBackend backend;
  std::vector<float> residual = {1, 2, 3, 4}, x = {1, 1, 1, 1}, weight = {1, 1, 1},
                     out(4, NAN);
  Tensor r{DType::kF32, 1, 4, residual.data()};
  Tensor xt{DType::kF32, 1, 4, x.data()};
  Tensor w{DType::kF32, 1, 3, weight.data()};  // one column short
  Tensor o{DType::kF32, 1, 4, out.data()};
  EXPECT_EQ(backend.AddRmsNorm(&r, xt, w, 1e-5f, &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(residual, (std::vector<float>{1, 2, 3, 4}));
}

TEST(RmsNormTest, AddRmsNormMatchesFormula) {
  std::mt19937 rng(5);
  const int n = 3, h = 576;
  std::vector<float> residual = RandomVector(n * h, rng);
  std::vector<float> x = RandomVector(n * h, rng);
  std::vector<float> weight = RandomVector(h, rng);
  std::vector<float> out(n * h, NAN);
  std::vector<float> sum(n * h), want(n * h);
  for (int i = 0; i < n * h; ++i) sum[i] = residual[i] + x[i];
  for (int r = 0; r < n; ++r) {
    double ss = 0;
    for (int i = 0; i < h; ++i) ss += double(sum[r * h + i]) * sum[r * h + i];
    const double inv = 1.0 / std::sqrt(ss / h + 1e-5);
    for (int i = 0; i < h; ++i) want[r * h + i] = float(sum[r * h + i] * inv * weight[i]);
  }
  CpuBackend backend;
  Tensor rt{DType::kF32, n, h, residual.data()};
  Tensor xt{DType::kF32, n, h, x.data()};
  Tensor wt{DType::kF32, 1, h, weight.data()};
  Tensor ot{DType::kF32, n, h, out.data()};
  ASSERT_TRUE(backend.AddRmsNorm(&rt, xt, wt, 1e-5f, &ot).ok());
  ExpectNear(residual, sum, 0, 0);
  ExpectNear(out, want, 1e-5f, 1e-5f);
}

class ValidateBatchTest : public ::testing::Test {
 protected:
  KvCacheShape shape_{1, 8, 4, 1, 8, DType::kF32};
  BatchMetadata Valid() {
    std::mt19937 rng(0);
    return ScatteredBatch({{6, 2}, {3, 3}}, 4, 8, rng);
  }
  void ExpectRejected(const BatchMetadata& batch, absl::string_view message) {
    absl::Status s = ValidateBatch(batch, shape_);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(message)));
  }
};

TEST_F(ValidateBatchTest, AcceptsAConsistentBatch) {
  EXPECT_TRUE(ValidateBatch(Valid(), shape_).ok());
}

TEST_F(ValidateBatchTest, RejectsBlockIdOutsideCache) {
  BatchMetadata b = Valid();
  b.kv_indices[0] = 8;
  ExpectRejected(b, "outside the cache");
}

// A block twice in one table: positions past the cache's capacity (the
// reference attention's scores buffer overflowed) and K/V overwriting
// the sequence's own earlier positions. One sequence of 33 tokens on an
// 8-block cache of 4: blocks [0..7, 0].
TEST_F(ValidateBatchTest, RejectsABlockNamedTwiceInOneTable) {
  BatchMetadata b;
  b.query_indptr = {0, 1};
  b.kv_indptr = {0, 9};
  b.kv_indices = {0, 1, 2, 3, 4, 5, 6, 7, 0};
  b.kv_last_block_len = {1};
  b.token_ids = {3};
  b.positions = {32};
  b.slot_mapping = {0};
  b.logits_rows = {0};
  ExpectRejected(b, "has 9 blocks; the cache has 8");
  b.kv_indptr = {0, 8};
  b.kv_indices = {0, 1, 2, 3, 4, 5, 6, 0};
  b.positions = {28};
  ExpectRejected(b, "names block 0 more than once");
  b.kv_indices = {0, 1, 2, 3, 4, 5, 6, 7};
  b.slot_mapping = {28};
  EXPECT_TRUE(ValidateBatch(b, shape_).ok()) << ValidateBatch(b, shape_);
}

// Two sequences writing one block race (CUDA) or overwrite each other's
// K/V; reading a block another sequence writes in the same step is fine
// (every layer writes K/V before attending). CUDA graph padding writes its
// dummy block from several one-token sequences, which is allowed.
TEST_F(ValidateBatchTest, RejectsTwoSequencesWritingOneBlock) {
  BatchMetadata b;
  b.query_indptr = {0, 1, 2};
  b.kv_indptr = {0, 1, 2};
  b.kv_indices = {2, 2};
  b.kv_last_block_len = {2, 3};
  b.token_ids = {3, 4};
  b.positions = {1, 2};
  b.slot_mapping = {9, 10};
  b.logits_rows = {0, 1};
  ExpectRejected(b, "sequences 0 and 1 both write block 2");
  // A shared full block read by both, each writing its own tail: fine.
  b.kv_indptr = {0, 2, 4};
  b.kv_indices = {5, 2, 5, 3};
  b.positions = {5, 6};
  b.slot_mapping = {9, 14};
  EXPECT_TRUE(ValidateBatch(b, shape_).ok()) << ValidateBatch(b, shape_);
  // Sequence 1 reads the block sequence 0 writes (a prefix hit on a block
  // being filled): fine.
  b.kv_indices = {5, 2, 2, 3};
  b.slot_mapping = {9, 14};
  EXPECT_TRUE(ValidateBatch(b, shape_).ok()) << ValidateBatch(b, shape_);
  // A one-token sequence at position 0 writing block 2 beside a real one
  // is not padding.
  b.query_indptr = {0, 1, 2};
  b.kv_indptr = {0, 2, 3};
  b.kv_indices = {5, 2, 2};
  b.kv_last_block_len = {2, 1};
  b.positions = {5, 0};
  b.slot_mapping = {9, 8};
  ExpectRejected(b, "sequences 0 and 1 both write block 2");
  // Nor are two such sequences on a block that is not the cache's last
  // (two one-token prompts given one block); on the last they are.
  b.kv_indptr = {0, 1, 2};
  b.kv_indices = {2, 2};
  b.kv_last_block_len = {1, 1};
  b.positions = {0, 0};
  b.slot_mapping = {8, 8};
  ExpectRejected(b, "sequences 0 and 1 both write block 2");
  b.kv_indices = {7, 7};
  b.slot_mapping = {28, 28};
  EXPECT_TRUE(ValidateBatch(b, shape_).ok()) << ValidateBatch(b, shape_);
}

TEST_F(ValidateBatchTest, RejectsWrongPosition) {
  BatchMetadata b = Valid();
  b.positions[0] += 1;
  ExpectRejected(b, "has position");
}

TEST_F(ValidateBatchTest, RejectsSlotOutsideOwnBlocks) {
  BatchMetadata b = Valid();
  b.slot_mapping[1] = b.slot_mapping[1] + 4;
  ExpectRejected(b, "is not its block table's slot");
}

TEST_F(ValidateBatchTest, RejectsLastBlockLenOutOfRange) {
  BatchMetadata b = Valid();
  b.kv_last_block_len[1] = 5;
  ExpectRejected(b, "last_block_len");
}

TEST_F(ValidateBatchTest, RejectsMoreQueriesThanContext) {
  BatchMetadata b = Valid();
  b.kv_last_block_len[1] = 2;  // context 2 < 3 query tokens
  ExpectRejected(b, "more query tokens");
}

TEST_F(ValidateBatchTest, RejectsLogitsRowOutOfRange) {
  BatchMetadata b = Valid();
  b.logits_rows.push_back(b.num_tokens());
  ExpectRejected(b, "logits row");
}

TEST_F(ValidateBatchTest, RejectsInconsistentIndptr) {
  BatchMetadata b = Valid();
  b.query_indptr.back() += 1;
  ExpectRejected(b, "query_indptr");
}

}  // namespace
}  // namespace weft
