// vLLM's /tokenize and /detokenize bodies, so that a client can count and
// split text with the served model's own tokenizer (and chat template)
// before it sends a request, e.g. to keep a conversation inside the
// context:
//
//   POST /tokenize {"prompt": "…", "add_special_tokens": true}
//   POST /tokenize {"messages": [...], "add_generation_prompt": true, …}
//     → {"count": n, "max_model_len": L, "tokens": [ids],
//        "token_strs": [...] with "return_token_strs": true}
//   POST /detokenize {"tokens": [ids]} → {"prompt": "…"}
//
// The chat form renders the messages exactly as /v1/chat/completions does
// (the same ParseChatInputs and template), so its count is the prompt
// tokens a chat completion would report.
#ifndef WEFT_SERVER_OPENAI_TOKENIZE_H_
#define WEFT_SERVER_OPENAI_TOKENIZE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/openai_request.h"
#include "server/request_conversion.h"

namespace weft {

// The response object, or INVALID_ARGUMENT naming the field.
absl::StatusOr<Json> Tokenize(absl::string_view body, const ServedModel& model);
absl::StatusOr<Json> Detokenize(absl::string_view body, const ServedModel& model);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_TOKENIZE_H_
