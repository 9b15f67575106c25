// Response bodies in OpenAI's shapes: whole completions and chat
// completions, their SSE chunks (role first, usage last when asked for,
// then [DONE]), both log-prob shapes, and the error body with its HTTP
// status.
#include "server/openai_response.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/openai_errors.h"
#include "server/status.h"

namespace weft {
namespace {

class OpenAiResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir =
        std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
    auto tokenizer = Tokenizer::FromHfFiles(dir + "/tokenizer.json",
                                            dir + "/tokenizer_config.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    hello_ = tokenizer_->Encode("Hello", EncodeOptions{});
    ASSERT_FALSE(hello_.empty());
  }

  OpenAiResponseBuilder Builder(OpenAiApi api, int n = 1, bool logprobs = false,
                                bool include_usage = false) {
    OpenAiRequest request;
    request.api = api;
    request.request.sampling.n = n;
    request.logprobs = logprobs;
    request.include_usage = include_usage;
    return OpenAiResponseBuilder(
        request, api == OpenAiApi::kChatCompletions ? "chatcmpl-1" : "cmpl-1",
        "tiny", 1700000000, *tokenizer_);
  }

  static Delta TextDelta(int index, std::string text,
                         std::vector<SampledToken> logprobs = {}) {
    Delta delta;
    delta.index = index;
    delta.text = std::move(text);
    for (const SampledToken& t : logprobs) delta.token_ids.push_back(t.token);
    delta.logprobs = std::move(logprobs);
    return delta;
  }

  static Finished Done(std::vector<FinishReason> reasons, int prompt = 3,
                       int completion = 4, int cached = 1) {
    Finished finished;
    for (FinishReason r : reasons) finished.samples.push_back({r, "", 2});
    finished.usage = {prompt, completion, cached};
    return finished;
  }

  // The JSON objects of an SSE text, and whether it ended with [DONE].
  static std::vector<Json> Events(const std::string& sse, bool* done) {
    std::vector<Json> out;
    *done = false;
    for (absl::string_view event : absl::StrSplit(sse, "\n\n", absl::SkipEmpty())) {
      EXPECT_TRUE(absl::ConsumePrefix(&event, "data: ")) << event;
      EXPECT_FALSE(*done) << "an event after [DONE]";
      if (event == "[DONE]") {
        *done = true;
      } else {
        out.push_back(Json::parse(event));
      }
    }
    return out;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> hello_;
};

// vLLM's stop_reason: null for the model's EOS, the integer id for a
// stop_token_ids entry, the string for a stop string.
TEST_F(OpenAiResponseTest, StopReasonIsNullForEosAnIdForAStopTokenAndTheStopString) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kCompletions, 3);
  Finished finished = Done({FinishReason::kStop, FinishReason::kStop, FinishReason::kStop});
  finished.samples[0].stop_reason = "<|im_end|>";  // the model's EOS
  finished.samples[1].stop_reason = ",";
  finished.samples[1].stop_token = 42;
  finished.samples[2].stop_reason = "END";
  finished.samples[2].stop_string = true;
  const Json r = builder.Complete(finished);
  EXPECT_TRUE(r["choices"][0]["stop_reason"].is_null()) << r;
  EXPECT_EQ(r["choices"][1]["stop_reason"], 42);
  EXPECT_EQ(r["choices"][2]["stop_reason"], "END");
}

TEST_F(OpenAiResponseTest, ACompletionHasOpenAisShape) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kCompletions, 2);
  builder.Accumulate(TextDelta(0, "Hel"));
  builder.Accumulate(TextDelta(1, "Bye"));
  builder.Accumulate(TextDelta(0, "lo"));
  Finished finished = Done({FinishReason::kLength, FinishReason::kStop});
  finished.samples[1].stop_reason = "\n";
  finished.samples[1].stop_string = true;
  const Json r = builder.Complete(finished);
  EXPECT_EQ(r["id"], "cmpl-1");
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "tiny");
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["text"], "Hello");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(r["choices"][0]["stop_reason"].is_null());
  EXPECT_EQ(r["choices"][1]["index"], 1);
  EXPECT_EQ(r["choices"][1]["text"], "Bye");
  EXPECT_EQ(r["choices"][1]["finish_reason"], "stop");
  EXPECT_EQ(r["choices"][1]["stop_reason"], "\n");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(r["usage"]["completion_tokens"], 4);
  EXPECT_EQ(r["usage"]["total_tokens"], 7);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
}

TEST_F(OpenAiResponseTest, AChatCompletionHoldsAnAssistantMessage) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kChatCompletions);
  builder.Accumulate(TextDelta(0, "Hi there"));
  const Json r = builder.Complete(Done({FinishReason::kStop}));
  EXPECT_EQ(r["id"], "chatcmpl-1");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "Hi there");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(r["choices"][0].contains("text"));
}

TEST_F(OpenAiResponseTest, EchoPutsThePromptBeforeTheCompletion) {
  OpenAiRequest request;
  request.echo = true;
  request.echo_text = "Say: ";
  OpenAiResponseBuilder builder(request, "cmpl-1", "tiny", 0, *tokenizer_);
  builder.Accumulate(TextDelta(0, "hi"));
  EXPECT_EQ(builder.Complete(Done({FinishReason::kStop}))["choices"][0]["text"],
            "Say: hi");
  OpenAiResponseBuilder streamed(request, "cmpl-1", "tiny", 0, *tokenizer_);
  bool done = false;
  const std::vector<Json> events = Events(streamed.StreamDelta(TextDelta(0, "hi")), &done);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["choices"][0]["text"], "Say: hi");
}

