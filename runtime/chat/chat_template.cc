#include "runtime/chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_interpreter.h"
#include "runtime/chat/jinja_parser.h"

namespace weft {
namespace {

using jinja::Value;
using Json = nlohmann::ordered_json;

// What transformers does to each message before rendering: keys whose value
// is null are dropped (_normalize_chat_messages), and a message with
// reasoning under any of its names gets it as "thinking" (first) and
// "reasoning_content" (_alias_reasoning_fields).
absl::StatusOr<Value> PrepareMessages(const Json& messages) {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages: must be an array");
  Json prepared = Json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    if (!m.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "]: must be an object"));
    }
    Json kept = Json::object();
    for (const auto& [key, value] : m.items()) {
      if (!value.is_null()) kept[key] = value;
    }
    const Json* reasoning = nullptr;
    for (const char* field : {"reasoning_content", "thinking", "reasoning"}) {
      if (kept.contains(field)) {
        reasoning = &kept[field];
        break;
      }
    }
    if (reasoning != nullptr) {
      const Json value = *reasoning;
      Json aliased = Json::object();
      aliased["thinking"] = value;
      for (const auto& [key, v] : kept.items()) aliased[key] = v;
      aliased["reasoning_content"] = value;
      kept = std::move(aliased);
    }
    prepared.push_back(std::move(kept));
  }
  return Value::FromJson(prepared);
}

}  // namespace

// Requests nest data this deep at most; deeper input (a client's tools, say)
// is refused rather than walked recursively.
absl::Status CheckJsonDepth(const Json& json, absl::string_view field) {
  std::vector<std::pair<const Json*, int>> stack = {{&json, 1}};
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth > kMaxChatInputDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": nested deeper than ", kMaxChatInputDepth, " levels"));
    }
    for (const Json& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return absl::OkStatus();
}

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Create(absl::string_view source,
                                                                   std::string bos_token,
                                                                   std::string eos_token) {
  absl::StatusOr<std::unique_ptr<jinja::Template>> parsed = jinja::Parse(source);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<ChatTemplate> t(new ChatTemplate());
  t->source_ = std::string(source);
  t->bos_token_ = std::move(bos_token);
  t->eos_token_ = std::move(eos_token);
  t->template_ = *std::move(parsed);
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& inputs) const {
  return RenderAt(inputs, std::nullopt);
}

absl::StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& inputs,
                                                 absl::CivilSecond now) const {
  return RenderAt(inputs, now);
}

absl::StatusOr<std::string> ChatTemplate::RenderAt(const ChatTemplateInputs& inputs,
                                                   std::optional<absl::CivilSecond> now) const {
  if (auto s = CheckJsonDepth(inputs.messages, "messages"); !s.ok()) return s;
  if (auto s = CheckJsonDepth(inputs.tools, "tools"); !s.ok()) return s;
  if (auto s = CheckJsonDepth(inputs.extra, "chat_template_kwargs"); !s.ok()) return s;
  absl::StatusOr<Value> messages = PrepareMessages(inputs.messages);
  if (!messages.ok()) return messages.status();
  if (!inputs.tools.is_null() && !inputs.tools.is_array()) {
    return absl::InvalidArgumentError("tools: must be an array or null");
  }
  if (!inputs.extra.is_object()) {
    return absl::InvalidArgumentError("chat_template_kwargs: must be an object");
  }
  // transformers passes the special tokens, then these; chat_template_kwargs
  // may override any of them.
  std::vector<std::pair<std::string, Value>> variables = {
      {"bos_token", Value::String(bos_token_)},
      {"eos_token", Value::String(eos_token_)},
      {"messages", *std::move(messages)},
      {"tools", Value::FromJson(inputs.tools)},
      {"documents", Value::None()},
      {"add_generation_prompt", Value::Bool(inputs.add_generation_prompt)},
  };
  for (const auto& [key, value] : inputs.extra.items()) {
    variables.emplace_back(key, Value::FromJson(value));
  }
  jinja::Interpreter interpreter(*template_, std::move(variables), now);
  absl::StatusOr<std::string> text = interpreter.Render();
  if (!text.ok()) {
    // raise_exception's message is the template's own words for the user.
    return absl::InvalidArgumentError(text.status().message());
  }
  return text;
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> LoadChatTemplate(const ModelFiles& files,
                                                               const std::string& override_path) {
  std::string source = files.chat_template();
  std::string origin = "the model's chat template";
  if (!override_path.empty()) {
    std::ifstream in(override_path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("cannot read the chat template file '", override_path, "'"));
    }
    std::stringstream text;
    text << in.rdbuf();
    source = text.str();
    origin = absl::StrCat("--chat_template '", override_path, "'");
  }
  if (source.empty()) {
    if (!override_path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(origin, " is empty"));
    }
    return std::unique_ptr<ChatTemplate>();
  }
  const Tokenizer& tokenizer = files.tokenizer();
  auto piece = [&tokenizer](int32_t id) -> std::string {
    if (id < 0) return "";
    const int32_t ids[] = {id};
    return tokenizer.Decode(ids, /*skip_special_tokens=*/false);
  };
  absl::StatusOr<std::unique_ptr<ChatTemplate>> t =
      ChatTemplate::Create(source, piece(tokenizer.bos_id()), piece(tokenizer.eos_id()));
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat(origin, ": ", t.status().message()));
  }
  return t;
}

absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const ChatTemplate& chat_template,
                                                      const Tokenizer& tokenizer,
                                                      const ChatTemplateInputs& inputs) {
  absl::StatusOr<std::string> text = chat_template.Render(inputs);
  if (!text.ok()) return text.status();
  EncodeOptions options;
  options.parse_special = true;
  options.add_special_tokens = false;
  return tokenizer.Encode(*text, options);
}

}  // namespace weft
