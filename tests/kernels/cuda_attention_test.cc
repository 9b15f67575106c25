// The CUDA backend's RoPE + paged KV write, paged attention (decode, split
// decode, tensor-core prefill, and mixed batches) and KV block copies
// against the CPU reference on seeded random inputs over scattered blocks.
// Outputs (and the GPU cache) are NaN-poisoned before each run.
// Tolerances (atol + rtol·|ref|):
//   RoPE q, k (fp32)         atol 1e-5, rtol 1e-5 (sincosf vs std::sin/cos)
//   K/V written to the cache  the CPU value rounded to bf16, ± 1 bf16 ulp
//   decode attention          the caches hold identical (bf16-exact) values,
//                             q and softmax are fp32: atol 2e-4, rtol 1e-3
//   prefill attention         q and P rounded to bf16 for mma.sync:
//                             atol 1.5e-2, rtol 1.5e-2
// Without a GPU every test skips with a message saying so.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
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
using test::ScatteredBatch;
using test::SeqSpec;

// One layer's K or V of the GPU cache as a BF16 tensor, one row per slot
// and head.
Tensor CacheTensor(const KvCacheShape& shape, void* data) {
  return Tensor{DType::kBF16,
                int64_t{shape.num_blocks} * shape.num_kv_heads * shape.block_size,
                shape.head_dim, data};
}

struct RopeCase {
  int num_q_heads, num_kv_heads, head_dim, rotary_dim, block_size;
  RopeStyle style;
  std::vector<SeqSpec> seqs;
};

std::string RopeCaseName(const ::testing::TestParamInfo<RopeCase>& info) {
  const RopeCase& c = info.param;
  return std::string(c.style == RopeStyle::kNeox ? "Neox" : "Interleaved") +
         "_D" + std::to_string(c.head_dim) + "_R" + std::to_string(c.rotary_dim) +
         "_" + std::to_string(info.index);
}

class CudaRopeTest : public ::testing::TestWithParam<RopeCase> {};