TEST_F(OpenAiResponseTest, AChatStreamOpensEachChoiceWithItsRole) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kChatCompletions, 2);
  bool done = false;
  const std::vector<Json> events = Events(builder.StreamStart(), &done);
  ASSERT_EQ(events.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(events[i]["id"], "chatcmpl-1");
    EXPECT_EQ(events[i]["choices"][0]["index"], i);
    EXPECT_EQ(events[i]["choices"][0]["delta"]["role"], "assistant");
    EXPECT_TRUE(events[i]["choices"][0]["finish_reason"].is_null());
  }
  EXPECT_FALSE(done);
}

TEST_F(OpenAiResponseTest, ChatChunksCarryContentThenTheFinishReasonThenDone) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kChatCompletions);
  std::string sse = builder.StreamStart();
  sse += builder.StreamDelta(TextDelta(0, "Hi"));
  sse += builder.StreamFinish(Done({FinishReason::kLength}));
  bool done = false;
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1]["choices"][0]["delta"]["content"], "Hi");
  EXPECT_FALSE(events[1]["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(events[2]["choices"][0]["delta"], Json::object());
  EXPECT_EQ(events[2]["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(events[2].contains("usage"));
  EXPECT_TRUE(done);
}

TEST_F(OpenAiResponseTest, AChoiceThatEndsFirstGetsItsFinishReasonThenAndOnlyThen) {
  // n = 2: choice 1 hits a stop string while choice 0 goes on (vLLM sends
  // each choice's finish_reason when that choice ends).
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kCompletions, 2);
  std::string sse = builder.StreamDelta(TextDelta(0, "a"));
  Delta last = TextDelta(1, "b");
  last.finished = SampleResult{FinishReason::kStop, "###", 3, -1, true};
  sse += builder.StreamDelta(last);
  sse += builder.StreamDelta(TextDelta(0, "c"));
  Finished finished = Done({FinishReason::kLength, FinishReason::kStop});
  finished.samples[1] = *last.finished;
  sse += builder.StreamFinish(finished);
  bool done = false;
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[1]["choices"][0]["index"], 1);
  EXPECT_EQ(events[1]["choices"][0]["text"], "b");
  EXPECT_TRUE(events[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(events[2]["choices"][0]["index"], 1);
  EXPECT_EQ(events[2]["choices"][0]["text"], "");
  EXPECT_EQ(events[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(events[2]["choices"][0]["stop_reason"], "###");
  EXPECT_EQ(events[3]["choices"][0]["text"], "c");
  // The end: choice 0 only; choice 1's was sent.
  EXPECT_EQ(events[4]["choices"][0]["index"], 0);
  EXPECT_EQ(events[4]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(done);
}

TEST_F(OpenAiResponseTest, DeltasWithoutVisibleTextSendNoChunk) {
  OpenAiResponseBuilder builder = Builder(OpenAiApi::kCompletions);
  Delta held;  // tokens whose text is held back (a possible stop string)
  held.token_ids = {5};
  EXPECT_EQ(builder.StreamDelta(held), "");
}

TEST_F(OpenAiResponseTest, IncludeUsageAddsNullUsageToChunksAndAUsageChunkLast) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kCompletions, 1, false, /*include_usage=*/true);
  std::string sse = builder.StreamDelta(TextDelta(0, "Hi"));
  sse += builder.StreamFinish(Done({FinishReason::kStop}, 5, 2, 0));
  bool done = false;
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["object"], "text_completion");
  EXPECT_EQ(events[0]["choices"][0]["text"], "Hi");
  EXPECT_TRUE(events[0].contains("usage"));
  EXPECT_TRUE(events[0]["usage"].is_null());
  EXPECT_TRUE(events[1]["usage"].is_null());
  EXPECT_EQ(events[1]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(events[2]["choices"], Json::array());
  EXPECT_EQ(events[2]["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(events[2]["usage"]["completion_tokens"], 2);
  EXPECT_EQ(events[2]["usage"]["total_tokens"], 7);
  EXPECT_TRUE(done);
}

// vLLM's stream_options.continuous_usage_stats: every chunk carries its
// choice's usage so far (the role chunk 0 tokens; a delta the tokens up to
// it, also those whose text was held back); the last chunk the totals.
TEST_F(OpenAiResponseTest, ContinuousUsageStatsPutTheUsageSoFarOnEveryChunk) {
  OpenAiRequest request;
  request.api = OpenAiApi::kChatCompletions;
  request.request.prompt_ids = {1, 2, 3, 4, 5};
  request.include_usage = true;
  request.continuous_usage = true;
  OpenAiResponseBuilder builder(request, "chatcmpl-1", "tiny", 1700000000, *tokenizer_);
  std::string sse = builder.StreamStart();
  Delta held;  // text held back: no chunk, but its token counts
  held.token_ids = {7};
  sse += builder.StreamDelta(held);
  Delta hi = TextDelta(0, "Hi");
  hi.token_ids = {8};
  sse += builder.StreamDelta(hi);
  sse += builder.StreamFinish(Done({FinishReason::kStop}, 5, 2, 0));
  bool done = false;
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 4u);
  auto usage = [](int completion) {
    return Json{{"prompt_tokens", 5}, {"completion_tokens", completion},
                {"total_tokens", 5 + completion}};
  };
  EXPECT_EQ(events[0]["usage"], usage(0));  // the role chunk
  EXPECT_EQ(events[1]["usage"], usage(2));
  EXPECT_EQ(events[1]["choices"][0]["delta"]["content"], "Hi");
  EXPECT_EQ(events[2]["usage"], usage(2));  // the finish chunk
  EXPECT_EQ(events[3]["choices"], Json::array());
  EXPECT_EQ(events[3]["usage"]["completion_tokens"], 2);
  EXPECT_TRUE(done);
}

TEST_F(OpenAiResponseTest, CompletionLogprobsUseTheLegacyShape) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kCompletions, 1, /*logprobs=*/true);
  const int32_t a = hello_[0];
  SampledToken first{a, -0.5f, {{a, -0.5f}, {7, -1.5f}}};
  SampledToken second{a, -0.25f, {{a, -0.25f}, {7, -2.0f}}};
  builder.Accumulate(TextDelta(0, "xx", {first, second}));
  const Json logprobs =
      builder.Complete(Done({FinishReason::kLength}))["choices"][0]["logprobs"];
  const std::string token = TokenString(*tokenizer_, a);
  EXPECT_EQ(logprobs["tokens"], Json({token, token}));
  EXPECT_EQ(logprobs["token_logprobs"], Json({-0.5, -0.25}));
  ASSERT_EQ(logprobs["top_logprobs"].size(), 2u);
  EXPECT_EQ(logprobs["top_logprobs"][0][token], -0.5);
  EXPECT_EQ(logprobs["top_logprobs"][0][TokenString(*tokenizer_, 7)], -1.5);
  const int64_t length = static_cast<int64_t>(token.size());  // ASCII here
  EXPECT_EQ(logprobs["text_offset"], Json({0, length}));
}

// OpenAI's completions return "up to logprobs + 1" top entries: the
// sampled token is always one of them (logprobs 0; a token drawn outside
// the top ones).
TEST_F(OpenAiResponseTest, CompletionTopLogprobsAlwaysHoldTheSampledToken) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kCompletions, 1, /*logprobs=*/true);
  const int32_t a = hello_[0];
  SampledToken zero{a, -0.5f, {}};                      // logprobs 0
  SampledToken drawn{a, -3.0f, {{7, -0.1f}}};           // outside the top 1
  builder.Accumulate(TextDelta(0, "xx", {zero, drawn}));
  const Json top = builder.Complete(Done({FinishReason::kLength}))["choices"][0]
                       ["logprobs"]["top_logprobs"];
  const std::string token = TokenString(*tokenizer_, a);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0], Json({{token, -0.5}}));
  EXPECT_EQ(top[1].size(), 2u);
  EXPECT_EQ(top[1][token], -3.0);
  EXPECT_EQ(top[1][TokenString(*tokenizer_, 7)], -0.1f);
}

