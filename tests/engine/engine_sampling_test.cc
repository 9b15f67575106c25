// How the engine samples a step's rows: the greedy fast path
// (StepExecutor::ExecuteArgMax, which on a GPU copies 4 bytes a row instead
// of the vocabulary), taken exactly when every sampled row is only needed
// for its argmax and giving the tokens the full-logits path gives; and the
// parallel draw of the other rows, which must not change a token.
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/engine.h"
#include "runtime/model_runner.h"
#include "runtime/sampler.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using test::GreedyRequest;

constexpr char kTiny[] = "tiny_llama";

// Wraps the real executor and counts which entry point each step used.
class CountingExecutor : public StepExecutor {
 public:
  explicit CountingExecutor(std::unique_ptr<StepExecutor> real)
      : real_(std::move(real)) {}
  absl::Status Execute(const Batch& batch) override {
    ++full;
    return real_->Execute(batch);
  }
  absl::Status ExecuteArgMax(const Batch& batch) override {
    ++argmax;
    return real_->ExecuteArgMax(batch);
  }
  absl::Span<const float> logits_row(int row) const override {
    return real_->logits_row(row);
  }
  int32_t argmax_row(int row) const override { return real_->argmax_row(row); }
  int vocab_size() const override { return real_->vocab_size(); }
  int max_position_embeddings() const override {
    return real_->max_position_embeddings();
  }
  const ModelPlan& plan() const override { return real_->plan(); }

  int full = 0, argmax = 0;

 private:
  std::unique_ptr<StepExecutor> real_;
};

std::vector<int32_t> Prompt(int length, int salt) {
  std::vector<int32_t> prompt(length);
  for (int i = 0; i < length; ++i) prompt[i] = 3 + (i * 37 + salt * 11) % 450;
  return prompt;
}

// Runs `requests` together on a fresh engine over the tiny model; returns
// each request's tokens and the executor's counts.
struct Outcomes {
  std::map<std::string, std::vector<int32_t>> tokens;
  int full = 0, argmax = 0;
};
Outcomes RunRequests(const std::vector<Request>& requests,
                     int sampling_threads = 1,
                     int64_t parallel_sampling_min_logits = int64_t{1} << 17) {
  Outcomes run;
  auto files = ModelFiles::Open(test::TinyModelPath(kTiny));
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return run;
  CpuBackend backend;
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = 64;
  plan.block_size = 4;
  auto model = LlamaModel::Create(**files, &backend, plan);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return run;
  auto counting = std::make_unique<CountingExecutor>(
      std::make_unique<ModelRunner>(model->get(), &backend));
  CountingExecutor* executor = counting.get();
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 256;
  config.scheduler.max_num_seqs = 16;
  config.scheduler.max_num_logit_rows = 64;
  config.sampling_threads = sampling_threads;
  config.parallel_sampling_min_logits = parallel_sampling_min_logits;
  auto engine =
      Engine::Create(std::move(counting), &(*files)->tokenizer(), config);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return run;
  std::map<std::string, std::shared_ptr<StreamBuffer>> sinks;
  for (const Request& r : requests) {
    sinks[r.id] = std::make_shared<StreamBuffer>();
    EXPECT_TRUE((*engine)->Submit(r, sinks[r.id]).ok());
  }
  while ((*engine)->Step()) {
  }
  for (auto& [id, sink] : sinks) {
    while (auto e = sink->Next(absl::ZeroDuration())) {
      if (auto* d = std::get_if<Delta>(&*e)) {
        run.tokens[id].insert(run.tokens[id].end(), d->token_ids.begin(),
                              d->token_ids.end());
      }
      EXPECT_FALSE(std::holds_alternative<absl::Status>(*e)) << id;
    }
  }
  run.full = executor->full;
  run.argmax = executor->argmax;
  return run;
}

TEST(EngineSamplingTest, GreedyStepsNeedOnlyTheArgMaxAndGiveTheSameTokens) {
  std::vector<Request> greedy, scored;
  for (int i = 0; i < 3; ++i) {
    greedy.push_back(GreedyRequest("r" + std::to_string(i), Prompt(5 + 7 * i, i), 6));
    scored.push_back(greedy.back());
    scored.back().sampling.logprobs = 0;  // needs the logits: full path
  }
  const Outcomes fast = RunRequests(greedy);
  const Outcomes full = RunRequests(scored);
  EXPECT_EQ(fast.full, 0);
  EXPECT_GT(fast.argmax, 0);
  EXPECT_EQ(full.argmax, 0);
  EXPECT_GT(full.full, 0);
  ASSERT_EQ(fast.tokens.size(), 3u);
  EXPECT_EQ(fast.tokens, full.tokens);
  for (const auto& [id, tokens] : fast.tokens) EXPECT_EQ(tokens.size(), 6u) << id;
}

