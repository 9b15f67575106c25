#include "server/tool_calls.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/openai_request.h"

namespace weft {
namespace {

constexpr absl::string_view kHermesOpen = "<tool_call>";
constexpr absl::string_view kHermesClose = "</tool_call>";
constexpr absl::string_view kPythonTag = "<|python_tag|>";
constexpr absl::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr absl::string_view kMistralArgs = "[ARGS]";
constexpr absl::string_view kMistralCallId = "[CALL_ID]";

// The length of the longest suffix of `text` that is a proper prefix of
// `marker`: text that may still become the marker.
size_t PartialMarker(absl::string_view text, absl::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (absl::EndsWith(text, marker.substr(0, n))) return n;
  }
  return 0;
}

// The end of the JSON object or array `text` starts with (one past its
// closing bracket), or npos when it does not close in `text`.
size_t JsonValueEnd(absl::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return absl::string_view::npos;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' &&
        c != ':' && c != '-') {
      return false;
    }
  }
  return true;
}

// A call's arguments as JSON text: an object, or a string holding one.
std::optional<std::string> ArgumentsText(const Json& arguments) {
  if (arguments.is_object()) {
    return arguments.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  if (!arguments.is_string()) return std::nullopt;
  absl::StatusOr<Json> parsed = ParseJson(arguments.get<std::string>());
  if (!parsed.ok() || !parsed->is_object()) return std::nullopt;
  return arguments.get<std::string>();
}

// {"name": "…", "arguments" (or "parameters"): {…}}: both are needed (a
// JSON answer that happens to have a "name" is not a call; vLLM's parsers
// need the arguments too).
std::optional<ToolCall> CallFromJson(const Json& call) {
  if (!call.is_object()) return std::nullopt;
  auto name = call.find("name");
  if (name == call.end() || !name->is_string() || !ValidName(name->get<std::string>())) {
    return std::nullopt;
  }
  auto arguments = call.find("arguments");
  if (arguments == call.end()) arguments = call.find("parameters");
  if (arguments == call.end()) return std::nullopt;
  std::optional<std::string> text = ArgumentsText(*arguments);
  if (!text) return std::nullopt;
  return ToolCall{name->get<std::string>(), *std::move(text)};
}

// The JSON object or array at the start of `*text` (after spaces); moves
// `*text` past it.
std::optional<Json> TakeJson(absl::string_view* text) {
  *text = absl::StripLeadingAsciiWhitespace(*text);
  if (text->empty() || ((*text)[0] != '{' && (*text)[0] != '[')) return std::nullopt;
  const size_t end = JsonValueEnd(*text);
  if (end == absl::string_view::npos) return std::nullopt;
  absl::StatusOr<Json> json = ParseJson(text->substr(0, end));
  if (!json.ok()) return std::nullopt;
  text->remove_prefix(end);
  return *std::move(json);
}

std::optional<std::vector<ToolCall>> ParseLlama3(absl::string_view text) {
  text = absl::StripLeadingAsciiWhitespace(text);
  absl::ConsumePrefix(&text, kPythonTag);
  std::vector<ToolCall> calls;
  for (;;) {
    std::optional<Json> json = TakeJson(&text);
    if (!json) return std::nullopt;
    std::optional<ToolCall> call = CallFromJson(*json);
    if (!call) return std::nullopt;
    calls.push_back(*std::move(call));
    text = absl::StripLeadingAsciiWhitespace(text);
    if (text.empty()) return calls;
    if (!absl::ConsumePrefix(&text, ";")) return std::nullopt;
    if (absl::StripAsciiWhitespace(text).empty()) return calls;  // "…};"
  }
}

// What follows the first [TOOL_CALLS].
std::optional<std::vector<ToolCall>> ParseMistral(absl::string_view text) {
  std::vector<ToolCall> calls;
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(text), "[")) {
    std::optional<Json> json = TakeJson(&text);  // v3: one JSON array
    if (!json || !json->is_array() || json->empty() ||
        !absl::StripAsciiWhitespace(text).empty()) {
      return std::nullopt;
    }
    for (const Json& one : *json) {
      std::optional<ToolCall> call = CallFromJson(one);
      if (!call) return std::nullopt;
      calls.push_back(*std::move(call));
    }
    return calls;
  }
  for (;;) {  // v11: name[ARGS]{…} (or name[CALL_ID]id[ARGS]{…}), repeated
    const size_t args = text.find(kMistralArgs);
    if (args == absl::string_view::npos) return std::nullopt;
    absl::string_view head = text.substr(0, args);
    if (const size_t id = head.find(kMistralCallId); id != absl::string_view::npos) {
      head = head.substr(0, id);  // the model's own id: weft gives a fresh one
    }
    const std::string name(absl::StripAsciiWhitespace(head));
    text.remove_prefix(args + kMistralArgs.size());
    std::optional<Json> json = TakeJson(&text);
    if (!ValidName(name) || !json || !json->is_object()) return std::nullopt;
    calls.push_back({name, json->dump(-1, ' ', false, Json::error_handler_t::replace)});
    text = absl::StripLeadingAsciiWhitespace(text);
    if (text.empty()) return calls;
    if (!absl::ConsumePrefix(&text, kMistralCalls)) return std::nullopt;
  }
}

