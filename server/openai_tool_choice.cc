#include "server/openai_tool_choice.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/openai_errors.h"

namespace weft {
namespace {

using Json = nlohmann::ordered_json;

bool HasTools(const Json& tools) { return tools.is_array() && !tools.empty(); }

// tools[i].function.name, or INVALID_ARGUMENT naming what is missing.
absl::StatusOr<std::string> ToolName(const Json& tools, size_t i) {
  const Json& tool = tools[i];
  const std::string param = absl::StrCat("tools[", i, "].function");
  if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object()) {
    return InvalidParam(param, "must be an object");
  }
  const Json& function = tool["function"];
  if (!function.contains("name") || !function["name"].is_string()) {
    return InvalidParam(param + ".name", "must be a string");
  }
  return function["name"].get<std::string>();
}

// tools[i].function.parameters; an object without properties when absent
// (a function that takes none).
absl::StatusOr<Json> ToolParameters(const Json& tools, size_t i) {
  const Json& function = tools[i]["function"];
  auto parameters = function.find("parameters");
  // Absent, null or {}: a function without parameters (vLLM's reading;
  // {} alone would let any JSON value through).
  if (parameters == function.end() || parameters->is_null() ||
      (parameters->is_object() && parameters->empty())) {
    return Json{{"type", "object"}, {"properties", Json::object()}};
  }
  if (!parameters->is_object()) {
    return InvalidParam(absl::StrCat("tools[", i, "].function.parameters"),
                        "must be a JSON schema object");
  }
  return *parameters;
}

}  // namespace

absl::StatusOr<ToolChoice> ParseToolChoice(const Json& body, const Json& tools) {
  ToolChoice choice;
  auto value = body.find("tool_choice");
  if (value == body.end() || value->is_null()) return choice;
  if (value->is_string()) {
    const std::string mode = value->get<std::string>();
    if (mode == "auto") return choice;
    if (mode == "none") {
      choice.mode = ToolChoice::Mode::kNone;
      return choice;
    }
    if (mode == "required") {
      if (!HasTools(tools)) {
        return InvalidParam("tool_choice", "\"required\" needs tools");
      }
      choice.mode = ToolChoice::Mode::kRequired;
      return choice;
    }
  } else if (value->is_object() && value->contains("function") &&
             (*value)["function"].is_object() &&
             (*value)["function"].contains("name") &&
             (*value)["function"]["name"].is_string() &&
             (!value->contains("type") || (*value)["type"] == "function")) {
    choice.mode = ToolChoice::Mode::kNamed;
    choice.function = (*value)["function"]["name"].get<std::string>();
    if (HasTools(tools)) {
      for (size_t i = 0; i < tools.size(); ++i) {
        absl::StatusOr<std::string> name = ToolName(tools, i);
        if (!name.ok()) return name.status();
        if (*name == choice.function) return choice;
      }
    }
    return InvalidParam("tool_choice", absl::StrCat("names function '", choice.function,
                                                    "', which no tool defines"));
  }
  return InvalidParam("tool_choice",
                      "must be \"none\", \"auto\", \"required\" or {\"type\": "
                      "\"function\", \"function\": {\"name\": …}}");
}

absl::StatusOr<std::string> ToolChoiceSchema(const ToolChoice& choice, const Json& tools,
                                             bool parallel) {
  if (choice.mode == ToolChoice::Mode::kNamed) {
    for (size_t i = 0; i < tools.size(); ++i) {
      absl::StatusOr<std::string> name = ToolName(tools, i);
      if (!name.ok()) return name.status();
      if (*name != choice.function) continue;
      absl::StatusOr<Json> parameters = ToolParameters(tools, i);
      if (!parameters.ok()) return parameters.status();
      return parameters->dump();
    }
    return InvalidParam("tool_choice", "names no tool");
  }
  // vLLM's schema for "required": at least one call, each one of the
  // tools by name with its parameters. Each tool's $defs move to the top,
  // where their "#/$defs/…" references point.
  Json calls = Json::array();
  Json defs = Json::object();
  for (size_t i = 0; i < tools.size(); ++i) {
    absl::StatusOr<std::string> name = ToolName(tools, i);
    if (!name.ok()) return name.status();
    absl::StatusOr<Json> parameters = ToolParameters(tools, i);
    if (!parameters.ok()) return parameters.status();
    if (auto own = parameters->find("$defs"); own != parameters->end()) {
      if (!own->is_object()) {
        return InvalidParam(absl::StrCat("tools[", i, "].function.parameters.$defs"),
                            "must be an object");
      }
      for (const auto& [key, schema] : own->items()) {
        // Compared as unordered JSON: key order does not change a schema.
        if (defs.contains(key) &&
            nlohmann::json(defs[key]) != nlohmann::json(schema)) {
          return InvalidParam(
              absl::StrCat("tools[", i, "].function.parameters.$defs"),
              absl::StrCat("defines '", key, "' unlike an earlier tool"));
        }
        defs[key] = schema;
      }
      parameters->erase("$defs");
    }
    calls.push_back(Json{
        {"properties",
         {{"name", {{"type", "string"}, {"enum", Json::array({*name})}}},
          {"parameters", *std::move(parameters)}}},
        {"required", Json::array({"name", "parameters"})}});
  }
  Json schema = {{"type", "array"},
                 {"minItems", 1},
                 {"items", {{"type", "object"}, {"anyOf", std::move(calls)}}}};
  if (!parallel) schema["maxItems"] = 1;
  if (!defs.empty()) schema["$defs"] = std::move(defs);
  return schema.dump();
}

}  // namespace weft