TEST_P(CudaRopeTest, MatchesCpuAndWritesTheSlots) {
  const RopeCase& c = GetParam();
  auto gpu = test::MakeCudaOrNull();
  if (gpu == nullptr) GTEST_SKIP() << test::kNoGpu;
  CpuBackend cpu;
  KvCacheShape shape{1, 256, c.block_size, c.num_kv_heads, c.head_dim,
                     DType::kF32};
  ASSERT_TRUE(cpu.AllocateKvCache(shape).ok());
  shape.dtype = DType::kBF16;
  ASSERT_TRUE(gpu->AllocateKvCache(shape).ok());
  std::mt19937 layout(5);
  BatchMetadata batch = ScatteredBatch(c.seqs, c.block_size, 256, layout);
  const int n = batch.num_tokens();
  const int q_cols = c.num_q_heads * c.head_dim;
  const int kv_cols = c.num_kv_heads * c.head_dim;
  std::mt19937 rng(21 + c.head_dim + c.rotary_dim);
  std::vector<float> q = RandomVector(size_t(n) * q_cols, rng);
  std::vector<float> k = RandomVector(size_t(n) * kv_cols, rng);
  std::vector<float> v = RandomVector(size_t(n) * kv_cols, rng);
  std::vector<float> inv_freq(c.rotary_dim / 2);
  for (int i = 0; i < c.rotary_dim / 2; ++i) {
    inv_freq[i] = std::pow(10000.0f, -2.0f * i / c.rotary_dim);
  }
  AttentionParams attention{c.num_q_heads, c.num_kv_heads, c.head_dim,
                            1.0f / std::sqrt(float(c.head_dim))};

  std::vector<float> cq = q, ck = k;
  {
    auto view = cpu.StageBatch(batch);
    ASSERT_TRUE(view.ok()) << view.status();
    Tensor qt{DType::kF32, n, q_cols, cq.data()};
    Tensor kt{DType::kF32, n, kv_cols, ck.data()};
    Tensor vt{DType::kF32, n, kv_cols, v.data()};
    RopeParams rope{c.style, c.head_dim, c.rotary_dim,
                    Tensor{DType::kF32, 1, c.rotary_dim / 2, inv_freq.data()}};
    ASSERT_TRUE(
        cpu.RopeAndWriteKv(rope, attention, *view, &qt, &kt, vt, cpu.kv_layer(0)).ok());
  }
  Tensor gq = test::DeviceF32(*gpu, n, q_cols, q);
  Tensor gk = test::DeviceF32(*gpu, n, kv_cols, k);
  Tensor gv = test::DeviceF32(*gpu, n, kv_cols, v);
  Tensor k_cache = CacheTensor(shape, gpu->kv_layer(0).k);
  Tensor v_cache = CacheTensor(shape, gpu->kv_layer(0).v);
  std::vector<float> nan(k_cache.num_elements(), std::nanf(""));
  ASSERT_TRUE(gpu->CopyFromHost(nan.data(), &k_cache).ok());
  ASSERT_TRUE(gpu->CopyFromHost(nan.data(), &v_cache).ok());
  std::vector<float> freq = inv_freq.empty() ? std::vector<float>{0} : inv_freq;
  auto g_freq = gpu->UploadWeight(DType::kF32, 1, freq.size(), freq.data());
  ASSERT_TRUE(g_freq.ok());
  auto view = gpu->StageBatch(batch);
  ASSERT_TRUE(view.ok()) << view.status();
  RopeParams rope{c.style, c.head_dim, c.rotary_dim, *g_freq};
  ASSERT_TRUE(
      gpu->RopeAndWriteKv(rope, attention, *view, &gq, &gk, gv, gpu->kv_layer(0)).ok());

  ExpectNear(test::ToHost(*gpu, gq), cq, 1e-5f, 1e-5f);
  ExpectNear(test::ToHost(*gpu, gk), ck, 1e-5f, 1e-5f);
  const std::vector<float> got_k = test::ToHost(*gpu, k_cache);
  const std::vector<float> got_v = test::ToHost(*gpu, v_cache);
  const float* cpu_k = static_cast<const float*>(cpu.kv_layer(0).k);
  const float* cpu_v = static_cast<const float*>(cpu.kv_layer(0).v);
  std::vector<float> got, want;
  for (int t = 0; t < n; ++t) {
    const int64_t block = batch.slot_mapping[t] / c.block_size;
    const int64_t offset = batch.slot_mapping[t] % c.block_size;
    for (int h = 0; h < c.num_kv_heads; ++h) {
      const int64_t at =
          ((block * c.num_kv_heads + h) * c.block_size + offset) * c.head_dim;
      for (int d = 0; d < c.head_dim; ++d) {
        got.push_back(got_k[at + d]);
        want.push_back(Bf16ToFloat(FloatToBf16(cpu_k[at + d])));
        got.push_back(got_v[at + d]);
        want.push_back(Bf16ToFloat(FloatToBf16(cpu_v[at + d])));
      }
    }
  }
  ExpectNear(got, want, 1e-6f, 1.0f / 128);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaRopeTest,
    ::testing::Values(
        RopeCase{4, 4, 64, 64, 16, RopeStyle::kNeox, {{1, 1}}},
        RopeCase{9, 3, 64, 64, 16, RopeStyle::kInterleaved, {{17, 17}, {33, 1}}},
        RopeCase{8, 2, 128, 128, 4, RopeStyle::kNeox, {{40, 7}, {3, 3}}},
        RopeCase{4, 1, 64, 32, 1, RopeStyle::kNeox, {{9, 9}}},  // partial rotary
        RopeCase{32, 8, 128, 128, 16, RopeStyle::kInterleaved,
                 {{3000, 1}, {129, 129}}},  // large angles
        RopeCase{2, 2, 64, 0, 16, RopeStyle::kNeox, {{5, 5}}}),  // no rotary
    RopeCaseName);

// Which kernels the CUDA backend is configured to use.
enum class Path { kDefault, kDecodeOnly, kSplitDecode, kPrefillOnly };

CudaBackendConfig ConfigFor(Path path) {
  CudaBackendConfig config;
  // The fill batches write every context token at once (the longest case:
  // 1,770 tokens); the default plan of 512 would reject them.
  config.max_num_tokens = 2048;
  switch (path) {
    case Path::kDefault:
      break;
    case Path::kDecodeOnly:
      config.prefill_min_query_len = 1 << 30;
      config.split_chunk_tokens = 0;
      break;
    case Path::kSplitDecode:
      config.prefill_min_query_len = 1 << 30;
      config.split_chunk_tokens = 16;  // split even short contexts
      config.max_decode_splits = 5;
      break;
    case Path::kPrefillOnly:
      config.prefill_min_query_len = 1;
      break;
  }
  return config;
}

