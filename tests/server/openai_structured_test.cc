// Structured output on the OpenAI API: each way of asking for it
// (response_format, vLLM's structured_outputs and guided_*) on both
// endpoints becomes the grammar it names, compiled into the request; and a
// table of bad ones, each refused with the field it names.
#include "server/openai_structured.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/openai_chat.h"
#include "server/openai_errors.h"
#include "server/openai_request.h"
#include "tests/server/tiny_served_model.h"

namespace weft {
namespace {

using Kind = StructuredOutput::Kind;

const Json kSchema = {{"type", "object"},
                      {"properties", {{"a", {{"type", "integer"}}}}}};

class OpenAiStructuredTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddGrammars());
    AddChatTemplate(
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}");
  }

  // `extra` on a completions body and on a chat body: the same structure,
  // compiled into both requests.
  RequestedStructure ParseBoth(const Json& extra) {
    Json completion = {{"prompt", "x"}};
    Json chat = {{"messages", {{{"role", "user"}, {"content", "x"}}}}};
    completion.update(extra);
    chat.update(extra);
    auto c = ParseCompletionRequest(completion.dump(), model_);
    auto h = ParseChatRequest(chat.dump(), model_);
    EXPECT_TRUE(c.ok()) << extra.dump() << ": " << c.status();
    EXPECT_TRUE(h.ok()) << extra.dump() << ": " << h.status();
    if (!c.ok() || !h.ok()) return {};
    EXPECT_EQ(c->structure.output.kind, h->structure.output.kind);
    EXPECT_EQ(c->structure.output.spec, h->structure.output.spec);
    EXPECT_EQ(c->request.grammar != nullptr, c->structure.output.enabled());
    EXPECT_EQ(h->request.grammar != nullptr, h->structure.output.enabled());
    return c->structure;
  }

};

TEST_F(OpenAiStructuredTest, ResponseFormat) {
  EXPECT_EQ(ParseBoth({{"response_format", {{"type", "text"}}}}).output.kind,
            Kind::kNone);
  EXPECT_EQ(ParseBoth(Json::object()).output.kind, Kind::kNone);
  RequestedStructure object =
      ParseBoth({{"response_format", {{"type", "json_object"}}}});
  EXPECT_EQ(object.output.kind, Kind::kJsonObject);
  EXPECT_EQ(object.param, "response_format");
  RequestedStructure schema = ParseBoth(
      {{"response_format",
        {{"type", "json_schema"},
         {"json_schema", {{"name", "a"}, {"strict", true}, {"schema", kSchema}}}}}});
  EXPECT_EQ(schema.output.kind, Kind::kJsonSchema);
  EXPECT_EQ(schema.output.spec, kSchema.dump());
  EXPECT_TRUE(schema.output.any_whitespace);
}

TEST_F(OpenAiStructuredTest, VllmStructuredOutputs) {
  RequestedStructure json = ParseBoth(
      {{"structured_outputs", {{"json", kSchema.dump()}, {"disable_any_whitespace", true}}}});
  EXPECT_EQ(json.output.kind, Kind::kJsonSchema);
  EXPECT_EQ(json.output.spec, kSchema.dump());
  EXPECT_FALSE(json.output.any_whitespace);
  EXPECT_EQ(json.param, "structured_outputs.json");
  RequestedStructure regex = ParseBoth({{"structured_outputs", {{"regex", "[0-9]+"}}}});
  EXPECT_EQ(regex.output.kind, Kind::kRegex);
  EXPECT_EQ(regex.output.spec, "[0-9]+");
  RequestedStructure choice =
      ParseBoth({{"structured_outputs", {{"choice", {"yes", "no"}}}}});
  EXPECT_EQ(choice.output.kind, Kind::kChoice);
  EXPECT_EQ(choice.output.choices, (std::vector<std::string>{"yes", "no"}));
  RequestedStructure grammar =
      ParseBoth({{"structured_outputs", {{"grammar", "root ::= \"a\"+"}}}});
  EXPECT_EQ(grammar.output.kind, Kind::kGrammar);
  EXPECT_EQ(ParseBoth({{"structured_outputs", {{"json_object", true}}}}).output.kind,
            Kind::kJsonObject);
  // Accepted and without effect (strict schemas, one backend).
  EXPECT_EQ(ParseBoth({{"structured_outputs",
                        {{"regex", "a"},
                         {"disable_fallback", true},
                         {"disable_additional_properties", true}}}})
                .output.kind,
            Kind::kRegex);
}

