// The engine on the tiny Llama fixture (fast, deterministic): scheduling
// policies observed end to end — chunked prefill, preemption, prefix
// caching, cancellation, parallel samples, admission errors.
#include "runtime/engine.h"

#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model_runner.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using ::testing::HasSubstr;
using test::EngineHarness;
using test::GreedyRequest;
using test::Outcome;
using test::TinyConfig;
using test::TinyPlan;

constexpr char kTiny[] = "tiny_llama";


std::vector<int32_t> RandomPrompt(int length, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(3, 460);
  std::vector<int32_t> prompt(length);
  for (int32_t& t : prompt) t = id(rng);
  return prompt;
}

// Output of `request` when it runs alone on a roomy engine.
Outcome Alone(const Request& request) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  return h.RunTogether({request})[request.id];
}

TEST(EngineTest, GreedyRequestsTogetherMatchEachAlone) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  std::vector<Request> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(GreedyRequest(absl::StrCat("r", i),
                                     RandomPrompt(3 + 5 * i, i), 4 + 3 * i));
  }
  auto together = h.RunTogether(requests);
  for (const Request& r : requests) {
    const Outcome alone = Alone(r);
    ASSERT_EQ(together[r.id].num_terminal_events, 1) << r.id;
    EXPECT_EQ(together[r.id].tokens, alone.tokens) << r.id;
    EXPECT_EQ(together[r.id].tokens[0].size(), size_t(r.stopping.max_tokens));
    EXPECT_EQ(together[r.id].finished->samples[0].reason, FinishReason::kLength);
  }
}

// A completions call's prompts are admitted together or not at all: one
// invalid request refuses them all, and nothing of the batch runs.
TEST(EngineTest, SubmitAllQueuesAllOrNothing) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  auto sink = std::make_shared<StreamBuffer>();
  Request bad = GreedyRequest("b", RandomPrompt(5, 1), 3);
  bad.sampling.temperature = -1.0f;
  std::vector<std::pair<Request, std::shared_ptr<EventSink>>> batch;
  batch.emplace_back(GreedyRequest("a", RandomPrompt(5, 0), 3), sink);
  batch.emplace_back(bad, sink);
  EXPECT_EQ(h.engine().SubmitAll(std::move(batch)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(h.engine().Step());  // nothing was queued
  EXPECT_FALSE(sink->TryNext().has_value());
  batch.clear();
  batch.emplace_back(GreedyRequest("a", RandomPrompt(5, 0), 3), sink);
  batch.emplace_back(GreedyRequest("b", RandomPrompt(6, 1), 3), sink);
  ASSERT_TRUE(h.engine().SubmitAll(std::move(batch)).ok());
  int finished = 0;
  for (int step = 0; step < 20 && finished < 2; ++step) {
    h.engine().Step();
    while (auto event = sink->TryNext()) finished += std::holds_alternative<Finished>(*event);
  }
  EXPECT_EQ(finished, 2);
}

TEST(EngineTest, ChunkedPrefillGivesTheSameTokens) {
  // A 10-token budget splits a 37-token prompt over four steps.
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig(10));
  ASSERT_TRUE(h.ok());
  const Request r = GreedyRequest("long", RandomPrompt(37, 7), 6);
  auto chunked = h.RunTogether({r});
  EXPECT_EQ(chunked["long"].tokens, Alone(r).tokens);
  EXPECT_GE(h.engine().stats().num_steps, 4 + 5);
}

TEST(EngineTest, PreemptedRequestsStillFinishWithTheSameOutput) {
  // 12 blocks of 4 tokens cannot hold four 20-token sequences at once.
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(12), TinyConfig());
  ASSERT_TRUE(h.ok());
  std::vector<Request> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(GreedyRequest(absl::StrCat("p", i), RandomPrompt(8, 10 + i), 12));
  }
  auto together = h.RunTogether(requests);
  EXPECT_GT(h.engine().stats().num_preemptions, 0);
  for (const Request& r : requests) {
    ASSERT_EQ(together[r.id].num_terminal_events, 1);
    EXPECT_EQ(together[r.id].tokens, Alone(r).tokens) << r.id;
  }
  EXPECT_EQ(h.engine().stats().kv_blocks_used, 0);
}

