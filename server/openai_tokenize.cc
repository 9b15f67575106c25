#include "server/openai_tokenize.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/openai_chat.h"
#include "server/openai_errors.h"
#include "server/openai_response.h"

namespace weft {
namespace {

// Token ids in [0, vocab) from an array field.
absl::StatusOr<std::vector<int32_t>> TokenIds(const Json& ids, absl::string_view param,
                                              const ServedModel& model) {
  if (!ids.is_array()) {
    return InvalidParam(param, "must be an array of token ids");
  }
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 ||
        ids[i].get<int64_t>() >= model.vocab_size) {
      return InvalidParam(param, absl::StrCat("token ", i, " is not a token id in [0, ",
                                              model.vocab_size, ")"));
    }
    out.push_back(ids[i].get<int32_t>());
  }
  return out;
}

}  // namespace

absl::StatusOr<Json> Tokenize(absl::string_view text, const ServedModel& model) {
  absl::StatusOr<Json> body = ParseJsonObject(text);
  if (!body.ok()) return body.status();
  FieldReader f(*body);
  if (auto name = f.String("model"); name && *name != model.name) {
    return WithErrorCode(
        WithParam(absl::NotFoundError(absl::StrCat("The model '", *name,
                                                   "' does not exist; this server "
                                                   "serves '", model.name, "'")),
                  "model"),
        "model_not_found");
  }
  const bool chat = body->contains("messages");
  if (chat == (body->contains("prompt") && !(*body)["prompt"].is_null())) {
    return InvalidParam(chat ? "prompt" : "messages",
                        "give either prompt (text) or messages (a chat)");
  }
  const bool return_strs = f.Bool("return_token_strs").value_or(false);
  std::vector<int32_t> ids;
  if (chat) {
    if (model.chat_template == nullptr) {
      return WithParam(absl::FailedPreconditionError(
                           "this model has no chat template: start weft-server "
                           "with --chat-template <file>"),
                       "messages");
    }
    absl::StatusOr<ChatTemplateInputs> inputs = ParseChatInputs(*body);
    if (!inputs.ok()) return inputs.status();
    absl::StatusOr<std::vector<int32_t>> encoded =
        EncodeChatPrompt(*model.chat_template, *model.tokenizer, *inputs);
    if (!encoded.ok()) {
      absl::Status status = encoded.status();
      if (!ParamOf(status)) status = WithParam(std::move(status), "messages");
      return status;
    }
    ids = *std::move(encoded);
  } else {
    std::optional<std::string> prompt = f.String("prompt");
    EncodeOptions options;
    options.add_special_tokens = f.Bool("add_special_tokens").value_or(true);
    if (!f.ok()) return f.status();
    ids = model.tokenizer->Encode(*prompt, options);
  }
  if (!f.ok()) return f.status();
  Json out = {{"count", ids.size()},
              {"max_model_len", model.max_model_len},
              {"tokens", ids}};
  if (return_strs) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(TokenString(*model.tokenizer, id));
    out["token_strs"] = std::move(strs);
  }
  return out;
}

absl::StatusOr<Json> Detokenize(absl::string_view text, const ServedModel& model) {
  absl::StatusOr<Json> body = ParseJsonObject(text);
  if (!body.ok()) return body.status();
  auto tokens = body->find("tokens");
  if (tokens == body->end() || tokens->is_null()) {
    return InvalidParam("tokens", "is required");
  }
  absl::StatusOr<std::vector<int32_t>> ids = TokenIds(*tokens, "tokens", model);
  if (!ids.ok()) return ids.status();
  return Json{{"prompt", model.tokenizer->Decode(*ids, /*skip_special_tokens=*/false)}};
}

}  // namespace weft
