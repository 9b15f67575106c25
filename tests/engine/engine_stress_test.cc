// The engine under a random mix of requests on the tiny Llama fixture with
// a KV cache too small for them all (so preemption, prefix caching and
// recomputation all happen): random prompts (often sharing a prefix),
// lengths, n, priorities, seeds, log-probs, stop strings, a grammar (one
// of a few words), and cancellations at random steps. Whatever happens, nothing accepted is lost:
//   - every accepted request ends with exactly one terminal event;
//   - a finished one reports each of its n samples, with the tokens its
//     deltas carried, within max_tokens (all of them when it ran out), and
//     a grammar's sample that stopped wrote one of its words;
//   - a request nobody cancelled produced what it produces alone (greedy
//     and seeded sampling are reproducible whatever else runs);
//   - once idle, no KV block is held and nothing is live.
// WEFT_STRESS_ROUNDS (default 2) and WEFT_FUZZ_SEED set the run.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/engine.h"
#include "runtime/grammar.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using test::EngineHarness;
using test::Outcome;

class RequestMaker {
 public:
  explicit RequestMaker(uint64_t seed) : rng_(seed) {
    for (int32_t& t : shared_prefix_) t = Id();
  }
  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  int32_t Id() { return 3 + Below(458); }

  Request Make(const std::string& id) {
    Request r;
    r.id = id;
    // Half share a 24-token prefix (whole blocks of 4: cacheable).
    if (Below(2) == 0) {
      r.prompt_ids.assign(shared_prefix_.begin(),
                          shared_prefix_.begin() + 4 * (1 + Below(6)));
    }
    for (int i = 0, n = 1 + Below(40); i < n; ++i) r.prompt_ids.push_back(Id());
    r.stopping.max_tokens = 1 + Below(30);
    r.stopping.ignore_eos = Below(3) != 0;
    if (Below(4) == 0) r.stopping.min_tokens = Below(r.stopping.max_tokens + 1);
    if (Below(5) == 0) r.stopping.stop = {"a", " the"};
    if (Below(3) == 0) {
      r.sampling.temperature = 0.0f;
    } else {
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = Below(3) == 0 ? 20 : 0;
      r.sampling.seed = static_cast<uint64_t>(Below(1000));
    }
    r.sampling.n = Below(4) == 0 ? 1 + Below(3) : 1;
    if (Below(4) == 0) r.sampling.logprobs = Below(4);
    if (Below(6) == 0) r.sampling.prompt_logprobs = Below(3);
    if (Below(5) == 0) r.sampling.presence_penalty = 0.5f;
    r.priority = Below(3) - 1;
    if (grammar_ != nullptr && Below(5) == 0) {
      r.grammar = grammar_;
      r.stopping.stop.clear();
      r.stopping.ignore_eos = false;
      r.stopping.min_tokens = 0;
    }
    return r;
  }
  void set_grammar(std::shared_ptr<const CompiledGrammar> grammar) {
    grammar_ = std::move(grammar);
  }

 private:
  std::mt19937_64 rng_;
  std::vector<int32_t> shared_prefix_ = std::vector<int32_t>(24);
  std::shared_ptr<const CompiledGrammar> grammar_;
};

const std::vector<std::string> kWords = {"yes", "no", "maybe not"};

// What `request` produces alone on a roomy engine.
Outcome Alone(const Request& request, test::Kernels kernels) {
  EngineHarness h(test::TinyModelPath("tiny_llama"), test::TinyPlan(256),
                  test::TinyConfig(256, 32), kernels);
  return h.RunTogether({request})[request.id];
}

// The reference kernels, and the fast ones weft-server serves with.
class EngineStressTest : public ::testing::TestWithParam<test::Kernels> {};

