// The serving core on the real default model (SmolLM2-135M-Instruct Q4_1),
// on the reference and on the fast CPU kernels, and on CUDA when a GPU is
// present (batch invariance on the GPU): concurrent requests —
// greedy and seeded — produce exactly what each produces alone, also when
// the KV cache is too small for all of them at once or the prompt is
// prefilled in small chunks, and a shared prefix is computed once.
#include <map>

#include "gtest/gtest.h"
#include "runtime/engine.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using test::EngineHarness;
using test::GreedyRequest;
using test::Kernels;
using test::Outcome;

const char* const kPrompts[] = {
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "1, 2, 3, 4,",
    "<|im_start|>user\nWhat is the tallest mountain on Earth?<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at",
    "The three primary colors are",
    "In 1969, humans first",
    "A haiku about autumn:\n",
    "Translate to French: good morning ->",
    "The quick brown fox",
    "Photosynthesis is the process by which plants",
    "Dear hiring manager,",
    "The largest planet in our solar system is",
    "import numpy as np\n",
    "Q: Why is the sky blue?\nA:",
};

ModelPlan Plan(int num_kv_blocks) { return test::DefaultModelPlan(num_kv_blocks); }
EngineConfig Config(int max_num_batched_tokens = 512) {
  return test::DefaultModelConfig(max_num_batched_tokens);
}

class DefaultModelEngineTest : public ::testing::TestWithParam<Kernels> {
 protected:
  void SetUp() override {
    if (!test::HaveDefaultModel()) {
      GTEST_SKIP() << "default model not found in " << WEFT_MODEL_DIR
                   << " (run tools/fetch_model.sh)";
    }
    if (GetParam() == Kernels::kCuda && !test::CudaUsable()) {
      GTEST_SKIP() << "no CUDA GPU was found: skipping the CUDA engine test";
    }
  }

  std::vector<Request> Requests(bool sampled) {
    EngineHarness encoder(test::DefaultModelPath(), Plan(64), Config());
    std::vector<Request> requests;
    for (int i = 0; i < 16; ++i) {
      Request r = GreedyRequest(absl::StrCat("q", i), encoder.Encode(kPrompts[i]),
                                4 + i % 5);
      if (sampled) {
        r.sampling.temperature = 0.8f;
        r.sampling.top_p = 0.95f;
        r.sampling.seed = 100 + i;
      }
      requests.push_back(std::move(r));
    }
    return requests;
  }

  // Each request run alone on a fresh engine.
  std::map<std::string, Outcome> Alone(const std::vector<Request>& requests) {
    std::map<std::string, Outcome> out;
    EngineHarness h(test::DefaultModelPath(), Plan(64), Config(), GetParam());
    for (const Request& r : requests) out[r.id] = h.RunTogether({r})[r.id];
    return out;
  }
};

TEST_P(DefaultModelEngineTest, SixteenConcurrentGreedyRequestsMatchEachAlone) {
  const std::vector<Request> requests = Requests(/*sampled=*/false);
  EngineHarness h(test::DefaultModelPath(), Plan(256), Config(), GetParam());
  ASSERT_TRUE(h.ok());
  auto together = h.RunTogether(requests);
  auto alone = Alone(requests);
  for (const Request& r : requests) {
    ASSERT_EQ(together[r.id].num_terminal_events, 1) << r.id;
    EXPECT_EQ(together[r.id].tokens, alone[r.id].tokens) << r.id;
    EXPECT_EQ(together[r.id].text, alone[r.id].text) << r.id;
  }
}

TEST_P(DefaultModelEngineTest, SeededSampledRequestsMatchEachAlone) {
  const std::vector<Request> requests = Requests(/*sampled=*/true);
  EngineHarness h(test::DefaultModelPath(), Plan(256), Config(), GetParam());
  ASSERT_TRUE(h.ok());
  auto together = h.RunTogether(requests);
  auto alone = Alone(requests);
  for (const Request& r : requests) {
    EXPECT_EQ(together[r.id].tokens, alone[r.id].tokens) << r.id;
  }
}

