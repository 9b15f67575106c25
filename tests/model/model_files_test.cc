// Model files that parse but disagree with themselves are refused at load
// with a message naming the problem, not served as a broken model: special
// token ids outside the vocabulary, more layers in the file than the
// configuration names, biases the configuration would ignore, infinite
// hyperparameters.
#include "runtime/model/model_files.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"
#include "runtime/model/llama.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using ::testing::HasSubstr;

class ModelFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeScratchDir("weft_model_files");
    std::filesystem::copy(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama",
                          dir_, std::filesystem::copy_options::recursive);
  }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  // Sets `key` of the copy's config.json to `value`.
  void SetConfig(const std::string& key, const nlohmann::json& value) {
    const std::string path = (dir_ / "config.json").string();
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json config = nlohmann::json::parse(text.str());
    config[key] = value;
    std::ofstream(path, std::ios::trunc) << config.dump();
  }

  absl::Status Load() {
    auto files = ModelFiles::Open(dir_.string());
    if (!files.ok()) return files.status();
    ModelPlan plan;
    plan.max_num_tokens = 16;
    plan.max_num_logits = 16;
    plan.num_kv_blocks = 4;
    plan.block_size = 4;
    return LlamaModel::Create(**files, &backend_, plan).status();
  }

  std::filesystem::path dir_;
  CpuBackend backend_;
};

TEST_F(ModelFilesTest, TheFixtureLoads) { EXPECT_TRUE(Load().ok()) << Load(); }

// EOS (id 2) past a vocabulary of 2 could never be sampled: generation would
// silently run to max_tokens.
TEST_F(ModelFilesTest, SpecialIdsOutsideTheVocabularyAreRefused) {
  SetConfig("vocab_size", 2);
  const absl::Status status = Load();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("EOS token id 2 is outside the model's "
                                          "vocabulary of 2 tokens"));
  EXPECT_THAT(status.message(), HasSubstr(dir_.string()));
}

// The fixture has two layers; a configuration of one would run a silently
// truncated model.
TEST_F(ModelFilesTest, MoreLayersInTheFileThanConfiguredAreRefused) {
  SetConfig("num_hidden_layers", 1);
  const absl::Status status = Load();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("'model.layers.1.input_layernorm.weight' but the "
                        "configuration has 1 layers"));
}

TEST_F(ModelFilesTest, InfiniteHyperparametersAreRefused) {
  auto files = ModelFiles::Open(dir_.string());
  ASSERT_TRUE(files.ok()) << files.status();
  const ModelConfig valid = (*files)->config();
  ASSERT_TRUE(valid.Validate().ok());
  const double inf = std::numeric_limits<double>::infinity();
  for (int which = 0; which < 3; ++which) {
    ModelConfig config = valid;
    if (which == 0) config.rope_theta = inf;
    if (which == 1) config.rms_norm_eps = inf;
    if (which == 2) config.rope_scaling.factor = inf;
    const absl::Status status = config.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << which;
    EXPECT_THAT(status.message(), HasSubstr("positive and finite")) << which;
  }
}

}  // namespace
}  // namespace weft