struct AttentionCase {
  int block_size, num_q_heads, num_kv_heads, head_dim;
  std::vector<SeqSpec> seqs;
};

// Both backends hold the same bf16-exact K and V for every context token
// (written with an identity rotation), and attend the sequences' last
// query_len tokens.
struct AttentionRun {
  std::vector<float> gpu, cpu;
};

AttentionRun RunAttention(const AttentionCase& c, CudaBackend& gpu,
                          uint32_t seed) {
  AttentionRun run;
  CpuBackend cpu;
  const int num_blocks = 512;
  KvCacheShape shape{1, num_blocks, c.block_size, c.num_kv_heads, c.head_dim,
                     DType::kF32};
  if (absl::Status status = cpu.AllocateKvCache(shape); !status.ok()) {
    ADD_FAILURE() << status;
    return run;
  }
  shape.dtype = DType::kBF16;
  if (absl::Status status = gpu.AllocateKvCache(shape); !status.ok()) {
    ADD_FAILURE() << status;
    return run;
  }
  std::vector<SeqSpec> full = c.seqs;
  for (SeqSpec& s : full) s.query_len = s.context_len;
  std::mt19937 layout(99);
  BatchMetadata fill = ScatteredBatch(full, c.block_size, num_blocks, layout);
  const int kv_cols = c.num_kv_heads * c.head_dim;
  const int q_cols = c.num_q_heads * c.head_dim;
  const int total = fill.num_tokens();
  // K and V drawn token by token and q from its own generator, so a
  // sequence placed first gets the same values whatever follows it.
  std::mt19937 rng(seed), q_rng(seed + 1);
  std::vector<float> k, v;
  for (int t = 0; t < total; ++t) {
    for (std::vector<float>* dst : {&k, &v}) {
      const std::vector<float> row = test::RoundToBf16(RandomVector(kv_cols, rng));
      dst->insert(dst->end(), row.begin(), row.end());
    }
  }
  std::vector<float> zeros(c.head_dim / 2, 0.0f);
  AttentionParams attention{c.num_q_heads, c.num_kv_heads, c.head_dim,
                            1.0f / std::sqrt(float(c.head_dim))};
  {
    std::vector<float> q_fill(size_t(total) * q_cols, 0.0f), k_copy = k;
    auto view = cpu.StageBatch(fill);
    if (!view.ok()) {  // *view on an error would abort the whole binary
      ADD_FAILURE() << view.status();
      return run;
    }
    Tensor qt{DType::kF32, total, q_cols, q_fill.data()};
    Tensor kt{DType::kF32, total, kv_cols, k_copy.data()};
    Tensor vt{DType::kF32, total, kv_cols, v.data()};
    RopeParams rope{RopeStyle::kNeox, c.head_dim, c.head_dim,
                    Tensor{DType::kF32, 1, c.head_dim / 2, zeros.data()}};
    EXPECT_TRUE(cpu.RopeAndWriteKv(rope, attention, *view, &qt, &kt, vt,
                                   cpu.kv_layer(0)).ok());
  }
  {
    Tensor qt = test::PoisonedF32(gpu, total, q_cols);
    Tensor kt = test::DeviceF32(gpu, total, kv_cols, k);
    Tensor vt = test::DeviceF32(gpu, total, kv_cols, v);
    auto freq = gpu.UploadWeight(DType::kF32, 1, zeros.size(), zeros.data());
    if (!freq.ok()) {
      ADD_FAILURE() << freq.status();
      return run;
    }
    auto view = gpu.StageBatch(fill);
    if (!view.ok()) {  // *view on an error would abort the whole binary
      ADD_FAILURE() << view.status();
      return run;
    }
    RopeParams rope{RopeStyle::kNeox, c.head_dim, c.head_dim, *freq};
    EXPECT_TRUE(gpu.RopeAndWriteKv(rope, attention, *view, &qt, &kt, vt,
                                   gpu.kv_layer(0)).ok());
  }
  BatchMetadata step;
  step.query_indptr = {0};
  step.kv_indptr = fill.kv_indptr;
  step.kv_indices = fill.kv_indices;
  step.kv_last_block_len = fill.kv_last_block_len;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    for (int i = c.seqs[s].context_len - c.seqs[s].query_len;
         i < c.seqs[s].context_len; ++i) {
      const int row = fill.query_indptr[s] + i;
      step.token_ids.push_back(0);
      step.positions.push_back(fill.positions[row]);
      step.slot_mapping.push_back(fill.slot_mapping[row]);
    }
    step.query_indptr.push_back(step.num_tokens());
    step.logits_rows.push_back(step.num_tokens() - 1);
  }
  const int n = step.num_tokens();
  std::vector<float> q = RandomVector(size_t(n) * q_cols, q_rng);
  run.cpu.assign(size_t(n) * q_cols, std::nanf(""));
  {
    auto view = cpu.StageBatch(step);
    if (!view.ok()) {  // *view on an error would abort the whole binary
      ADD_FAILURE() << view.status();
      return run;
    }
    Tensor qt{DType::kF32, n, q_cols, q.data()};
    Tensor ot{DType::kF32, n, q_cols, run.cpu.data()};
    EXPECT_TRUE(cpu.PagedAttention(attention, *view, qt, cpu.kv_layer(0), &ot).ok());
  }
  Tensor qt = test::DeviceF32(gpu, n, q_cols, q);
  Tensor ot = test::PoisonedF32(gpu, n, q_cols);
  auto view = gpu.StageBatch(step);
  if (!view.ok()) {  // *view on an error would abort the whole binary
      ADD_FAILURE() << view.status();
      return run;
    }
  absl::Status s = gpu.PagedAttention(attention, *view, qt, gpu.kv_layer(0), &ot);
  EXPECT_TRUE(s.ok()) << s;
  run.gpu = test::ToHost(gpu, ot);
  return run;
}