TEST(EngineTest, SharedPrefixIsServedFromTheCache) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  const std::vector<int32_t> prefix = RandomPrompt(30, 3);
  std::vector<int32_t> second_prompt = prefix;
  second_prompt.insert(second_prompt.end(), {11, 12, 13});
  h.RunTogether({GreedyRequest("first", prefix, 2)});
  const Request second = GreedyRequest("second", second_prompt, 5);
  auto out = h.RunTogether({second});
  // 30 shared tokens = 7 full blocks of 4 (28 tokens) from the cache.
  EXPECT_EQ(out["second"].finished->usage.cached_prompt_tokens, 28);
  EXPECT_EQ(out["second"].tokens, Alone(second).tokens);
  EXPECT_GE(h.engine().stats().prefix_cache_hit_tokens, 28);
}

TEST(EngineTest, CancellationFreesBlocksWithinOneStepAndFinishesOnce) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h.Submit(GreedyRequest("c", RandomPrompt(9, 1), 200)).ok());
  for (int i = 0; i < 5; ++i) h.engine().Step();
  EXPECT_GT(h.engine().stats().kv_blocks_used, 0);
  h.engine().Cancel("c");
  h.engine().Step();
  EXPECT_EQ(h.engine().stats().kv_blocks_used, 0);
  h.RunUntilIdle();
  const Outcome& out = h.Collect("c");
  EXPECT_EQ(out.num_terminal_events, 1);
  ASSERT_TRUE(out.finished.has_value());
  EXPECT_EQ(out.finished->samples[0].reason, FinishReason::kCancelled);
  EXPECT_EQ(out.tokens[0].size(), 5u);  // one per step, none after Cancel
}

// Text held back because it could begin a stop string is sent when the
// request is cancelled: the deltas' text is that of their tokens (before,
// it was dropped).
TEST(EngineTest, CancelSendsTheTextHeldBackForAStopString) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  const std::vector<int32_t> prompt = RandomPrompt(9, 1);
  const std::string five = h.RunTogether({GreedyRequest("five", prompt, 5)})["five"].text[0];
  ASSERT_FALSE(five.empty());
  Request r = GreedyRequest("c", prompt, 200);
  r.stopping.stop = {five + "\x01\x01"};  // all five tokens' text could begin it
  ASSERT_TRUE(h.Submit(r).ok());
  for (int i = 0; i < 5; ++i) h.engine().Step();
  EXPECT_EQ(h.Collect("c").text[0], "");  // held back
  h.engine().Cancel("c");
  h.RunUntilIdle();
  const Outcome& out = h.Collect("c");
  ASSERT_TRUE(out.finished.has_value());
  EXPECT_EQ(out.finished->samples[0].reason, FinishReason::kCancelled);
  EXPECT_EQ(out.tokens[0].size(), 5u);
  EXPECT_EQ(out.text[0], five);
}

// Three seeded samples of 8 tokens at temperature 1.
Request ThreeSamples() {
  Request r = GreedyRequest("n3", RandomPrompt(10, 5), 8);
  r.sampling.temperature = 1.0f;
  r.sampling.n = 3;
  r.sampling.seed = 1234;
  return r;
}

TEST(EngineTest, ParallelSamplesShareThePromptAndAreReproducible) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  const Request r = ThreeSamples();
  auto out = h.RunTogether({r});
  ASSERT_EQ(out["n3"].tokens.size(), 3u);
  EXPECT_NE(out["n3"].tokens[0], out["n3"].tokens[1]);
  EXPECT_EQ(out["n3"].finished->samples.size(), 3u);
  EXPECT_EQ(out["n3"].finished->usage.completion_tokens, 24);
  // The same request alongside others gives the same samples.
  Request again = r;
  again.id = "n3-again";
  auto together = h.RunTogether({again, GreedyRequest("other", RandomPrompt(6, 9), 5)});
  EXPECT_EQ(together["n3-again"].tokens, out["n3"].tokens);
  EXPECT_EQ(h.engine().stats().kv_blocks_used, 0);
}