TEST_F(OpenAiResponseTest, StreamedCompletionLogprobsContinueTheTextOffset) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kCompletions, 1, /*logprobs=*/true);
  const int32_t a = hello_[0];
  const int64_t length = static_cast<int64_t>(TokenString(*tokenizer_, a).size());
  bool done = false;
  builder.StreamDelta(TextDelta(0, "x", {{a, -0.5f, {}}}));
  const std::vector<Json> second =
      Events(builder.StreamDelta(TextDelta(0, "y", {{a, -0.5f, {}}})), &done);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]["choices"][0]["logprobs"]["text_offset"], Json({length}));
}

// echo with logprobs (lm-evaluation-harness's way of scoring a text): the
// logprobs object starts with the prompt's tokens, the first with null
// log-prob and alternatives, then the engine's prompt log-probs, then the
// completion's; text_offset runs over the echoed prompt too.
class EchoLogprobsTest : public OpenAiResponseTest {
 protected:
  OpenAiRequest EchoRequest(int n = 1, bool echo_only = false) {
    OpenAiRequest request;
    request.api = OpenAiApi::kCompletions;
    request.request.sampling.n = n;
    request.logprobs = true;
    request.top_logprobs = 1;
    request.echo = true;
    request.echo_only = echo_only;
    request.echo_text = "ab";
    request.request.prompt_ids = {a(), b()};
    return request;
  }
  int32_t a() const { return hello_[0]; }
  int32_t b() const { return 7; }
  // The first delta of the request: the prompt's scores ride on it.
  Delta FirstDelta(int index, std::string text, int32_t token) const {
    Delta delta = TextDelta(index, std::move(text), {{token, -0.25f, {{token, -0.25f}}}});
    delta.prompt_logprobs = {{b(), -2.0f, {{a(), -0.5f}}}};
    return delta;
  }
  int64_t Length(int32_t token) const {
    return static_cast<int64_t>(tokenizer_->TokenBytes(token).size());  // ASCII
  }
};