TEST_F(OpenAiStructuredTest, VllmGuidedFields) {
  EXPECT_EQ(ParseBoth({{"guided_json", kSchema}}).output.kind, Kind::kJsonSchema);
  EXPECT_EQ(ParseBoth({{"guided_json", kSchema.dump()}}).output.spec, kSchema.dump());
  EXPECT_EQ(ParseBoth({{"guided_regex", "a|b"}}).output.kind, Kind::kRegex);
  EXPECT_EQ(ParseBoth({{"guided_choice", {"a", "b"}}}).output.kind, Kind::kChoice);
  EXPECT_EQ(ParseBoth({{"guided_grammar", "start: \"a\"+"}}).output.kind,
            Kind::kGrammar);
  // The backend is xgrammar whatever is named (vLLM's own default).
  EXPECT_EQ(ParseBoth({{"guided_regex", "a"}, {"guided_decoding_backend", "outlines"}})
                .param,
            "guided_regex");
}

TEST_F(OpenAiStructuredTest, BadRequestsNameTheirField) {
  struct Bad {
    const char* name;
    Json extra;
    std::string param;
  };
  const std::vector<Bad> table = {
      {"response_format string", {{"response_format", "json"}}, "response_format"},
      {"type not a string", {{"response_format", {{"type", 5}}}}, "response_format.type"},
      {"unknown type", {{"response_format", {{"type", "yaml"}}}}, "response_format.type"},
      {"structural tag", {{"response_format", {{"type", "structural_tag"}}}},
       "response_format.type"},
      {"json_schema missing",
       {{"response_format", {{"type", "json_schema"}}}},
       "response_format.json_schema"},
      {"schema missing",
       {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}}}}}},
       "response_format.json_schema.schema"},
      {"schema that does not compile",
       {{"response_format",
         {{"type", "json_schema"},
          {"json_schema", {{"name", "a"}, {"schema", {{"type", "tuple"}}}}}}}},
       "response_format.json_schema.schema"},
      {"two constraints",
       {{"response_format", {{"type", "json_object"}}}, {"guided_regex", "a"}},
       "guided_regex"},
      {"structured_outputs empty", {{"structured_outputs", Json::object()}},
       "structured_outputs"},
      {"structured_outputs two kinds",
       {{"structured_outputs", {{"regex", "a"}, {"choice", {"a"}}}}},
       "structured_outputs"},
      {"structured_outputs not an object", {{"structured_outputs", "a"}},
       "structured_outputs"},
      {"structural_tag",
       {{"structured_outputs", {{"structural_tag", "{}"}}}},
       "structured_outputs.structural_tag"},
      {"whitespace_pattern",
       {{"structured_outputs", {{"regex", "a"}, {"whitespace_pattern", " "}}}},
       "structured_outputs.whitespace_pattern"},
      {"disable_any_whitespace string",
       {{"structured_outputs", {{"regex", "a"}, {"disable_any_whitespace", "yes"}}}},
       "structured_outputs.disable_any_whitespace"},
      {"json number", {{"structured_outputs", {{"json", 5}}}}, "structured_outputs.json"},
      {"grammar that does not parse",
       {{"structured_outputs", {{"grammar", "root ::= missing"}}}},
       "structured_outputs.grammar"},
      {"guided_choice empty", {{"guided_choice", Json::array()}}, "guided_choice"},
      {"guided_choice numbers", {{"guided_choice", {1, 2}}}, "guided_choice"},
      {"guided_regex number", {{"guided_regex", 5}}, "guided_regex"},
      {"guided_regex unclosed", {{"guided_regex", "(ab"}}, "guided_regex"},
      {"guided_json text not JSON", {{"guided_json", "{\"type\":"}}, "guided_json"},
      {"guided_whitespace_pattern",
       {{"guided_regex", "a"}, {"guided_whitespace_pattern", " "}},
       "guided_whitespace_pattern"},
      {"guided_decoding_backend number",
       {{"guided_regex", "a"}, {"guided_decoding_backend", 1}},
       "guided_decoding_backend"},
      // The grammar compiles last: another bad field is named first.
      {"bad temperature and bad regex",
       {{"guided_regex", "(ab"}, {"temperature", 9}},
       "temperature"},
  };
  for (const Bad& bad : table) {
    SCOPED_TRACE(bad.name);
    Json completion = {{"prompt", "x"}};
    completion.update(bad.extra);
    Json chat = {{"messages", {{{"role", "user"}, {"content", "x"}}}}};
    chat.update(bad.extra);
    for (const auto& parsed : {ParseCompletionRequest(completion.dump(), model_),
                               ParseChatRequest(chat.dump(), model_)}) {
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
          << parsed.status();
      EXPECT_EQ(ParamOf(parsed.status()), bad.param) << parsed.status();
    }
  }
}

