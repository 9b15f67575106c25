#include "server/openai_chat.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/openai_errors.h"
#include "server/openai_tool_choice.h"

namespace weft {
namespace {

bool KnownRole(const std::string& role) {
  return role == "system" || role == "developer" || role == "user" ||
         role == "assistant" || role == "tool";
}

// A message's content: a string, null (assistant tool calls), or an array
// of text parts, which becomes their texts joined by "\n".
absl::StatusOr<Json> ParseContent(const Json& content, const std::string& role,
                                  const std::string& param) {
  if (content.is_string()) return content;
  if (content.is_null()) {
    if (role == "assistant") return content;
    return InvalidParam(param, absl::StrCat("is required for role '", role, "'"));
  }
  if (!content.is_array()) {
    return InvalidParam(param, absl::StrCat("must be a string or an array of "
                                            "content parts, got ",
                                            JsonTypeName(content)));
  }
  std::vector<std::string> texts;
  for (size_t j = 0; j < content.size(); ++j) {
    const Json& part = content[j];
    const std::string part_param = absl::StrCat(param, "[", j, "]");
    if (!part.is_object()) {
      return InvalidParam(part_param, "must be an object");
    }
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) {
      return InvalidParam(absl::StrCat(part_param, ".type"),
                          "must be a string");
    }
    if (*type != "text") {
      return InvalidParam(absl::StrCat(part_param, ".type"),
                          absl::StrCat("'", type->get<std::string>(),
                                       "' is not supported; this server "
                                       "takes text only"));
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return InvalidParam(absl::StrCat(part_param, ".text"),
                          "must be a string");
    }
    texts.push_back(text->get<std::string>());
  }
  return Json(absl::StrJoin(texts, "\n"));
}

// Templates read an assistant tool call's function.arguments as an object;
// OpenAI sends it as JSON text. Text that is not a JSON object stays text
// (as in the gRPC Chat path, request_conversion.cc).
void ParseToolCallArguments(Json* message) {
  auto calls = message->find("tool_calls");
  if (calls == message->end() || !calls->is_array()) return;
  for (Json& call : *calls) {
    if (!call.is_object() || !call.contains("function") ||
        !call["function"].is_object()) {
      continue;
    }
    Json& arguments = call["function"]["arguments"];
    if (!arguments.is_string()) continue;
    absl::StatusOr<Json> parsed = ParseJson(arguments.get<std::string>());
    if (parsed.ok() && parsed->is_object()) arguments = *std::move(parsed);
  }
}

}  // namespace

absl::StatusOr<ChatTemplateInputs> ParseChatInputs(const Json& body) {
  ChatTemplateInputs inputs;
  auto messages = body.find("messages");
  if (messages == body.end() || messages->is_null()) {
    return InvalidParam("messages", "is required");
  }
  if (!messages->is_array() || messages->empty()) {
    return InvalidParam("messages", "must be a non-empty array of messages");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    const std::string param = absl::StrCat("messages[", i, "]");
    if (!message.is_object()) return InvalidParam(param, "must be an object");
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return InvalidParam(absl::StrCat(param, ".role"), "must be a string");
    }
    const std::string role_name = role->get<std::string>();
    if (!KnownRole(role_name)) {
      return InvalidParam(absl::StrCat(param, ".role"),
                          absl::StrCat("must be one of system, developer, "
                                       "user, assistant, tool; got '",
                                       role_name, "'"));
    }
    Json converted = message;
    auto content = message.find("content");
    absl::StatusOr<Json> parsed =
        ParseContent(content == message.end() ? Json() : *content, role_name,
                     absl::StrCat(param, ".content"));
    if (!parsed.ok()) return parsed.status();
    converted["content"] = *std::move(parsed);
    ParseToolCallArguments(&converted);
    inputs.messages.push_back(std::move(converted));
  }

  FieldReader f(body);
  if (const Json* tools = f.Find("tools")) {
    if (!tools->is_array()) {
      f.Fail(InvalidParam("tools", "must be an array of tool definitions"));
    } else {
      inputs.tools = *tools;
    }
  }
  inputs.add_generation_prompt = f.Bool("add_generation_prompt").value_or(true);
  if (f.Bool("continue_final_message").value_or(false)) {
    f.Fail(InvalidParam("continue_final_message", "is not supported"));
  }
  if (const Json* kwargs = f.Find("chat_template_kwargs")) {
    if (!kwargs->is_object()) {
      f.Fail(InvalidParam("chat_template_kwargs", "must be an object"));
    } else {
      inputs.extra = *kwargs;
    }
  }
  if (!f.ok()) return f.status();
  if (auto choice = ParseToolChoice(body, inputs.tools); !choice.ok()) {
    return choice.status();
  }
  return inputs;
}

