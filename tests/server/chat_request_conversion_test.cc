// ChatRequest → what the chat template sees: the OpenAI message shapes
// templates expect (tool-call arguments as objects, no content on a
// tools-only assistant turn, optional fields only when set).
#include "gtest/gtest.h"
#include "server/request_conversion.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using Json = nlohmann::ordered_json;

TEST(ChatRequestConversionTest, ToolCallArgumentsTextBecomesAnObject) {
  v1::ChatRequest request;
  v1::ChatMessage* m = request.add_messages();
  m->set_role("assistant");
  m->set_tool_calls_json(
      R"([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}])");
  auto inputs = ToChatTemplateInputs(request);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_EQ(inputs->messages.dump(),
            R"([{"role":"assistant","tool_calls":[{"id":"c1","type":"function",)"
            R"("function":{"name":"f","arguments":{"x":1}}}]}])");
}

TEST(ChatRequestConversionTest, ToolCallsWithoutArgumentsStayAsSent) {
  v1::ChatRequest request;
  v1::ChatMessage* m = request.add_messages();
  m->set_role("assistant");
  m->set_content("calling");
  m->set_tool_calls_json(R"([{"id": "c1", "function": {"name": "f"}}])");
  auto inputs = ToChatTemplateInputs(request);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_EQ(
      inputs->messages.dump(),
      R"([{"role":"assistant","content":"calling","tool_calls":[{"id":"c1","function":{"name":"f"}}]}])");
}

TEST(ChatRequestConversionTest, OptionalFieldsAppearOnlyWhenSet) {
  v1::ChatRequest request;
  v1::ChatMessage* user = request.add_messages();
  user->set_role("user");
  v1::ChatMessage* tool = request.add_messages();
  tool->set_role("tool");
  tool->set_content("22");
  tool->set_name("weather");
  tool->set_tool_call_id("c1");
  auto inputs = ToChatTemplateInputs(request);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_EQ(inputs->messages.dump(),
            R"([{"role":"user","content":""},)"
            R"({"role":"tool","content":"22","name":"weather","tool_call_id":"c1"}])");
  EXPECT_TRUE(inputs->tools.is_null());
  EXPECT_TRUE(inputs->add_generation_prompt);
}

TEST(ChatRequestConversionTest, ToolsAndKwargsAreParsed) {
  v1::ChatRequest request;
  request.add_messages()->set_role("user");
  request.set_tools_json(R"([{"type": "function", "function": {"name": "f"}}])");
  request.set_chat_template_kwargs_json(R"({"enable_thinking": false})");
  request.set_add_generation_prompt(false);
  auto inputs = ToChatTemplateInputs(request);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_EQ(inputs->tools.size(), 1u);
  EXPECT_EQ(inputs->extra, Json::parse(R"({"enable_thinking": false})"));
  EXPECT_FALSE(inputs->add_generation_prompt);
}

}  // namespace
}  // namespace weft
