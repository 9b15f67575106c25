// /v1/chat/completions bodies → runtime requests: the messages rendered by
// the served chat template and tokenized, max_tokens defaults and
// aliases, log-prob fields, and bad bodies refused naming their param.
#include "server/openai_chat.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/openai_errors.h"
#include "tests/test_util.h"
#include "tests/server/tiny_served_model.h"

namespace weft {
namespace {

using test::StatusIs;

// Every message as "<role>content", a generation prompt, and `greeting`
// (a chat_template_kwargs variable) when defined; tool names when given.
constexpr char kTemplate[] =
    "{% if greeting is defined %}{{ greeting }}{% endif %}"
    "{% if tools %}[{% for t in tools %}{{ t.function.name }}{% endfor %}]{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
    "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments.city }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

class OpenAiChatTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    AddChatTemplate(kTemplate);
  }

  absl::StatusOr<OpenAiRequest> Parse(const Json& body) const {
    return ParseChatRequest(body.dump(), model_);
  }

  // The ids of `text` tokenized as a chat prompt is (no BOS added).
  std::vector<int32_t> Ids(const std::string& text) const {
    return tokenizer_->Encode(text, EncodeOptions{});
  }

  static Json User(const std::string& text) {
    return {{"role", "user"}, {"content", text}};
  }

};