// tool_choice "required": the grammar wrote a JSON array of
// {"name", "parameters"} objects with the tools' names, which are taken
// as they are (no name check: the grammar allowed only the tools').
std::optional<std::vector<ToolCall>> ParseRequiredArray(absl::string_view text) {
  absl::StatusOr<Json> json = ParseJson(absl::StripAsciiWhitespace(text));
  if (!json.ok() || !json->is_array() || json->empty()) return std::nullopt;
  std::vector<ToolCall> calls;
  for (const Json& one : *json) {
    if (!one.is_object() || !one.contains("name") || !one["name"].is_string() ||
        !one.contains("parameters")) {
      return std::nullopt;
    }
    calls.push_back({one["name"].get<std::string>(),
                     one["parameters"].dump(-1, ' ', false, Json::error_handler_t::replace)});
  }
  return calls;
}

}  // namespace

std::optional<ToolCallFormat> ToolCallFormatFromName(absl::string_view name) {
  if (name == "none") return ToolCallFormat::kNone;
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (name == "mistral") return ToolCallFormat::kMistral;
  return std::nullopt;
}

const char* ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kNone: return "none";
    case ToolCallFormat::kHermes: return "hermes";
    case ToolCallFormat::kLlama3Json: return "llama3_json";
    case ToolCallFormat::kMistral: return "mistral";
    case ToolCallFormat::kRequiredArray: return "required";
    case ToolCallFormat::kNamedFunction: return "named";
  }
  return "none";
}

ToolCallFormat DetectToolCallFormat(absl::string_view source) {
  // Hermes-style: the instructions or the rendering of past calls put a
  // JSON object with "name" inside <tool_call> tags. GLM's and
  // Qwen3-Coder's tags hold other syntax (<arg_key>, <function=…>).
  if (absl::StrContains(source, kHermesOpen) &&
      !absl::StrContains(source, "<function=") &&
      !absl::StrContains(source, "<arg_key>") &&
      absl::StrContains(source, "name")) {
    return ToolCallFormat::kHermes;
  }
  if (absl::StrContains(source, kMistralCalls)) return ToolCallFormat::kMistral;
  // Llama 3.x: 'Respond in the format {"name": function name,
  // "parameters": dictionary …}' and '"parameters": ' for past calls.
  if (absl::StrContains(source, "\"parameters\": ") &&
      absl::StrContains(source, "{\"name\": function name")) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kNone;
}

