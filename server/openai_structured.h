// Structured output on the OpenAI API: what a request asks its output to
// match, read from OpenAI's `response_format`, vLLM's `structured_outputs`
// or vLLM's older `guided_*` fields (one of them per request), then
// compiled with the served model's GrammarCompiler before the request is
// queued. docs/http.md lists the forms.
#ifndef WEFT_SERVER_OPENAI_STRUCTURED_H_
#define WEFT_SERVER_OPENAI_STRUCTURED_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "runtime/grammar.h"
#include "runtime/request.h"
#include "server/request_conversion.h"

namespace weft {

// A structured output and the request field it came from (for errors).
struct RequestedStructure {
  StructuredOutput output;
  std::string param;  // "response_format", "structured_outputs.json", …
};

// The body's constraint, if any (kind kNone when there is none).
// INVALID_ARGUMENT naming the field for a malformed one, for more than one
// field asking for a constraint, and for forms weft does not serve
// (structural tags, whitespace patterns).
absl::StatusOr<RequestedStructure> ParseStructuredOutput(
    const nlohmann::ordered_json& body);

// Compiles `structure` (when it asks for anything) into request->grammar:
// INVALID_ARGUMENT naming its field when the schema, expression or grammar
// does not compile; UNIMPLEMENTED when the server has no grammar compiler.
absl::Status CompileStructuredOutput(const RequestedStructure& structure,
                                     const ServedModel& model, Request* request);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_STRUCTURED_H_
