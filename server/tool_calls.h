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
// Text that looks like a call but does not parse stays content, word for
// word: nothing the model wrote is lost.
#ifndef WEFT_SERVER_TOOL_CALLS_H_
#define WEFT_SERVER_TOOL_CALLS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace weft {

enum class ToolCallFormat { kNone, kHermes, kLlama3Json, kMistral };

// "none", "hermes", "llama3_json", "mistral"; nullopt for anything else.
std::optional<ToolCallFormat> ToolCallFormatFromName(absl::string_view name);
const char* ToolCallFormatName(ToolCallFormat format);
// The format a chat template tells its model to call tools in, from the
// instructions and tool-call rendering it contains; kNone when it shows
// none of the three (e.g. SmolLM2's, or formats weft does not parse).
ToolCallFormat DetectToolCallFormat(absl::string_view template_source);
// Whether the format's markers are special tokens the text must keep.
bool KeepsSpecialTokens(ToolCallFormat format);

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
  explicit ToolCallParser(ToolCallFormat format) : format_(format) {}

  struct Output {
    std::string content;  // text to show now
    std::vector<ToolCall> calls;  // calls completed now
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
  std::string pending_;  // held back
  // kInCall: hermes inside <tool_call>; llama3_json: decided to be content.
  // kHeldToEnd: llama3_json calls, mistral after [TOOL_CALLS].
  enum class State { kContent, kInCall, kHeldToEnd } state_ = State::kContent;
  bool trim_spaces_ = false;  // hermes: a call just ended
};

}  // namespace weft

#endif  // WEFT_SERVER_TOOL_CALLS_H_