bool ToolCallMarkersAreSpecial(ToolCallFormat format, const Tokenizer& tokenizer) {
  auto special = [&](absl::string_view piece) {
    const int32_t id = tokenizer.PieceToId(std::string_view(piece.data(), piece.size()));
    return id >= 0 && tokenizer.IsSpecial(id);
  };
  switch (format) {
    case ToolCallFormat::kHermes:
      return special(kHermesOpen) || special(kHermesClose);
    case ToolCallFormat::kMistral:
      return true;  // [TOOL_CALLS] and [ARGS] are control tokens
    case ToolCallFormat::kNone:
    case ToolCallFormat::kLlama3Json:  // <|python_tag|> may go: the JSON follows
    case ToolCallFormat::kRequiredArray:  // plain JSON
    case ToolCallFormat::kNamedFunction:
      return false;
  }
  return false;
}

void ToolCallParser::Output::Content(absl::string_view text) {
  if (text.empty()) return;
  if (!items.empty()) {
    if (auto* last = std::get_if<std::string>(&items.back())) {
      last->append(text.data(), text.size());
      return;
    }
  }
  items.emplace_back(std::string(text));
}

std::string ToolCallParser::Output::JoinedContent() const {
  std::string out;
  for (const auto& item : items) {
    if (const auto* text = std::get_if<std::string>(&item)) out += *text;
  }
  return out;
}

std::vector<ToolCall> ToolCallParser::Output::Calls() const {
  std::vector<ToolCall> out;
  for (const auto& item : items) {
    if (const auto* call = std::get_if<ToolCall>(&item)) out.push_back(*call);
  }
  return out;
}

ToolCallParser::Output ToolCallParser::Add(absl::string_view text) {
  Output out;
  pending_.append(text.data(), text.size());
  switch (format_) {
    case ToolCallFormat::kNone:
      out.Content(pending_);
      pending_.clear();
      break;
    case ToolCallFormat::kHermes:
      AddHermes(&out);
      break;
    case ToolCallFormat::kLlama3Json:
      AddOpening(kPythonTag, &out);
      break;
    case ToolCallFormat::kMistral:
      AddOpening(kMistralCalls, &out);
      break;
    case ToolCallFormat::kRequiredArray:
    case ToolCallFormat::kNamedFunction:
      break;  // the whole text is the calls: held to the end
  }
  return out;
}

void ToolCallParser::EmitContent(absl::string_view text, Output* out) {
  // After a call, the spaces and newlines before what comes next are the
  // calls' separators, not content.
  if (trim_spaces_) {
    text = absl::StripLeadingAsciiWhitespace(text);
    if (text.empty()) return;
    trim_spaces_ = false;
  }
  out->Content(text);
}

void ToolCallParser::AddHermes(Output* out) {
  for (;;) {
    if (state_ == State::kContent) {
      const size_t open = absl::string_view(pending_).find(kHermesOpen);
      if (open == std::string::npos) {
        const size_t keep = PartialMarker(pending_, kHermesOpen);
        EmitContent(absl::string_view(pending_).substr(0, pending_.size() - keep), out);
        pending_.erase(0, pending_.size() - keep);
        return;
      }
      EmitContent(absl::string_view(pending_).substr(0, open), out);
      pending_.erase(0, open + kHermesOpen.size());
      state_ = State::kInCall;
    }
    // Searched from where the last search could have missed a tag split
    // over pieces, not from the start: a long call stays linear.
    const size_t from = scanned_ > kHermesClose.size() ? scanned_ - kHermesClose.size() : 0;
    const size_t close = absl::string_view(pending_).find(kHermesClose, from);
    if (close == std::string::npos) {
      scanned_ = pending_.size();
      return;  // the call goes on
    }
    const std::string body = pending_.substr(0, close);
    pending_.erase(0, close + kHermesClose.size());
    scanned_ = 0;
    state_ = State::kContent;
    FinishHermesCall(body, /*closed=*/true, out);
  }
}

