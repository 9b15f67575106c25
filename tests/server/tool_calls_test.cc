// Tool calls found in model output the way vLLM's hermes, llama3_json and
// mistral parsers find them; the same result however the text is split
// into stream pieces; text that does not parse stays content; the format
// detected from real chat templates (tests/fixtures/chat_templates).
#include "server/tool_calls.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"

namespace weft {
namespace {

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
  // Everything in order, adjacent content merged: "c:<text>" / "t:<name>".
  std::vector<std::string> order;
};

void Append(ToolCallParser::Output out, Parsed* parsed) {
  for (auto& item : out.items) {
    if (const std::string* text = std::get_if<std::string>(&item)) {
      parsed->content += *text;
      if (!parsed->order.empty() && parsed->order.back().rfind("c:", 0) == 0) {
        parsed->order.back() += *text;
      } else {
        parsed->order.push_back("c:" + *text);
      }
    } else {
      const ToolCall& call = std::get<ToolCall>(item);
      parsed->calls.push_back(call);
      parsed->order.push_back("t:" + call.name);
    }
  }
}

Parsed ParseWhole(ToolCallFormat format, const std::string& text) {
  ToolCallParser parser(format);
  Parsed parsed;
  Append(parser.Add(text), &parsed);
  Append(parser.Finish(), &parsed);
  return parsed;
}

// Checks that every split of `text` into two pieces, and into pieces of
// one byte, gives the whole text's result; returns that result.
Parsed ParseAnySplit(ToolCallFormat format, const std::string& text) {
  const Parsed whole = ParseWhole(format, text);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ToolCallParser parser(format);
    Parsed parsed;
    Append(parser.Add(text.substr(0, cut)), &parsed);
    Append(parser.Add(text.substr(cut)), &parsed);
    Append(parser.Finish(), &parsed);
    EXPECT_EQ(parsed.content, whole.content) << "cut at " << cut << ": " << text;
    EXPECT_TRUE(parsed.calls == whole.calls) << "cut at " << cut << ": " << text;
    EXPECT_EQ(parsed.order, whole.order) << "cut at " << cut << ": " << text;
  }
  ToolCallParser parser(format);
  Parsed bytes;
  for (char c : text) Append(parser.Add(std::string(1, c)), &bytes);
  Append(parser.Finish(), &bytes);
  EXPECT_EQ(bytes.content, whole.content) << text;
  EXPECT_TRUE(bytes.calls == whole.calls) << text;
  EXPECT_EQ(bytes.order, whole.order) << text;
  return whole;
}

TEST(ToolCallsTest, HermesCallsAndTheContentAroundThem) {
  const Parsed p = ParseAnySplit(
      ToolCallFormat::kHermes,
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>");
  EXPECT_EQ(p.content, "Let me check.\n");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, "{\"city\":\"Paris\",\"unit\":\"c\"}");
  EXPECT_EQ(p.calls[1].name, "get_time");
  EXPECT_EQ(p.calls[1].arguments, "{\"tz\":\"CET\"}");
}

TEST(ToolCallsTest, HermesKeepsWhatDoesNotParseAsContent) {
  // Text after a call is content (its leading newline is the separator),
  // in its place after the call.
  Parsed p = ParseAnySplit(
      ToolCallFormat::kHermes,
      "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\nDone: <b>x</b>");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{}");
  EXPECT_EQ(p.content, "Done: <b>x</b>");
  EXPECT_EQ(p.order, (std::vector<std::string>{"t:f", "c:Done: <b>x</b>"}));
  // Arguments given as JSON text of an object are that text.
  p = ParseAnySplit(ToolCallFormat::kHermes,
                    "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{\"a\": 1}");
  // Not JSON, no name, no arguments, arguments that are no object, a name
  // no function has, trailing junk: word for word.
  for (const std::string text :
       {"<tool_call>{not json}</tool_call> after", "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"f\"}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": \"hello\"}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
        "<tool_call>{\"name\": \"get weather\", \"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {}} extra</tool_call>", "a <tool_call",
        "<tool_ca"}) {
    p = ParseAnySplit(ToolCallFormat::kHermes, text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
  // A call the model ended without its closing tag still counts (vLLM).
  p = ParseAnySplit(ToolCallFormat::kHermes,
                    "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, \"}\"]}}\n");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":[1,\"}\"]}");
  EXPECT_EQ(p.content, "");
  p = ParseAnySplit(ToolCallFormat::kHermes, "<tool_call>{\"name\": \"f\", \"argu");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "<tool_call>{\"name\": \"f\", \"argu");
}

