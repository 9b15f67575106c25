#include "server/request_conversion.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/openai_request.h"

namespace weft {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// weft.v1 StructuredOutput → request->grammar.
absl::Status CompileStructuredOutput(const v1::StructuredOutput& proto,
                                     const ServedModel& model, Request* request) {
  using Kind = StructuredOutput::Kind;
  StructuredOutput out;
  out.any_whitespace = !proto.compact_json();
  switch (proto.kind_case()) {
    case v1::StructuredOutput::kJsonSchema:
      out.kind = Kind::kJsonSchema;
      out.spec = proto.json_schema();
      break;
    case v1::StructuredOutput::kJsonObject:
      if (!proto.json_object()) {
        return Invalid("structured_output.json_object", "must be true when set");
      }
      out.kind = Kind::kJsonObject;
      break;
    case v1::StructuredOutput::kAnyJson:
      if (!proto.any_json()) {
        return Invalid("structured_output.any_json", "must be true when set");
      }
      out.kind = Kind::kJson;
      break;
    case v1::StructuredOutput::kRegex:
      out.kind = Kind::kRegex;
      out.spec = proto.regex();
      break;
    case v1::StructuredOutput::kChoice:
      out.kind = Kind::kChoice;
      out.choices.assign(proto.choice().choices().begin(), proto.choice().choices().end());
      break;
    case v1::StructuredOutput::kGrammar:
      out.kind = Kind::kGrammar;
      out.spec = proto.grammar();
      break;
    case v1::StructuredOutput::KIND_NOT_SET:
      return Invalid("structured_output",
                     "set one of json_schema, json_object, any_json, regex, choice, "
                     "grammar");
  }
  return CompileGrammar(out, "structured_output", model, request);
}

// A client's JSON text field, parsed with the HTTP API's caps (ParseJson:
// nesting, keys per object, values): an uncapped object of K keys costs
// O(K²) to parse, a whole callback thread's time for a 4 MB message.
absl::StatusOr<Json> ParseField(absl::string_view field, const std::string& text) {
  absl::StatusOr<Json> parsed = ParseJson(text);
  if (!parsed.ok()) return Invalid(field, parsed.status().message());
  return parsed;
}

// Prefixes a runtime validation error with the proto message it is about.
absl::Status InField(absl::string_view message, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(message, ".", status.message()));
}

SamplingParams ToSampling(const v1::SamplingParams& p) {
  SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  for (const auto& [token, bias] : p.logit_bias()) {
    s.logit_bias.emplace_back(token, bias);
  }
  // A map's order is unspecified: sort so the request is reproducible.
  std::sort(s.logit_bias.begin(), s.logit_bias.end());
  if (p.has_seed()) s.seed = p.seed();
  if (p.has_logprobs()) s.logprobs = p.logprobs();
  if (p.has_prompt_logprobs()) s.prompt_logprobs = p.prompt_logprobs();
  if (p.has_n()) s.n = p.n();
  return s;
}

StoppingParams ToStopping(const v1::StoppingParams& p) {
  StoppingParams s;
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  if (p.has_min_tokens()) s.min_tokens = p.min_tokens();
  s.ignore_eos = p.ignore_eos();
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.include_stop_str_in_output = p.include_stop_str_in_output();
  if (p.has_skip_special_tokens()) s.skip_special_tokens = p.skip_special_tokens();
  return s;
}

void ToProto(const SampledToken& token, v1::LogprobEntry* out) {
  out->set_token(token.token);
  out->set_logprob(token.logprob);
  out->set_rank(token.rank);
  for (const TokenLogprob& top : token.top) {
    v1::TokenLogprob* entry = out->add_top();
    entry->set_token(top.token);
    entry->set_logprob(top.logprob);
  }
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
    default: return v1::FINISH_REASON_UNSPECIFIED;
  }
}

}  // namespace

absl::Status CompileGrammar(const StructuredOutput& output, absl::string_view field,
                            const ServedModel& model, Request* request) {
  if (model.grammars == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(field, ": this server has no grammar compiler"));
  }
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> compiled =
      model.grammars->Compile(output);
  if (!compiled.ok()) {
    // INVALID_ARGUMENT (does not compile) or RESOURCE_EXHAUSTED (busy).
    return absl::Status(compiled.status().code(),
                        absl::StrCat(field, ": ", compiled.status().message()));
  }
  request->grammar = *std::move(compiled);
  return absl::OkStatus();
}

