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
#include "tests/server/openai_response_fixture.h"

namespace weft {
namespace {

using test::OpenAiResponseTest;

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