class CudaAttentionTest
    : public ::testing::TestWithParam<std::tuple<Path, AttentionCase>> {};

std::string AttentionCaseName(
    const ::testing::TestParamInfo<std::tuple<Path, AttentionCase>>& info) {
  static const char* const kPaths[] = {"Default", "DecodeOnly", "SplitDecode",
                                       "PrefillOnly"};
  const AttentionCase& c = std::get<1>(info.param);
  return std::string(kPaths[static_cast<int>(std::get<0>(info.param))]) +
         "_B" + std::to_string(c.block_size) + "_H" +
         std::to_string(c.num_q_heads) + "_" + std::to_string(c.num_kv_heads) +
         "_D" + std::to_string(c.head_dim) + "_" + std::to_string(info.index);
}

TEST_P(CudaAttentionTest, MatchesCpuReference) {
  const auto& [path, c] = GetParam();
  auto gpu = test::MakeCudaOrNull(ConfigFor(path));
  if (gpu == nullptr) GTEST_SKIP() << test::kNoGpu;
  AttentionRun run = RunAttention(c, *gpu, 1234 + c.block_size + c.head_dim);
  bool any_prefill = false;
  for (const SeqSpec& s : c.seqs) {
    any_prefill |= s.query_len >= ConfigFor(path).prefill_min_query_len;
  }
  if (any_prefill) {
    ExpectNear(run.gpu, run.cpu, 1.5e-2f, 1.5e-2f);
  } else {
    ExpectNear(run.gpu, run.cpu, 2e-4f, 1e-3f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionTest,
    ::testing::Combine(
        ::testing::Values(Path::kDefault, Path::kDecodeOnly,
                          Path::kSplitDecode, Path::kPrefillOnly),
        ::testing::Values(
            AttentionCase{16, 4, 4, 64, {{1, 1}}},                    // first token
            AttentionCase{16, 8, 2, 64, {{17, 17}, {16, 1}}},         // block edges
            AttentionCase{4, 9, 3, 64, {{33, 5}, {7, 1}, {12, 12}}},  // SmolLM2 GQA
            AttentionCase{1, 4, 1, 128, {{9, 3}, {2, 1}}},            // 1-token blocks
            // Prefill tile (64 tokens; 16 tokens × 4 heads a block) and
            // key tile (64) boundaries, group 4.
            AttentionCase{16, 32, 8, 128, {{200, 1}, {65, 65}, {130, 70}, {64, 64}}},
            // Group 7 (Qwen2.5-7B): a 64-token tile is 448 (token, head)
            // rows, 7 prefill blocks, one token's heads split across two.
            AttentionCase{16, 14, 2, 128, {{150, 70}, {33, 33}, {80, 1}}},
            // Group 16: two chunks of kDecodeMaxGroup query heads.
            AttentionCase{16, 16, 1, 128, {{300, 1}, {47, 1}}},
            // Long contexts: several splits of different counts per token.
            AttentionCase{8, 12, 2, 64, {{1000, 1}, {513, 1}, {257, 2}}})),
    AttentionCaseName);

TEST(CudaAttentionInvarianceTest, SplitDecodeOfASequenceDoesNotDependOnTheBatch) {
  CudaBackendConfig config = ConfigFor(Path::kSplitDecode);
  config.max_decode_splits = 32;
  auto gpu = test::MakeCudaOrNull(config);
  if (gpu == nullptr) GTEST_SKIP() << test::kNoGpu;
  // The same sequence (same seed, same blocks: it comes first) alone, and
  // next to a much longer one that raises the grid's split count.
  AttentionCase alone{16, 8, 2, 64, {{100, 1}}};
  AttentionCase together{16, 8, 2, 64, {{100, 1}, {450, 1}}};
  AttentionRun a = RunAttention(alone, *gpu, 7);
  AttentionRun b = RunAttention(together, *gpu, 7);
  // The first sequence has the same inputs in both runs: its CPU results
  // agree bit for bit.
  const size_t row = 8 * 64;
  ASSERT_GE(b.cpu.size(), row);
  ASSERT_TRUE(std::equal(a.cpu.begin(), a.cpu.begin() + row, b.cpu.begin()));
  EXPECT_TRUE(std::equal(a.gpu.begin(), a.gpu.begin() + row, b.gpu.begin()))
      << "split decode result changed with the batch";
}

struct CopyCase {
  KvCacheShape shape;
  std::vector<int32_t> src, dst;
};

class CudaKvBlocksTest : public ::testing::TestWithParam<CopyCase> {};

TEST_P(CudaKvBlocksTest, CopyKvBlocksCopiesEveryLayerInOrder) {
  const CopyCase& c = GetParam();
  const KvCacheShape& shape = c.shape;
  auto gpu = test::MakeCudaOrNull();
  if (gpu == nullptr) GTEST_SKIP() << test::kNoGpu;
  ASSERT_TRUE(gpu->AllocateKvCache(shape).ok());
  std::mt19937 rng(31);
  std::vector<std::vector<float>> before;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    for (void* p : {gpu->kv_layer(layer).k, gpu->kv_layer(layer).v}) {
      Tensor t = CacheTensor(shape, p);
      std::vector<float> values =
          test::RoundToBf16(RandomVector(t.num_elements(), rng));
      ASSERT_TRUE(gpu->CopyFromHost(values.data(), &t).ok());
      before.push_back(values);
    }
  }
  ASSERT_TRUE(gpu->CopyKvBlocks(c.src, c.dst).ok());
  const int64_t block = shape.block_elements();
  int i = 0;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    for (void* p : {gpu->kv_layer(layer).k, gpu->kv_layer(layer).v}) {
      std::vector<float> want = before[i++];
      for (size_t n = 0; n < c.src.size(); ++n) {  // in order, like the GPU
        std::copy(want.begin() + c.src[n] * block,
                  want.begin() + (c.src[n] + 1) * block,
                  want.begin() + c.dst[n] * block);
      }
      ExpectNear(test::ToHost(*gpu, CacheTensor(shape, p)), want, 0, 0);
    }
  }
  EXPECT_EQ(gpu->CopyKvBlocks({{shape.num_blocks}}, {{0}}).code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaKvBlocksTest,
    ::testing::Values(
        // 1 → 2, then 2 → 5 reads what the first copy wrote; 7 → 0.
        CopyCase{{3, 8, 4, 2, 64, DType::kBF16}, {1, 2, 7}, {2, 5, 0}},
        CopyCase{{1, 2, 16, 1, 64, DType::kBF16}, {0}, {1}},
        CopyCase{{2, 33, 1, 3, 128, DType::kBF16}, {32, 0, 5}, {0, 32, 6}},
        CopyCase{{30, 16, 16, 3, 64, DType::kBF16}, {3, 4, 5, 6}, {12, 13, 14, 15}},
        CopyCase{{1, 4, 16, 8, 128, DType::kBF16}, {}, {}}));  // nothing to copy

#else  // !WEFT_HAVE_CUDA

TEST(CudaAttentionTest, SkippedWithoutCuda) { GTEST_SKIP() << test::kNoGpu; }

#endif  // WEFT_HAVE_CUDA

}  // namespace
}  // namespace weft
