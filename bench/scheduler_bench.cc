// The engine's own cost per step, without a model, at N running decode
// sequences: the whole Step() (Time column), and its counters
//   sched+post_us  Schedule() (with draining the inbox) + Postprocess
//                  (block bookkeeping, detokenization, stop checks, events)
//   sample_us      sampling: greedy (a scan over `vocab` logits per
//                  sequence) or, third argument 1, temperature 0.8 with
//                  top-p 0.95 (seeded); the fourth is the engine's
//                  sampling_threads (0: the hardware threads)
// The executor computes nothing and returns fixed logits (seeded normal
// with one clear maximum; 469 = the tiny
// fixture's vocabulary size, 49152 = SmolLM2's); detokenization uses the
// default model's tokenizer when it is there.
//
//   build/bench/scheduler_bench --benchmark_repetitions=5
#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/loader/gguf.h"

namespace weft {
namespace {

class NullExecutor : public StepExecutor {
 public:
  NullExecutor(int vocab, int max_rows, int num_kv_blocks) : vocab_(vocab) {
    plan_.max_num_tokens = 1 << 16;
    plan_.max_num_logits = max_rows;
    plan_.num_kv_blocks = num_kv_blocks;
    plan_.block_size = 16;
    // Model-like logits: seeded normal(0, 2), kToken the clear argmax.
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    logits_.resize(vocab);
    for (float& x : logits_) x = normal(rng);
    logits_[kToken] = 12.0f;
  }
  absl::Status Execute(const Batch&) override { return absl::OkStatus(); }
  absl::Span<const float> logits_row(int) const override { return logits_; }
  int vocab_size() const override { return vocab_; }
  int max_position_embeddings() const override { return 1 << 20; }
  const ModelPlan& plan() const override { return plan_; }

  static constexpr int32_t kToken = 300;  // an ordinary word piece

 private:
  int vocab_;
  ModelPlan plan_;
  std::vector<float> logits_;
};

class NullSink : public EventSink {
 public:
  void OnDelta(Delta delta) override { benchmark::DoNotOptimize(delta); }
  void OnFinished(Finished) override {}
  void OnError(absl::Status) override {}
};

// The default model's byte-level tokenizer (what the engine detokenizes
// with in practice) when it was fetched, else the tiny fixture's.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer() {
  const std::string model =
      std::string(WEFT_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (auto gguf = GgufFile::Open(model); gguf.ok()) {
    return Tokenizer::FromGguf(**gguf);
  }
  const std::string dir = std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
  return Tokenizer::FromHfFiles(dir + "/tokenizer.json",
                                dir + "/tokenizer_config.json");
}

void BM_EngineStepWithoutModel(benchmark::State& state) {
  const int num_seqs = static_cast<int>(state.range(0));
  const int vocab = static_cast<int>(state.range(1));
  // 0: greedy; 1: temperature 0.8, top-p 0.95; 2: the same with top-k 50.
  const int sampling = static_cast<int>(state.range(2));
  const bool sampled = sampling != 0;
  const int sampling_threads = static_cast<int>(state.range(3));  // 0: all
  auto tokenizer = LoadTokenizer();
  if (!tokenizer.ok()) {
    state.SkipWithError(tokenizer.status().ToString().c_str());
    return;
  }
  const int max_steps = 4000;
  auto executor = std::make_unique<NullExecutor>(
      vocab, num_seqs, num_seqs * (max_steps / 16 + 4));
  EngineConfig config;
  config.scheduler.max_num_seqs = num_seqs;
  config.scheduler.max_num_batched_tokens = num_seqs * 16;
  config.scheduler.max_num_logit_rows = num_seqs;
  config.sampling_threads = sampling_threads;
  auto engine = Engine::Create(std::move(executor), tokenizer->get(), config);
  if (!engine.ok()) {
    state.SkipWithError(engine.status().ToString().c_str());
    return;
  }
  auto sink = std::make_shared<NullSink>();
  for (int i = 0; i < num_seqs; ++i) {
    Request r;
    r.id = std::to_string(i);
    r.prompt_ids = {5, 6, 7, 8, 9, 10, 11, static_cast<int32_t>(12 + i % 100)};
    r.sampling.temperature = sampled ? 0.8f : 0.0f;
    if (sampled) {
      r.sampling.top_p = 0.95f;
      if (sampling == 2) r.sampling.top_k = 50;
      r.sampling.seed = i;
    }
    r.stopping.max_tokens = max_steps + 100;
    r.stopping.ignore_eos = true;
    if (!(*engine)->Submit(std::move(r), sink).ok()) {
      state.SkipWithError("submit failed");
      return;
    }
  }
  (*engine)->Step();  // prefill every prompt: from here on, pure decode steps
  const EngineStats before = (*engine)->stats();
  int steps = 0;
  for (auto _ : state) {
    if (++steps >= max_steps) {
      state.SkipWithError("ran out of planned steps");
      break;
    }
    (*engine)->Step();
  }
  const EngineStats after = (*engine)->stats();
  const double per_step_us = 1e6 / std::max(1, steps);
  state.counters["running"] = after.num_running;
  // Schedule() (with draining the inbox) + Postprocess (bookkeeping,
  // detokenization, stop checks, events): the engine's own overhead.
  state.counters["sched+post_us"] =
      ((after.schedule_seconds - before.schedule_seconds) +
       (after.postprocess_seconds - before.postprocess_seconds)) * per_step_us;
  state.counters["sample_us"] =
      (after.sample_seconds - before.sample_seconds) * per_step_us;
}

BENCHMARK(BM_EngineStepWithoutModel)
    ->Args({256, 469, 0, 0})
    ->Args({256, 49152, 0, 0})
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);
// Sampled rows cost milliseconds each: fewer steps.
BENCHMARK(BM_EngineStepWithoutModel)
    ->Args({16, 49152, 1, 1})
    ->Args({16, 49152, 1, 0})
    ->Args({64, 128256, 1, 1})
    ->Args({64, 128256, 1, 0})
    ->Args({16, 49152, 2, 1})
    ->Args({64, 128256, 2, 1})
    ->Iterations(40)
    ->Unit(benchmark::kMicrosecond);

// One prompt position's log-probs (prompt_logprobs, 5 top entries): the
// log-softmax of a model-like row of `vocab` logits.
void BM_ScoreToken(benchmark::State& state) {
  const int vocab = static_cast<int>(state.range(0));
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(vocab);
  for (float& x : logits) x = normal(rng);
  logits[vocab / 2] = 20.0f;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ScoreToken(logits, 7, 5));
  }
}
BENCHMARK(BM_ScoreToken)->Arg(49152)->Arg(128256)->Unit(benchmark::kMicrosecond);

// One row sampled at temperature 1, top-p 0.95, from normal(0, sigma)
// logits: sigma 2 is model-like, sigma 0.05 a nearly flat row (a random
// model's), where most tokens share the top-p histogram's cut bucket.
void BM_SampleRow(benchmark::State& state) {
  const int vocab = static_cast<int>(state.range(0));
  const float sigma = static_cast<float>(state.range(1)) / 100.0f;
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> logits(vocab);
  for (float& x : logits) x = normal(rng);
  SequenceSampler sampler(SamplingParams{.temperature = 1.0f, .top_p = 0.95f}, 1, 0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(sampler.Sample(logits, {}, {}));
  }
}
BENCHMARK(BM_SampleRow)
    ->Args({128256, 200})
    ->Args({128256, 5})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace weft

BENCHMARK_MAIN();