absl::StatusOr<Request> ToRuntimeRequest(const v1::GenerateRequest& proto,
                                         const ServedModel& model,
                                         const std::string& assigned_id) {
  Request r;
  if (proto.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat("longer than ", kMaxRequestIdBytes,
                                             " bytes"));
  }
  r.id = proto.request_id().empty() ? assigned_id : proto.request_id();
  if (!proto.model().empty() && proto.model() != model.name) {
    return Invalid("model", absl::StrCat("'", proto.model(),
                                        "' is not served here (this server "
                                        "serves '", model.name, "')"));
  }
  switch (proto.prompt_case()) {
    case v1::GenerateRequest::kText: {
      if (proto.text().empty()) return Invalid("prompt.text", "is empty");
      EncodeOptions options;
      options.add_special_tokens = proto.add_special_tokens();
      r.prompt_ids = model.tokenizer->Encode(proto.text(), options);
      if (r.prompt_ids.empty()) {
        return Invalid("prompt.text", "encodes to no tokens");
      }
      break;
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = proto.token_ids().ids();
      if (ids.empty()) return Invalid("prompt.token_ids", "is empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= model.vocab_size) {
          return Invalid(absl::StrCat("prompt.token_ids[", i, "]"),
                         absl::StrCat(ids[i], " is outside the vocabulary of ",
                                      model.vocab_size, " tokens"));
        }
      }
      r.prompt_ids.assign(ids.begin(), ids.end());
      break;
    }
    default:
      return Invalid("prompt", "set text or token_ids");
  }

  r.sampling = ToSampling(proto.sampling());
  if (auto s = r.sampling.Validate(model.vocab_size); !s.ok()) {
    return InField("sampling", s);
  }
  if (r.sampling.n > model.max_n) {
    return Invalid("sampling.n", absl::StrCat("at most ", model.max_n,
                                              " samples, got ", r.sampling.n));
  }
  r.stopping = ToStopping(proto.stopping());
  if (auto s = r.stopping.Validate(); !s.ok()) return InField("stopping", s);
  for (int i = 0; i < proto.stopping().stop_token_ids_size(); ++i) {
    const int32_t id = proto.stopping().stop_token_ids(i);
    if (id >= model.vocab_size) {
      return Invalid(absl::StrCat("stopping.stop_token_ids[", i, "]"),
                     absl::StrCat(id, " is outside the vocabulary"));
    }
  }
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) +
                        r.stopping.max_tokens;
  if (total > model.max_model_len) {
    return Invalid("stopping.max_tokens",
                   absl::StrCat("the prompt (", r.prompt_ids.size(),
                                " tokens) plus max_tokens (",
                                r.stopping.max_tokens,
                                ") exceeds the context of ",
                                model.max_model_len, " tokens"));
  }
  r.priority = proto.priority();
  // Last: compiling is the costly check.
  if (proto.has_structured_output()) {
    if (auto s = CompileStructuredOutput(proto.structured_output(), model, &r);
        !s.ok()) {
      return s;
    }
  }
  return r;
}

absl::StatusOr<ChatTemplateInputs> ToChatTemplateInputs(const v1::ChatRequest& proto) {
  ChatTemplateInputs inputs;
  if (proto.messages().empty()) return Invalid("messages", "is empty");
  for (int i = 0; i < proto.messages_size(); ++i) {
    const v1::ChatMessage& m = proto.messages(i);
    const std::string field = absl::StrCat("messages[", i, "]");
    if (m.role().empty()) return Invalid(absl::StrCat(field, ".role"), "is empty");
    Json message = Json::object();
    message["role"] = m.role();
    // An assistant turn that only calls tools has no content (OpenAI's
    // null), not an empty one.
    if (!m.content().empty() || m.tool_calls_json().empty()) message["content"] = m.content();
    if (!m.name().empty()) message["name"] = m.name();
    if (!m.tool_call_id().empty()) message["tool_call_id"] = m.tool_call_id();
    if (!m.reasoning_content().empty()) message["reasoning_content"] = m.reasoning_content();
    if (!m.tool_calls_json().empty()) {
      const std::string calls_field = absl::StrCat(field, ".tool_calls_json");
      absl::StatusOr<Json> parsed_calls = ParseField(calls_field, m.tool_calls_json());
      if (!parsed_calls.ok()) return parsed_calls.status();
      Json calls = *std::move(parsed_calls);
      if (!calls.is_array()) {
        return Invalid(absl::StrCat(field, ".tool_calls_json"), "is not a JSON array");
      }
      // Templates read function.arguments as an object; OpenAI sends it
      // as JSON text.
      for (Json& call : calls) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
            !call["function"].contains("arguments")) {
          continue;
        }
        Json& arguments = call["function"]["arguments"];
        if (arguments.is_string()) {
          absl::StatusOr<Json> parsed = ParseJson(arguments.get<std::string>());
          if (parsed.ok() && parsed->is_object()) arguments = *std::move(parsed);
        }
      }
      if (auto s = CheckJsonDepth(calls, calls_field); !s.ok()) return s;
      message["tool_calls"] = std::move(calls);
    }
    inputs.messages.push_back(std::move(message));
  }
  inputs.add_generation_prompt =
      proto.has_add_generation_prompt() ? proto.add_generation_prompt() : true;
  if (!proto.tools_json().empty()) {
    absl::StatusOr<Json> tools = ParseField("tools_json", proto.tools_json());
    if (!tools.ok()) return tools.status();
    inputs.tools = *std::move(tools);
    if (!inputs.tools.is_array()) return Invalid("tools_json", "is not a JSON array");
    if (auto s = CheckJsonDepth(inputs.tools, "tools_json"); !s.ok()) return s;
  }
  if (!proto.chat_template_kwargs_json().empty()) {
    absl::StatusOr<Json> extra =
        ParseField("chat_template_kwargs_json", proto.chat_template_kwargs_json());
    if (!extra.ok()) return extra.status();
    inputs.extra = *std::move(extra);
    if (!inputs.extra.is_object()) {
      return Invalid("chat_template_kwargs_json", "is not a JSON object");
    }
    if (auto s = CheckJsonDepth(inputs.extra, "chat_template_kwargs_json"); !s.ok()) return s;
  }
  return inputs;
}

