// Tool calls in chat responses: the model's own calls parsed from its
// text (hermes, mistral), and the calls a forced tool_choice's grammar
// wrote ("required", a named function), whole and streamed.
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "server/openai_response.h"
#include "tests/server/openai_response_fixture.h"

namespace weft {
namespace {

using test::OpenAiResponseTest;

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
