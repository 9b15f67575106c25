// OpenAI's tool_choice on /v1/chat/completions: "none", "auto" (the
// default), "required", or {"type": "function", "function": {"name": …}}.
// The last two are kept by a grammar, as vLLM does: "required" makes the
// output a JSON array of {"name", "parameters"} objects, one of the
// offered tools each (at least one call); a named function makes the
// output that function's arguments, an object of its parameters' schema.
#ifndef WEFT_SERVER_OPENAI_TOOL_CHOICE_H_
#define WEFT_SERVER_OPENAI_TOOL_CHOICE_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace weft {

struct ToolChoice {
  enum class Mode { kAuto, kNone, kRequired, kNamed };
  Mode mode = Mode::kAuto;
  std::string function;  // kNamed
};

// INVALID_ARGUMENT (param "tool_choice") for another value, for
// "required" or a name without `tools`, and for a name no tool has.
// `tools`: the request's tools (null or an array).
absl::StatusOr<ToolChoice> ParseToolChoice(const nlohmann::ordered_json& body,
                                           const nlohmann::ordered_json& tools);

// The JSON schema (as text) the output must match for kRequired or kNamed
// (`parallel` false: "required" makes exactly one call, as OpenAI's
// parallel_tool_calls: false asks); INVALID_ARGUMENT naming the tools[i]
// field that is malformed.
absl::StatusOr<std::string> ToolChoiceSchema(const ToolChoice& choice,
                                             const nlohmann::ordered_json& tools,
                                             bool parallel = true);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_TOOL_CHOICE_H_
