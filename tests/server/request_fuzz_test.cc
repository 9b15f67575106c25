// Random bodies against the OpenAI request parsers, and random model output
// against the tool-call parsers: seeded mutations of valid requests (values
// replaced by other types and extremes, keys dropped or added, the text cut,
// flipped and spliced), each of which must come back as a request or as a
// client error (HTTP 4xx), never a crash, an exception or a 5xx; and tool
// calls that must not depend on how the text was split into pieces, as the
// parser promises.
//
// WEFT_FUZZ_ITERATIONS (default 1500 a target) and WEFT_FUZZ_SEED set the
// run; tools/sanitize.sh runs it longer under ASan and UBSan.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/openai_chat.h"
#include "server/openai_request.h"
#include "server/status.h"
#include "server/tool_calls.h"
#include "tests/server/tiny_served_model.h"
#include "tests/test_util.h"

namespace weft {
namespace {

int64_t Iterations() { return test::EnvInt("WEFT_FUZZ_ITERATIONS", 1500); }

// Every top-level field the two endpoints read, so that added keys reach
// their validation.
constexpr const char* kFields[] = {
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "top_k", "min_p", "n", "stream", "stream_options",
    "stop", "stop_token_ids", "seed", "logprobs", "top_logprobs", "echo",
    "logit_bias", "presence_penalty", "frequency_penalty", "repetition_penalty",
    "response_format", "tools", "tool_choice", "parallel_tool_calls",
    "ignore_eos", "min_tokens", "skip_special_tokens", "prompt_logprobs",
    "include_stop_str_in_output", "chat_template_kwargs",
    "add_generation_prompt", "structured_outputs", "guided_json",
    "guided_regex", "guided_choice", "guided_grammar", "user", "suffix",
    "best_of", "add_special_tokens", "continue_final_message"};

const char* kCompletionSeed = R"({
  "model": "tiny", "prompt": ["hello there", "a b c"], "max_tokens": 8,
  "temperature": 0.7, "top_p": 0.9, "top_k": 5, "n": 2, "stream": true,
  "stream_options": {"include_usage": true}, "stop": ["x", "yz"],
  "seed": 3, "logprobs": 2, "echo": true, "logit_bias": {"5": -1.5, "9": 2},
  "presence_penalty": 0.1, "frequency_penalty": 0.2, "min_tokens": 1,
  "response_format": {"type": "json_schema", "json_schema": {"name": "p",
    "schema": {"type": "object", "properties": {"a": {"type": "integer"}},
               "required": ["a"]}}}
})";

const char* kCompletionIdsSeed = R"({
  "model": "tiny", "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 4,
  "stop_token_ids": [2], "prompt_logprobs": 1, "ignore_eos": false,
  "structured_outputs": {"choice": ["yes", "no"]}
})";

