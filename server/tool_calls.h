// Tool calls in a chat model's output, as vLLM's tool-call parsers find
// them, for /v1/chat/completions with `tools` (docs/http.md):
//
// - hermes (Qwen2.5, Qwen3, Hermes 2 Pro / 3, Granite 4):
//   <tool_call>{"name": …, "arguments": {…}}</tool_call>, any number,
//   text around them is content;
// - llama3_json (Llama 3.1 / 3.2 / 3.3): the whole output is one or more
//   {"name": …, "parameters": {…}} objects separated by ";" (after an
//   optional <|python_tag|>); anything else is content;
// - mistral (Mistral Nemo, Small, Devstral): [TOOL_CALLS] followed by a
//   JSON array of {"name", "arguments"} (tokenizer v3) or by
//   name[ARGS]{…} (v11 on), each call after its own [TOOL_CALLS];
//   [TOOL_CALLS] and [ARGS] are special tokens, so requests parsed this
//   way keep special tokens in their text.
//
// A call is a JSON object with a "name" (letters, digits, _ . : -) and its
// "arguments" (or "parameters"): an object, or JSON text of one. Text that
// looks like a call but is not one stays content, word for word: nothing
// the model wrote is lost.
#ifndef WEFT_SERVER_TOOL_CALLS_H_
#define WEFT_SERVER_TOOL_CALLS_H_

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {

enum class ToolCallFormat {
  kNone,
  kHermes,
  kLlama3Json,
  kMistral,
  // Per request, for a tool_choice whose output a grammar forces
  // (server/openai_chat.cc), whatever the model's own format:
  kRequiredArray,  // "required": [{"name": …, "parameters": {…}}, …]
  kNamedFunction,  // a named function: the output is its arguments
};

// "none", "hermes", "llama3_json", "mistral" (the --tool_call_parser
// values); nullopt for anything else.
std::optional<ToolCallFormat> ToolCallFormatFromName(absl::string_view name);
const char* ToolCallFormatName(ToolCallFormat format);
// The format a chat template tells its model to call tools in, from the
// instructions and tool-call rendering it contains; kNone when it shows
// none of the three (e.g. SmolLM2's, or formats weft does not parse).
ToolCallFormat DetectToolCallFormat(absl::string_view template_source);
// Whether the format's markers are special tokens of `tokenizer`, which
// the text must then keep (skip_special_tokens off, as vLLM does):
// mistral's [TOOL_CALLS], hermes's <tool_call> in some tokenizers.
bool ToolCallMarkersAreSpecial(ToolCallFormat format, const Tokenizer& tokenizer);

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of the arguments object
  friend bool operator==(const ToolCall&, const ToolCall&) = default;
};

// One choice's generated text, fed as it streams, split into content and
// tool calls. Feeding the text in any pieces gives the same result as
// feeding it whole.
class ToolCallParser {
 public:
  // `function`: kNamedFunction's name.
  explicit ToolCallParser(ToolCallFormat format, std::string function = "")
      : format_(format), function_(std::move(function)) {}

  // What can be shown now, in the order the model wrote it: content
  // pieces and completed calls.
  struct Output {
    std::vector<std::variant<std::string, ToolCall>> items;
    void Content(absl::string_view text);  // appends, merging with the last
    // All content, all calls.
    std::string JoinedContent() const;
    std::vector<ToolCall> Calls() const;
  };
  // More text: the content that can be shown now (a part that may still
  // become a call is held back) and the calls it completed.
  Output Add(absl::string_view text);
  // The end of the text: what was held back, as calls or as content.
  Output Finish();

 private:
  void AddHermes(Output* out);
  void AddOpening(absl::string_view marker, Output* out);  // llama3, mistral
  void FinishHermesCall(absl::string_view body, bool closed, Output* out);
  void EmitContent(absl::string_view text, Output* out);

  const ToolCallFormat format_;
  const std::string function_;
  std::string pending_;  // held back
  // kInCall: hermes inside <tool_call>; llama3_json: decided to be content.
  // kHeldToEnd: llama3_json calls, mistral after [TOOL_CALLS].
  enum class State { kContent, kInCall, kHeldToEnd } state_ = State::kContent;
  bool trim_spaces_ = false;  // hermes: a call just ended
  size_t scanned_ = 0;  // hermes in a call: pending_ searched this far
};

}  // namespace weft

#endif  // WEFT_SERVER_TOOL_CALLS_H_