Json Tool(const std::string& name, Json parameters) {
  Json function = {{"name", name}, {"description", "d"}};
  if (!parameters.is_null()) function["parameters"] = std::move(parameters);
  return {{"type", "function"}, {"function", std::move(function)}};
}

const Json kAddress = {{"type", "object"},
                       {"properties", {{"city", {{"type", "string"}}}}},
                       {"required", {"city"}}};

TEST_F(OpenAiStructuredTest, RequiredToolChoiceIsAnArrayOfTheToolsCalls) {
  const Json weather = Tool("weather", {{"type", "object"},
                                        {"properties", {{"at", {{"$ref", "#/$defs/place"}}}}},
                                        {"$defs", {{"place", kAddress}}}});
  const Json body = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                     {"tools", {weather, Tool("noop", nullptr)}},
                     {"tool_choice", "required"}};
  auto r = ParseChatRequest(body.dump(), model_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tool_call_format, ToolCallFormat::kRequiredArray);
  EXPECT_EQ(r->structure.param, "tool_choice");
  EXPECT_NE(r->request.grammar, nullptr);
  const Json schema = Json::parse(r->structure.output.spec);
  EXPECT_EQ(schema["type"], "array");
  EXPECT_EQ(schema["minItems"], 1);
  const Json& calls = schema["items"]["anyOf"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["properties"]["name"]["enum"], Json::array({"weather"}));
  // The tool's $defs moved to the top, where its reference points.
  EXPECT_FALSE(calls[0]["properties"]["parameters"].contains("$defs"));
  EXPECT_EQ(schema["$defs"]["place"], kAddress);
  // A tool without parameters takes an empty object.
  EXPECT_EQ(calls[1]["properties"]["parameters"]["type"], "object");
  // The same definition in another key order is no conflict.
  Json reordered = {{"required", {"city"}},
                    {"properties", {{"city", {{"type", "string"}}}}},
                    {"type", "object"}};
  const Json two = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                    {"tools",
                     {weather, Tool("other", {{"type", "object"},
                                              {"$defs", {{"place", reordered}}}})}},
                    {"tool_choice", "required"}};
  EXPECT_TRUE(ParseChatRequest(two.dump(), model_).ok());
}

TEST_F(OpenAiStructuredTest, NamedToolChoiceIsThatToolsArguments) {
  const Json body = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                     {"tools", {Tool("noop", nullptr), Tool("address", kAddress)}},
                     {"tool_choice", {{"type", "function"}, {"function", {{"name", "address"}}}}}};
  auto r = ParseChatRequest(body.dump(), model_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tool_call_format, ToolCallFormat::kNamedFunction);
  EXPECT_EQ(r->tool_choice_function, "address");
  EXPECT_EQ(Json::parse(r->structure.output.spec), kAddress);
  EXPECT_NE(r->request.grammar, nullptr);
}