TEST_F(EchoLogprobsTest, ThePromptsTokensComeFirstTheFirstWithNulls) {
  OpenAiResponseBuilder builder(EchoRequest(), "cmpl-1", "tiny", 0, *tokenizer_);
  builder.Accumulate(FirstDelta(0, "c", a()));
  const Json choice = builder.Complete(Done({FinishReason::kLength}))["choices"][0];
  EXPECT_EQ(choice["text"], "abc");
  const Json& logprobs = choice["logprobs"];
  const std::string ta = TokenString(*tokenizer_, a());
  const std::string tb = TokenString(*tokenizer_, b());
  EXPECT_EQ(logprobs["tokens"], Json({ta, tb, ta}));
  EXPECT_EQ(logprobs["token_logprobs"], Json({nullptr, -2.0, -0.25}));
  ASSERT_EQ(logprobs["top_logprobs"].size(), 3u);
  EXPECT_TRUE(logprobs["top_logprobs"][0].is_null());
  EXPECT_EQ(logprobs["top_logprobs"][1], Json({{ta, -0.5}, {tb, -2.0}}));
  EXPECT_EQ(logprobs["top_logprobs"][2], Json({{ta, -0.25}}));
  EXPECT_EQ(logprobs["text_offset"],
            Json({0, Length(a()), Length(a()) + Length(b())}));
}

TEST_F(EchoLogprobsTest, MaxTokensZeroAnswersThePromptAlone) {
  OpenAiResponseBuilder builder(EchoRequest(1, /*echo_only=*/true), "cmpl-1",
                                "tiny", 0, *tokenizer_);
  builder.Accumulate(FirstDelta(0, "c", a()));
  const Json choice = builder.Complete(Done({FinishReason::kLength}))["choices"][0];
  EXPECT_EQ(choice["text"], "ab");
  EXPECT_EQ(choice["logprobs"]["token_logprobs"], Json({nullptr, -2.0}));

  OpenAiResponseBuilder streamed(EchoRequest(1, /*echo_only=*/true), "cmpl-1",
                                 "tiny", 0, *tokenizer_);
  bool done = false;
  std::string sse = streamed.StreamDelta(FirstDelta(0, "c", a()));
  sse += streamed.StreamDelta(TextDelta(0, "d", {{a(), -0.1f, {}}}));
  sse += streamed.StreamFinish(Done({FinishReason::kLength}));
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 2u);  // the prompt, the finish
  EXPECT_EQ(events[0]["choices"][0]["text"], "ab");
  EXPECT_EQ(events[0]["choices"][0]["logprobs"]["token_logprobs"],
            Json({nullptr, -2.0}));
  EXPECT_EQ(events[1]["choices"][0]["text"], "");
  EXPECT_EQ(events[1]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(done);
}

// The engine sends the prompt's scores once, with the request's first
// delta, whichever sample it belongs to; every choice starts with them.
TEST_F(EchoLogprobsTest, EveryChoiceStartsWithThePromptStreamedAndNot) {
  OpenAiResponseBuilder builder(EchoRequest(2), "cmpl-1", "tiny", 0, *tokenizer_);
  builder.Accumulate(FirstDelta(1, "c", a()));
  builder.Accumulate(TextDelta(0, "d", {{b(), -0.75f, {}}}));
  const Json r = builder.Complete(Done({FinishReason::kLength, FinishReason::kLength}));
  EXPECT_EQ(r["choices"][0]["logprobs"]["token_logprobs"], Json({nullptr, -2.0, -0.75}));
  EXPECT_EQ(r["choices"][1]["logprobs"]["token_logprobs"], Json({nullptr, -2.0, -0.25}));

  OpenAiResponseBuilder streamed(EchoRequest(2), "cmpl-1", "tiny", 0, *tokenizer_);
  bool done = false;
  std::string sse = streamed.StreamDelta(FirstDelta(1, "c", a()));
  sse += streamed.StreamDelta(TextDelta(0, "d", {{b(), -0.75f, {}}}));
  sse += streamed.StreamDelta(TextDelta(0, "e", {{a(), -0.5f, {}}}));
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["choices"][0]["index"], 1);
  EXPECT_EQ(events[0]["choices"][0]["text"], "abc");
  EXPECT_EQ(events[0]["choices"][0]["logprobs"]["token_logprobs"],
            Json({nullptr, -2.0, -0.25}));
  EXPECT_EQ(events[1]["choices"][0]["index"], 0);
  EXPECT_EQ(events[1]["choices"][0]["text"], "abd");
  EXPECT_EQ(events[1]["choices"][0]["logprobs"]["token_logprobs"],
            Json({nullptr, -2.0, -0.75}));
  // Later chunks: the completion's tokens only, offsets after the prompt.
  EXPECT_EQ(events[2]["choices"][0]["logprobs"]["token_logprobs"], Json({-0.5}));
  EXPECT_EQ(events[2]["choices"][0]["logprobs"]["text_offset"],
            Json({Length(a()) + Length(b()) + Length(b())}));
}

// The completion's text_offset indexes the returned text even when the
// prompt's tokens do not add up to the echoed prompt (an added BOS, a
// stripped leading space); the prompt's own count its tokens from 0.
TEST_F(EchoLogprobsTest, TheCompletionsOffsetsIndexTheReturnedText) {
  OpenAiRequest request = EchoRequest();
  request.echo_text = "é!";  // 2 code points; tokens a and b are longer
  OpenAiResponseBuilder builder(request, "cmpl-1", "tiny", 0, *tokenizer_);
  builder.Accumulate(FirstDelta(0, "c", a()));
  const Json offsets = builder.Complete(Done({FinishReason::kLength}))["choices"][0]
                           ["logprobs"]["text_offset"];
  EXPECT_EQ(offsets, Json({0, Length(a()), 2}));
}

