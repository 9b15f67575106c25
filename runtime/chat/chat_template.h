// Chat templates: the model's own Jinja template (GGUF
// `tokenizer.chat_template`, `chat_template` in tokenizer_config.json, or a
// file given with --chat-template) rendered by weft's Jinja-subset
// interpreter (runtime/chat/jinja_*), which renders byte for byte what
// Python jinja2 renders when configured the way Hugging Face transformers'
// apply_chat_template configures it: ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, the loopcontrols extension, transformers'
// `tojson` (json.dumps, ensure_ascii=False, no key sorting),
// `raise_exception`, `strftime_now` and `namespace`. docs/chat.md lists what
// the interpreter supports; anything else fails at Create, naming the
// construct and its line.
#ifndef WEFT_RUNTIME_CHAT_CHAT_TEMPLATE_H_
#define WEFT_RUNTIME_CHAT_CHAT_TEMPLATE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "runtime/model/model_files.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {

namespace jinja {
struct Template;
}  // namespace jinja

// What a template sees. Keys whose value is null are dropped from each
// message, as transformers does (OpenAI clients send "content": null on
// assistant tool-call messages).
struct ChatTemplateInputs {
  // [{"role": .., "content": .., ...}] as OpenAI sends them.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // null, or the array of tool definitions.
  nlohmann::ordered_json tools;
  bool add_generation_prompt = true;
  // More top-level variables (chat_template_kwargs); they override the
  // ones above of the same name, as in transformers.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses once; an unsupported construct → InvalidArgument naming it and
  // its line.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Create(absl::string_view source,
                                                              std::string bos_token,
                                                              std::string eos_token);
  ~ChatTemplate();

  // Const and thread-safe. raise_exception(msg) → InvalidArgument(msg);
  // other render errors → InvalidArgument.
  absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const;
  // The same with strftime_now() seeing `now` (a local civil time) instead
  // of the clock, for renderings that must be reproducible (tests).
  absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs, absl::CivilSecond now) const;

  const std::string& source() const { return source_; }

 private:
  ChatTemplate() = default;
  absl::StatusOr<std::string> RenderAt(const ChatTemplateInputs& inputs,
                                       std::optional<absl::CivilSecond> now) const;

  std::string source_;
  std::string bos_token_;
  std::string eos_token_;
  std::unique_ptr<jinja::Template> template_;
};

// Chat inputs nest this deep at most (real ones nest a few levels); deeper
// data is refused rather than walked recursively.
inline constexpr int kMaxChatInputDepth = 64;
// InvalidArgument naming `field` when `json` nests deeper than kMaxChatInputDepth.
absl::Status CheckJsonDepth(const nlohmann::ordered_json& json, absl::string_view field);

// The served template: the file at `override_path` when non-empty, else the
// model's own; nullptr (OK status) when neither exists. BOS/EOS are the
// tokenizer's.
absl::StatusOr<std::unique_ptr<ChatTemplate>> LoadChatTemplate(const ModelFiles& files,
                                                               const std::string& override_path);

// Renders and tokenizes a chat prompt the way vLLM does: special tokens in
// the rendered text are parsed, no extra BOS is added (the template writes
// it).
absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const ChatTemplate& chat_template,
                                                      const Tokenizer& tokenizer,
                                                      const ChatTemplateInputs& inputs);

}  // namespace weft

#endif  // WEFT_RUNTIME_CHAT_CHAT_TEMPLATE_H_