absl::StatusOr<std::vector<int32_t>> RenderChat(const ChatTemplateInputs& inputs,
                                                const ServedModel& model,
                                                absl::string_view alternative) {
  if (model.chat_template == nullptr) return NoChatTemplate(alternative);
  absl::StatusOr<std::vector<int32_t>> ids =
      EncodeChatPrompt(*model.chat_template, *model.tokenizer, inputs);
  if (!ids.ok()) {
    absl::Status status = ids.status();
    if (!ParamOf(status)) status = WithParam(std::move(status), "messages");
    return status;
  }
  return ids;
}

absl::StatusOr<OpenAiRequest> ParseChatRequest(absl::string_view text,
                                               const ServedModel& model) {
  absl::StatusOr<Json> body = ParseJsonObject(text);
  if (!body.ok()) return body.status();
  OpenAiRequest out;
  out.api = OpenAiApi::kChatCompletions;
  if (auto s = ParseCommonFields(*body, model, &out); !s.ok()) return s;

  FieldReader f(*body);
  out.logprobs = f.Bool("logprobs").value_or(false);
  const std::optional<int64_t> top_logprobs =
      f.Integer("top_logprobs", 0, kMaxLogprobs);
  // 0 asks for nothing: UIs send it by default, and vLLM accepts it.
  if (top_logprobs.value_or(0) > 0 && !out.logprobs) {
    f.Fail(InvalidParam("top_logprobs", "needs logprobs set to true"));
  }
  if (out.logprobs) {
    out.top_logprobs = static_cast<int>(top_logprobs.value_or(0));
    out.request.sampling.logprobs = out.top_logprobs;
  }
  // max_completion_tokens replaces the deprecated max_tokens; either works.
  // int32: prompt tokens + max_tokens must not overflow.
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  std::optional<int64_t> max_tokens = f.Integer("max_completion_tokens", 1, kMax);
  absl::string_view max_tokens_param = "max_completion_tokens";
  if (!max_tokens) {
    max_tokens = f.Integer("max_tokens", 1, kMax);
    max_tokens_param = "max_tokens";
  }
  if (!f.ok()) return f.status();

  absl::StatusOr<ChatTemplateInputs> inputs = ParseChatInputs(*body);
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::vector<int32_t>> ids =
      RenderChat(*inputs, model, ", or use /v1/completions");
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return InvalidParam("messages", "render to no tokens");
  out.request.prompt_ids = *std::move(ids);
  absl::StatusOr<ToolChoice> tool_choice = ParseToolChoice(*body, inputs->tools);
  if (!tool_choice.ok()) return tool_choice.status();
  if (tool_choice->mode == ToolChoice::Mode::kRequired ||
      tool_choice->mode == ToolChoice::Mode::kNamed) {
    // A grammar writes the calls, in a form of its own (whatever the
    // model's tool-call format). It replaces a response_format or other
    // structured output, as in vLLM (agent frameworks send both).
    FieldReader f(*body);
    const bool parallel = f.Bool("parallel_tool_calls").value_or(true);
    if (!f.ok()) return f.status();
    absl::StatusOr<std::string> schema =
        ToolChoiceSchema(*tool_choice, inputs->tools, parallel);
    if (!schema.ok()) return schema.status();
    out.structure = RequestedStructure{};
    out.structure.output.kind = StructuredOutput::Kind::kJsonSchema;
    out.structure.output.spec = *std::move(schema);
    out.structure.param = "tool_choice";
    out.tool_call_format = tool_choice->mode == ToolChoice::Mode::kRequired
                               ? ToolCallFormat::kRequiredArray
                               : ToolCallFormat::kNamedFunction;
    out.tool_choice_function = tool_choice->function;
    // Mistral's templates take only its own 9-character call ids.
    out.mistral_tool_call_ids = model.tool_call_format == ToolCallFormat::kMistral;
  } else if (model.tool_call_format != ToolCallFormat::kNone &&
             inputs->tools.is_array() && !inputs->tools.empty() &&
             tool_choice->mode != ToolChoice::Mode::kNone) {
    // Tool calls are looked for when tools were offered and not refused.
    out.tool_call_format = model.tool_call_format;
    // Its markers are special tokens: the text must keep them (vLLM too).
    if (ToolCallMarkersAreSpecial(out.tool_call_format, *model.tokenizer)) {
      out.request.stopping.skip_special_tokens = false;
    }
  }
  if (auto s = ResolveMaxTokens(max_tokens, max_tokens_param,
                                /*default_max_tokens=*/std::nullopt,
                                "messages", model, &out.request);
      !s.ok()) {
    return s;
  }
  if (auto s = ResolvePromptLogprobs(&out); !s.ok()) return s;
  if (auto s = ValidateRuntimeParams(model, out.request); !s.ok()) return s;
  // Last: compiling is the costly check.
  if (auto s = CompileStructuredOutput(out.structure, model, &out.request);
      !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace weft
