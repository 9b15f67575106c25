// weft.v1 messages ↔ runtime types. Every request is validated here, before
// it is queued: INVALID_ARGUMENT with the offending field named in the
// proto's terms (e.g. "sampling.top_p", "prompt.token_ids[3]").
#ifndef WEFT_SERVER_REQUEST_CONVERSION_H_
#define WEFT_SERVER_REQUEST_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "runtime/chat/chat_template.h"
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
};

inline constexpr int kMaxRequestIdBytes = 256;

// `assigned_id` is used when the request carries no request_id.
absl::StatusOr<Request> ToRuntimeRequest(const v1::GenerateRequest& proto,
                                         const ServedModel& model,
                                         const std::string& assigned_id);

void ToProto(const Delta& delta, v1::Delta* out);
void ToProto(const Finished& finished, const std::string& request_id,
             v1::Final* out);

}  // namespace weft

#endif  // WEFT_SERVER_REQUEST_CONVERSION_H_