TEST(ToolCallsTest, Llama3JsonIsTheWholeOutputOrNothing) {
  Parsed p = ParseAnySplit(ToolCallFormat::kLlama3Json,
                           " {\"name\": \"get_weather\", \"parameters\": {\"city\": "
                           "\"Paris\"}}; {\"name\": \"noop\", \"parameters\": {}}");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(p.calls[1].name, "noop");
  EXPECT_EQ(p.content, "");
  p = ParseAnySplit(ToolCallFormat::kLlama3Json,
                    "<|python_tag|>{\"name\": \"f\", \"arguments\": {\"x\": 1}}");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{\"x\":1}");
  // A JSON answer with a "name" is not a call: it needs its parameters.
  for (const std::string text :
       {"The answer is {\"name\": \"f\", \"parameters\": {}}",
        "{\"name\": \"f\", \"parameters\": {}} and more", "{\"no\": \"name\"}",
        "{\"name\": \"Alice\", \"age\": 30}", "  <|pyth", "<b>bold</b>", ""}) {
    p = ParseAnySplit(ToolCallFormat::kLlama3Json, text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
}

TEST(ToolCallsTest, MistralArraysAndNamedCalls) {
  Parsed p = ParseAnySplit(ToolCallFormat::kMistral,
                           "Sure.[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}, "
                           "{\"name\": \"g\", \"arguments\": {}}]");
  EXPECT_EQ(p.content, "Sure.");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ(p.calls[1].name, "g");
  // The model's own call id (as Mistral Small 3.2's template writes past
  // calls) is not part of the name.
  p = ParseAnySplit(ToolCallFormat::kMistral,
                    "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Paris\"}"
                    "[TOOL_CALLS]noop[ARGS]{}");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(p.calls[1].arguments, "{}");
  for (const std::string text : {"[TOOL_CALLS][{\"name\": \"f\"} junk", "[TOOL_CALLS]f[ARGS]nope",
                                 "no calls [TOOL_", "[TOOL_CALLS]"}) {
    p = ParseAnySplit(ToolCallFormat::kMistral, text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
}

TEST(ToolCallsTest, RequiredToolChoiceIsAnArrayOfCalls) {
  Parsed p = ParseAnySplit(ToolCallFormat::kRequiredArray,
                           "[{\"name\": \"f\", \"parameters\": {\"a\": [1, 2]}},\n"
                           " {\"name\": \"g\", \"parameters\": {}}]");
  EXPECT_EQ(p.content, "");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "f");
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":[1,2]}");
  EXPECT_EQ(p.calls[1].arguments, "{}");
  // The grammar allowed only the tools' names: any name is taken, and
  // parameters of any JSON type.
  p = ParseAnySplit(ToolCallFormat::kRequiredArray,
                    "[{\"name\": \"météo\", \"parameters\": 3}]");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0], (ToolCall{"météo", "3"}));
  // Cut by max_tokens: no call, and the text is kept.
  const std::string cut = "[{\"name\": \"f\", \"param";
  p = ParseAnySplit(ToolCallFormat::kRequiredArray, cut);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, cut);
}

TEST(ToolCallsTest, NamedToolChoiceIsTheArgumentsAsWritten) {
  const std::string arguments = "{\"city\": \"Paris\", \"days\": 3}";
  ToolCallParser parser(ToolCallFormat::kNamedFunction, "get_weather");
  Parsed p;
  Append(parser.Add(arguments.substr(0, 9)), &p);
  EXPECT_TRUE(p.order.empty());  // held to the end
  Append(parser.Add(arguments.substr(9)), &p);
  Append(parser.Finish(), &p);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0], (ToolCall{"get_weather", arguments}));
  EXPECT_EQ(p.content, "");
}