TEST(EngineTest, ASampleThatEndsFirstReportsItsEndInItsLastDelta) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  Request r = ThreeSamples();
  const auto free = h.RunTogether({r})["n3"].tokens;
  ASSERT_EQ(free.size(), 3u);
  // A stop token that ends one sample early and that another never draws.
  int32_t stop = -1;
  for (int s = 0; s < 3 && stop < 0; ++s) {
    for (int i = 0; i < 6 && stop < 0; ++i) {
      for (int other = 0; other < 3; ++other) {
        if (std::find(free[other].begin(), free[other].end(), free[s][i]) ==
            free[other].end()) {
          stop = free[s][i];
          break;
        }
      }
    }
  }
  ASSERT_GE(stop, 0);
  r.id = "stopped";
  r.stopping.stop_token_ids = {stop};
  auto sink = std::make_shared<StreamBuffer>();
  ASSERT_TRUE(h.engine().Submit(r, sink).ok());
  h.RunUntilIdle();
  std::vector<std::optional<SampleResult>> reported(3);
  std::vector<int> tokens_after_report(3, 0);
  std::optional<Finished> finished;
  while (auto e = sink->Next(absl::ZeroDuration())) {
    if (auto* d = std::get_if<Delta>(&*e)) {
      if (reported[d->index]) tokens_after_report[d->index] += d->token_ids.size();
      if (d->finished) {
        EXPECT_FALSE(reported[d->index]) << "sample " << d->index << " ended twice";
        reported[d->index] = d->finished;
      }
    } else if (auto* f = std::get_if<Finished>(&*e)) {
      finished = *f;
    }
  }
  ASSERT_TRUE(finished.has_value());
  // Every sample but the last to end reports its end before Finished, as
  // Finished then reports it; nothing of a sample comes after its end.
  int reports = 0;
  bool stopped_early = false;
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(tokens_after_report[s], 0);
    if (!reported[s]) continue;
    ++reports;
    EXPECT_EQ(reported[s]->reason, finished->samples[s].reason);
    EXPECT_EQ(reported[s]->stop_token, finished->samples[s].stop_token);
    EXPECT_EQ(reported[s]->num_tokens, finished->samples[s].num_tokens);
    stopped_early |= reported[s]->reason == FinishReason::kStop &&
                     reported[s]->stop_token == stop && reported[s]->num_tokens < 8;
  }
  EXPECT_EQ(reports, 2);
  EXPECT_TRUE(stopped_early);
}

TEST(EngineTest, PromptLogprobsCoverEveryPromptToken) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig(8));
  ASSERT_TRUE(h.ok());
  Request r = GreedyRequest("lp", RandomPrompt(13, 2), 2);
  r.sampling.prompt_logprobs = 2;
  r.sampling.logprobs = 1;
  auto sink = std::make_shared<StreamBuffer>();
  ASSERT_TRUE(h.engine().Submit(r, sink).ok());
  h.RunUntilIdle();
  std::vector<SampledToken> prompt_logprobs, logprobs;
  while (auto e = sink->Next(absl::ZeroDuration())) {
    if (auto* d = std::get_if<Delta>(&*e)) {
      prompt_logprobs.insert(prompt_logprobs.end(), d->prompt_logprobs.begin(),
                             d->prompt_logprobs.end());
      logprobs.insert(logprobs.end(), d->logprobs.begin(), d->logprobs.end());
    }
  }
  ASSERT_EQ(prompt_logprobs.size(), 12u);
  for (size_t i = 0; i < prompt_logprobs.size(); ++i) {
    EXPECT_EQ(prompt_logprobs[i].token, r.prompt_ids[i + 1]);
    EXPECT_LE(prompt_logprobs[i].logprob, 0.0f);
    EXPECT_EQ(prompt_logprobs[i].top.size(), 2u);
  }
  ASSERT_EQ(logprobs.size(), 2u);
  EXPECT_EQ(logprobs[0].top.size(), 1u);
  EXPECT_EQ(logprobs[0].top[0].token, logprobs[0].token);  // greedy = top-1
}

