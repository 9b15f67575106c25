// Tiny random-initialized Llama (Llama 3 rope scaling, F32) and Qwen2 (QKV
// bias, tied embeddings, BF16) saved by Hugging Face transformers as
// safetensors directories (tools/make_tiny_models.py): our logits for every
// position must match transformers' within 1e-4 relative; the batch and
// chunking must not change them.
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"

namespace weft {
namespace {

std::string FixtureDir(const std::string& name) {
  return std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/" + name;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

class TinyModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = FixtureDir(GetParam());
    auto files = ModelFiles::Open(dir_);
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *std::move(files);
    ModelPlan plan;
    plan.max_num_tokens = 64;
    plan.max_num_logits = 64;
    plan.num_kv_blocks = 16;
    plan.block_size = 4;  // several blocks for 24 tokens
    auto model = LlamaModel::Create(*files_, &backend_, plan);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    expected_ = ReadJson(dir_ + "/expected.json");
    input_ids_ = expected_["input_ids"].get<std::vector<int32_t>>();
  }

  std::string dir_;
  CpuBackend backend_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<LlamaModel> model_;
  nlohmann::json expected_;
  std::vector<int32_t> input_ids_;
};

TEST_P(TinyModelTest, LogitsMatchTransformers) {
  const std::vector<float> want =
      ReadF32(dir_ + "/" + expected_["logits_file"].get<std::string>());
  const int vocab = files_->config().vocab_size;
  ASSERT_EQ(want.size(), input_ids_.size() * vocab);
  SequenceRunner runner(model_.get());
  auto got = runner.AppendAllLogits(input_ids_);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want.size());
  // 1e-4 relative to the row's largest logit magnitude: an elementwise
  // relative bound is meaningless for logits near zero.
  double worst = 0;
  for (size_t row = 0; row < input_ids_.size(); ++row) {
    float scale = 0;
    for (int v = 0; v < vocab; ++v) {
      scale = std::max(scale, std::fabs(want[row * vocab + v]));
    }
    for (int v = 0; v < vocab; ++v) {
      const size_t i = row * vocab + v;
      const double err = std::fabs((*got)[i] - want[i]) / scale;
      worst = std::max(worst, err);
      ASSERT_LE(err, 1e-4) << "position " << row << " token " << v << ": "
                           << (*got)[i] << " vs " << want[i];
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST_P(TinyModelTest, ChunkedPrefillAndDecodeGiveTheSameLogits) {
  const int vocab = files_->config().vocab_size;
  SequenceRunner whole(model_.get());
  auto all = whole.AppendAllLogits(input_ids_);
  ASSERT_TRUE(all.ok()) << all.status();
  const std::vector<float> reference(all->begin(), all->end());

  SequenceRunner stepwise(model_.get());
  const absl::Span<const int32_t> ids(input_ids_);
  auto first = stepwise.AppendAllLogits(ids.subspan(0, 7));  // crosses blocks
  ASSERT_TRUE(first.ok());
  for (size_t i = 7; i < ids.size(); ++i) {
    auto logits = stepwise.Append(ids.subspan(i, 1));
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (int v = 0; v < vocab; ++v) {
      ASSERT_NEAR((*logits)[v], reference[i * vocab + v], 1e-5)
          << "position " << i;
    }
  }
}

TEST_P(TinyModelTest, BatchedSequencesMatchSeparateRuns) {
  // Two sequences in one step, on disjoint blocks, against each alone.
  const int vocab = files_->config().vocab_size;
  const std::vector<int32_t> a(input_ids_.begin(), input_ids_.begin() + 11);
  const std::vector<int32_t> b(input_ids_.begin() + 5, input_ids_.end());
  const std::vector<int32_t> blocks_a = {3, 1, 7}, blocks_b = {0, 2, 4, 5, 6};
  std::vector<float> alone_a, alone_b, together;
  const int block_size = model_->plan().block_size;
  ASSERT_TRUE(model_->Forward(SingleSequenceBatch(a, 0, blocks_a, block_size, true),
                              &alone_a).ok());
  ASSERT_TRUE(model_->Forward(SingleSequenceBatch(b, 0, blocks_b, block_size, true),
                              &alone_b).ok());
  BatchMetadata batch = SingleSequenceBatch(a, 0, blocks_a, block_size, true);
  const BatchMetadata second =
      SingleSequenceBatch(b, 0, blocks_b, block_size, true);
  const int offset = batch.num_tokens();
  batch.token_ids.insert(batch.token_ids.end(), b.begin(), b.end());
  batch.positions.insert(batch.positions.end(), second.positions.begin(),
                         second.positions.end());
  batch.slot_mapping.insert(batch.slot_mapping.end(),
                            second.slot_mapping.begin(),
                            second.slot_mapping.end());
  batch.query_indptr.push_back(offset + second.num_tokens());
  batch.kv_indices.insert(batch.kv_indices.end(), second.kv_indices.begin(),
                          second.kv_indices.end());
  batch.kv_indptr.push_back(static_cast<int>(batch.kv_indices.size()));
  batch.kv_last_block_len.push_back(second.kv_last_block_len[0]);
  for (int32_t row : second.logits_rows) batch.logits_rows.push_back(offset + row);
  ASSERT_TRUE(model_->Forward(batch, &together).ok());
  ASSERT_EQ(together.size(), alone_a.size() + alone_b.size());
  for (size_t i = 0; i < alone_a.size(); ++i) ASSERT_EQ(together[i], alone_a[i]);
  for (size_t i = 0; i < alone_b.size(); ++i) {
    ASSERT_EQ(together[alone_a.size() + i], alone_b[i]) << "at " << i / vocab;
  }
}

TEST_P(TinyModelTest, TokenizerMatchesTransformers) {
  if (!expected_.contains("tokenizer_cases")) GTEST_SKIP() << "no cases";
  EncodeOptions options;
  options.add_special_tokens = true;
  for (const auto& c : expected_["tokenizer_cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(files_->tokenizer().Encode(text, options),
              c["ids"].get<std::vector<int32_t>>())
        << "text: " << text;
  }
}

TEST_P(TinyModelTest, OutOfVocabularyTokenIsRejected) {
  std::vector<float> logits;
  const std::vector<int32_t> bad = {files_->config().vocab_size};
  const std::vector<int32_t> blocks = {0};
  absl::Status s = model_->Forward(SingleSequenceBatch(bad, 0, blocks, 4, false),
                                   &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Models, TinyModelTest,
                         ::testing::Values("tiny_llama", "tiny_qwen2"));

}  // namespace
}  // namespace weft
