// /v1/chat/completions bodies → runtime::Request: the messages (and tools,
// chat_template_kwargs, add_generation_prompt) rendered by the served
// model's chat template (runtime/chat/chat_template.h) and tokenized, plus
// the fields shared with /v1/completions (openai_request.h).
#ifndef WEFT_SERVER_OPENAI_CHAT_H_
#define WEFT_SERVER_OPENAI_CHAT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/chat_template.h"
#include "server/openai_request.h"
#include "server/request_conversion.h"

namespace weft {

// The template's inputs from a chat body: messages checked (role, content)
// with text content parts joined by "\n" (vLLM's "string" content format),
// tools, add_generation_prompt and chat_template_kwargs.
absl::StatusOr<ChatTemplateInputs> ParseChatInputs(const Json& body);

// The served template's rendering of `inputs`, tokenized (no BOS added):
// FAILED_PRECONDITION naming --chat-template (+ `alternative`) without a
// template; a template error names "messages" unless it names a field.
absl::StatusOr<std::vector<int32_t>> RenderChat(const ChatTemplateInputs& inputs,
                                                const ServedModel& model,
                                                absl::string_view alternative = "");

// FAILED_PRECONDITION (400) naming --chat-template when the model has no
// chat template.
absl::StatusOr<OpenAiRequest> ParseChatRequest(absl::string_view body,
                                               const ServedModel& model);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_CHAT_H_