TEST(EngineSamplingTest, AStepWithAnyRowThatNeedsLogitsCopiesThemAll) {
  const Request greedy = GreedyRequest("greedy", Prompt(9, 1), 8);
  Request sampled = GreedyRequest("sampled", Prompt(6, 2), 2);
  sampled.sampling.temperature = 0.8f;
  sampled.sampling.seed = 7;
  const Outcomes mixed = RunRequests({greedy, sampled});
  // The sampled request shares the first steps; the greedy one then runs
  // on alone, on the argmax path.
  EXPECT_GE(mixed.full, 2);
  EXPECT_GT(mixed.argmax, 0);
  EXPECT_EQ(mixed.full + mixed.argmax, 8);
  EXPECT_EQ(mixed.tokens.at("greedy"), RunRequests({greedy}).tokens.at("greedy"));
}

TEST(EngineSamplingTest, BiasPenaltiesAndPromptLogprobsTakeTheFullPath) {
  Request biased = GreedyRequest("biased", Prompt(7, 3), 3);
  biased.sampling.logit_bias = {{5, 1.0f}};
  Request penalized = GreedyRequest("penalized", Prompt(7, 4), 3);
  penalized.sampling.repetition_penalty = 1.2f;
  Request prompt_scored = GreedyRequest("prompt_scored", Prompt(7, 5), 1);
  prompt_scored.sampling.prompt_logprobs = 0;
  for (const Request& r : {biased, penalized, prompt_scored}) {
    const Outcomes run = RunRequests({r});
    EXPECT_EQ(run.argmax, 0) << r.id;
    EXPECT_GT(run.full, 0) << r.id;
  }
}

TEST(EngineSamplingTest, MinTokensKeepsTheFullPathWhileStopsAreBanned) {
  Request r = GreedyRequest("min", Prompt(8, 6), 6);
  r.stopping.min_tokens = 3;
  r.stopping.stop_token_ids = {2};
  const Outcomes run = RunRequests({r});
  // Tokens 1-3 are sampled with the stop token banned, the rest (up to 3,
  // fewer if the model picks the stop token) without.
  EXPECT_EQ(run.full, 3);
  ASSERT_EQ(run.tokens.count("min"), 1u);
  EXPECT_EQ(run.argmax, static_cast<int>(run.tokens.at("min").size()) - 3);
  EXPECT_GE(run.argmax, 1);
}

TEST(EngineSamplingTest, ParallelDrawsGiveTheTokensOfOneThread) {
  // Seeded temperature / top-p / top-k / penalty / n = 3 requests, drawn on
  // one thread, then on four with every step parallel.
  std::vector<Request> requests;
  for (int i = 0; i < 6; ++i) {
    Request r = GreedyRequest("s" + std::to_string(i), Prompt(4 + 3 * i, 10 + i), 7);
    r.sampling.temperature = 0.7f + 0.1f * i;
    r.sampling.top_p = 0.9f;
    r.sampling.top_k = i % 2 == 0 ? 0 : 20;
    r.sampling.repetition_penalty = i == 3 ? 1.3f : 1.0f;
    r.sampling.seed = 100 + i;
    if (i == 5) r.sampling.n = 3;
    requests.push_back(r);
  }
  const Outcomes one = RunRequests(requests, 1);
  const Outcomes four = RunRequests(requests, 4, /*parallel_sampling_min_logits=*/0);
  ASSERT_EQ(one.tokens.size(), requests.size());
  EXPECT_EQ(one.tokens, four.tokens);
  // And each is what the request draws alone (its own stream, batch
  // invariant logits): no row's draw went to another sequence.
  for (const Request& r : requests) {
    EXPECT_EQ(four.tokens.at(r.id), RunRequests({r}).tokens.at(r.id)) << r.id;
  }
  EXPECT_EQ(one.tokens.at("s5").size(), 3u * 7u);  // every sample's tokens
  EXPECT_EQ(four.argmax, 0);
}

// The backends' argmax itself: first index of the largest value, -1 for a
// row with a NaN, as the sampler's ArgMax (which the engine then applies
// to that row) on every other row.
TEST(EngineSamplingTest, BackendArgMaxMatchesTheSamplersOnEveryRowWithoutNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::vector<float>> rows = {
      {1, 3, 3, 2, 0},       {-inf, -inf, -inf, -inf, -inf},
      {0, -0.0f, 0, -1, -2}, {-5, -4, inf, inf, 1},
      {nan, 9, 1, 1, 1},     {1, 2, 3, 4, nan}};
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  CpuBackend backend;
  const Tensor x{DType::kF32, static_cast<int64_t>(rows.size()), 5, flat.data()};
  std::vector<int32_t> ids(rows.size(), -7);
  ASSERT_TRUE(backend.ArgMaxRowsToHost(x, ids.data()).ok());
  std::vector<int32_t> base(rows.size(), -7);
  ASSERT_TRUE(backend.Backend::ArgMaxRowsToHost(x, base.data()).ok());
  EXPECT_EQ(ids, base);
  for (size_t r = 0; r < rows.size(); ++r) {
    bool has_nan = false;
    for (float v : rows[r]) has_nan |= std::isnan(v);
    EXPECT_EQ(ids[r], has_nan ? -1 : ArgMax(rows[r])) << "row " << r;
  }
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 0);
  EXPECT_EQ(ids[3], 2);
}

}  // namespace
}  // namespace weft