TEST_P(DefaultModelEngineTest, TooSmallKvCachePreemptsButEveryRequestMatches) {
  // 6 blocks of 16 tokens (96 slots) for 8 requests that each grow to
  // 25-45 tokens: running sequences outgrow the cache and are preempted.
  std::vector<Request> requests = Requests(/*sampled=*/false);
  requests.resize(8);
  for (Request& r : requests) r.stopping.max_tokens = 20;
  EngineHarness h(test::DefaultModelPath(), Plan(6), Config(), GetParam());
  ASSERT_TRUE(h.ok());
  auto together = h.RunTogether(requests);
  EXPECT_GT(h.engine().stats().num_preemptions, 0);
  auto alone = Alone(requests);
  for (const Request& r : requests) {
    ASSERT_EQ(together[r.id].num_terminal_events, 1) << r.id;
    EXPECT_EQ(together[r.id].tokens, alone[r.id].tokens) << r.id;
  }
  EXPECT_EQ(h.engine().stats().kv_blocks_used, 0);
}

TEST_P(DefaultModelEngineTest, SecondRequestComputesOnlyItsNewTokens) {
  EngineHarness h(test::DefaultModelPath(), Plan(64), Config(), GetParam());
  ASSERT_TRUE(h.ok());
  std::string document;
  for (int i = 0; i < 12; ++i) {
    document += "Paragraph " + std::to_string(i) +
                ": the engine keeps every block of this shared text. ";
  }
  const std::vector<int32_t> prefix = h.Encode(document);
  ASSERT_GT(prefix.size(), 100u);
  std::vector<int32_t> question = prefix;
  const std::vector<int32_t> tail = h.Encode(" Summary:");
  question.insert(question.end(), tail.begin(), tail.end());

  h.RunTogether({GreedyRequest("doc", prefix, 1)});
  const int64_t computed_before = h.engine().stats().prompt_tokens_computed;
  const Request second = GreedyRequest("question", question, 6);
  auto out = h.RunTogether({second});
  const int full_blocks = static_cast<int>(prefix.size()) / 16 * 16;
  EXPECT_EQ(out["question"].finished->usage.cached_prompt_tokens, full_blocks);
  EXPECT_EQ(h.engine().stats().prompt_tokens_computed - computed_before,
            static_cast<int64_t>(question.size()) - full_blocks);
  // Unchanged output: the same request on an engine that never saw the doc.
  // (On CUDA: a fresh CUDA engine; the CPU runs compare with the reference.)
  EngineHarness fresh(test::DefaultModelPath(), Plan(64), Config(),
                      GetParam() == Kernels::kCuda ? Kernels::kCuda
                                                   : Kernels::kReference);
  EXPECT_EQ(out["question"].tokens, fresh.RunTogether({second})["question"].tokens);
}

TEST_P(DefaultModelEngineTest, PrefillInSmallChunksGivesTheSameTokens) {
  // A 7-token budget splits each prompt into chunks of 1-7 tokens, mixed
  // with other requests' decodes.
  std::vector<Request> requests = Requests(/*sampled=*/false);
  requests.resize(6);
  EngineHarness h(test::DefaultModelPath(), Plan(256), Config(7), GetParam());
  ASSERT_TRUE(h.ok());
  auto chunked = h.RunTogether(requests);
  auto alone = Alone(requests);
  for (const Request& r : requests) {
    EXPECT_EQ(chunked[r.id].tokens, alone[r.id].tokens) << r.id;
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, DefaultModelEngineTest,
                         ::testing::Values(Kernels::kReference, Kernels::kFast,
                                           Kernels::kCuda),
                         [](const ::testing::TestParamInfo<Kernels>& info) {
                           return info.param == Kernels::kFast   ? "Fast"
                                  : info.param == Kernels::kCuda ? "Cuda"
                                                                 : "Reference";
                         });

}  // namespace
}  // namespace weft