const char* kChatSeed = R"({
  "model": "tiny", "max_completion_tokens": 16,
  "messages": [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                  {"type": "text", "text": "in Paris"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
  "tools": [{"type": "function", "function": {"name": "get_weather",
    "description": "weather", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
  "tool_choice": "auto", "parallel_tool_calls": true, "logprobs": true,
  "top_logprobs": 3, "chat_template_kwargs": {"greeting": "hi"},
  "add_generation_prompt": true
})";

const char* kChatForcedSeed = R"({
  "model": "tiny", "messages": [{"role": "user", "content": "go"}],
  "tools": [{"type": "function", "function": {"name": "f",
    "parameters": {"type": "object", "properties": {"x": {"type": "number"}}}}}],
  "tool_choice": {"type": "function", "function": {"name": "f"}},
  "response_format": {"type": "json_object"}, "n": 1
})";

// A template that reads what a real one does: tools, message contents and
// tool calls' arguments, kwargs.
constexpr char kTemplate[] =
    "{% if greeting is defined %}{{ greeting }}{% endif %}"
    "{% if tools %}[{% for t in tools %}{{ t.function.name }}"
    "{{ t.function.parameters | tojson }}{% endfor %}]{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}"
    "{{ c.function.arguments | tojson }}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  Json RandomValue() {
    switch (Below(22)) {
      case 0: return nullptr;
      case 1: return true;
      case 2: return false;
      case 3: return 0;
      case 4: return -1;
      case 5: return 1e308;
      case 6: return -1e308;
      case 7: return uint64_t{1} << 63;
      case 8: return int64_t{-9223372036854775807} - 1;
      case 9: return 0.5;
      case 10: return 2147483648.0;
      case 11: return "";
      case 12: return "tiny";
      case 13: return std::string(3000, 'a');
      case 14: return "\xE2\x82\xAC \xF0\x9F\x98\x80 {{ x }} {% if %} </s> <s>";
      case 15: return Json::array();
      case 16: return Json::object();
      case 17: return Json::array({1, "two", nullptr, 3.5});
      case 18: return Json::object({{"type", "text"}, {"text", "t"}});
      case 19: return Json::object({{"role", "user"}, {"content", "x"}});
      case 20: return Json::object({{"type", "function"},
                                    {"function", {{"name", "f"}, {"arguments", "{"}}}});
      default: return Below(2) ? Json(Below(100000)) : Json(Below(100) - 50);
    }
  }

  // Replaces, removes or adds somewhere in `value` (depth-first, a random
  // walk down).
  void MutateTree(Json& value, int depth = 0) {
    const bool descend = depth < 8 && (value.is_object() || value.is_array()) &&
                         !value.empty() && Below(3) != 0;
    if (descend) {
      const int index = Below(static_cast<int>(value.size()));
      auto it = value.begin();
      std::advance(it, index);
      MutateTree(*it, depth + 1);
      return;
    }
    if (value.is_object() && Below(2) == 0) {
      if (!value.empty() && Below(2) == 0) {
        auto it = value.begin();
        std::advance(it, Below(static_cast<int>(value.size())));
        value.erase(it.key());
      } else {
        const std::string key = depth == 0 ? kFields[Below(static_cast<int>(std::size(kFields)))]
                                           : (Below(2) ? "type" : "name");
        value[key] = RandomValue();
      }
      return;
    }
    if (value.is_array() && Below(2) == 0) {
      if (Below(2) == 0) {
        value.push_back(Below(2) ? RandomValue() : value);
      } else if (!value.empty()) {
        value.erase(value.begin() + Below(static_cast<int>(value.size())));
      }
      return;
    }
    value = RandomValue();
  }

  // Cuts, flips, duplicates or inserts at the byte level.
  void MutateText(std::string& text) {
    if (text.empty()) {
      text = "{";
      return;
    }
    const size_t at = static_cast<size_t>(Below(static_cast<int>(text.size())));
    switch (Below(5)) {
      case 0: text.resize(at); break;
      case 1: text[at] = static_cast<char>(Below(256)); break;
      case 2: text.erase(at, static_cast<size_t>(Below(16))); break;
      case 3: {
        static constexpr const char* kTokens[] = {
            "{", "}", "[", "]", "\"", ",", ":", "null", "-0", "1e999", "\\u0000",
            "\\ud800", "\\", "\"\\uDFFF\"", "9999999999999999999999"};
        text.insert(at, kTokens[Below(static_cast<int>(std::size(kTokens)))]);
        break;
      }
      default: {
        const size_t length = std::min<size_t>(text.size() - at, Below(64));
        text.insert(at, text.substr(at, length));
        break;
      }
    }
  }

  std::string Body(const char* seed) {
    Json body = Json::parse(seed);
    for (int i = 0, n = 1 + Below(4); i < n; ++i) MutateTree(body);
    std::string text = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (Below(4) == 0) MutateText(text);
    return text;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

class RequestFuzzTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddGrammars());
    ASSERT_NO_FATAL_FAILURE(AddChatTemplate(kTemplate));
  }

  // Parses `iterations` mutations of each seed; counts the accepted ones.
  template <typename Parse>
  void Run(const std::vector<const char*>& seeds, Parse parse) {
    Mutator mutator(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
    int64_t accepted = 0, refused = 0;
    for (const char* seed : seeds) {
      ASSERT_TRUE(parse(std::string(seed)).ok()) << "the seed itself: " << seed;
      for (int64_t i = 0; i < Iterations(); ++i) {
        const std::string body = mutator.Body(seed);
        absl::Status status;
        try {
          status = parse(body).status();
        } catch (const std::exception& e) {
          FAIL() << "exception " << e.what() << " for body:\n" << body;
        }
        if (status.ok()) {
          ++accepted;
          continue;
        }
        ++refused;
        const int http = ToHttpStatus(status.code());
        ASSERT_TRUE(http >= 400 && http < 500)
            << http << " " << status << " for body:\n" << body;
        ASSERT_FALSE(status.message().empty()) << "for body:\n" << body;
      }
    }
    std::cout << accepted << " bodies accepted, " << refused << " refused\n";
    // Both outcomes occur: the mutations are neither all fatal nor all
    // harmless (else the run would test one path only).
    EXPECT_GT(accepted, 0);
    EXPECT_GT(refused, 0);
  }
};

TEST_F(RequestFuzzTest, CompletionBodiesParseOrAreRefusedWithA4xx) {
  Run({kCompletionSeed, kCompletionIdsSeed},
      [&](const std::string& body) { return ParseCompletionRequest(body, model_); });
}

TEST_F(RequestFuzzTest, ChatBodiesParseOrAreRefusedWithA4xx) {
  Run({kChatSeed, kChatForcedSeed},
      [&](const std::string& body) { return ParseChatRequest(body, model_); });
}

