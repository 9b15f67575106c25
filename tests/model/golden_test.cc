// The default model (SmolLM2-135M-Instruct, Q4_1) against Hugging Face
// transformers running the same GGUF dequantized to fp32
// (tools/make_golden.py → tests/fixtures/golden/smollm2_q4_1.json):
// greedy 32-token continuations identical, and the top-5 log-probs of the
// reference within 2e-2 at every compared step, teacher-forced along the
// reference's tokens (at one activation level, llama.cpp's scheme, looser
// bounds: kOneLevelLogprobTolerance). Comparison of a prompt stops at the
// first step whose reference top-2 logit gap is below 0.01, where fp32
// rounding differences may legitimately flip the argmax.
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"

namespace weft {
namespace {

constexpr char kModelFile[] = "SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr double kMinGap = 0.01;
constexpr double kLogprobTolerance = 2e-2;
// One activation level is llama.cpp's scheme, with errors of its size: on
// this fixture (bench/cpu_vs_llamacpp/accuracy.py) llama.cpp is off by up
// to 0.65 (median of the prompts' worst 0.41) and picks another greedy
// token at up to 4 steps of a prompt; weft at one level by up to 1.17
// (median 0.42; the 1.17 on one prompt) and at up to 2 steps. These bounds
// sit above both: they catch a broken one-level path (errors of several
// nats, tokens off everywhere), not differences within that class. Two
// levels stay within kLogprobTolerance.
constexpr double kOneLevelLogprobTolerance = 1.5;
constexpr int kOneLevelMaxFlips = 4;

const nlohmann::json& Golden() {
  static const nlohmann::json* golden = [] {
    std::ifstream in(std::string(WEFT_SOURCE_DIR) +
                     "/tests/fixtures/golden/smollm2_q4_1.json");
    std::stringstream text;
    text << in.rdbuf();
    return new nlohmann::json(nlohmann::json::parse(text.str()));
  }();
  return *golden;
}

std::vector<double> LogSoftmax(absl::Span<const float> logits) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - max_logit);
  const double log_sum = std::log(sum) + max_logit;
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - log_sum;
  return out;
}

// The reference fp32 backend, the fast backend (int8 activations against
// the Q4_1/Q8_0 weights, threaded, F16 KV cache) that weft-server runs,
// and the fast backend with an F32 cache (--kv_cache_dtype f32).
// And the fast backend at one activation level (--activation_levels 1,
// llama.cpp's scheme).
enum class Kernels { kReference, kFast, kFastF32Kv, kFastOneLevel };
constexpr int kNumKernels = 4;
const char* KernelsName(Kernels k) {
  switch (k) {
    case Kernels::kReference: return "Reference";
    case Kernels::kFast: return "Fast";
    case Kernels::kFastF32Kv: return "FastF32Kv";
    case Kernels::kFastOneLevel: return "FastOneLevel";
  }
  return "";
}

class GoldenTest
    : public ::testing::TestWithParam<std::tuple<Kernels, int>> {
 protected:
  static void SetUpTestSuite() {
    const std::string path = std::string(WEFT_MODEL_DIR) + "/" + kModelFile;
    if (!std::ifstream(path).good()) return;
    auto files = ModelFiles::Open(path);
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = files->release();
    auto fast = FastCpuBackend::Create(CpuBackendConfig{});
    ASSERT_TRUE(fast.ok()) << fast.status();
    CpuBackendConfig f32_kv;
    f32_kv.kv_cache_dtype = DType::kF32;
    auto fast_f32_kv = FastCpuBackend::Create(f32_kv);
    ASSERT_TRUE(fast_f32_kv.ok()) << fast_f32_kv.status();
    CpuBackendConfig one_level;
    one_level.activation_levels = 1;
    auto fast_one_level = FastCpuBackend::Create(one_level);
    ASSERT_TRUE(fast_one_level.ok()) << fast_one_level.status();
    backends_[0] = new CpuBackend();
    backends_[1] = fast->release();
    backends_[2] = fast_f32_kv->release();
    backends_[3] = fast_one_level->release();
    ModelPlan plan;
    plan.max_num_tokens = 256;
    plan.max_num_logits = 1;
    plan.num_kv_blocks = 32;
    for (int i = 0; i < kNumKernels; ++i) {
      auto model = LlamaModel::Create(*files_, backends_[i], plan);
      ASSERT_TRUE(model.ok()) << model.status();
      models_[i] = model->release();
    }
  }

  static ModelFiles* files_;
  static Backend* backends_[kNumKernels];
  static LlamaModel* models_[kNumKernels];
};
ModelFiles* GoldenTest::files_ = nullptr;
Backend* GoldenTest::backends_[kNumKernels] = {};
LlamaModel* GoldenTest::models_[kNumKernels] = {};