TEST(EngineTest, PromptLogprobsAreReportedOnceEvenWhenPreempted) {
  // 7 blocks of 4 tokens; the low-priority request with prompt log-probs
  // is preempted (mid-prefill or after) and recomputed.
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(7), TinyConfig(8));
  ASSERT_TRUE(h.ok());
  Request scored = GreedyRequest("scored", RandomPrompt(10, 21), 10);
  scored.sampling.prompt_logprobs = 1;
  scored.priority = 1;
  auto sink = std::make_shared<StreamBuffer>();
  ASSERT_TRUE(h.Submit(GreedyRequest("a", RandomPrompt(6, 22), 10)).ok());
  ASSERT_TRUE(h.engine().Submit(scored, sink).ok());
  h.RunUntilIdle();
  EXPECT_GT(h.engine().stats().num_preemptions, 0);
  std::vector<SampledToken> prompt_logprobs;
  std::vector<int32_t> tokens;
  int deltas_with_prompt_logprobs = 0;
  while (auto e = sink->Next(absl::ZeroDuration())) {
    if (auto* d = std::get_if<Delta>(&*e)) {
      if (!d->prompt_logprobs.empty()) ++deltas_with_prompt_logprobs;
      prompt_logprobs.insert(prompt_logprobs.end(), d->prompt_logprobs.begin(),
                             d->prompt_logprobs.end());
      tokens.insert(tokens.end(), d->token_ids.begin(), d->token_ids.end());
    }
  }
  EXPECT_EQ(deltas_with_prompt_logprobs, 1);
  ASSERT_EQ(prompt_logprobs.size(), 9u);
  for (size_t i = 0; i < prompt_logprobs.size(); ++i) {
    EXPECT_EQ(prompt_logprobs[i].token, scored.prompt_ids[i + 1]);
  }
  Request alone = scored;
  alone.sampling.prompt_logprobs = -1;
  EXPECT_EQ(tokens, Alone(alone).tokens[0]);
}

TEST(EngineTest, ParallelSamplesCountAgainstMaxNumSeqs) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(),
                  TinyConfig(256, /*max_num_seqs=*/4));
  ASSERT_TRUE(h.ok());
  std::vector<Request> requests;
  for (int i = 0; i < 2; ++i) {
    Request r = GreedyRequest(absl::StrCat("n", i), RandomPrompt(6, 30 + i), 6);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = i;
    r.sampling.n = 3;
    ASSERT_TRUE(h.Submit(r).ok());
    requests.push_back(r);
  }
  int most_running = 0;
  while (h.engine().Step()) {
    most_running = std::max(most_running, h.engine().stats().num_running);
  }
  EXPECT_LE(most_running, 4);
  for (const Request& r : requests) {
    const Outcome& out = h.Collect(r.id);
    ASSERT_TRUE(out.finished.has_value()) << r.id;
    EXPECT_EQ(out.finished->usage.completion_tokens, 18) << r.id;
  }
  Request too_many = GreedyRequest("wide", {1, 2}, 2);
  too_many.sampling.n = 5;
  EXPECT_EQ(h.Submit(too_many).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, RejectsBadRequestsWithTheFieldNamed) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  auto sink = std::make_shared<StreamBuffer>();
  Request bad_token = GreedyRequest("a", {1, 5000}, 4);
  absl::Status s = h.engine().Submit(bad_token, sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("prompt_ids[1]"));

  Request too_long = GreedyRequest("b", RandomPrompt(10, 1), 100000);
  s = h.engine().Submit(too_long, sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_tokens"));

  Request empty = GreedyRequest("c", {}, 4);
  EXPECT_EQ(h.engine().Submit(empty, sink).code(),
            absl::StatusCode::kInvalidArgument);

  Request bad_temp = GreedyRequest("d", {1, 2}, 4);
  bad_temp.sampling.temperature = -1;
  EXPECT_EQ(h.engine().Submit(bad_temp, sink).code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(h.engine().Submit(GreedyRequest("dup", {1, 2}, 4), sink).ok());
  EXPECT_EQ(h.engine().Submit(GreedyRequest("dup", {1, 2}, 4), sink).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(EngineTest, FullQueueAnswersResourceExhausted) {
  EngineConfig config = TinyConfig();
  config.max_live_requests = 2;
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), config);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h.Submit(GreedyRequest("1", {1, 2}, 2)).ok());
  ASSERT_TRUE(h.Submit(GreedyRequest("2", {1, 2}, 2)).ok());
  EXPECT_EQ(h.Submit(GreedyRequest("3", {1, 2}, 2)).code(),
            absl::StatusCode::kResourceExhausted);
  h.RunUntilIdle();
  EXPECT_TRUE(h.Submit(GreedyRequest("3", {1, 2}, 2)).ok());  // room again
}

