// Structured output through the engine on the default model (SmolLM2-135M
// Q4_1, fast CPU kernels): every sample's text matches its request's
// grammar and ends with a stop token, greedy or sampled, batched with free
// requests (which the grammar never touches), under preemption, and when
// min_tokens or ignore_eos would otherwise keep the sample going.
#include <algorithm>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine.h"
#include "runtime/grammar.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using test::EngineHarness;
using test::GreedyRequest;
using test::Kernels;
using test::Outcome;

ModelPlan Plan(int num_kv_blocks) { return test::DefaultModelPlan(num_kv_blocks); }
EngineConfig Config(int max_num_batched_tokens = 512) {
  return test::DefaultModelConfig(max_num_batched_tokens);
}

std::string ChatPrompt(const std::string& user) {
  return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
}

constexpr char kPersonSchema[] = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 150}
  },
  "required": ["name", "age"]
})";

class GrammarEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::HaveDefaultModel()) {
      GTEST_SKIP() << "default model not found in " << WEFT_MODEL_DIR
                   << " (run tools/fetch_model.sh)";
    }
    harness_ = std::make_unique<EngineHarness>(test::DefaultModelPath(),
                                               Plan(64), Config(), Kernels::kFast);
    ASSERT_TRUE(harness_->ok());
    auto compiler = GrammarCompiler::Create(harness_->tokenizer(),
                                            harness_->tokenizer().vocab_size(),
                                            GrammarConfig{});
    ASSERT_TRUE(compiler.ok()) << compiler.status();
    compiler_ = *std::move(compiler);
  }

  std::shared_ptr<const CompiledGrammar> Compile(StructuredOutput::Kind kind,
                                                 std::string spec = "",
                                                 bool any_whitespace = true) {
    StructuredOutput out;
    out.kind = kind;
    out.spec = std::move(spec);
    out.any_whitespace = any_whitespace;
    auto compiled = compiler_->Compile(out);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled.ok() ? *compiled : nullptr;
  }

  std::shared_ptr<const CompiledGrammar> Choice(std::vector<std::string> choices) {
    StructuredOutput out;
    out.kind = StructuredOutput::Kind::kChoice;
    out.choices = std::move(choices);
    auto compiled = compiler_->Compile(out);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled.ok() ? *compiled : nullptr;
  }

  // A greedy request that may stop on EOS (GreedyRequest ignores it).
  Request Ask(const std::string& id, const std::string& user, int max_tokens) {
    Request r = GreedyRequest(id, harness_->Encode(ChatPrompt(user)), max_tokens);
    r.stopping.ignore_eos = false;
    return r;
  }

  // `out`'s sample `index` is a person object that ended with a stop token.
  void ExpectPerson(const Outcome& out, size_t index, const std::string& what) {
    ASSERT_EQ(out.num_terminal_events, 1) << what;
    ASSERT_TRUE(out.finished.has_value()) << what << ": " << *out.error;
    ASSERT_LT(index, out.text.size()) << what;
    const std::string& text = out.text[index];
    EXPECT_EQ(out.finished->samples[index].reason, FinishReason::kStop)
        << what << ": " << text;
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << what << ": " << text;
    ASSERT_TRUE(doc.contains("name") && doc["name"].is_string()) << text;
    EXPECT_LE(doc["name"].get<std::string>().size(), 20u) << text;
    ASSERT_TRUE(doc.contains("age") && doc["age"].is_number_integer()) << text;
    EXPECT_GE(doc["age"].get<int64_t>(), 0) << text;
    EXPECT_LE(doc["age"].get<int64_t>(), 150) << text;
  }

  // `tokens` (a sample cut by max_tokens) are a prefix the grammar allows.
  void ExpectPrefix(const std::shared_ptr<const CompiledGrammar>& grammar,
                    const std::vector<int32_t>& tokens, const std::string& what) {
    GrammarMatcher matcher(grammar, harness_->tokenizer().stop_ids());
    for (size_t i = 0; i < tokens.size(); ++i) {
      ASSERT_TRUE(matcher.Accept(tokens[i])) << what << ": token " << i;
    }
  }

  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<GrammarCompiler> compiler_;
};

TEST_F(GrammarEngineTest, GreedyJsonSchemaAlongsideAFreeRequest) {
  const std::string ask =
      "Describe a famous scientist as JSON with their name and age.";
  Request free = Ask("free", ask, 24);
  const Outcome alone = harness_->RunTogether({free})["free"];

  Request person = Ask("person", ask, 120);
  person.grammar = Compile(StructuredOutput::Kind::kJsonSchema, kPersonSchema);
  free.id = "free-batched";  // the harness collects by id
  auto outcomes = harness_->RunTogether({person, free});
  ExpectPerson(outcomes["person"], 0, "greedy");
  // The free request is untouched by its neighbour's grammar.
  EXPECT_EQ(outcomes["free-batched"].tokens, alone.tokens);
  // Without the grammar the model answers in prose (this is what the
  // grammar changed).
  EXPECT_FALSE(nlohmann::json::accept(alone.text[0])) << alone.text[0];
}

