#include "server/openai_structured.h"

#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/openai_errors.h"
#include "server/openai_request.h"

namespace weft {
namespace {

using Kind = StructuredOutput::Kind;

bool Present(const Json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

// A JSON schema given as an object or as JSON text.
absl::Status ReadSchema(const Json& value, const std::string& param,
                        RequestedStructure* out) {
  if (value.is_object()) {
    out->output.spec = value.dump();
  } else if (value.is_string()) {
    out->output.spec = value.get<std::string>();
  } else {
    return InvalidParam(param, absl::StrCat("must be a JSON schema (an object "
                                            "or its JSON text), got ",
                                            JsonTypeName(value)));
  }
  out->output.kind = Kind::kJsonSchema;
  out->param = param;
  return absl::OkStatus();
}

absl::Status ReadString(const Json& value, Kind kind, const std::string& param,
                        RequestedStructure* out) {
  if (!value.is_string()) {
    return InvalidParam(param, absl::StrCat("must be a string, got ",
                                            JsonTypeName(value)));
  }
  out->output.kind = kind;
  out->output.spec = value.get<std::string>();
  out->param = param;
  return absl::OkStatus();
}

absl::Status ReadChoices(const Json& value, const std::string& param,
                         RequestedStructure* out) {
  if (!value.is_array() || value.empty()) {
    return InvalidParam(param, "must be a non-empty array of strings");
  }
  for (const Json& choice : value) {
    if (!choice.is_string()) {
      return InvalidParam(param, absl::StrCat("must hold strings only, got ",
                                              JsonTypeName(choice)));
    }
    out->output.choices.push_back(choice.get<std::string>());
  }
  out->output.kind = Kind::kChoice;
  out->param = param;
  return absl::OkStatus();
}

// OpenAI's response_format.
absl::Status ReadResponseFormat(const Json& format, RequestedStructure* out) {
  if (!format.is_object()) {
    return InvalidParam("response_format", "must be an object");
  }
  auto type = format.find("type");
  if (type == format.end() || !type->is_string()) {
    return InvalidParam("response_format.type", "must be a string");
  }
  const std::string name = type->get<std::string>();
  if (name == "text") return absl::OkStatus();
  if (name == "json_object") {
    out->output.kind = Kind::kJsonObject;
    out->param = "response_format";
    return absl::OkStatus();
  }
  if (name == "json_schema") {
    auto json_schema = format.find("json_schema");
    if (json_schema == format.end() || !json_schema->is_object()) {
      return InvalidParam("response_format.json_schema",
                          "must be an object with the schema in `schema`");
    }
    auto schema = json_schema->find("schema");
    if (schema == json_schema->end() || !schema->is_object()) {
      return InvalidParam("response_format.json_schema.schema",
                          "must be a JSON schema object");
    }
    return ReadSchema(*schema, "response_format.json_schema.schema", out);
  }
  return InvalidParam("response_format.type",
                      absl::StrCat("must be text, json_object or json_schema, "
                                   "got '", name, "'"));
}

// vLLM's structured_outputs object.
absl::Status ReadStructuredOutputs(const Json& params, RequestedStructure* out) {
  if (!params.is_object()) {
    return InvalidParam("structured_outputs", "must be an object");
  }
  for (const char* unsupported : {"structural_tag", "whitespace_pattern"}) {
    if (Present(params, unsupported)) {
      return InvalidParam(absl::StrCat("structured_outputs.", unsupported),
                          "is not supported");
    }
  }
  FieldReader f(params, "structured_outputs.");
  const bool json_object = f.Bool("json_object").value_or(false);
  // Accepted, with nothing to change: strict schemas already allow no
  // properties they do not list, and there is one backend to fall back to.
  f.Bool("disable_additional_properties");
  f.Bool("disable_fallback");
  out->output.any_whitespace = !f.Bool("disable_any_whitespace").value_or(false);
  if (!f.ok()) return f.status();

  int kinds = json_object ? 1 : 0;
  for (const char* name : {"json", "regex", "choice", "grammar"}) {
    kinds += Present(params, name) ? 1 : 0;
  }
  if (kinds != 1) {
    return InvalidParam("structured_outputs",
                        absl::StrCat("must ask for exactly one of json, regex, "
                                     "choice, grammar and json_object; got ",
                                     kinds));
  }
  if (json_object) {
    out->output.kind = Kind::kJsonObject;
    out->param = "structured_outputs.json_object";
    return absl::OkStatus();
  }
  if (Present(params, "json")) {
    return ReadSchema(params["json"], "structured_outputs.json", out);
  }
  if (Present(params, "regex")) {
    return ReadString(params["regex"], Kind::kRegex, "structured_outputs.regex",
                      out);
  }
  if (Present(params, "choice")) {
    return ReadChoices(params["choice"], "structured_outputs.choice", out);
  }
  return ReadString(params["grammar"], Kind::kGrammar,
                    "structured_outputs.grammar", out);
}

}  // namespace

absl::StatusOr<RequestedStructure> ParseStructuredOutput(const Json& body) {
  // Each field that may ask for a constraint; at most one may be given.
  const char* const kSources[] = {"response_format", "structured_outputs",
                                  "guided_json",     "guided_regex",
                                  "guided_choice",   "guided_grammar"};
  std::vector<std::string> given;
  for (const char* name : kSources) {
    if (!Present(body, name)) continue;
    // {"type": "text"} asks for nothing and conflicts with nothing.
    if (std::string_view(name) == "response_format" && body[name].is_object() &&
        body[name].value("type", Json()) == "text") {
      continue;
    }
    given.push_back(name);
  }
  if (Present(body, "guided_whitespace_pattern")) {
    return InvalidParam("guided_whitespace_pattern", "is not supported");
  }
  if (auto backend = body.find("guided_decoding_backend");
      backend != body.end() && !backend->is_null() && !backend->is_string()) {
    return InvalidParam("guided_decoding_backend", "must be a string");
  }
  RequestedStructure out;
  if (given.empty()) return out;
  if (given.size() > 1) {
    return InvalidParam(given[1], absl::StrCat("cannot be combined with ",
                                               given[0], ": ask for one "
                                               "constraint at a time"));
  }
  const std::string& name = given[0];
  const Json& value = body[name];
  absl::Status status;
  if (name == "response_format") {
    status = ReadResponseFormat(value, &out);
  } else if (name == "structured_outputs") {
    status = ReadStructuredOutputs(value, &out);
  } else if (name == "guided_json") {
    status = ReadSchema(value, name, &out);
  } else if (name == "guided_regex") {
    status = ReadString(value, Kind::kRegex, name, &out);
  } else if (name == "guided_choice") {
    status = ReadChoices(value, name, &out);
  } else {
    status = ReadString(value, Kind::kGrammar, name, &out);
  }
  if (!status.ok()) return status;
  return out;
}

absl::Status CompileStructuredOutput(const RequestedStructure& structure,
                                     const ServedModel& model, Request* request) {
  if (!structure.output.enabled()) return absl::OkStatus();
  absl::Status status = CompileGrammar(structure.output, structure.param, model, request);
  if (!status.ok()) return WithParam(std::move(status), structure.param);
  return absl::OkStatus();
}

}  // namespace weft