// Fails the steps it is told to, runs the real model otherwise.
class FlakyExecutor : public StepExecutor {
 public:
  explicit FlakyExecutor(std::unique_ptr<StepExecutor> real)
      : real_(std::move(real)) {}
  absl::Status Execute(const Batch& batch) override {
    if (fail_next_) {
      fail_next_ = false;
      return absl::InternalError("injected failure");
    }
    return real_->Execute(batch);
  }
  absl::Span<const float> logits_row(int row) const override {
    return real_->logits_row(row);
  }
  int vocab_size() const override { return real_->vocab_size(); }
  int max_position_embeddings() const override {
    return real_->max_position_embeddings();
  }
  const ModelPlan& plan() const override { return real_->plan(); }
  bool fail_next_ = false;

 private:
  std::unique_ptr<StepExecutor> real_;
};

TEST(EngineTest, AFailedStepFailsOnlyItsRequestsAndPoisonsNoCache) {
  auto files = ModelFiles::Open(test::TinyModelPath(kTiny));
  ASSERT_TRUE(files.ok());
  CpuBackend backend;
  auto model = LlamaModel::Create(**files, &backend, TinyPlan());
  ASSERT_TRUE(model.ok());
  auto flaky = std::make_unique<FlakyExecutor>(
      std::make_unique<ModelRunner>(model->get(), &backend));
  FlakyExecutor* executor = flaky.get();
  auto engine = Engine::Create(std::move(flaky), &(*files)->tokenizer(), TinyConfig());
  ASSERT_TRUE(engine.ok());

  // A decoding request and a new prompt share the step that fails: both
  // end with its error (every running request is in every step).
  auto decoding = std::make_shared<StreamBuffer>();
  ASSERT_TRUE((*engine)->Submit(GreedyRequest("decoding", RandomPrompt(5, 4), 30),
                                decoding).ok());
  (*engine)->Step();
  const std::vector<int32_t> prompt = RandomPrompt(17, 8);
  auto victim = std::make_shared<StreamBuffer>();
  ASSERT_TRUE((*engine)->Submit(GreedyRequest("victim", prompt, 3), victim).ok());
  executor->fail_next_ = true;
  (*engine)->Step();
  for (auto& sink : {victim, decoding}) {
    std::optional<absl::Status> error;
    while (auto e = sink->Next(absl::ZeroDuration())) {
      if (auto* s = std::get_if<absl::Status>(&*e)) error = *s;
    }
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->code(), absl::StatusCode::kInternal);
  }
  EXPECT_EQ((*engine)->stats().kv_blocks_used, 0);
  // The victim's prompt blocks were registered but never computed: a new
  // request with the same prompt must not be served from them.
  auto again = std::make_shared<StreamBuffer>();
  ASSERT_TRUE((*engine)->Submit(GreedyRequest("again", prompt, 3), again).ok());
  while ((*engine)->Step()) {
  }
  std::optional<Finished> finished;
  std::vector<int32_t> tokens;
  while (auto e = again->Next(absl::ZeroDuration())) {
    if (auto* d = std::get_if<Delta>(&*e)) {
      tokens.insert(tokens.end(), d->token_ids.begin(), d->token_ids.end());
    }
    if (auto* f = std::get_if<Finished>(&*e)) finished = *f;
  }
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->usage.cached_prompt_tokens, 0);
  EXPECT_EQ(tokens, Alone(GreedyRequest("again", prompt, 3)).tokens[0]);
  // And the engine goes on serving.
  EXPECT_EQ((*engine)->stats().requests_failed, 2);
}