TEST_P(EngineStressTest, NothingAcceptedIsLostAndUncancelledOutputIsReproducible) {
  const uint64_t seed = static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1));
  for (int64_t round = 0, rounds = test::EnvInt("WEFT_STRESS_ROUNDS", 2); round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    RequestMaker maker(seed * 1000 + static_cast<uint64_t>(round));
    // 40 blocks of 4 tokens: a few requests' worth; 64 tokens a step.
    EngineHarness h(test::TinyModelPath("tiny_llama"), test::TinyPlan(40),
                    test::TinyConfig(/*max_num_batched_tokens=*/64, /*max_num_seqs=*/8),
                    GetParam());
    ASSERT_TRUE(h.ok());
    auto compiler = GrammarCompiler::Create(h.tokenizer(), h.tokenizer().vocab_size(),
                                            GrammarConfig{});
    ASSERT_TRUE(compiler.ok()) << compiler.status();
    StructuredOutput words;
    words.kind = StructuredOutput::Kind::kChoice;
    words.choices = kWords;
    auto grammar = (*compiler)->Compile(words);
    ASSERT_TRUE(grammar.ok()) << grammar.status();
    maker.set_grammar(*grammar);
    std::map<std::string, Request> accepted;
    std::set<std::string> cancelled;
    int submitted = 0;
    for (int step = 0; step < 400; ++step) {
      for (int k = maker.Below(3) == 0 ? 1 + maker.Below(3) : 0; k > 0; --k) {
        Request r = maker.Make(absl::StrCat("r", submitted++));
        const std::string id = r.id;
        absl::Status status = h.Submit(r);
        if (status.ok()) {
          accepted.emplace(id, std::move(r));
        } else {
          // Refused up front (too long for the cache, queue full): the
          // caller is told, so nothing is lost.
          EXPECT_TRUE(status.code() == absl::StatusCode::kInvalidArgument ||
                      status.code() == absl::StatusCode::kResourceExhausted)
              << id << ": " << status;
        }
      }
      if (!accepted.empty() && maker.Below(12) == 0) {
        auto it = accepted.begin();
        std::advance(it, maker.Below(static_cast<int>(accepted.size())));
        h.engine().Cancel(it->first);
        cancelled.insert(it->first);
      }
      h.engine().Step();
    }
    h.RunUntilIdle();
    const EngineStats stats = h.engine().stats();
    EXPECT_EQ(stats.kv_blocks_used, 0);
    EXPECT_EQ(stats.num_live_requests, 0);
    EXPECT_EQ(stats.num_waiting, 0);
    EXPECT_EQ(stats.num_running, 0);
    EXPECT_EQ(stats.requests_finished + stats.requests_failed,
              static_cast<int64_t>(accepted.size()));
    std::cout << accepted.size() << " of " << submitted << " requests accepted, "
              << cancelled.size() << " cancelled, " << stats.num_preemptions
              << " preemptions, " << stats.prefix_cache_hit_tokens
              << " prompt tokens from the cache\n";
    EXPECT_GT(stats.num_preemptions, 0);  // the cache was tight enough
    EXPECT_GT(stats.prefix_cache_hit_tokens, 0);
    int compared = 0, grammar_stops = 0;
    for (const auto& [id, request] : accepted) {
      const Outcome out = h.Collect(id);
      ASSERT_EQ(out.num_terminal_events, 1) << id;
      if (!out.finished.has_value()) {
        ADD_FAILURE() << id << " failed: " << *out.error;
        continue;
      }
      ASSERT_EQ(out.finished->samples.size(), static_cast<size_t>(request.sampling.n)) << id;
      for (size_t index = 0; index < out.finished->samples.size(); ++index) {
        const SampleResult& sample = out.finished->samples[index];  // sample `index`
        const size_t made = index < out.tokens.size() ? out.tokens[index].size() : 0;
        EXPECT_EQ(made, static_cast<size_t>(sample.num_tokens)) << id;
        EXPECT_LE(sample.num_tokens, request.stopping.max_tokens) << id;
        if (sample.reason == FinishReason::kLength) {
          EXPECT_EQ(sample.num_tokens, request.stopping.max_tokens) << id;
        }
        if (request.grammar != nullptr && sample.reason == FinishReason::kStop) {
          ++grammar_stops;
          const std::string text = index < out.text.size() ? out.text[index] : "";
          EXPECT_NE(std::find(kWords.begin(), kWords.end(), text), kWords.end())
              << id << " wrote '" << text << "'";
        }
      }
      // Reproducibility, for the uncancelled (a dozen a round: each runs
      // the request again on a fresh engine).
      if (cancelled.count(id) == 0 && compared < 12) {
        ++compared;
        EXPECT_EQ(out.tokens, Alone(request, GetParam()).tokens) << id;
      }
    }
    EXPECT_GT(compared, 0);
    EXPECT_GT(grammar_stops, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, EngineStressTest,
                         ::testing::Values(test::Kernels::kReference, test::Kernels::kFast),
                         [](const ::testing::TestParamInfo<test::Kernels>& info) {
                           return info.param == test::Kernels::kFast ? "Fast" : "Reference";
                         });

}  // namespace
}  // namespace weft