TEST_F(OpenAiStructuredTest, AForcedToolChoiceReplacesResponseFormat) {
  // vLLM's rule: the tool call's schema wins (agent frameworks send both).
  const Json body = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                     {"tools", {Tool("address", kAddress)}},
                     {"tool_choice", "required"},
                     {"parallel_tool_calls", false},
                     {"response_format", {{"type", "json_object"}}}};
  auto r = ParseChatRequest(body.dump(), model_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->structure.param, "tool_choice");
  const Json schema = Json::parse(r->structure.output.spec);
  EXPECT_EQ(schema["type"], "array");
  EXPECT_EQ(schema["maxItems"], 1);  // parallel_tool_calls: false
  // {"type": "text"} asks for nothing, so it combines with anything.
  auto text = ParseCompletionRequest(
      Json{{"prompt", "x"}, {"response_format", {{"type", "text"}}}, {"guided_regex", "a"}}
          .dump(),
      model_);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->structure.param, "guided_regex");
}

TEST_F(OpenAiStructuredTest, EmptyParametersMeanNone) {
  const Json body = {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                     {"tools", {Tool("noop", Json::object())}},
                     {"tool_choice", {{"type", "function"}, {"function", {{"name", "noop"}}}}}};
  auto r = ParseChatRequest(body.dump(), model_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Json::parse(r->structure.output.spec),
            (Json{{"type", "object"}, {"properties", Json::object()}}));
}

TEST_F(OpenAiStructuredTest, BadToolChoicesNameTheirField) {
  const Json user = {{"role", "user"}, {"content", "x"}};
  const Json named = {{"type", "function"}, {"function", {{"name", "f"}}}};
  struct Bad {
    const char* name;
    Json body;
    std::string param;
  };
  const std::vector<Bad> table = {
      {"required without tools", {{"messages", {user}}, {"tool_choice", "required"}},
       "tool_choice"},
      {"named without tools", {{"messages", {user}}, {"tool_choice", named}}, "tool_choice"},
      {"named, no such tool",
       {{"messages", {user}}, {"tools", {Tool("g", kAddress)}}, {"tool_choice", named}},
       "tool_choice"},
      {"unknown mode",
       {{"messages", {user}}, {"tools", {Tool("f", kAddress)}}, {"tool_choice", "any"}},
       "tool_choice"},
      // Found by request_fuzz_test: a non-string type threw out of the parser.
      {"type not a string",
       {{"messages", {user}},
        {"tools", {Tool("f", kAddress)}},
        {"tool_choice", {{"type", {1}}, {"function", {{"name", "f"}}}}}},
       "tool_choice"},
      {"parallel_tool_calls not a boolean",
       {{"messages", {user}},
        {"tools", {Tool("f", kAddress)}},
        {"tool_choice", "required"},
        {"parallel_tool_calls", "no"}},
       "parallel_tool_calls"},
      {"tool without a name",
       {{"messages", {user}},
        {"tools", {{{"type", "function"}, {"function", {{"parameters", kAddress}}}}}},
        {"tool_choice", "required"}},
       "tools[0].function.name"},
      {"parameters not an object",
       {{"messages", {user}}, {"tools", {Tool("f", "x")}}, {"tool_choice", "required"}},
       "tools[0].function.parameters"},
      {"conflicting $defs",
       {{"messages", {user}},
        {"tools",
         {Tool("f", {{"type", "object"}, {"$defs", {{"p", kAddress}}}}),
          Tool("g", {{"type", "object"}, {"$defs", {{"p", {{"type", "integer"}}}}}})}},
        {"tool_choice", "required"}},
       "tools[1].function.parameters.$defs"},
  };
  for (const Bad& bad : table) {
    SCOPED_TRACE(bad.name);
    auto parsed = ParseChatRequest(bad.body.dump(), model_);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
    EXPECT_EQ(ParamOf(parsed.status()), bad.param) << parsed.status();
  }
}

TEST_F(OpenAiStructuredTest, WithoutACompilerTheRequestIsRefused) {
  model_.grammars = nullptr;
  auto parsed = ParseCompletionRequest(
      Json{{"prompt", "x"}, {"guided_regex", "a"}}.dump(), model_);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnimplemented);
  // Nothing asked, nothing needed.
  EXPECT_TRUE(ParseCompletionRequest(Json{{"prompt", "x"}}.dump(), model_).ok());
}

}  // namespace
}  // namespace weft