// Wraps a real executor and makes every forward pass take `delay`.
class SlowExecutor : public StepExecutor {
 public:
  SlowExecutor(std::unique_ptr<StepExecutor> real, absl::Duration delay)
      : real_(std::move(real)), delay_(delay) {}
  absl::Status Execute(const Batch& batch) override {
    absl::SleepFor(delay_);
    return real_->Execute(batch);
  }
  absl::Span<const float> logits_row(int row) const override {
    return real_->logits_row(row);
  }
  int vocab_size() const override { return real_->vocab_size(); }
  int max_position_embeddings() const override {
    return real_->max_position_embeddings();
  }
  const ModelPlan& plan() const override { return real_->plan(); }

 private:
  std::unique_ptr<StepExecutor> real_;
  absl::Duration delay_;
};

TEST(EngineTest, QueueTimeEndsWhereTheFirstForwardPassBegins) {
  auto files = ModelFiles::Open(test::TinyModelPath(kTiny));
  ASSERT_TRUE(files.ok());
  CpuBackend backend;
  auto model = LlamaModel::Create(**files, &backend, TinyPlan());
  ASSERT_TRUE(model.ok());
  const absl::Duration pass = absl::Milliseconds(60);
  auto engine = Engine::Create(
      std::make_unique<SlowExecutor>(
          std::make_unique<ModelRunner>(model->get(), &backend), pass),
      &(*files)->tokenizer(), TinyConfig());
  ASSERT_TRUE(engine.ok());
  auto sink = std::make_shared<StreamBuffer>();
  ASSERT_TRUE((*engine)->Submit(GreedyRequest("r", RandomPrompt(6, 3), 2), sink).ok());
  while ((*engine)->Step()) {
  }
  std::optional<Finished> finished;
  while (auto e = sink->Next(absl::ZeroDuration())) {
    if (auto* f = std::get_if<Finished>(&*e)) finished = *f;
  }
  ASSERT_TRUE(finished.has_value());
  // Scheduled at once: the wait excludes the (slow) prefill, which the time
  // to first token includes.
  EXPECT_LT(finished->timings.queue_time, pass / 2);
  EXPECT_GE(finished->timings.time_to_first_token, pass);
}

TEST(EngineTest, ARequestIsLiveFromTheMomentSubmitAcceptsIt) {
  // Drain waits while requests are live: one accepted but not yet stepped
  // must already count, or a drain right after Submit stops the engine on it.
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h.Submit(GreedyRequest("fresh", RandomPrompt(4, 1), 2)).ok());
  EXPECT_EQ(h.engine().stats().num_live_requests, 1);
  h.RunUntilIdle();
  EXPECT_EQ(h.engine().stats().num_live_requests, 0);
}

TEST(EngineTest, LoopThreadServesConcurrentSubmittersAndStopEndsTheRest) {
  EngineHarness h(test::TinyModelPath(kTiny), TinyPlan(), TinyConfig());
  ASSERT_TRUE(h.ok());
  h.engine().Start();
  std::vector<std::thread> clients;
  std::vector<std::shared_ptr<StreamBuffer>> sinks(6);
  for (int i = 0; i < 6; ++i) {
    sinks[i] = std::make_shared<StreamBuffer>();
    clients.emplace_back([&, i] {
      EXPECT_TRUE(h.engine()
                      .Submit(GreedyRequest(absl::StrCat("t", i),
                                            RandomPrompt(5, i), 5),
                              sinks[i])
                      .ok());
    });
  }
  for (auto& t : clients) t.join();
  for (auto& sink : sinks) {
    int terminal = 0;
    while (auto e = sink->Next(absl::Seconds(30))) {
      if (!std::holds_alternative<Delta>(*e)) {
        ++terminal;
        EXPECT_TRUE(std::holds_alternative<Finished>(*e));
        break;
      }
    }
    EXPECT_EQ(terminal, 1);
  }
  // A long request still running when the engine stops ends with Unavailable.
  auto last = std::make_shared<StreamBuffer>();
  ASSERT_TRUE(h.engine().Submit(GreedyRequest("late", {1, 2, 3}, 200), last).ok());
  h.engine().Stop();
  std::optional<absl::Status> error;
  while (auto e = last->Next(absl::ZeroDuration())) {
    if (auto* s = std::get_if<absl::Status>(&*e)) error = *s;
  }
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(h.engine()
                .Submit(GreedyRequest("after", {1}, 1), std::make_shared<StreamBuffer>())
                .code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace weft
