// Random inputs against weft's Jinja interpreter, on every real chat
// template in tests/fixtures/chat_templates/:
// - what a client controls (messages, tools, chat_template_kwargs) mutated
//   from the fixtures' conversations: values of other types and extremes,
//   messages of other roles and shapes, tool calls whose arguments are text,
//   objects or neither, keys templates test with `is defined`;
// - what a model file controls (the template's text) mutated at the byte
//   and the token level.
// Each must render or be refused with InvalidArgument and a message, never
// throw (a throw out of a gRPC handler ends the server) or crash, and give
// the same text twice. The chat handlers render on the request's thread,
// so a crash here is the server's.
//
// WEFT_FUZZ_ITERATIONS (default 1500: inputs a template; a tenth of it
// template texts a template) and WEFT_FUZZ_SEED set the run;
// tools/sanitize.sh runs it longer under ASan and UBSan.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"
#include "runtime/chat/chat_template.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using Json = nlohmann::ordered_json;

int64_t Iterations() { return test::EnvInt("WEFT_FUZZ_ITERATIONS", 1500); }

std::filesystem::path FixtureDir() {
  return std::filesystem::path(WEFT_SOURCE_DIR) / "tests/fixtures/chat_templates";
}

const absl::CivilSecond kNow(2024, 7, 26, 12, 0, 0);

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Fixture {
  std::string name;
  std::string source;
  std::string bos, eos;
  std::vector<ChatTemplateInputs> cases;
};

std::vector<Fixture> LoadFixtures() {
  std::vector<Fixture> fixtures;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(FixtureDir(), error)) {
    if (entry.path().extension() != ".json") continue;
    const Json json = Json::parse(ReadFile(entry.path()));
    Fixture fixture;
    fixture.name = entry.path().stem().string();
    fixture.source = ReadFile(FixtureDir() / json["template"].get<std::string>());
    fixture.bos = json["bos_token"].get<std::string>();
    fixture.eos = json["eos_token"].get<std::string>();
    for (const Json& c : json["cases"]) {
      ChatTemplateInputs inputs;
      inputs.messages = c["messages"];
      inputs.tools = c["tools"];
      inputs.add_generation_prompt = c["add_generation_prompt"].get<bool>();
      inputs.extra = c["extra"];
      fixture.cases.push_back(std::move(inputs));
    }
    fixtures.push_back(std::move(fixture));
  }
  std::sort(fixtures.begin(), fixtures.end(),
            [](const Fixture& a, const Fixture& b) { return a.name < b.name; });
  return fixtures;
}

// Keys that real templates read from a message, a tool call, a tool and the
// top level (`is defined` tests, loops, filters).
constexpr const char* kMessageKeys[] = {
    "role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content",
    "thinking", "function_call", "id", "type", "text", "output"};
constexpr const char* kToolKeys[] = {
    "type", "function", "name", "description", "parameters", "properties",
    "arguments", "required", "return", "returns", "default", "id"};
constexpr const char* kTopKeys[] = {
    "enable_thinking", "date_string", "builtin_tools", "tools_in_user_message",
    "custom_tools", "system_message", "thinking_budget", "reasoning_effort",
    "model_identity", "available_tools", "use_json_tooldef", "continue_final_message",
    "documents", "tools", "messages", "add_generation_prompt", "bos_token",
    "eos_token", "xml_tools", "keep_past_thinking"};