// vLLM's prompt_logprobs: per choice in completions, once beside the
// choices in chat; each position keyed by token id, the prompt's token
// first with its rank, then the alternatives ranked 1, 2, …; echo's
// legacy entries show their own number of alternatives.
TEST_F(EchoLogprobsTest, PromptLogprobsUseVllmsShape) {
  OpenAiRequest request = EchoRequest();
  request.top_logprobs = 0;  // echo shows no alternatives
  request.prompt_logprobs = 2;
  OpenAiResponseBuilder builder(request, "cmpl-1", "tiny", 0, *tokenizer_);
  Delta first = FirstDelta(0, "c", a());
  first.prompt_logprobs = {{b(), -2.0f, {{a(), -0.5f}, {b(), -2.0f}, {9, -3.0f}}, 2}};
  builder.Accumulate(first);
  const Json choice = builder.Complete(Done({FinishReason::kLength}))["choices"][0];
  const std::string ta = TokenString(*tokenizer_, a());
  const std::string tb = TokenString(*tokenizer_, b());
  const Json expected = Json::array(
      {nullptr,
       {{std::to_string(b()), {{"logprob", -2.0}, {"rank", 2}, {"decoded_token", tb}}},
        {std::to_string(a()), {{"logprob", -0.5}, {"rank", 1}, {"decoded_token", ta}}}}});
  EXPECT_EQ(choice["prompt_logprobs"], expected);
  EXPECT_EQ(choice["logprobs"]["top_logprobs"][1], Json({{tb, -2.0}}));

  request.api = OpenAiApi::kChatCompletions;
  request.echo = false;
  request.logprobs = false;
  OpenAiResponseBuilder chat(request, "chatcmpl-1", "tiny", 0, *tokenizer_);
  chat.Accumulate(first);
  const Json r = chat.Complete(Done({FinishReason::kLength}));
  EXPECT_EQ(r["prompt_logprobs"], expected);
  EXPECT_FALSE(r["choices"][0].contains("prompt_logprobs"));
  // Not asked for: not there.
  OpenAiResponseBuilder plain(EchoRequest(), "cmpl-1", "tiny", 0, *tokenizer_);
  plain.Accumulate(first);
  EXPECT_FALSE(plain.Complete(Done({FinishReason::kLength}))["choices"][0].contains(
      "prompt_logprobs"));
}