absl::StatusOr<Request> ToRuntimeRequest(const v1::ChatRequest& proto,
                                         const ServedModel& model,
                                         const std::string& assigned_id,
                                         std::string* rendered_prompt) {
  if (model.chat_template == nullptr) {
    return absl::FailedPreconditionError(
        "this server has no chat template: the model defines none; start "
        "weft-server with --chat_template FILE (a Jinja template), or send "
        "a prompt with Generate");
  }
  if (!proto.model().empty() && proto.model() != model.name) {
    return Invalid("model", absl::StrCat("'", proto.model(),
                                        "' is not served here (this server "
                                        "serves '", model.name, "')"));
  }
  absl::StatusOr<ChatTemplateInputs> inputs = ToChatTemplateInputs(proto);
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::string> text = model.chat_template->Render(*inputs);
  if (!text.ok()) {
    return Invalid("messages", absl::StrCat("rejected by the chat template: ",
                                           text.status().message()));
  }
  EncodeOptions options;
  options.parse_special = true;
  options.add_special_tokens = false;  // the template writes BOS itself
  const std::vector<int32_t> ids = model.tokenizer->Encode(*text, options);
  if (ids.empty()) return Invalid("messages", "the chat template rendered an empty prompt");
  if (rendered_prompt != nullptr) *rendered_prompt = *std::move(text);

  v1::GenerateRequest generate;
  generate.set_request_id(proto.request_id());
  generate.set_model(proto.model());
  generate.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  if (proto.has_structured_output()) {
    *generate.mutable_structured_output() = proto.structured_output();
  }
  *generate.mutable_sampling() = proto.sampling();
  *generate.mutable_stopping() = proto.stopping();
  generate.set_priority(proto.priority());
  return ToRuntimeRequest(generate, model, assigned_id);
}

void ToProto(const Delta& delta, v1::Delta* out) {
  out->set_index(delta.index);
  out->set_text(delta.text);
  out->mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
  for (const SampledToken& t : delta.logprobs) ToProto(t, out->add_logprobs());
  for (const SampledToken& t : delta.prompt_logprobs) {
    ToProto(t, out->add_prompt_logprobs());
  }
  if (delta.finished) ToProto(*delta.finished, delta.index, out->mutable_finished());
}

void ToProto(const SampleResult& result, int index, v1::SampleResult* out) {
  out->set_index(index);
  out->set_finish_reason(ToProto(result.reason));
  out->set_stop_reason(result.stop_reason);
  out->set_num_tokens(result.num_tokens);
}

void ToProto(const Finished& finished, const std::string& request_id,
             v1::Final* out) {
  out->set_request_id(request_id);
  for (size_t i = 0; i < finished.samples.size(); ++i) {
    ToProto(finished.samples[i], static_cast<int>(i), out->add_samples());
  }
  out->mutable_usage()->set_prompt_tokens(finished.usage.prompt_tokens);
  out->mutable_usage()->set_completion_tokens(finished.usage.completion_tokens);
  out->mutable_usage()->set_cached_prompt_tokens(
      finished.usage.cached_prompt_tokens);
  v1::Timings* t = out->mutable_timings();
  t->set_queue_seconds(absl::ToDoubleSeconds(finished.timings.queue_time));
  t->set_time_to_first_token_seconds(
      absl::ToDoubleSeconds(finished.timings.time_to_first_token));
  t->set_end_to_end_seconds(absl::ToDoubleSeconds(finished.timings.end_to_end));
  for (absl::Duration gap : finished.timings.inter_token) {
    t->add_inter_token_seconds(absl::ToDoubleSeconds(gap));
  }
}

}  // namespace weft