TEST_F(GrammarEngineTest, EverySampledChoiceMatches) {
  Request r = Ask("sampled", "Give me a JSON object describing a cat.", 96);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;
  r.sampling.n = 4;
  r.grammar = Compile(StructuredOutput::Kind::kJsonObject);
  const Outcome out = harness_->RunTogether({r})["sampled"];
  ASSERT_TRUE(out.finished.has_value());
  ASSERT_EQ(out.text.size(), 4u);
  int stopped = 0;
  for (size_t i = 0; i < 4; ++i) {
    const SampleResult& result = out.finished->samples[i];
    if (result.reason == FinishReason::kLength) {
      ExpectPrefix(r.grammar, out.tokens[i], out.text[i]);  // cut, not wrong
      continue;
    }
    ++stopped;
    EXPECT_EQ(result.reason, FinishReason::kStop);
    EXPECT_TRUE(nlohmann::json::parse(out.text[i], nullptr, false).is_object())
        << i << ": " << out.text[i];
  }
  EXPECT_GT(stopped, 0);
}

TEST_F(GrammarEngineTest, GrammarEndsTheSampleBeforeMinTokensAndIgnoringEos) {
  Request min_tokens = Ask("min", "Is the sky blue? Answer yes or no.", 50);
  min_tokens.stopping.min_tokens = 40;
  min_tokens.grammar = Choice({"yes", "no"});
  Request ignore_eos = Ask("ignore", "Is fire cold? Answer yes or no.", 50);
  ignore_eos.stopping.ignore_eos = true;
  ignore_eos.grammar = Choice({"yes", "no"});
  // With stop_token_ids too: the grammar still ends at the tokenizer's
  // stop tokens, which the mask never lets through before that.
  Request stop_ids = Ask("stop-ids", "Is ice cold? Answer yes or no.", 50);
  stop_ids.stopping.ignore_eos = true;
  stop_ids.stopping.stop_token_ids = {harness_->Encode("zebra").front()};
  stop_ids.grammar = Choice({"yes", "no"});
  auto outcomes = harness_->RunTogether({min_tokens, ignore_eos, stop_ids});
  for (const char* id : {"min", "ignore", "stop-ids"}) {
    const Outcome& out = outcomes[id];
    ASSERT_TRUE(out.finished.has_value()) << id;
    const SampleResult& result = out.finished->samples[0];
    EXPECT_EQ(result.reason, FinishReason::kStop) << id;
    EXPECT_TRUE(out.text[0] == "yes" || out.text[0] == "no") << id << ": "
                                                             << out.text[0];
    // The answer's tokens, then the stop token the grammar let through.
    const std::vector<int32_t> stops = harness_->tokenizer().stop_ids();
    ASSERT_FALSE(out.tokens[0].empty());
    EXPECT_NE(std::find(stops.begin(), stops.end(), out.tokens[0].back()),
              stops.end())
        << id;
    // Only the last token is a stop token.
    for (size_t i = 0; i + 1 < out.tokens[0].size(); ++i) {
      EXPECT_EQ(std::find(stops.begin(), stops.end(), out.tokens[0][i]), stops.end())
          << id << ": token " << i;
    }
  }
}

TEST_F(GrammarEngineTest, PreemptedSamplesKeepTheirPlaceInTheGrammar) {
  // 7 blocks of 16 tokens for four requests of ~40-token prompts that grow
  // by up to 60: they preempt each other and recompute.
  EngineHarness small(test::DefaultModelPath(), Plan(7), Config(), Kernels::kFast);
  ASSERT_TRUE(small.ok());
  const auto grammar = Compile(StructuredOutput::Kind::kJsonSchema,
                               kPersonSchema, /*any_whitespace=*/false);
  std::vector<Request> requests;
  const char* people[] = {"a painter", "a chemist", "a pilot", "a poet"};
  for (int i = 0; i < 4; ++i) {
    Request r = Ask(absl::StrCat("p", i),
                    absl::StrCat("Describe ", people[i],
                                 " as JSON with their name and age."),
                    60);
    r.grammar = grammar;
    requests.push_back(std::move(r));
  }
  auto outcomes = small.RunTogether(requests);
  EXPECT_GT(small.engine().stats().num_preemptions, 0);
  int stopped = 0;
  for (const Request& r : requests) {
    const Outcome& out = outcomes[r.id];
    ASSERT_TRUE(out.finished.has_value()) << r.id;
    if (out.finished->samples[0].reason == FinishReason::kLength) {
      // Cut by max_tokens: still a prefix the grammar allowed.
      ExpectPrefix(grammar, out.tokens[0], r.id);
      continue;
    }
    ++stopped;
    ExpectPerson(out, 0, r.id);
  }
  EXPECT_GT(stopped, 0);
}

}  // namespace
}  // namespace weft