// Several prompts: choice p·n + i shows prompt p's echo, prompt entries and
// (with continuous usage) prompt token count.
TEST_F(EchoLogprobsTest, EachPromptsChoicesShowThatPrompt) {
  OpenAiRequest request = EchoRequest();
  request.more_prompts.push_back({{b(), a(), a()}, "baa", 5});
  request.stream = true;
  request.include_usage = request.continuous_usage = true;
  OpenAiResponseBuilder builder(request, "cmpl-1", "tiny", 0, *tokenizer_);
  builder.Accumulate(FirstDelta(0, "c", a()));
  Delta second = TextDelta(1, "d", {{b(), -0.75f, {}}});
  second.prompt_logprobs = {{a(), -1.0f, {}}, {a(), -3.0f, {}}};
  builder.Accumulate(second);
  const Json r = builder.Complete(Done({FinishReason::kLength, FinishReason::kStop}));
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["text"], "abc");
  EXPECT_EQ(r["choices"][1]["text"], "baad");
  EXPECT_EQ(r["choices"][0]["logprobs"]["token_logprobs"], Json({nullptr, -2.0, -0.25}));
  EXPECT_EQ(r["choices"][1]["logprobs"]["token_logprobs"],
            Json({nullptr, -1.0, -3.0, -0.75}));
  EXPECT_EQ(r["choices"][1]["finish_reason"], "stop");

  OpenAiResponseBuilder streamed(request, "cmpl-1", "tiny", 0, *tokenizer_);
  bool done = false;
  const std::vector<Json> events = Events(streamed.StreamDelta(second), &done);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["choices"][0]["index"], 1);
  EXPECT_EQ(events[0]["choices"][0]["text"], "baad");
  EXPECT_EQ(events[0]["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(events[0]["usage"]["completion_tokens"], 1);
}

// Chat with tools: the model's calls become message.tool_calls (streamed:
// one chunk per call, with its index, id, type and function), the text
// around them the content, and a sample that stopped after calling ends
// with "tool_calls".
class ToolCallResponseTest : public OpenAiResponseTest {
 protected:
  OpenAiResponseBuilder ChatBuilder(ToolCallFormat format, bool stream = false) {
    OpenAiRequest request;
    request.api = OpenAiApi::kChatCompletions;
    request.tool_call_format = format;
    request.stream = stream;
    return OpenAiResponseBuilder(request, "chatcmpl-1", "tiny", 0, *tokenizer_);
  }
  static constexpr char kText[] =
      "Checking.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": "
      "\"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": "
      "{}}\n</tool_call>";
};

TEST_F(ToolCallResponseTest, CallsBecomeTheMessagesToolCalls) {
  OpenAiResponseBuilder builder = ChatBuilder(ToolCallFormat::kHermes);
  builder.Accumulate(TextDelta(0, kText));
  const Json choice = builder.Complete(Done({FinishReason::kStop}))["choices"][0];
  EXPECT_EQ(choice["message"]["content"], "Checking.\n");
  const Json& calls = choice["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(calls[0]["id"].get<std::string>(), "chatcmpl-tool-"));
  EXPECT_EQ(calls[0]["id"].get<std::string>().size(), 14u + 32u);
  EXPECT_NE(calls[0]["id"], calls[1]["id"]);
  EXPECT_EQ(calls[0]["type"], "function");
  EXPECT_EQ(calls[0]["function"], Json({{"name", "weather"}, {"arguments", "{\"city\":\"Oslo\"}"}}));
  EXPECT_EQ(calls[1]["function"]["name"], "time");
  EXPECT_EQ(choice["finish_reason"], "tool_calls");

  // Only calls: no content (null); cut by length after a call: still
  // "tool_calls" (vLLM); cancelled: "abort".
  OpenAiResponseBuilder only = ChatBuilder(ToolCallFormat::kHermes);
  only.Accumulate(
      TextDelta(0, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n"));
  const Json cut = only.Complete(Done({FinishReason::kLength}))["choices"][0];
  EXPECT_TRUE(cut["message"]["content"].is_null());
  EXPECT_EQ(cut["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(cut["finish_reason"], "tool_calls");
  EXPECT_EQ(only.Complete(Done({FinishReason::kCancelled}))["choices"][0]["finish_reason"],
            "abort");

  // No format (the server's or tool_choice "none"): the text as it came.
  OpenAiResponseBuilder plain = ChatBuilder(ToolCallFormat::kNone);
  plain.Accumulate(TextDelta(0, kText));
  const Json text = plain.Complete(Done({FinishReason::kStop}))["choices"][0];
  EXPECT_EQ(text["message"]["content"], kText);
  EXPECT_FALSE(text["message"].contains("tool_calls"));
  EXPECT_EQ(text["finish_reason"], "stop");
}

TEST_F(ToolCallResponseTest, StreamedCallsComeAsToolCallDeltas) {
  const std::string whole = kText;
  for (size_t cut : {size_t{3}, size_t{12}, size_t{20}, whole.size() - 5}) {
    OpenAiResponseBuilder builder = ChatBuilder(ToolCallFormat::kHermes, true);
    std::string sse = builder.StreamDelta(TextDelta(0, whole.substr(0, cut)));
    sse += builder.StreamDelta(TextDelta(0, whole.substr(cut)));
    sse += builder.StreamFinish(Done({FinishReason::kStop}));
    bool done = false;
    std::string content;
    std::vector<Json> calls;
    std::string finish;
    for (const Json& event : Events(sse, &done)) {
      const Json& choice = event["choices"][0];
      if (choice["delta"].contains("content")) content += choice["delta"]["content"];
      if (choice["delta"].contains("tool_calls")) {
        for (const Json& call : choice["delta"]["tool_calls"]) calls.push_back(call);
      }
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(content, "Checking.\n") << cut;
    ASSERT_EQ(calls.size(), 2u) << cut;
    EXPECT_EQ(calls[0]["index"], 0);
    EXPECT_EQ(calls[1]["index"], 1);
    EXPECT_EQ(calls[0]["type"], "function");
    EXPECT_EQ(calls[0]["function"]["name"], "weather");
    EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
    EXPECT_TRUE(absl::StartsWith(calls[0]["id"].get<std::string>(), "chatcmpl-tool-"));
    EXPECT_NE(calls[0]["id"], calls[1]["id"]);
    EXPECT_EQ(finish, "tool_calls") << cut;
  }
  // Content after a call in the same delta comes after the call's chunk.
  OpenAiResponseBuilder builder = ChatBuilder(ToolCallFormat::kHermes, true);
  bool done = false;
  const std::vector<Json> events = Events(
      builder.StreamDelta(TextDelta(
          0, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\nDone")),
      &done);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0]["choices"][0]["delta"].contains("tool_calls"));
  EXPECT_EQ(events[1]["choices"][0]["delta"]["content"], "Done");
}

// A streamed delta's log-probs are sent once, with its first content
// chunk or, when the parser holds its text back, in a chunk of their own.
TEST_F(ToolCallResponseTest, StreamedLogprobsAreSentOnceEach) {
  OpenAiRequest request;
  request.api = OpenAiApi::kChatCompletions;
  request.tool_call_format = ToolCallFormat::kHermes;
  request.stream = true;
  request.logprobs = true;
  OpenAiResponseBuilder builder(request, "chatcmpl-1", "tiny", 0, *tokenizer_);
  const int32_t a = hello_[0];
  std::string sse = builder.StreamDelta(TextDelta(0, "Hi <tool", {{a, -0.5f, {}}}));
  sse += builder.StreamDelta(
      TextDelta(0, "_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\nok",
                {{a, -0.25f, {}}, {a, -0.125f, {}}}));
  sse += builder.StreamFinish(Done({FinishReason::kStop}));
  bool done = false;
  std::vector<double> seen;
  std::string content;
  int calls = 0;
  for (const Json& event : Events(sse, &done)) {
    const Json& choice = event["choices"][0];
    if (choice["delta"].contains("content")) content += choice["delta"]["content"];
    if (choice["delta"].contains("tool_calls")) ++calls;
    if (!choice["logprobs"].is_null()) {
      for (const Json& entry : choice["logprobs"]["content"]) seen.push_back(entry["logprob"]);
    }
  }
  EXPECT_EQ(seen, (std::vector<double>{-0.5, -0.25, -0.125}));
  EXPECT_EQ(content, "Hi ok");
  EXPECT_EQ(calls, 1);
}

TEST_F(ToolCallResponseTest, HeldBackTextComesOutAtTheEnd) {
  // llama3_json holds output that opens like a call; it was not one.
  OpenAiResponseBuilder builder = ChatBuilder(ToolCallFormat::kLlama3Json, true);
  std::string sse = builder.StreamDelta(TextDelta(0, "{not a call"));
  bool done = false;
  EXPECT_TRUE(Events(sse, &done).empty());
  sse = builder.StreamFinish(Done({FinishReason::kStop}));
  const std::vector<Json> events = Events(sse, &done);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["content"], "{not a call");
  EXPECT_EQ(events[1]["choices"][0]["finish_reason"], "stop");
}

TEST_F(ToolCallResponseTest, MistralIdsAreNineLettersOrDigits) {
  OpenAiResponseBuilder builder = ChatBuilder(ToolCallFormat::kMistral);
  builder.Accumulate(TextDelta(0, "[TOOL_CALLS]f[ARGS]{\"a\": 1}"));
  const Json calls =
      builder.Complete(Done({FinishReason::kStop}))["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 1u);
  const std::string id = calls[0]["id"];
  EXPECT_EQ(id.size(), 9u);
  for (char c : id) EXPECT_TRUE(absl::ascii_isalnum(c)) << id;
}

// The token whose bytes are `bytes`, or -1.
int32_t TokenWithBytes(const Tokenizer& tokenizer, const std::string& bytes) {
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.TokenBytes(id) == bytes) return id;
  }
  return -1;
}

TEST_F(OpenAiResponseTest, ACharacterSplitOverTokensCountsOnceInTheTextOffset) {
  // "é" is C3 A9: its two halves are two tokens, shown as "bytes:\xc3" and
  // "bytes:\xa9", but the text holds one character.
  const int32_t lead = TokenWithBytes(*tokenizer_, "\xc3");
  const int32_t tail = TokenWithBytes(*tokenizer_, "\xa9");
  ASSERT_GE(lead, 0);
  ASSERT_GE(tail, 0);
  const int32_t a = hello_[0];
  const int64_t length = static_cast<int64_t>(TokenString(*tokenizer_, a).size());
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kCompletions, 1, /*logprobs=*/true);
  builder.Accumulate(TextDelta(
      0, "x", {{a, -0.5f, {}}, {lead, -0.5f, {}}, {tail, -0.5f, {}}, {a, -0.5f, {}}}));
  const Json logprobs =
      builder.Complete(Done({FinishReason::kLength}))["choices"][0]["logprobs"];
  EXPECT_EQ(logprobs["tokens"][1], "bytes:\\xc3");
  EXPECT_EQ(logprobs["text_offset"], Json({0, length, length, length + 1}));
}

TEST_F(OpenAiResponseTest, ChatLogprobsUseTheContentShape) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kChatCompletions, 1, /*logprobs=*/true);
  const int32_t a = hello_[0];
  builder.Accumulate(TextDelta(0, "x", {{a, -0.5f, {{a, -0.5f}, {7, -1.5f}}}}));
  const Json content = builder.Complete(
      Done({FinishReason::kStop}))["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 1u);
  const std::string bytes = tokenizer_->TokenBytes(a);
  EXPECT_EQ(content[0]["token"], TokenString(*tokenizer_, a));
  EXPECT_EQ(content[0]["logprob"], -0.5);
  EXPECT_EQ(content[0]["bytes"].size(), bytes.size());
  EXPECT_EQ(content[0]["bytes"][0], static_cast<unsigned char>(bytes[0]));
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], TokenString(*tokenizer_, 7));
  EXPECT_EQ(content[0]["top_logprobs"][1]["logprob"], -1.5);
  EXPECT_TRUE(content[0]["top_logprobs"][1].contains("bytes"));
}

TEST_F(OpenAiResponseTest, MinusInfinityLogprobsBecomeFinite) {
  OpenAiResponseBuilder builder =
      Builder(OpenAiApi::kChatCompletions, 1, /*logprobs=*/true);
  builder.Accumulate(TextDelta(
      0, "x", {{hello_[0], -std::numeric_limits<float>::infinity(), {}}}));
  const Json content = builder.Complete(
      Done({FinishReason::kStop}))["choices"][0]["logprobs"]["content"];
  EXPECT_EQ(content[0]["logprob"], -9999.0);
}

TEST_F(OpenAiResponseTest, PartialUtf8TokensAreSpelledAsBytes) {
  // tiny_llama's byte-fallback tokens <0xE2> etc. stand for single bytes.
  const int32_t byte_token = tokenizer_->PieceToId("<0xE2>");
  ASSERT_GE(byte_token, 0);
  EXPECT_EQ(TokenString(*tokenizer_, byte_token), "bytes:\\xe2");
}

TEST(SseTest, AnErrorEventHoldsOpenAisErrorObjectThenDone) {
  const std::string sse =
      SseError(absl::UnavailableError("the server is shutting down"));
  ASSERT_TRUE(absl::EndsWith(sse, "\n\ndata: [DONE]\n\n")) << sse;
  ASSERT_TRUE(absl::StartsWith(sse, "data: ")) << sse;
  const Json error =
      Json::parse(sse.substr(6, sse.find("\n\n") - 6))["error"];
  EXPECT_EQ(error["message"], "the server is shutting down");
  EXPECT_EQ(error["type"], "server_error");
}

TEST(OpenAiErrorTest, TheBodyHasMessageTypeParamAndCode) {
  const HttpError error = ToHttpError(WithErrorCode(
      InvalidParam("max_tokens", "too many"), "context_length_exceeded"));
  EXPECT_EQ(error.status, 400);
  const Json body = Json::parse(error.body);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(body["error"]["message"], "max_tokens: too many");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "max_tokens");
  EXPECT_EQ(body["error"]["code"], "context_length_exceeded");
}