TEST_P(GoldenTest, GreedyContinuationMatchesTransformers) {
  const auto [kernels, prompt_index] = GetParam();
  LlamaModel* model = models_[static_cast<int>(kernels)];
  if (model == nullptr) {
    GTEST_SKIP() << "default model not found in " << WEFT_MODEL_DIR
                 << " (run tools/fetch_model.sh)";
  }
  const nlohmann::json& prompt = Golden()["prompts"][prompt_index];
  SCOPED_TRACE(prompt["name"].get<std::string>());
  const std::vector<int32_t> prompt_ids =
      prompt["prompt_ids"].get<std::vector<int32_t>>();
  // Our tokenizer must give the reference's prompt ids.
  EXPECT_EQ(files_->tokenizer().Encode(prompt["prompt"].get<std::string>(),
                                       EncodeOptions{}),
            prompt_ids);

  SequenceRunner runner(model);
  auto logits = runner.Append(prompt_ids);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const bool one_level = kernels == Kernels::kFastOneLevel;
  const double tolerance = one_level ? kOneLevelLogprobTolerance : kLogprobTolerance;
  int compared = 0;
  int flips = 0;
  double worst = 0;
  for (const auto& step : prompt["steps"]) {
    if (step["top2_gap"].get<double>() < kMinGap) break;
    const int32_t want = step["token"].get<int32_t>();
    const std::vector<double> logprobs = LogSoftmax(*logits);
    const int32_t got = static_cast<int32_t>(
        std::max_element(logprobs.begin(), logprobs.end()) - logprobs.begin());
    if (one_level) {
      flips += got != want;
    } else {
      ASSERT_EQ(got, want) << "step " << compared;
    }
    for (const auto& entry : step["top5"]) {
      const int32_t id = entry[0].get<int32_t>();
      const double ref = entry[1].get<double>();
      worst = std::max(worst, std::fabs(logprobs[id] - ref));
      EXPECT_NEAR(logprobs[id], ref, tolerance)
          << "step " << compared << " token " << id;
    }
    ++compared;
    logits = runner.Append({&want, 1});
    ASSERT_TRUE(logits.ok()) << logits.status();
  }
  EXPECT_GT(compared, 0);
  EXPECT_LE(flips, kOneLevelMaxFlips);
  RecordProperty("compared_steps", compared);
  RecordProperty("worst_logprob_error", std::to_string(worst));
  std::printf("%s: %d steps compared, worst top-5 logprob error %.2e%s\n",
              prompt["name"].get<std::string>().c_str(), compared, worst,
              one_level ? absl::StrCat(", greedy token != reference at ", flips).c_str()
                        : "");
}

INSTANTIATE_TEST_SUITE_P(
    Prompts, GoldenTest,
    ::testing::Combine(::testing::Values(Kernels::kReference, Kernels::kFast,
                                         Kernels::kFastF32Kv, Kernels::kFastOneLevel),
                       ::testing::Range(0, 12)),
    [](const ::testing::TestParamInfo<std::tuple<Kernels, int>>& info) {
      return std::string(KernelsName(std::get<0>(info.param))) +
             std::to_string(std::get<1>(info.param));
    });

TEST(GoldenFixture, CoversEnoughPrompts) {
  EXPECT_GE(Golden()["prompts"].size(), 8u);
  EXPECT_EQ(Golden()["prompts"].size(), 12u)
      << "update the Range() of GoldenTest to the fixture's prompt count";
}

}  // namespace
}  // namespace weft
