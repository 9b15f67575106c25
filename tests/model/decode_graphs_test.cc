// Decode-graph bucketing and padding (runtime/model/decode_graphs.h), on
// the CPU: which steps a graph can replay, the buckets, and that padding a
// decode step with dummy sequences leaves the real sequences' logits
// exactly as they were (reference backend, row by row).
#include "runtime/model/decode_graphs.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"

namespace weft {
namespace {

TEST(DecodeGraphBucketsTest, PowersOfTwoToEightThenMultiplesOfEight) {
  EXPECT_EQ(DecodeGraphBuckets(1), (std::vector<int>{1}));
  EXPECT_EQ(DecodeGraphBuckets(3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(DecodeGraphBuckets(4), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(DecodeGraphBuckets(6), (std::vector<int>{1, 2, 4, 6}));
  EXPECT_EQ(DecodeGraphBuckets(20), (std::vector<int>{1, 2, 4, 8, 16, 20}));
  EXPECT_TRUE(DecodeGraphBuckets(0).empty());
  const std::vector<int> big = DecodeGraphBuckets(1000);
  EXPECT_EQ(big.back(), kMaxDecodeGraphBatch);
  EXPECT_EQ(big.size(), 3u + kMaxDecodeGraphBatch / 8);
}

TEST(DecodeGraphBucketsTest, BucketForIsTheSmallestThatHolds) {
  const std::vector<int> buckets = DecodeGraphBuckets(20);
  EXPECT_EQ(DecodeGraphBucketFor(buckets, 1), 1);
  EXPECT_EQ(DecodeGraphBucketFor(buckets, 3), 4);
  EXPECT_EQ(DecodeGraphBucketFor(buckets, 9), 16);
  EXPECT_EQ(DecodeGraphBucketFor(buckets, 17), 20);
  EXPECT_EQ(DecodeGraphBucketFor(buckets, 21), 0);
}

// Two sequences of `context` tokens each in blocks of 4: sequence s owns
// blocks 2s and 2s + 1; its last token is the step's query.
BatchMetadata DecodeStep(int context) {
  BatchMetadata b;
  b.query_indptr = {0};
  b.kv_indptr = {0};
  for (int s = 0; s < 2; ++s) {
    b.token_ids.push_back(10 + s);
    b.positions.push_back(context - 1);
    const int block = 2 * s + (context - 1) / 4;
    b.slot_mapping.push_back(int64_t{block} * 4 + (context - 1) % 4);
    b.query_indptr.push_back(s + 1);
    for (int i = 0; i <= (context - 1) / 4; ++i) b.kv_indices.push_back(2 * s + i);
    b.kv_indptr.push_back(static_cast<int32_t>(b.kv_indices.size()));
    b.kv_last_block_len.push_back((context - 1) % 4 + 1);
    b.logits_rows.push_back(s);
  }
  return b;
}

TEST(IsPlainDecodeStepTest, OneTokenPerSequenceWithAllLogitsInOrder) {
  BatchMetadata step = DecodeStep(6);
  EXPECT_TRUE(IsPlainDecodeStep(step));
  BatchMetadata no_logits = step;
  no_logits.logits_rows = {1};
  EXPECT_FALSE(IsPlainDecodeStep(no_logits));
  BatchMetadata swapped = step;
  swapped.logits_rows = {1, 0};
  EXPECT_FALSE(IsPlainDecodeStep(swapped));
  BatchMetadata prefill;
  prefill.token_ids = {1, 2, 3};
  prefill.positions = {0, 1, 2};
  prefill.slot_mapping = {0, 1, 2};
  prefill.query_indptr = {0, 3};
  prefill.kv_indptr = {0, 1};
  prefill.kv_indices = {0};
  prefill.kv_last_block_len = {3};
  prefill.logits_rows = {2};
  EXPECT_FALSE(IsPlainDecodeStep(prefill));
  EXPECT_FALSE(IsPlainDecodeStep(BatchMetadata{}));
}

TEST(PadDecodeBatchTest, AppendsValidOneTokenSequencesInTheDummyBlock) {
  const KvCacheShape shape{1, 8, 4, 1, 16, DType::kF32};
  const BatchMetadata padded = PadDecodeBatch(DecodeStep(6), 5, 7, 4);
  EXPECT_TRUE(ValidateBatch(padded, shape).ok()) << ValidateBatch(padded, shape);
  EXPECT_EQ(padded.num_tokens(), 5);
  EXPECT_EQ(padded.num_seqs(), 5);
  EXPECT_TRUE(IsPlainDecodeStep(padded));
  for (int t = 2; t < 5; ++t) {
    EXPECT_EQ(padded.slot_mapping[t], 7 * 4);
    EXPECT_EQ(padded.positions[t], 0);
  }
  // From nothing: what a capture stages.
  const BatchMetadata dummy = PadDecodeBatch(BatchMetadata{}, 3, 7, 4);
  EXPECT_TRUE(ValidateBatch(dummy, shape).ok()) << ValidateBatch(dummy, shape);
  EXPECT_EQ(dummy.num_tokens(), 3);
}

TEST(PadDecodeBatchTest, PaddingLeavesTheRealLogitsUnchanged) {
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) +
                                "/tests/fixtures/tiny_llama");
  ASSERT_TRUE(files.ok()) << files.status();
  CpuBackend backend;  // the reference: every row computed on its own
  ModelPlan plan;
  plan.max_num_tokens = 16;
  plan.max_num_logits = 16;
  plan.num_kv_blocks = 8;
  plan.block_size = 4;
  auto model = LlamaModel::Create(**files, &backend, plan);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> logits;
  // Fill both sequences' first five positions, one decode step at a time.
  for (int context = 1; context <= 5; ++context) {
    ASSERT_TRUE((*model)->Forward(DecodeStep(context), &logits).ok());
  }
  std::vector<float> plain, padded;
  ASSERT_TRUE((*model)->Forward(DecodeStep(6), &plain).ok());
  // The same step again (it rewrites the same K/V), padded to 7 sequences
  // whose dummy block is the plan's last.
  ASSERT_TRUE((*model)->Forward(PadDecodeBatch(DecodeStep(6), 7, 7, 4), &padded).ok());
  const size_t vocab = (*files)->config().vocab_size;
  ASSERT_EQ(plain.size(), 2 * vocab);
  ASSERT_EQ(padded.size(), 7 * vocab);
  padded.resize(2 * vocab);
  EXPECT_EQ(padded, plain);
}

}  // namespace
}  // namespace weft