TEST(OpenAiErrorTest, ParamAndCodeAreNullWhenUnknown) {
  const Json body =
      Json::parse(ToHttpError(absl::InternalError("boom")).body)["error"];
  EXPECT_TRUE(body["param"].is_null());
  EXPECT_TRUE(body["code"].is_null());
  EXPECT_EQ(body["type"], "server_error");
}

TEST(OpenAiErrorTest, AuthenticationErrorsHaveTheirOwnType) {
  EXPECT_EQ(ErrorType(401), "authentication_error");
  EXPECT_EQ(ErrorType(429), "rate_limit_error");
  EXPECT_EQ(ErrorType(404), "invalid_request_error");
  EXPECT_EQ(ErrorType(503), "server_error");
}

TEST(HttpStatusTest, EachCodeMapsToItsHttpStatus) {
  using absl::StatusCode;
  const std::vector<std::pair<StatusCode, int>> table = {
      {StatusCode::kOk, 200},
      {StatusCode::kInvalidArgument, 400},
      {StatusCode::kFailedPrecondition, 400},
      {StatusCode::kOutOfRange, 400},
      {StatusCode::kUnauthenticated, 401},
      {StatusCode::kPermissionDenied, 403},
      {StatusCode::kNotFound, 404},
      {StatusCode::kAlreadyExists, 409},
      {StatusCode::kAborted, 409},
      {StatusCode::kResourceExhausted, 429},
      {StatusCode::kCancelled, 499},
      {StatusCode::kUnimplemented, 501},
      {StatusCode::kUnavailable, 503},
      {StatusCode::kDeadlineExceeded, 504},
      {StatusCode::kInternal, 500},
      {StatusCode::kUnknown, 500},
      {StatusCode::kDataLoss, 500},
  };
  for (const auto& [code, http] : table) {
    EXPECT_EQ(ToHttpStatus(code), http) << absl::StatusCodeToString(code);
  }
}

}  // namespace
}  // namespace weft

