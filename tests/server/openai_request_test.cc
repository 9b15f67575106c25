// /v1/completions bodies → runtime requests: defaults, every field carried
// over, max_tokens against the context, and a table of bad bodies each
// refused with its status code and the `param` it names.
#include "server/openai_request.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/openai_errors.h"
#include "tests/test_util.h"
#include "tests/server/tiny_served_model.h"

namespace weft {
namespace {

using test::StatusIs;

class OpenAiRequestTest : public test::TinyServedTest {
 protected:
  absl::StatusOr<OpenAiRequest> Parse(const Json& body) const {
    return ParseCompletionRequest(body.dump(), model_);
  }

  std::vector<int32_t> Encode(const std::string& text, bool special) const {
    EncodeOptions options;
    options.add_special_tokens = special;
    return tokenizer_->Encode(text, options);
  }

};

TEST_F(OpenAiRequestTest, AStringPromptGetsTheDocumentedDefaults) {
  auto r = Parse({{"model", "tiny"}, {"prompt", "Hello world"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->api, OpenAiApi::kCompletions);
  // vLLM's default: the tokenizer's BOS is added to completion prompts.
  EXPECT_EQ(r->request.prompt_ids, Encode("Hello world", true));
  EXPECT_EQ(r->request.prompt_ids.front(), tokenizer_->bos_id());
  EXPECT_EQ(r->request.sampling.temperature, 1.0f);
  EXPECT_EQ(r->request.sampling.top_p, 1.0f);
  EXPECT_EQ(r->request.sampling.n, 1);
  EXPECT_EQ(r->request.sampling.logprobs, -1);
  EXPECT_FALSE(r->request.sampling.seed.has_value());
  EXPECT_EQ(r->request.stopping.max_tokens, kDefaultCompletionMaxTokens);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
  EXPECT_FALSE(r->logprobs);
}

TEST_F(OpenAiRequestTest, TheModelMayBeOmitted) {
  EXPECT_TRUE(Parse({{"prompt", "Hello"}}).ok());
}

TEST_F(OpenAiRequestTest, AddSpecialTokensFalseLeavesBosOut) {
  auto r = Parse({{"prompt", "Hello world"}, {"add_special_tokens", false}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, Encode("Hello world", false));
}

TEST_F(OpenAiRequestTest, TokenIdPromptsAreUsedAsGiven) {
  auto r = Parse({{"prompt", {5, 6, 7}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, (std::vector<int32_t>{5, 6, 7}));
}

TEST_F(OpenAiRequestTest, OneElementPromptArraysAreUnwrapped) {
  auto text = Parse({{"prompt", {"Hello world"}}});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->request.prompt_ids, Encode("Hello world", true));
  auto ids = Parse({{"prompt", {{9, 8}}}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->request.prompt_ids, (std::vector<int32_t>{9, 8}));
}

TEST_F(OpenAiRequestTest, EveryFieldIsCarriedOver) {
  const Json body = {
      {"prompt", "Hi"},
      {"n", 3},
      {"temperature", 0.5},
      {"top_p", 0.9},
      {"top_k", 7},
      {"min_p", 0.05},
      {"repetition_penalty", 1.2},
      {"presence_penalty", 0.5},
      {"frequency_penalty", -0.5},
      {"logit_bias", {{"12", 3.0}, {"5", -100}}},
      {"seed", -1},
      {"stop", {"a", "bc"}},
      {"stop_token_ids", {4}},
      {"ignore_eos", true},
      {"min_tokens", 2},
      {"include_stop_str_in_output", true},
      {"skip_special_tokens", false},
      {"priority", -2},
      {"max_tokens", 9},
      {"logprobs", 3},
      {"stream", true},
      {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}},
      {"user", "someone"},
  };
  auto r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  const SamplingParams& s = r->request.sampling;
  EXPECT_EQ(s.n, 3);
  EXPECT_FLOAT_EQ(s.temperature, 0.5f);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.top_k, 7);
  EXPECT_FLOAT_EQ(s.min_p, 0.05f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.2f);
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.5f);
  EXPECT_EQ(s.logit_bias, (std::vector<std::pair<int32_t, float>>{
                              {5, -100.0f}, {12, 3.0f}}));
  EXPECT_EQ(s.seed, ~uint64_t{0});  // -1 as the unsigned seed
  EXPECT_EQ(s.logprobs, 3);
  const StoppingParams& stop = r->request.stopping;
  EXPECT_EQ(stop.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(stop.stop_token_ids, (std::vector<int32_t>{4}));
  EXPECT_TRUE(stop.ignore_eos);
  EXPECT_EQ(stop.min_tokens, 2);
  EXPECT_TRUE(stop.include_stop_str_in_output);
  EXPECT_FALSE(stop.skip_special_tokens);
  EXPECT_EQ(stop.max_tokens, 9);
  EXPECT_EQ(r->request.priority, -2);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->continuous_usage);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
}

TEST_F(OpenAiRequestTest, AStopStringMayBeGivenAlone) {
  auto r = Parse({{"prompt", "Hi"}, {"stop", "\n"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.stopping.stop, (std::vector<std::string>{"\n"}));
}

TEST_F(OpenAiRequestTest, TopKMinusOneMeansNoTopK) {
  auto r = Parse({{"prompt", "Hi"}, {"top_k", -1}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.top_k, 0);
}

TEST_F(OpenAiRequestTest, NullFieldsReadAsAbsent) {
  auto r = Parse({{"prompt", "Hi"}, {"temperature", nullptr},
                  {"max_tokens", nullptr}, {"stop", nullptr},
                  {"logprobs", nullptr}, {"stream_options", nullptr}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.temperature, 1.0f);
  EXPECT_EQ(r->request.stopping.max_tokens, kDefaultCompletionMaxTokens);
  EXPECT_FALSE(r->logprobs);
}

TEST_F(OpenAiRequestTest, IntegralFloatsAreAcceptedAsIntegers) {
  auto r = Parse({{"prompt", "Hi"}, {"n", 2.0}, {"max_tokens", 5.0}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.n, 2);
  EXPECT_EQ(r->request.stopping.max_tokens, 5);
}

TEST_F(OpenAiRequestTest, TheDefaultMaxTokensShrinksToWhatFitsInTheContext) {
  std::vector<int32_t> prompt(250, 5);
  auto r = Parse({{"prompt", prompt}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.stopping.max_tokens, 6);
}

TEST_F(OpenAiRequestTest, MaxTokensUpToTheContextIsAccepted) {
  std::vector<int32_t> prompt(250, 5);
  auto r = Parse({{"prompt", prompt}, {"max_tokens", 6}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.stopping.max_tokens, 6);
}

TEST_F(OpenAiRequestTest, MaxTokensPastTheContextIsContextLengthExceeded) {
  std::vector<int32_t> prompt(250, 5);
  auto r = Parse({{"prompt", prompt}, {"max_tokens", 7}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          "maximum context length is 256 tokens"));
  EXPECT_EQ(ParamOf(r.status()), "max_tokens");
  EXPECT_EQ(ErrorCodeOf(r.status()), "context_length_exceeded");
}

TEST_F(OpenAiRequestTest, APromptThatFillsTheContextIsRefused) {
  std::vector<int32_t> prompt(256, 5);
  auto r = Parse({{"prompt", prompt}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, "no room"));
  EXPECT_EQ(ParamOf(r.status()), "prompt");
  EXPECT_EQ(ErrorCodeOf(r.status()), "context_length_exceeded");
}

TEST_F(OpenAiRequestTest, EchoKeepsThePromptText) {
  auto text = Parse({{"prompt", "Hello"}, {"echo", true}});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(text->echo);
  EXPECT_EQ(text->echo_text, "Hello");
  auto ids = Parse({{"prompt", Encode("Hello", false)}, {"echo", true}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->echo_text, "Hello");
}

// echo with logprobs scores the prompt: its tokens' log-probs (and as many
// alternatives as logprobs asks) come from the engine's prompt_logprobs.
TEST_F(OpenAiRequestTest, EchoWithLogprobsAsksForThePromptsLogprobs) {
  auto r = Parse({{"prompt", "Hello"}, {"echo", true}, {"logprobs", 3}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.logprobs, 3);
  EXPECT_EQ(r->request.sampling.prompt_logprobs, 3);
  EXPECT_FALSE(r->echo_only);
  auto plain = Parse({{"prompt", "Hello"}, {"logprobs", 3}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->request.sampling.prompt_logprobs, -1);
  auto echo = Parse({{"prompt", "Hello"}, {"echo", true}});
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->request.sampling.prompt_logprobs, -1);
}

// max_tokens 0 with echo (OpenAI's legacy scoring call, vLLM's): the
// engine generates one token, which the response leaves out.
TEST_F(OpenAiRequestTest, MaxTokensZeroIsTheEchoedPromptAlone) {
  auto r = Parse({{"prompt", "Hello"}, {"echo", true}, {"logprobs", 0},
                  {"max_tokens", 0}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->echo_only);
  EXPECT_EQ(r->request.stopping.max_tokens, 1);
  EXPECT_EQ(r->request.sampling.prompt_logprobs, 0);
  auto one = Parse({{"prompt", "Hello"}, {"echo", true}, {"max_tokens", 1}});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_FALSE(one->echo_only);
  auto bare = Parse({{"prompt", "Hello"}, {"max_tokens", 0}});
  EXPECT_THAT(bare, StatusIs(absl::StatusCode::kInvalidArgument, "only with echo"));
  EXPECT_EQ(ParamOf(bare.status()), "max_tokens");
}

// Several prompts (strings or token-id arrays) run as one engine request
// each, with the same parameters; max_tokens' default is capped by each
// prompt's own room.
TEST_F(OpenAiRequestTest, SeveralPromptsEachBecomeAnEngineRequest) {
  auto r = Parse({{"prompt", {"Hello", "Hello Hello"}}, {"echo", true},
                  {"temperature", 0.5}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->num_prompts(), 2);
  EXPECT_EQ(r->PromptRequest(0).prompt_ids, Encode("Hello", true));
  EXPECT_EQ(r->PromptRequest(1).prompt_ids, Encode("Hello Hello", true));
  EXPECT_EQ(r->PromptRequest(1).sampling.temperature, 0.5f);
  EXPECT_EQ(r->EchoText(0), "Hello");
  EXPECT_EQ(r->EchoText(1), "Hello Hello");
  auto ids = Parse({{"prompt", Json::array({Encode("Hello", false),
                                            Encode("Hello Hello", false)})}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->num_prompts(), 2);
  EXPECT_EQ(ids->PromptRequest(1).prompt_ids, Encode("Hello Hello", false));
  EXPECT_EQ(ids->EchoText(1), "");  // no echo asked for
  // A prompt near the context's end gets only its own room.
  const std::vector<int32_t> near_end(static_cast<size_t>(model_.max_model_len - 3),
                                      Encode("Hello", false)[0]);
  auto capped = Parse({{"prompt", Json::array({Encode("Hello", false), near_end})}});
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->PromptRequest(0).stopping.max_tokens, kDefaultCompletionMaxTokens);
  EXPECT_EQ(capped->PromptRequest(1).stopping.max_tokens, 3);
}

// echo with logprobs returns prompt tokens × n × (logprobs + 1) values:
// bounded, so that a large body cannot ask for a response of gigabytes.
TEST_F(OpenAiRequestTest, EchoedLogprobsAreBounded) {
  const std::vector<int32_t> ids(200, Encode("Hello", false)[0]);
  std::vector<std::vector<int32_t>> prompts(kMaxPrompts, ids);
  // 256 prompts × 200 tokens × n 4 × 21 values = 4.3 M > 1 M.
  auto r = Parse({{"prompt", prompts}, {"echo", true}, {"logprobs", 20}, {"n", 4},
                  {"max_tokens", 1}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, "at most 1048576"));
  EXPECT_EQ(ParamOf(r.status()), "logprobs");
  // Without echo the same prompts are fine; so are fewer values.
  EXPECT_TRUE(Parse({{"prompt", prompts}, {"logprobs", 20}, {"n", 4}, {"max_tokens", 1}}).ok());
  EXPECT_TRUE(Parse({{"prompt", prompts}, {"echo", true}, {"logprobs", 1}, {"max_tokens", 1}}).ok());
}

// vLLM's prompt_logprobs: not streamed; the engine scores the prompt once
// with the most alternatives echo and prompt_logprobs ask for.
TEST_F(OpenAiRequestTest, PromptLogprobsAskTheEngineForTheMostAlternatives) {
  auto r = Parse({{"prompt", "Hello"}, {"prompt_logprobs", 2}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_logprobs, 2);
  EXPECT_EQ(r->request.sampling.prompt_logprobs, 2);
  auto both = Parse({{"prompt", "Hello"}, {"prompt_logprobs", 1}, {"echo", true},
                     {"logprobs", 4}});
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->request.sampling.prompt_logprobs, 4);
  auto streamed = Parse({{"prompt", "Hello"}, {"prompt_logprobs", 1}, {"stream", true}});
  EXPECT_THAT(streamed, StatusIs(absl::StatusCode::kInvalidArgument, "stream"));
  EXPECT_EQ(ParamOf(streamed.status()), "prompt_logprobs");
  auto streamed_zero = Parse({{"prompt", "Hello"}, {"prompt_logprobs", 0}, {"stream", true}});
  ASSERT_TRUE(streamed_zero.ok()) << streamed_zero.status();  // vLLM accepts it
  EXPECT_EQ(streamed_zero->request.sampling.prompt_logprobs, -1);
  EXPECT_EQ(ParamOf(Parse({{"prompt", "Hello"}, {"prompt_logprobs", -1}}).status()),
            "prompt_logprobs");
  const std::vector<int32_t> ids(200, Encode("Hello", false)[0]);
  auto big = Parse({{"prompt", std::vector<std::vector<int32_t>>(kMaxPrompts, ids)},
                    {"prompt_logprobs", 20}, {"max_tokens", 1}});
  EXPECT_THAT(big, StatusIs(absl::StatusCode::kInvalidArgument, "at most 1048576"));
  EXPECT_EQ(ParamOf(big.status()), "prompt_logprobs");
}

TEST_F(OpenAiRequestTest, APromptOfABatchThatDoesNotFitIsNamed) {
  const std::vector<int32_t> full(static_cast<size_t>(model_.max_model_len),
                                  Encode("Hello", false)[0]);
  auto r = Parse({{"prompt", Json::array({Encode("Hello", false), full})}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, "prompt 1 has 256 tokens"));
  EXPECT_EQ(ParamOf(r.status()), "prompt");
}

TEST_F(OpenAiRequestTest, AnUnknownModelIsNotFound) {
  auto r = Parse({{"model", "gpt-4"}, {"prompt", "Hi"}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound, "gpt-4"));
  EXPECT_EQ(ParamOf(r.status()), "model");
  EXPECT_EQ(ErrorCodeOf(r.status()), "model_not_found");
}

TEST_F(OpenAiRequestTest, MalformedJsonIsInvalidArgument) {
  EXPECT_THAT(ParseCompletionRequest("{\"prompt\": ", model_),
              StatusIs(absl::StatusCode::kInvalidArgument, "not valid JSON"));
}

TEST_F(OpenAiRequestTest, ABodyThatIsNotAnObjectIsInvalidArgument) {
  EXPECT_THAT(ParseCompletionRequest("[1, 2]", model_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a JSON object, got array"));
}

TEST_F(OpenAiRequestTest, DeeplyNestedBodiesAreRefusedBeforeParsing) {
  const std::string deep = "{\"prompt\": \"x\", \"user\": " +
                           std::string(100000, '[') + std::string(100000, ']') +
                           "}";
  EXPECT_THAT(ParseCompletionRequest(deep, model_),
              StatusIs(absl::StatusCode::kInvalidArgument, "nests deeper"));
}

TEST_F(OpenAiRequestTest, AnObjectWithManyKeysIsRefusedQuickly) {
  // Uncapped, ordered_json's linear duplicate search makes this O(K²).
  std::string body = "{\"prompt\": \"x\", \"user\": {";
  for (int i = 0; i < 200000; ++i) {
    if (i > 0) body += ',';
    absl::StrAppend(&body, "\"k", i, "\":0");
  }
  body += "}}";
  const absl::Time start = absl::Now();
  EXPECT_THAT(ParseCompletionRequest(body, model_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "an object with more than 1024 keys"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(OpenAiRequestTest, AnObjectAtTheKeyCapIsAccepted) {
  model_.vocab_size = 4096;  // every key a token id
  Json bias = Json::object();
  for (int i = 0; i < 1024; ++i) bias[std::to_string(i)] = 1;
  auto r = ParseCompletionRequest(
      Json{{"prompt", "x"}, {"logit_bias", bias}}.dump(), model_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.logit_bias.size(), 1024u);
}

TEST_F(OpenAiRequestTest, TooManyValuesInAllAreRefused) {
  std::string ids = "[0";
  for (int i = 0; i < (1 << 20); ++i) ids += ",0";
  ids += "]";
  EXPECT_THAT(ParseCompletionRequest("{\"prompt\": " + ids + "}", model_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "more than 1048576 JSON values"));
}

TEST_F(OpenAiRequestTest, BracketsInsideStringsDoNotCountAsNesting) {
  auto r = ParseCompletionRequest(
      "{\"prompt\": \"" + std::string(200, '[') + "\\\"" + "\"}", model_);
  EXPECT_TRUE(r.ok()) << r.status();
}

struct BadBody {
  const char* name;
  Json body;
  absl::StatusCode code;
  const char* param;
};

std::vector<BadBody> BadBodies() {
  using absl::StatusCode;
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument;
  return {
      {"no prompt", {{"model", "tiny"}}, kInvalid, "prompt"},
      {"null prompt", {{"prompt", nullptr}}, kInvalid, "prompt"},
      {"empty prompt", {{"prompt", ""}}, kInvalid, "prompt"},
      {"empty prompt array", {{"prompt", Json::array()}}, kInvalid, "prompt"},
      {"a string among token arrays",
       {{"prompt", Json::array({Json::array({1, 2}), "b"})}}, kInvalid, "prompt"},
      {"an empty prompt in a batch", {{"prompt", {"a", ""}}}, kInvalid, "prompt"},
      {"a bad token in a batch",
       {{"prompt", Json::array({Json::array({1}), Json::array({-1})})}}, kInvalid,
       "prompt"},
      {"too many prompts", {{"prompt", std::vector<std::string>(kMaxPrompts + 1, "a")}},
       kInvalid, "prompt"},
      {"prompt object", {{"prompt", {{"a", 1}}}}, kInvalid, "prompt"},
      {"negative token", {{"prompt", {1, -2}}}, kInvalid, "prompt"},
      {"token past vocab", {{"prompt", {1, 100000}}}, kInvalid, "prompt"},
      {"model not a string", {{"prompt", "x"}, {"model", 5}}, kInvalid, "model"},
      {"temperature string", {{"prompt", "x"}, {"temperature", "hot"}}, kInvalid,
       "temperature"},
      {"temperature 2.5", {{"prompt", "x"}, {"temperature", 2.5}}, kInvalid,
       "temperature"},
      {"negative temperature", {{"prompt", "x"}, {"temperature", -0.1}}, kInvalid,
       "temperature"},
      {"top_p 0", {{"prompt", "x"}, {"top_p", 0}}, kInvalid, "top_p"},
      {"top_p 1.5", {{"prompt", "x"}, {"top_p", 1.5}}, kInvalid, "top_p"},
      {"top_k -2", {{"prompt", "x"}, {"top_k", -2}}, kInvalid, "top_k"},
      {"top_k 1.5", {{"prompt", "x"}, {"top_k", 1.5}}, kInvalid, "top_k"},
      {"min_p 2", {{"prompt", "x"}, {"min_p", 2}}, kInvalid, "min_p"},
      {"repetition_penalty 0", {{"prompt", "x"}, {"repetition_penalty", 0}},
       kInvalid, "repetition_penalty"},
      {"presence_penalty 3", {{"prompt", "x"}, {"presence_penalty", 3}}, kInvalid,
       "presence_penalty"},
      {"frequency_penalty -3", {{"prompt", "x"}, {"frequency_penalty", -3}},
       kInvalid, "frequency_penalty"},
      {"n 0", {{"prompt", "x"}, {"n", 0}}, kInvalid, "n"},
      {"n above max_n", {{"prompt", "x"}, {"n", 5}}, kInvalid, "n"},
      {"n string", {{"prompt", "x"}, {"n", "2"}}, kInvalid, "n"},
      {"max_tokens 0", {{"prompt", "x"}, {"max_tokens", 0}}, kInvalid,
       "max_tokens"},
      {"max_tokens negative", {{"prompt", "x"}, {"max_tokens", -5}}, kInvalid,
       "max_tokens"},
      {"max_tokens huge", {{"prompt", "x"}, {"max_tokens", 1e30}}, kInvalid,
       "max_tokens"},
      {"min_tokens above max_tokens",
       {{"prompt", "x"}, {"max_tokens", 3}, {"min_tokens", 4}}, kInvalid,
       "min_tokens"},
      {"stream string", {{"prompt", "x"}, {"stream", "yes"}}, kInvalid, "stream"},
      {"stream_options without stream",
       {{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}, kInvalid,
       "stream_options"},
      {"include_usage string",
       {{"prompt", "x"}, {"stream", true},
        {"stream_options", {{"include_usage", "yes"}}}},
       kInvalid, "stream_options.include_usage"},
      {"logprobs 21", {{"prompt", "x"}, {"logprobs", 21}}, kInvalid, "logprobs"},
      {"logprobs true", {{"prompt", "x"}, {"logprobs", true}}, kInvalid,
       "logprobs"},
      {"logit_bias array", {{"prompt", "x"}, {"logit_bias", {1, 2}}}, kInvalid,
       "logit_bias"},
      {"logit_bias key", {{"prompt", "x"}, {"logit_bias", {{"abc", 1}}}},
       kInvalid, "logit_bias"},
      {"logit_bias key with a space", {{"prompt", "x"}, {"logit_bias", {{" 5", 1}}}},
       kInvalid, "logit_bias"},
      {"logit_bias key with a plus", {{"prompt", "x"}, {"logit_bias", {{"+5", 1}}}},
       kInvalid, "logit_bias"},
      {"max_tokens past int32", {{"prompt", "x"}, {"max_tokens", int64_t{1} << 40}},
       kInvalid, "max_tokens"},
      {"logit_bias token past vocab",
       {{"prompt", "x"}, {"logit_bias", {{"100000", 1}}}}, kInvalid,
       "logit_bias"},
      {"logit_bias 101", {{"prompt", "x"}, {"logit_bias", {{"5", 101}}}},
       kInvalid, "logit_bias"},
      {"stop number", {{"prompt", "x"}, {"stop", 5}}, kInvalid, "stop"},
      {"empty stop string", {{"prompt", "x"}, {"stop", ""}}, kInvalid, "stop"},
      {"17 stop strings",
       {{"prompt", "x"}, {"stop", std::vector<std::string>(17, "s")}}, kInvalid,
       "stop"},
      {"stop_token_ids past vocab", {{"prompt", "x"}, {"stop_token_ids", {100000}}},
       kInvalid, "stop_token_ids"},
      {"seed float", {{"prompt", "x"}, {"seed", 1.5}}, kInvalid, "seed"},
      {"suffix", {{"prompt", "x"}, {"suffix", "end"}}, kInvalid, "suffix"},
      {"best_of above n", {{"prompt", "x"}, {"best_of", 3}}, kInvalid, "best_of"},
      {"min_tokens with echo and max_tokens 0",
       {{"prompt", "x"}, {"echo", true}, {"max_tokens", 0}, {"min_tokens", 1}},
       kInvalid, "min_tokens"},
      {"unknown model", {{"prompt", "x"}, {"model", "gpt-4"}},
       StatusCode::kNotFound, "model"},
  };
}

TEST_F(OpenAiRequestTest, BadBodiesAreRefusedNamingTheirParam) {
  for (const BadBody& bad : BadBodies()) {
    SCOPED_TRACE(bad.name);
    auto r = Parse(bad.body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), bad.code) << r.status();
    EXPECT_EQ(ParamOf(r.status()), bad.param) << r.status();
  }
}

TEST(FieldReaderTest, KeepsTheFirstError) {
  const Json body = {{"a", "x"}, {"b", "y"}};
  FieldReader fields(body);
  fields.Number("a", 0, 1);
  fields.Number("b", 0, 1);
  EXPECT_THAT(fields.status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "a: must be a number"));
}

TEST(FieldReaderTest, NamesNestedFieldsWithTheirPrefix) {
  const Json body = {{"include_usage", 1}};
  FieldReader fields(body, "stream_options.");
  fields.Bool("include_usage");
  EXPECT_EQ(ParamOf(fields.status()), "stream_options.include_usage");
}

}  // namespace
}  // namespace weft