// Model output for a format: its markers, JSON pieces and plain words,
// concatenated at random.
std::string RandomOutput(Mutator& m, ToolCallFormat format) {
  static constexpr const char* kCommon[] = {
      "{", "}", "[", "]", "\"", ",", ":", " ", "\n", "name", "\"name\"",
      "\"arguments\"", "\"parameters\"", "\"get_weather\"", "{\"city\": \"Paris\"}",
      "\"{\\\"a\\\": 1}\"", "text", "\xE2\x82\xAC", "\\", "\\\"", "null", "1"};
  static constexpr const char* kHermes[] = {"<tool_call>", "</tool_call>", "<tool_call",
                                            "</tool_"};
  static constexpr const char* kLlama[] = {"<|python_tag|>", ";", "{\"name\": "};
  static constexpr const char* kMistral[] = {"[TOOL_CALLS]", "[ARGS]", "[TOOL_CALLS",
                                             "get_weather[ARGS]"};
  // Half the time, well-formed calls in the format's own shape (a third of
  // those with one byte dropped), so that the streaming path that
  // completes calls runs, not only the one that gives text back.
  if (m.Below(2) == 0) {
    static constexpr const char* kCall =
        "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
    static constexpr const char* kLlamaCall =
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
    std::string out;
    switch (format) {
      case ToolCallFormat::kHermes:
        out = absl::StrCat(m.Below(2) ? "Let me check. " : "", "<tool_call>", kCall,
                           "</tool_call>", m.Below(2) ? "\n<tool_call>" : "",
                           m.Below(2) ? absl::StrCat(kCall, "</tool_call>") : "");
        break;
      case ToolCallFormat::kLlama3Json:
        out = absl::StrCat(m.Below(2) ? "<|python_tag|>" : "", kLlamaCall,
                           m.Below(2) ? absl::StrCat("; ", kLlamaCall) : "");
        break;
      case ToolCallFormat::kMistral:
        out = m.Below(2) ? absl::StrCat("[TOOL_CALLS][", kCall, ", ", kCall, "]")
                         : "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}";
        break;
      default:
        out = absl::StrCat("[", kLlamaCall, "]");
        break;
    }
    if (m.Below(3) == 0) out.erase(static_cast<size_t>(m.Below(static_cast<int>(out.size()))), 1);
    return out;
  }
  std::string out;
  for (int i = 0, n = m.Below(40); i < n; ++i) {
    const int pick = m.Below(3);
    if (pick == 0 && format == ToolCallFormat::kHermes) {
      out += kHermes[m.Below(static_cast<int>(std::size(kHermes)))];
    } else if (pick == 0 && format == ToolCallFormat::kLlama3Json) {
      out += kLlama[m.Below(static_cast<int>(std::size(kLlama)))];
    } else if (pick == 0 && format == ToolCallFormat::kMistral) {
      out += kMistral[m.Below(static_cast<int>(std::size(kMistral)))];
    } else {
      out += kCommon[m.Below(static_cast<int>(std::size(kCommon)))];
    }
  }
  return out;
}

// The parser's output as one comparable value: content pieces merged,
// calls in order.
std::vector<std::variant<std::string, ToolCall>> Collect(
    ToolCallParser& parser, const std::vector<std::string>& pieces) {
  ToolCallParser::Output all;
  auto append = [&](const ToolCallParser::Output& out) {
    for (const auto& item : out.items) {
      if (const auto* text = std::get_if<std::string>(&item)) {
        all.Content(*text);
      } else {
        all.items.push_back(item);
      }
    }
  };
  for (const std::string& piece : pieces) append(parser.Add(piece));
  append(parser.Finish());
  return all.items;
}

TEST(ToolCallFuzzTest, CallsDoNotDependOnHowTheTextIsSplit) {
  Mutator m(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
  for (ToolCallFormat format : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json,
                                ToolCallFormat::kMistral, ToolCallFormat::kRequiredArray,
                                ToolCallFormat::kNamedFunction}) {
    int64_t calls = 0;
    for (int64_t i = 0; i < Iterations(); ++i) {
      const std::string text = RandomOutput(m, format);
      ToolCallParser whole_parser(format, "get_weather");
      const auto whole = Collect(whole_parser, {text});
      std::vector<std::string> pieces;
      for (size_t at = 0; at < text.size();) {
        const size_t length = std::min<size_t>(text.size() - at, 1 + m.Below(6));
        pieces.push_back(text.substr(at, length));
        at += length;
      }
      ToolCallParser split_parser(format, "get_weather");
      ASSERT_EQ(Collect(split_parser, pieces), whole)
          << ToolCallFormatName(format) << " output: " << text;
      for (const auto& item : whole) calls += std::holds_alternative<ToolCall>(item);
    }
    // The generator does make calls the parser completes, in every format.
    EXPECT_GT(calls, Iterations() / 10) << ToolCallFormatName(format);
  }
}

}  // namespace
}  // namespace weft