namespace weft {
namespace {

// tool_choice "required" and a named function: the grammar's output
// becomes the calls; "required" ends with "tool_calls", a named function
// with "stop" (OpenAI's); streamed, the calls come when the choice ends;
// ids in Mistral's form when the model's format is mistral.
class ForcedToolCallResponseTest : public OpenAiResponseTest {
 protected:
  OpenAiResponseBuilder ForcedBuilder(ToolCallFormat format, bool mistral = false) {
    OpenAiRequest request;
    request.api = OpenAiApi::kChatCompletions;
    request.tool_call_format = format;
    request.tool_choice_function = format == ToolCallFormat::kNamedFunction ? "weather" : "";
    request.mistral_tool_call_ids = mistral;
    return OpenAiResponseBuilder(request, "chatcmpl-1", "tiny", 0, *tokenizer_);
  }
};

TEST_F(ForcedToolCallResponseTest, RequiredCallsEndWithToolCalls) {
  OpenAiResponseBuilder builder = ForcedBuilder(ToolCallFormat::kRequiredArray);
  builder.Accumulate(TextDelta(
      0, "[{\"name\": \"weather\", \"parameters\": {\"city\": \"Oslo\"}}, "
         "{\"name\": \"time\", \"parameters\": {}}]"));
  const Json choice = builder.Complete(Done({FinishReason::kStop}))["choices"][0];
  EXPECT_TRUE(choice["message"]["content"].is_null());
  const Json& calls = choice["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["function"]["name"], "weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
  EXPECT_EQ(calls[1]["function"]["name"], "time");
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
}

TEST_F(ForcedToolCallResponseTest, ANamedCallEndsWithStopAndStreamsWhole) {
  OpenAiResponseBuilder builder = ForcedBuilder(ToolCallFormat::kNamedFunction);
  std::string sse = builder.StreamStart();
  sse += builder.StreamDelta(TextDelta(0, "{\"city\": "));
  sse += builder.StreamDelta(TextDelta(0, "\"Oslo\"}"));
  sse += builder.StreamFinish(Done({FinishReason::kStop}));
  bool done = false;
  std::vector<Json> calls;
  std::string content, finish;
  for (const Json& event : Events(sse, &done)) {
    for (const Json& choice : event["choices"]) {
      const Json& delta = choice["delta"];
      if (delta.contains("content") && delta["content"].is_string()) {
        content += delta["content"].get<std::string>();
      }
      if (delta.contains("tool_calls")) {
        for (const Json& call : delta["tool_calls"]) calls.push_back(call);
      }
      if (choice["finish_reason"].is_string()) finish = choice["finish_reason"];
    }
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(content, "");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"]["name"], "weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\": \"Oslo\"}");
  EXPECT_EQ(finish, "stop");
}

TEST_F(ForcedToolCallResponseTest, MistralModelsGetMistralIds) {
  OpenAiResponseBuilder builder = ForcedBuilder(ToolCallFormat::kNamedFunction, true);
  builder.Accumulate(TextDelta(0, "{}"));
  const Json call =
      builder.Complete(Done({FinishReason::kStop}))["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(call["id"].get<std::string>().size(), 9u);
  EXPECT_EQ(call["function"]["name"], "weather");
}

}  // namespace
}  // namespace weft