TEST(ToolCallsTest, NoFormatIsAllContent) {
  const std::string text = "<tool_call>{\"name\": \"f\"}</tool_call>";
  const Parsed p = ParseAnySplit(ToolCallFormat::kNone, text);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, text);
}

std::string ReadTemplate(const std::string& name) {
  std::ifstream in(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/chat_templates/" +
                   name + ".jinja");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << name;
  return text.str();
}

TEST(ToolCallsTest, TheFormatComesFromTheChatTemplate) {
  const std::vector<std::pair<std::string, ToolCallFormat>> cases = {
      {"Qwen-Qwen2.5-7B-Instruct", ToolCallFormat::kHermes},
      {"Qwen-Qwen3-0.6B", ToolCallFormat::kHermes},
      {"Qwen-QwQ-32B", ToolCallFormat::kHermes},
      {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", ToolCallFormat::kHermes},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", ToolCallFormat::kHermes},
      {"ibm-granite-granite-4.0", ToolCallFormat::kHermes},
      {"meta-llama-Llama-3.1-8B-Instruct", ToolCallFormat::kLlama3Json},
      {"meta-llama-Llama-3.2-3B-Instruct", ToolCallFormat::kLlama3Json},
      {"meta-llama-Llama-3.3-70B-Instruct", ToolCallFormat::kLlama3Json},
      {"mistralai-Mistral-Nemo-Instruct-2407", ToolCallFormat::kMistral},
      {"Mistral-Small-3.2-24B-Instruct-2506", ToolCallFormat::kMistral},
      {"unsloth-mistral-Devstral-Small-2507", ToolCallFormat::kMistral},
      // Other syntaxes inside <tool_call>, or no tool calls at all.
      {"Qwen3-Coder", ToolCallFormat::kNone},
      {"GLM-4.6", ToolCallFormat::kNone},
      {"SmolLM2-135M-Instruct", ToolCallFormat::kNone},
      {"google-gemma-2-2b-it", ToolCallFormat::kNone},
  };
  for (const auto& [name, format] : cases) {
    EXPECT_EQ(ToolCallFormatName(DetectToolCallFormat(ReadTemplate(name))),
              std::string(ToolCallFormatName(format)))
        << name;
  }
}

// Special markers must stay in the text: mistral's always; hermes's when
// the tokenizer marks <tool_call> special (some Hermes GGUFs do).
TEST(ToolCallsTest, MarkersThatAreSpecialTokensKeepSpecialTokens) {
  std::ifstream in(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_qwen2/tokenizer.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str());
  int next_id = 0;
  for (const auto& [piece, id] : json["model"]["vocab"].items()) {
    next_id = std::max(next_id, id.get<int>() + 1);
  }
  for (const auto& added : json["added_tokens"]) {
    next_id = std::max(next_id, added["id"].get<int>() + 1);
  }
  for (bool special : {false, true}) {
    nlohmann::json with = json;
    for (const char* piece : {"<tool_call>", "</tool_call>"}) {
      with["added_tokens"].push_back({{"id", next_id++}, {"content", piece},
                                      {"single_word", false}, {"lstrip", false},
                                      {"rstrip", false}, {"normalized", false},
                                      {"special", special}});
    }
    auto tokenizer = Tokenizer::FromHfJsonText(with.dump(), "", "test");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    EXPECT_EQ(ToolCallMarkersAreSpecial(ToolCallFormat::kHermes, **tokenizer), special);
    EXPECT_TRUE(ToolCallMarkersAreSpecial(ToolCallFormat::kMistral, **tokenizer));
    EXPECT_FALSE(ToolCallMarkersAreSpecial(ToolCallFormat::kLlama3Json, **tokenizer));
  }
}

TEST(ToolCallsTest, FormatNames) {
  for (ToolCallFormat f : {ToolCallFormat::kNone, ToolCallFormat::kHermes,
                           ToolCallFormat::kLlama3Json, ToolCallFormat::kMistral}) {
    EXPECT_EQ(ToolCallFormatFromName(ToolCallFormatName(f)), f);
  }
  EXPECT_EQ(ToolCallFormatFromName("auto"), std::nullopt);

}

}  // namespace
}  // namespace weft