constexpr const char* kRoles[] = {
    "user", "assistant", "system", "tool", "developer", "ipython", "function",
    "", "USER", "narrator", "tool_response"};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <size_t N>
  const char* Pick(const char* const (&names)[N]) {
    return names[Below(static_cast<int>(N))];
  }

  Json RandomValue() {
    switch (Below(24)) {
      case 0: return nullptr;
      case 1: return true;
      case 2: return false;
      case 3: return 0;
      case 4: return -1;
      case 5: return 1e308;
      case 6: return uint64_t{1} << 63;
      case 7: return int64_t{-9223372036854775807} - 1;
      case 8: return 0.5;
      case 9: return "";
      case 10: return std::string(2000, 'a');
      case 11: return "\xE2\x82\xAC \xF0\x9F\x98\x80 {{ x }} {% if %} <|im_end|> </s> \n\t\"'\\";
      case 12: return "\xFF\xFE invalid \xC3";
      case 13: return Json::array();
      case 14: return Json::object();
      case 15: return Json::array({1, "two", nullptr, 3.5, Json::array({false})});
      case 16: return Json::object({{"type", "text"}, {"text", "part"}});
      case 17: return Json::array({Json::object({{"type", "text"}, {"text", "a"}}),
                                   Json::object({{"type", "image_url"},
                                                 {"image_url", {{"url", "x"}}}})});
      case 18: return Message();
      case 19: return ToolCall();
      case 20: return Json::array({ToolCall(), ToolCall()});
      case 21: return Tool();
      case 22: return Pick(kRoles);
      default: return Below(2) ? Json(Below(100000)) : Json(Below(100) - 50);
    }
  }

  Json Message() {
    Json m = {{"role", Pick(kRoles)}};
    switch (Below(4)) {
      case 0: m["content"] = "hello"; break;
      case 1: m["content"] = nullptr; break;
      case 2: m["content"] = RandomValue(); break;
      default: break;
    }
    if (Below(3) == 0) m["tool_calls"] = Json::array({ToolCall()});
    if (Below(4) == 0) m[Pick(kMessageKeys)] = Below(2) ? Json("x") : RandomValue();
    return m;
  }

  Json ToolCall() {
    Json arguments;
    switch (Below(4)) {
      case 0: arguments = "{\"city\": \"Paris\"}"; break;
      case 1: arguments = {{"city", "Paris"}, {"days", 3}}; break;
      case 2: arguments = "not json {"; break;
      default: arguments = RandomValue(); break;
    }
    Json call = {{"id", "call_1"}, {"type", "function"},
                 {"function", {{"name", Below(4) ? Json("get_weather") : RandomValue()},
                               {"arguments", arguments}}}};
    if (Below(4) == 0) call.erase(Below(2) ? "id" : "type");
    if (Below(6) == 0) call = call["function"];  // the flat shape some templates accept
    return call;
  }

  Json Tool() {
    Json parameters = {{"type", "object"},
                       {"properties", {{"city", {{"type", "string"}, {"description", "c"}}},
                                       {"days", {{"type", "integer"}, {"enum", {1, 2}}}}}},
                       {"required", {"city"}}};
    if (Below(3) == 0) parameters = RandomValue();
    Json tool = {{"type", "function"},
                 {"function", {{"name", "get_weather"}, {"description", "the weather"},
                               {"parameters", parameters}}}};
    if (Below(5) == 0) tool[Pick(kToolKeys)] = RandomValue();
    return tool;
  }

  // Replaces, removes, adds or wraps somewhere in `value` (a random walk
  // down); `keys` are the names added at this level.
  void MutateTree(Json& value, int depth, const char* const* keys, size_t num_keys) {
    const bool descend = depth < 10 && (value.is_object() || value.is_array()) &&
                         !value.empty() && Below(3) != 0;
    if (descend) {
      auto it = value.begin();
      std::advance(it, Below(static_cast<int>(value.size())));
      // Below a message or a tool: their keys.
      const bool tool_level = it.value().is_object() && it.value().contains("function");
      if (tool_level) {
        MutateTree(*it, depth + 1, kToolKeys, std::size(kToolKeys));
      } else {
        MutateTree(*it, depth + 1, kMessageKeys, std::size(kMessageKeys));
      }
      return;
    }
    switch (Below(6)) {
      case 0:
        if (value.is_object() && !value.empty()) {
          auto it = value.begin();
          std::advance(it, Below(static_cast<int>(value.size())));
          value.erase(it.key());
          return;
        }
        break;
      case 1:
        if (value.is_object()) {
          value[keys[Below(static_cast<int>(num_keys))]] = RandomValue();
          return;
        }
        break;
      case 2:
        if (value.is_array()) {
          value.push_back(Below(2) ? RandomValue() : Json(value));
          return;
        }
        break;
      case 3:
        if (value.is_array() && !value.empty()) {
          value.erase(value.begin() + Below(static_cast<int>(value.size())));
          return;
        }
        break;
      case 4:  // deeper, up to and past the refusal depth
        if (depth == 0) break;
        for (int i = 0, n = 1 + Below(Below(8) == 0 ? 70 : 4); i < n; ++i) {
          value = Below(2) ? Json::array({value}) : Json::object({{"content", value}});
        }
        return;
      default: break;
    }
    // The root rarely: a top-level value of the wrong type is refused
    // before the template runs.
    if (depth == 0 && Below(8) != 0) {
      MutateTree(value, depth, keys, num_keys);
      return;
    }
    value = RandomValue();
  }

  ChatTemplateInputs Inputs(const ChatTemplateInputs& seed) {
    ChatTemplateInputs inputs = seed;
    for (int i = 0, n = 1 + Below(4); i < n; ++i) {
      switch (Below(5)) {
        case 0:
        case 1: MutateTree(inputs.messages, 0, kMessageKeys, std::size(kMessageKeys)); break;
        case 2:
          if (inputs.tools.is_null() || Below(3) == 0) {
            inputs.tools = Below(4) ? Json::array({Tool()}) : RandomValue();
          } else {
            MutateTree(inputs.tools, 0, kToolKeys, std::size(kToolKeys));
          }
          break;
        case 3: MutateTree(inputs.extra, 0, kTopKeys, std::size(kTopKeys)); break;
        default: inputs.add_generation_prompt = !inputs.add_generation_prompt; break;
      }
    }
    return inputs;
  }

  // Byte-level and Jinja-token-level damage to a template's text.
  void MutateTemplate(std::string& text) {
    if (text.empty()) {
      text = "{{";
      return;
    }
    const size_t at = static_cast<size_t>(Below(static_cast<int>(text.size())));
    switch (Below(6)) {
      case 0: text.resize(at); break;
      case 1: text[at] = static_cast<char>(Below(256)); break;
      case 2: text.erase(at, static_cast<size_t>(1 + Below(24))); break;
      case 3:
      case 4: {
        static constexpr const char* kTokens[] = {
            "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}",
            "{% endfor %}", "{% endif %}", "{% else %}", "{% elif x %}",
            "{% for m in messages %}", "{% if messages %}", "{% set x = 1 %}",
            "{% macro f(a) %}", "{% endmacro %}", "{% call f(1) %}", "{% break %}",
            "{% continue %}", "loop.", "loop(", "recursive", "|", "| tojson",
            "| safe", "| trim", "| length", "| join(','", "(", ")", "[", "]", "[::-1]",
            "'", "\"", "~", "+", "-", "*", "/", "//", "%", "**", " in ", " is ", " not ",
            "namespace(", "range(99999)", "raise_exception(", ".items()", ".split(",
            "messages[0]", "messages[-1]", "none", "true", "0", "9999999999999999999999",
            "x", ",", ":", "=", "==", "\n", "\\"};
        text.insert(at, kTokens[Below(static_cast<int>(std::size(kTokens)))]);
        break;
      }
      default: {
        const size_t length = std::min<size_t>(text.size() - at, 1 + Below(80));
        text.insert(at + (Below(2) ? length : 0), text.substr(at, length));
        break;
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

// Render's outcome is text, or InvalidArgument with a message; never an
// exception. Rendering again gives the same. Returns whether it rendered.
bool CheckRender(const ChatTemplate& chat_template, const ChatTemplateInputs& inputs,
                 const std::string& what) {
  absl::StatusOr<std::string> first, second;
  try {
    first = chat_template.Render(inputs, kNow);
    second = chat_template.Render(inputs, kNow);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "exception " << e.what() << " for " << what;
    return false;
  }
  if (first.ok()) {
    EXPECT_TRUE(second.ok() && *second == *first) << what;
    return true;
  }
  EXPECT_EQ(first.status().code(), absl::StatusCode::kInvalidArgument)
      << first.status() << " for " << what;
  EXPECT_FALSE(first.status().message().empty()) << what;
  EXPECT_EQ(second.status(), first.status()) << what;
  return false;
}

std::string Describe(const std::string& name, const ChatTemplateInputs& inputs) {
  const auto dump = [](const Json& json) {
    return json.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 4000);
  };
  return name + " with messages " + dump(inputs.messages) + " tools " + dump(inputs.tools) +
         " kwargs " + dump(inputs.extra) +
         " add_generation_prompt " + (inputs.add_generation_prompt ? "true" : "false");
}

TEST(ChatTemplateFuzz, RealTemplatesRenderRandomInputsOrRefuseThem) {
  const std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_GE(fixtures.size(), 10u) << "in " << FixtureDir();
  Mutator mutator(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
  int64_t rendered = 0, refused = 0;
  for (const Fixture& fixture : fixtures) {
    auto chat_template = ChatTemplate::Create(fixture.source, fixture.bos, fixture.eos);
    ASSERT_TRUE(chat_template.ok()) << fixture.name << ": " << chat_template.status();
    ASSERT_FALSE(fixture.cases.empty()) << fixture.name;
    int64_t template_rendered = 0;
    for (int64_t i = 0; i < Iterations(); ++i) {
      const ChatTemplateInputs& seed =
          fixture.cases[static_cast<size_t>(mutator.Below(static_cast<int>(fixture.cases.size())))];
      const ChatTemplateInputs inputs = mutator.Inputs(seed);
      const bool ok = CheckRender(**chat_template, inputs, Describe(fixture.name, inputs));
      if (::testing::Test::HasFailure()) return;
      template_rendered += ok;
      ok ? ++rendered : ++refused;
    }
    // Every template renders some of the mutations (else its inputs were
    // all refused up front and its body went untested).
    EXPECT_GT(template_rendered, 0) << fixture.name;
  }
  std::cout << rendered << " inputs rendered, " << refused << " refused over "
            << fixtures.size() << " templates\n";
  EXPECT_GT(refused, 0);
}

TEST(ChatTemplateFuzz, DamagedTemplatesLoadAndRenderOrAreRefused) {
  const std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_GE(fixtures.size(), 10u) << "in " << FixtureDir();
  Mutator mutator(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)) + 1000);
  const int64_t per_template = std::max<int64_t>(1, Iterations() / 10);
  int64_t loaded = 0, load_refused = 0, rendered = 0;
  for (const Fixture& fixture : fixtures) {
    for (int64_t i = 0; i < per_template; ++i) {
      std::string source = fixture.source;
      for (int j = 0, n = 1 + mutator.Below(3); j < n; ++j) mutator.MutateTemplate(source);
      absl::StatusOr<std::unique_ptr<ChatTemplate>> chat_template;
      try {
        chat_template = ChatTemplate::Create(source, fixture.bos, fixture.eos);
      } catch (const std::exception& e) {
        FAIL() << "exception " << e.what() << " loading a damaged " << fixture.name << ":\n"
               << source;
      }
      if (!chat_template.ok()) {
        ++load_refused;
        ASSERT_EQ(chat_template.status().code(), absl::StatusCode::kInvalidArgument)
            << chat_template.status() << " loading a damaged " << fixture.name << ":\n"
            << source;
        ASSERT_FALSE(chat_template.status().message().empty());
        continue;
      }
      ++loaded;
      for (const ChatTemplateInputs& inputs : fixture.cases) {
        rendered += CheckRender(**chat_template, inputs,
                                "a damaged " + fixture.name + ":\n" + source);
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
  std::cout << loaded << " damaged templates loaded (" << rendered << " renderings), "
            << load_refused << " refused\n";
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rendered, 0);
  EXPECT_GT(load_refused, 0);
}

}  // namespace
}  // namespace weft
