// Synthetic models (runtime/model/synthetic_model.h): "synthetic:NAME" opens
// like a model directory, with the named model's shapes, reproducible random
// weights the model loads and runs on, and a byte-level tokenizer covering
// the whole vocabulary.
#include "runtime/model/synthetic_model.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"

namespace weft {
namespace {

TEST(SyntheticModelTest, ConfigsHaveThePublishedShapes) {
  auto llama3 = SyntheticModelConfig("llama3-8b");
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  EXPECT_EQ(llama3->vocab_size, 128256);
  EXPECT_EQ(llama3->hidden_size, 4096);
  EXPECT_EQ(llama3->intermediate_size, 14336);
  EXPECT_EQ(llama3->num_layers, 32);
  EXPECT_EQ(llama3->num_kv_heads, 8);
  EXPECT_EQ(llama3->head_dim, 128);
  auto qwen = SyntheticModelConfig("qwen2.5-7b");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_TRUE(qwen->attention_bias);
  EXPECT_EQ(qwen->num_kv_heads, 4);
  for (const std::string& name : SyntheticModelNames()) {
    EXPECT_TRUE(SyntheticModelConfig(name).ok()) << name;
  }
}

TEST(SyntheticModelTest, UnknownNameIsNotFoundAndListsTheKnownOnes) {
  auto files = ModelFiles::Open("synthetic:gpt-5");
  ASSERT_EQ(files.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(files.status().message().find("llama3-8b"), std::string::npos);
}

TEST(SyntheticModelTest, WeightsAreReproducibleAndScaledToKeepActivationsSane) {
  auto config = SyntheticModelConfig("smollm2-135m");
  ASSERT_TRUE(config.ok());
  auto a = SyntheticWeights::Create(*config);
  auto b = SyntheticWeights::Create(*config);
  ASSERT_TRUE(a.ok() && b.ok());
  const char* name = "model.layers.3.mlp.down_proj.weight";
  const HostTensor* ta = (*a)->FindTensor(name);
  const HostTensor* tb = (*b)->FindTensor(name);
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->dtype, DType::kBF16);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{576, 1536}));
  ASSERT_EQ(ta->num_bytes, tb->num_bytes);
  EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->num_bytes), 0);
  // Uniform in ±sqrt(3 / 1536): standard deviation 1/sqrt(1536).
  const auto* bits = reinterpret_cast<const uint16_t*>(ta->data);
  double sum_sq = 0;
  const int64_t n = ta->num_bytes / 2;
  for (int64_t i = 0; i < n; ++i) {
    const double v = Bf16ToFloat(bits[i]);
    sum_sq += v * v;
  }
  EXPECT_NEAR(std::sqrt(sum_sq / n) * std::sqrt(1536.0), 1.0, 0.01);
  // Another tensor gets other values.
  const HostTensor* up = (*a)->FindTensor("model.layers.3.mlp.up_proj.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_NE(std::memcmp(up->data, ta->data, 64), 0);
  EXPECT_EQ((*a)->FindTensor("lm_head.weight"), nullptr);  // tied
}

TEST(SyntheticModelTest, TokenizerIsByteLevelOverTheWholeVocabulary) {
  auto files = ModelFiles::Open("synthetic:smollm2-135m");
  ASSERT_TRUE(files.ok()) << files.status();
  const Tokenizer& tok = (*files)->tokenizer();
  const std::vector<int32_t> ids = tok.Encode("Hi é", EncodeOptions{});
  // One id per byte: 'H', 'i', ' ', 0xC3, 0xA9.
  EXPECT_EQ(ids, (std::vector<int32_t>{'H', 'i', ' ', 0xC3, 0xA9}));
  EXPECT_EQ(tok.Decode(ids, false), "Hi é");
  EXPECT_EQ(tok.TokenBytes(1000), "<t1000>");
  EXPECT_EQ(tok.TokenBytes(49151), "<|endoftext|>");
}

TEST(SyntheticModelTest, LoadsAndRunsWithFiniteLogits) {
  auto files = ModelFiles::Open("synthetic:smollm2-135m");
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ((*files)->format(), WeightFormat::kHuggingFace);
  CpuBackend backend;
  ModelPlan plan;
  plan.max_num_tokens = 32;
  plan.max_num_logits = 32;
  plan.num_kv_blocks = 8;
  plan.block_size = 16;
  auto model = LlamaModel::Create(**files, &backend, plan);
  ASSERT_TRUE(model.ok()) << model.status();
  SequenceRunner runner(model->get());
  const std::vector<int32_t> prompt = {'H', 'e', 'l', 'l', 'o', 300, 4000};
  auto logits = runner.AppendAllLogits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const int vocab = (*files)->config().vocab_size;
  ASSERT_EQ(logits->size(), prompt.size() * vocab);
  float max_abs = 0;
  for (float v : *logits) {
    ASSERT_TRUE(std::isfinite(v));
    max_abs = std::max(max_abs, std::fabs(v));
  }
  // Random but not degenerate: neither all zero nor blown up.
  EXPECT_GT(max_abs, 1e-3f);
  EXPECT_LT(max_abs, 1e4f);
}

}  // namespace
}  // namespace weft