void ToolCallParser::FinishHermesCall(absl::string_view body, bool closed,
                                      Output* out) {
  absl::string_view json_text = absl::StripAsciiWhitespace(body);
  std::optional<Json> json = TakeJson(&json_text);
  std::optional<ToolCall> call;
  if (json && absl::StripAsciiWhitespace(json_text).empty()) call = CallFromJson(*json);
  if (call) {
    out->items.emplace_back(*std::move(call));
    trim_spaces_ = true;
    return;
  }
  EmitContent(absl::StrCat(kHermesOpen, body, closed ? kHermesClose : ""), out);
}

// llama3_json: the output is calls when it opens with "{" or the python
// tag, and is then held to the end; mistral: content until [TOOL_CALLS],
// the rest held to the end.
void ToolCallParser::AddOpening(absl::string_view marker, Output* out) {
  if (state_ == State::kHeldToEnd) return;
  if (format_ == ToolCallFormat::kLlama3Json) {
    if (state_ == State::kInCall) {  // decided: plain content
      out->Content(pending_);
      pending_.clear();
      return;
    }
    const absl::string_view start = absl::StripLeadingAsciiWhitespace(pending_);
    if (start.empty()) return;  // only spaces so far
    if (start[0] == '{' || absl::StartsWith(start, marker)) {
      state_ = State::kHeldToEnd;
    } else if (!(start.size() < marker.size() && absl::StartsWith(marker, start))) {
      state_ = State::kInCall;  // reused as "content, decided"
      out->Content(pending_);
      pending_.clear();
    }
    return;
  }
  const size_t at = absl::string_view(pending_).find(marker);
  if (at == std::string::npos) {
    const size_t keep = PartialMarker(pending_, marker);
    out->Content(absl::string_view(pending_).substr(0, pending_.size() - keep));
    pending_.erase(0, pending_.size() - keep);
    return;
  }
  out->Content(absl::string_view(pending_).substr(0, at));
  pending_.erase(0, at + marker.size());
  state_ = State::kHeldToEnd;
}

ToolCallParser::Output ToolCallParser::Finish() {
  Output out;
  std::string held = std::move(pending_);
  pending_.clear();
  auto add_calls = [&out](std::vector<ToolCall> calls) {
    for (ToolCall& call : calls) out.items.emplace_back(std::move(call));
  };
  switch (format_) {
    case ToolCallFormat::kNone:
      out.Content(held);
      break;
    case ToolCallFormat::kHermes:
      if (state_ == State::kInCall) {
        FinishHermesCall(held, /*closed=*/false, &out);  // ended inside a call
      } else {
        EmitContent(held, &out);
      }
      break;
    case ToolCallFormat::kLlama3Json:
      if (state_ == State::kHeldToEnd) {
        if (auto calls = ParseLlama3(held)) {
          add_calls(*std::move(calls));
          break;
        }
      }
      out.Content(held);
      break;
    case ToolCallFormat::kMistral:
      if (state_ == State::kHeldToEnd) {
        if (auto calls = ParseMistral(held)) {
          add_calls(*std::move(calls));
          break;
        }
        out.Content(absl::StrCat(kMistralCalls, held));
        break;
      }
      out.Content(held);
      break;
    case ToolCallFormat::kRequiredArray:
      // The grammar's array of {"name", "parameters"} objects; cut short
      // (max_tokens), it stays content.
      if (auto calls = ParseRequiredArray(held)) {
        add_calls(*std::move(calls));
      } else {
        out.Content(held);
      }
      break;
    case ToolCallFormat::kNamedFunction:
      // The arguments as the model wrote them (OpenAI: not always valid
      // JSON, e.g. when max_tokens cut them).
      out.items.emplace_back(ToolCall{function_, std::move(held)});
      break;
  }
  scanned_ = 0;
  state_ = State::kContent;
  return out;
}

}  // namespace weft