TEST_F(OpenAiChatTest, MessagesAreRenderedByTheTemplateAndTokenized) {
  auto r = Parse({{"messages", {{{"role", "system"}, {"content", "Be brief"}},
                                User("Hi")}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->api, OpenAiApi::kChatCompletions);
  EXPECT_EQ(r->request.prompt_ids, Ids("<system>Be brief<user>Hi<assistant>"));
}

TEST_F(OpenAiChatTest, TheDefaultMaxTokensIsAllThatFits) {
  auto r = Parse({{"messages", {User("Hi")}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.stopping.max_tokens,
            256 - static_cast<int>(r->request.prompt_ids.size()));
}

TEST_F(OpenAiChatTest, MaxCompletionTokensIsPreferredToMaxTokens) {
  auto both = Parse({{"messages", {User("Hi")}},
                     {"max_completion_tokens", 5}, {"max_tokens", 9}});
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->request.stopping.max_tokens, 5);
  auto old = Parse({{"messages", {User("Hi")}}, {"max_tokens", 9}});
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->request.stopping.max_tokens, 9);
}

TEST_F(OpenAiChatTest, TextContentPartsAreJoinedWithNewlines) {
  auto r = Parse({{"messages",
                   {{{"role", "user"},
                     {"content", {{{"type", "text"}, {"text", "a"}},
                                  {{"type", "text"}, {"text", "b"}}}}}}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, Ids("<user>a\nb<assistant>"));
}

TEST_F(OpenAiChatTest, AddGenerationPromptFalseLeavesThePromptOpen) {
  auto r = Parse({{"messages", {User("Hi")}}, {"add_generation_prompt", false}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, Ids("<user>Hi"));
}

TEST_F(OpenAiChatTest, ChatTemplateKwargsReachTheTemplate) {
  auto r = Parse({{"messages", {User("Hi")}},
                  {"chat_template_kwargs", {{"greeting", "Hello!"}}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, Ids("Hello!<user>Hi<assistant>"));
}

TEST_F(OpenAiChatTest, ToolsReachTheTemplate) {
  const Json tool = {{"type", "function"},
                     {"function", {{"name", "weather"}, {"parameters", Json::object()}}}};
  auto r = Parse({{"messages", {User("Hi")}}, {"tools", {tool}},
                  {"tool_choice", "auto"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, Ids("[weather]<user>Hi<assistant>"));
}

// The response is parsed for tool calls when tools were offered, not
// refused (tool_choice "none"), and the server knows the model's format;
// mistral's markers are special tokens the text must keep.
TEST_F(OpenAiChatTest, ToolsOfferedMeanTheOutputIsParsedForCalls) {
  const Json tool = {{"type", "function"},
                     {"function", {{"name", "weather"}, {"parameters", Json::object()}}}};
  auto unparsed = Parse({{"messages", {User("Hi")}}, {"tools", {tool}}});
  ASSERT_TRUE(unparsed.ok()) << unparsed.status();
  EXPECT_EQ(unparsed->tool_call_format, ToolCallFormat::kNone);  // model has none

  model_.tool_call_format = ToolCallFormat::kHermes;
  auto r = Parse({{"messages", {User("Hi")}}, {"tools", {tool}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tool_call_format, ToolCallFormat::kHermes);
  EXPECT_TRUE(r->request.stopping.skip_special_tokens);
  auto none = Parse({{"messages", {User("Hi")}}, {"tools", {tool}}, {"tool_choice", "none"}});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->tool_call_format, ToolCallFormat::kNone);
  auto no_tools = Parse({{"messages", {User("Hi")}}, {"tools", Json::array()}});
  ASSERT_TRUE(no_tools.ok()) << no_tools.status();
  EXPECT_EQ(no_tools->tool_call_format, ToolCallFormat::kNone);

  model_.tool_call_format = ToolCallFormat::kMistral;
  auto mistral = Parse({{"messages", {User("Hi")}}, {"tools", {tool}}});
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  EXPECT_EQ(mistral->tool_call_format, ToolCallFormat::kMistral);
  EXPECT_FALSE(mistral->request.stopping.skip_special_tokens);
}

TEST_F(OpenAiChatTest, ToolCallArgumentsTextBecomesAnObject) {
  const Json call = {{"id", "c1"}, {"type", "function"},
                     {"function", {{"name", "weather"},
                                   {"arguments", "{\"city\": \"Oslo\"}"}}}};
  auto r = Parse({{"messages",
                   {User("Hi"),
                    {{"role", "assistant"}, {"content", nullptr},
                     {"tool_calls", {call}}},
                    {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "cold"}}}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids,
            Ids("<user>Hi<assistant>Oslo<tool>cold<assistant>"));
}

TEST_F(OpenAiChatTest, LogprobsWithTopLogprobsAskTheSamplerForAlternatives) {
  auto r = Parse({{"messages", {User("Hi")}}, {"logprobs", true},
                  {"top_logprobs", 3}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  // top_logprobs 0 asks for nothing: accepted without logprobs.
  auto zero = Parse({{"messages", {User("hi")}}, {"top_logprobs", 0}});
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_FALSE(zero->logprobs);
  EXPECT_EQ(zero->request.sampling.logprobs, -1);
  EXPECT_EQ(r->request.sampling.logprobs, 3);
}

TEST_F(OpenAiChatTest, LogprobsAloneReportOnlyTheSampledToken) {
  auto r = Parse({{"messages", {User("Hi")}}, {"logprobs", true}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.sampling.logprobs, 0);
}

TEST_F(OpenAiChatTest, AModelWithoutATemplateNamesTheFlag) {
  model_.chat_template = nullptr;
  auto r = Parse({{"messages", {User("Hi")}}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition,
                          "--chat-template"));
}

TEST_F(OpenAiChatTest, TemplateErrorsAreInvalidArgumentAboutMessages) {
  auto raising = ChatTemplate::Create(
      "{{ raise_exception('roles must alternate') }}", "<s>", "</s>");
  ASSERT_TRUE(raising.ok()) << raising.status();
  model_.chat_template = raising->get();
  auto r = Parse({{"messages", {User("Hi")}}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          "roles must alternate"));
  EXPECT_EQ(ParamOf(r.status()), "messages");
}

TEST_F(OpenAiChatTest, BadBodiesAreRefusedNamingTheirParam) {
  struct Bad {
    const char* name;
    Json body;
    const char* param;
  };
  const Json user = User("Hi");
  const std::vector<Bad> table = {
      {"no messages", {{"model", "tiny"}}, "messages"},
      {"messages not an array", {{"messages", "Hi"}}, "messages"},
      {"empty messages", {{"messages", Json::array()}}, "messages"},
      {"message not an object", {{"messages", {"Hi"}}}, "messages[0]"},
      {"no role", {{"messages", {{{"content", "Hi"}}}}}, "messages[0].role"},
      {"bad role",
       {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}},
       "messages[0].role"},
      {"user without content", {{"messages", {{{"role", "user"}}}}},
       "messages[0].content"},
      {"content number",
       {{"messages", {{{"role", "user"}, {"content", 5}}}}},
       "messages[0].content"},
      {"image part",
       {{"messages",
         {{{"role", "user"},
           {"content", {{{"type", "image_url"}, {"image_url", "x"}}}}}}}},
       "messages[0].content[0].type"},
      {"top_logprobs without logprobs",
       {{"messages", {user}}, {"top_logprobs", 2}}, "top_logprobs"},
      {"top_logprobs 21",
       {{"messages", {user}}, {"logprobs", true}, {"top_logprobs", 21}},
       "top_logprobs"},
      {"logprobs integer", {{"messages", {user}}, {"logprobs", 2}}, "logprobs"},
      {"max_completion_tokens 0",
       {{"messages", {user}}, {"max_completion_tokens", 0}},
       "max_completion_tokens"},
      {"max_completion_tokens past context",
       {{"messages", {user}}, {"max_completion_tokens", 1000}},
       "max_completion_tokens"},
      {"tools object", {{"messages", {user}}, {"tools", {{"a", 1}}}}, "tools"},
      {"tool_choice required",
       {{"messages", {user}}, {"tool_choice", "required"}}, "tool_choice"},
      {"max_completion_tokens past int32",
       {{"messages", {user}}, {"max_completion_tokens", int64_t{1} << 40}},
       "max_completion_tokens"},
      {"kwargs not an object",
       {{"messages", {user}}, {"chat_template_kwargs", {1}}},
       "chat_template_kwargs"},
      {"temperature 3", {{"messages", {user}}, {"temperature", 3}}, "temperature"},
  };
  for (const Bad& bad : table) {
    SCOPED_TRACE(bad.name);
    auto r = Parse(bad.body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_EQ(ParamOf(r.status()), bad.param) << r.status();
  }
}

}  // namespace
}  // namespace weft
