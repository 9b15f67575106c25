// OpenAI request bodies → runtime::Request, for /v1/completions here and
// /v1/chat/completions in openai_chat.h. Everything is validated before the
// request is queued; a failure is INVALID_ARGUMENT (NOT_FOUND for an unknown
// model) carrying the offending field as `param` (server/openai_errors.h).
//
// Accepted fields, defaults and ranges are listed in docs/http.md. Fields
// this server does not know are ignored (as vLLM does); known fields it
// cannot honour (e.g. `suffix`, `best_of` > n) are refused.
#ifndef WEFT_SERVER_OPENAI_REQUEST_H_
#define WEFT_SERVER_OPENAI_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/request.h"
#include "server/openai_structured.h"
#include "server/request_conversion.h"

namespace weft {

using Json = nlohmann::ordered_json;

enum class OpenAiApi { kCompletions, kChatCompletions };

// Default max_tokens of /v1/completions (OpenAI's and vLLM's), capped by
// what fits in the context. Chat defaults to all that fits.
inline constexpr int kDefaultCompletionMaxTokens = 16;

// At most this many prompts in one completions request (OpenAI allows
// several; each runs as its own engine request).
inline constexpr int kMaxPrompts = 256;
// echo with logprobs returns, per choice, each prompt token's log-prob and
// its alternatives: at most this many values (prompt tokens × n ×
// (logprobs + 1)) in one request, which bounds the response's size.
inline constexpr int64_t kMaxPromptLogprobValues = int64_t{1} << 20;

// A completions prompt after the first of a batch (the first is `request`).
struct OpenAiPrompt {
  std::vector<int32_t> ids;
  std::string echo_text;  // when echo
  int max_tokens = 0;     // resolved against this prompt's room
};

struct OpenAiRequest {
  OpenAiApi api = OpenAiApi::kCompletions;
  // Prompt ids, sampling, stopping and priority; the server sets id and
  // tenant.
  Request request;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // stream_options.continuous_usage_stats (vLLM's): with include_usage,
  // every chunk carries the usage so far.
  bool continuous_usage = false;
  bool logprobs = false;       // report each token's log-prob
  int top_logprobs = 0;        // alternatives per token, when logprobs
  // Completions only: the prompt's text, returned before the completion.
  // With logprobs too, the logprobs object starts with the prompt's tokens
  // (request.sampling.prompt_logprobs is set; the first token has none).
  bool echo = false;
  std::string echo_text;
  // Completions with echo and max_tokens 0 (OpenAI's legacy way of scoring
  // a text, and vLLM's): the response holds the prompt only. The engine
  // still generates one token (request.stopping.max_tokens is 1), which
  // the response leaves out, as vLLM does.
  bool echo_only = false;
  // vLLM's prompt_logprobs (both APIs, not streamed): every prompt token's
  // log-prob, rank and this many alternatives in the response; -1: none.
  int prompt_logprobs = -1;
  // Chat with `tools` (tool_choice "auto", the default) on a server that
  // parses tool calls: the format the response looks for them in.
  ToolCallFormat tool_call_format = ToolCallFormat::kNone;
  // tool_choice naming a function (tool_call_format kNamedFunction).
  std::string tool_choice_function;
  // Tool-call ids in Mistral's form (9 letters and digits), which its chat
  // templates check: set for the mistral format and for forced calls on a
  // model that uses it.
  bool mistral_tool_call_ids = false;
  // Completions whose `prompt` is an array of strings or of token-id
  // arrays: the prompts after the first. Each runs as its own engine
  // request with `request`'s parameters; choice p·n + i of the response is
  // prompt p's sample i (OpenAI's and vLLM's order).
  std::vector<OpenAiPrompt> more_prompts;
  // response_format / structured_outputs / guided_*: compiled into
  // request.grammar once the rest of the request is valid.
  RequestedStructure structure;

  int num_prompts() const { return 1 + static_cast<int>(more_prompts.size()); }
  // Prompt p's engine request (0: `request`), id and tenant as `request`'s.
  Request PromptRequest(int p) const;
  const std::vector<int32_t>& PromptIds(int p) const;
  const std::string& EchoText(int p) const;
};

// Parses JSON text nested at most 64 deep (deeper text is refused before
// parsing), with at most 1024 keys in any object and 2^20 values in all
// (the parse stops at the cap: ordered_json's inserts are linear, so an
// uncapped object of K keys would cost O(K²)); INVALID_ARGUMENT "is not
// valid JSON: <why>", "nests deeper than 64 levels", "has an object with
// more than 1024 keys" or "has more than 1048576 JSON values".
absl::StatusOr<Json> ParseJson(absl::string_view text);
// The same for a request body, which must be an object.
absl::StatusOr<Json> ParseJsonObject(absl::string_view body);

// Sampling and stopping fields shared by both APIs (everything but the
// prompt, max_tokens and logprobs), into `out->request`.
absl::Status ParseCommonFields(const Json& body, const ServedModel& model,
                               OpenAiRequest* out);

// Sets stopping.max_tokens from `requested` (what the client asked for, if
// anything) or `default_max_tokens` (nullopt: all that fits), once the
// prompt is known. `prompt_param` names the prompt field in errors.
absl::Status ResolveMaxTokens(std::optional<int64_t> requested,
                              absl::string_view requested_param,
                              std::optional<int> default_max_tokens,
                              absl::string_view prompt_param,
                              const ServedModel& model, Request* request,
                              absl::string_view prompt_label = "the prompt");

// A JSON array of token ids in [0, vocab): INVALID_ARGUMENT naming
// `param`, its message starting with `what` ("prompt 2"; may be empty).
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const Json& ids, absl::string_view param,
                                                   absl::string_view what,
                                                   const ServedModel& model);

// The runtime's own checks of the sampling and stopping parameters, with
// the field they name as `param`.
absl::Status ValidateRuntimeParams(const ServedModel& model,
                                   const Request& request);
// The prompt log-probs a response would hold (echo with logprobs; vLLM's
// prompt_logprobs), at most kMaxPromptLogprobValues; also sets the
// engine's sampling.prompt_logprobs to the most alternatives asked for.
absl::Status ResolvePromptLogprobs(OpenAiRequest* request);

absl::StatusOr<OpenAiRequest> ParseCompletionRequest(absl::string_view body,
                                                     const ServedModel& model);

// Reads typed optional fields of one JSON object, keeping the first error.
// Absent and null fields read as nullopt.
class FieldReader {
 public:
  // `prefix` is prepended to field names in errors ("stream_options.").
  explicit FieldReader(const Json& object, std::string prefix = "")
      : object_(object), prefix_(std::move(prefix)) {}

  // nullptr when absent or null.
  const Json* Find(absl::string_view name) const;
  // Numbers in [lo, hi].
  std::optional<double> Number(absl::string_view name, double lo, double hi);
  // Integers in [lo, hi] (a float with an integral value is accepted).
  std::optional<int64_t> Integer(absl::string_view name, int64_t lo,
                                 int64_t hi);
  std::optional<bool> Bool(absl::string_view name);
  std::optional<std::string> String(absl::string_view name);
  // Records `status` unless an earlier error is recorded.
  void Fail(absl::Status status);
  std::string Param(absl::string_view name) const;

  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

 private:
  const Json& object_;
  std::string prefix_;
  absl::Status status_;
};

// "string", "number", … for errors.
const char* JsonTypeName(const Json& value);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_REQUEST_H_
