#include "server/openai_tokenize.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/openai_chat.h"
#include "server/openai_errors.h"
#include "server/openai_response.h"

namespace weft {
namespace {

bool Present(const Json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

// 404 for another model's name.
absl::Status CheckModel(FieldReader& f, const ServedModel& model) {
  if (auto name = f.String("model"); name && *name != model.name) {
    return ModelNotFound(*name, model.name);
  }
  return f.status();
}

// Responses hold at most max_model_len tokens: what no request can exceed
// (a 16 MiB body of odd bytes would otherwise come back as gigabytes).
absl::Status CheckLength(size_t count, absl::string_view param, const ServedModel& model) {
  if (count <= static_cast<size_t>(model.max_model_len)) return absl::OkStatus();
  return WithErrorCode(
      WithParam(absl::InvalidArgumentError(absl::StrCat(
                    param, " has ", count, " tokens; this model's maximum context "
                    "length is ", model.max_model_len, " tokens")),
                std::string(param)),
      "context_length_exceeded");
}

}  // namespace

absl::StatusOr<Json> Tokenize(absl::string_view text, const ServedModel& model) {
  absl::StatusOr<Json> body = ParseJsonObject(text);
  if (!body.ok()) return body.status();
  FieldReader f(*body);
  if (auto s = CheckModel(f, model); !s.ok()) return s;
  const bool chat = Present(*body, "messages");
  if (chat == Present(*body, "prompt")) {
    return InvalidParam(chat ? "prompt" : "messages",
                        "give either prompt (text) or messages (a chat)");
  }
  const bool return_strs = f.Bool("return_token_strs").value_or(false);
  const std::optional<bool> add_special_tokens = f.Bool("add_special_tokens");
  if (chat && add_special_tokens.value_or(false)) {
    return InvalidParam("add_special_tokens",
                        "must be false with messages: the chat template writes the "
                        "special tokens (as chat completions use it)");
  }
  std::vector<int32_t> ids;
  if (chat) {
    absl::StatusOr<ChatTemplateInputs> inputs = ParseChatInputs(*body);
    if (!inputs.ok()) return inputs.status();
    absl::StatusOr<std::vector<int32_t>> rendered = RenderChat(*inputs, model);
    if (!rendered.ok()) return rendered.status();
    ids = *std::move(rendered);
  } else {
    std::optional<std::string> prompt = f.String("prompt");
    EncodeOptions options;
    options.add_special_tokens = add_special_tokens.value_or(true);
    if (!f.ok()) return f.status();
    ids = model.tokenizer->Encode(*prompt, options);
  }
  if (!f.ok()) return f.status();
  if (auto s = CheckLength(ids.size(), chat ? "messages" : "prompt", model); !s.ok()) {
    return s;
  }
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
  FieldReader f(*body);
  if (auto s = CheckModel(f, model); !s.ok()) return s;
  if (!Present(*body, "tokens")) return InvalidParam("tokens", "is required");
  const Json& tokens = (*body)["tokens"];
  if (tokens.is_array()) {
    if (auto s = CheckLength(tokens.size(), "tokens", model); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIds(tokens, "tokens", "", model);
  if (!ids.ok()) return ids.status();
  return Json{{"prompt", model.tokenizer->Decode(*ids, /*skip_special_tokens=*/false)}};
}

}  // namespace weft
