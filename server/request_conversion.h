// weft.v1 messages ↔ runtime types. Every request is validated here, before
// it is queued: INVALID_ARGUMENT with the offending field named in the
// proto's terms (e.g. "sampling.top_p", "prompt.token_ids[3]").
#ifndef WEFT_SERVER_REQUEST_CONVERSION_H_
#define WEFT_SERVER_REQUEST_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/chat_template.h"
#include "server/tool_calls.h"
#include "runtime/request.h"
#include "runtime/tokenizer/tokenizer.h"
#include "weft/v1/generation.pb.h"

namespace weft {

// What validation needs to know of the served model.
struct ServedModel {
  std::string name;
  std::string architecture;
  const Tokenizer* tokenizer = nullptr;
  int vocab_size = 0;
  int max_model_len = 0;
  int max_n = 16;
  // The chat template prompts are rendered with (weft.v1 Chat, OpenAI
  // /v1/chat/completions); nullptr when the model has none and no
  // --chat_template was given.
  const ChatTemplate* chat_template = nullptr;
  // How the model writes tool calls (--tool_call_parser; by default what
  // its chat template shows): chat completions with `tools` are parsed
  // for them (server/tool_calls.h). kNone: calls stay message text.
  ToolCallFormat tool_call_format = ToolCallFormat::kNone;
  // Compiles structured outputs (response_format, …) against the model's
  // vocabulary; nullptr: requests asking for one are refused.
  GrammarCompiler* grammars = nullptr;
};

inline constexpr int kMaxRequestIdBytes = 256;

// Compiles `output` with model.grammars into request->grammar; a failure's
// message starts with `field` ("structured_output", "response_format"):
// INVALID_ARGUMENT when it does not compile (or not in time),
// RESOURCE_EXHAUSTED when the compilers are busy, UNIMPLEMENTED when the
// server has no grammar compiler. Every API's structured output ends here.
absl::Status CompileGrammar(const StructuredOutput& output, absl::string_view field,
                            const ServedModel& model, Request* request);

// `assigned_id` is used when the request carries no request_id.
absl::StatusOr<Request> ToRuntimeRequest(const v1::GenerateRequest& proto,
                                         const ServedModel& model,
                                         const std::string& assigned_id);

// A ChatRequest's conversation, tools and kwargs as the chat template sees
// them (docs/chat.md): empty optional fields left out, tool-call arguments
// given as JSON text parsed into objects (as vLLM does for Hugging Face
// templates). INVALID_ARGUMENT names the field.
absl::StatusOr<ChatTemplateInputs> ToChatTemplateInputs(const v1::ChatRequest& proto);

// Chat: the conversation rendered with `model.chat_template`, tokenized
// (special tokens parsed, no BOS added), then validated and converted as a
// GenerateRequest with those token ids. FAILED_PRECONDITION without a chat
// template. `rendered_prompt`, when not null, receives the rendered text.
absl::StatusOr<Request> ToRuntimeRequest(const v1::ChatRequest& proto,
                                         const ServedModel& model,
                                         const std::string& assigned_id,
                                         std::string* rendered_prompt);

void ToProto(const Delta& delta, v1::Delta* out);
void ToProto(const SampleResult& result, int index, v1::SampleResult* out);
void ToProto(const Finished& finished, const std::string& request_id,
             v1::Final* out);

}  // namespace weft

#endif  // WEFT_SERVER_REQUEST_CONVERSION_H_
