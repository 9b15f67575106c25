#include "server/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/json_text.h"
#include "server/openai_errors.h"
#include "server/openai_structured.h"

namespace weft {
namespace {

// Deeper bodies are refused before parsing: no request needs more, and it
// bounds the work done on hostile input.
// ordered_json inserts each key with a linear search for a duplicate, so
// parsing an object of K keys costs O(K²): the per-object cap bounds that
// (1024² / 2 comparisons at worst), the total cap bounds memory (a
// 128k-token prompt as an array of ids still fits).
constexpr int kMaxJsonObjectKeys = 1024;
constexpr int64_t kMaxJsonValues = int64_t{1} << 20;
// Entries of logit_bias (OpenAI documents no cap; a bias on more tokens
// than this is better expressed another way).
constexpr int kMaxLogitBias = 1024;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// The field a runtime validation message starts with ("top_p must be …",
// "stop[2] must …", "logit_bias token 7 …").
std::string LeadingField(absl::string_view message) {
  size_t end = 0;
  while (end < message.size() &&
         ((message[end] >= 'a' && message[end] <= 'z') || message[end] == '_')) {
    ++end;
  }
  return std::string(message.substr(0, end));
}

absl::Status RuntimeCheck(absl::Status status) {
  if (status.ok()) return status;
  return WithParam(std::move(status), LeadingField(status.message()));
}

absl::Status ContextLengthExceeded(absl::string_view param,
                                   absl::string_view message) {
  return WithErrorCode(InvalidParam(param, message), "context_length_exceeded");
}

void ParseLogitBias(const Json& bias, const ServedModel& model,
                    FieldReader* fields, SamplingParams* sampling) {
  if (!bias.is_object()) {
    fields->Fail(InvalidParam("logit_bias",
                              absl::StrCat("must be an object of token id → "
                                           "bias, got ", JsonTypeName(bias))));
    return;
  }
  if (bias.size() > static_cast<size_t>(kMaxLogitBias)) {
    fields->Fail(InvalidParam(
        "logit_bias", absl::StrCat("has ", bias.size(), " entries; at most ",
                                   kMaxLogitBias, " are allowed")));
    return;
  }
  for (const auto& [key, value] : bias.items()) {
    int32_t token = 0;
    // Digits only: SimpleAtoi would also take " 5" and "+5".
    if (key.empty() || key.size() > 10 ||
        key.find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(key, &token) || token < 0 ||
        token >= model.vocab_size) {
      fields->Fail(InvalidParam(
          "logit_bias", absl::StrCat("key '", key, "' is not a token id in [0, ",
                                     model.vocab_size, ")")));
      return;
    }
    if (!value.is_number() || !(value.get<double>() >= -100) ||
        !(value.get<double>() <= 100)) {
      fields->Fail(InvalidParam(
          "logit_bias", absl::StrCat("the bias of token ", key,
                                     " must be a number in [-100, 100]")));
      return;
    }
    sampling->logit_bias.emplace_back(token, value.get<float>());
  }
  std::sort(sampling->logit_bias.begin(), sampling->logit_bias.end());
}

void ParseStop(const Json& stop, FieldReader* fields, StoppingParams* stopping) {
  if (stop.is_string()) {
    stopping->stop.push_back(stop.get<std::string>());
    return;
  }
  if (!stop.is_array()) {
    fields->Fail(InvalidParam(
        "stop", absl::StrCat("must be a string or an array of strings, got ",
                             JsonTypeName(stop))));
    return;
  }
  for (const Json& s : stop) {
    if (!s.is_string()) {
      fields->Fail(InvalidParam("stop", "must be a string or an array of strings"));
      return;
    }
    stopping->stop.push_back(s.get<std::string>());
  }
}

void ParseStopTokenIds(const Json& ids, const ServedModel& model,
                       FieldReader* fields, StoppingParams* stopping) {
  const std::string what = absl::StrCat("must be an array of token ids in [0, ",
                                        model.vocab_size, ")");
  if (!ids.is_array()) {
    fields->Fail(InvalidParam("stop_token_ids", what));
    return;
  }
  for (const Json& id : ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= model.vocab_size) {
      fields->Fail(InvalidParam("stop_token_ids", what));
      return;
    }
    stopping->stop_token_ids.push_back(id.get<int32_t>());
  }
}

// One prompt of /v1/completions: a string or an array of token ids.
// Sets `ids` and the prompt's text (for echo); errors name the prompt
// with `what` ("prompt 3"; empty for a request's only prompt).
// "<what> " before a message, or nothing.
std::string Lead(absl::string_view what) {
  return what.empty() ? "" : absl::StrCat(what, " ");
}

absl::Status ParseOnePrompt(const Json& prompt, const ServedModel& model,
                            bool add_special_tokens, absl::string_view what,
                            std::vector<int32_t>* ids, std::string* text) {
  if (prompt.is_string()) {
    *text = prompt.get<std::string>();
    if (text->empty()) return InvalidParam("prompt", absl::StrCat(Lead(what), "is empty"));
    EncodeOptions options;
    options.add_special_tokens = add_special_tokens;
    *ids = model.tokenizer->Encode(*text, options);
    if (ids->empty()) {
      return InvalidParam("prompt", absl::StrCat(Lead(what), "encodes to no tokens"));
    }
    return absl::OkStatus();
  }
  if (!prompt.is_array() || prompt.empty()) {
    return InvalidParam(
        "prompt", absl::StrCat(Lead(what), "must be a non-empty string or a non-empty "
                                     "array of token ids"));
  }
  absl::StatusOr<std::vector<int32_t>> parsed = ParseTokenIds(prompt, "prompt", what, model);
  if (!parsed.ok()) return parsed.status();
  *ids = *std::move(parsed);
  *text = model.tokenizer->Decode(*ids, /*skip_special_tokens=*/false);
  return absl::OkStatus();
}

// The prompts of /v1/completions: a string, an array of token ids, or an
// array of either (up to kMaxPrompts, all of one kind, as OpenAI takes
// them). The first goes to `first` and `first_text`, the rest to `more`.
absl::Status ParsePrompts(const Json& body, const ServedModel& model,
                          bool add_special_tokens, Request* first,
                          std::string* first_text,
                          std::vector<OpenAiPrompt>* more) {
  auto found = body.find("prompt");
  if (found == body.end() || found->is_null()) {
    return InvalidParam("prompt", "is required");
  }
  const Json& prompt = *found;
  const bool batch = prompt.is_array() && !prompt.empty() && !prompt[0].is_number();
  if (!batch) {
    return ParseOnePrompt(prompt, model, add_special_tokens, "",
                          &first->prompt_ids, first_text);
  }
  if (prompt.size() > static_cast<size_t>(kMaxPrompts)) {
    return InvalidParam("prompt", absl::StrCat("has ", prompt.size(),
                                               " prompts; at most ", kMaxPrompts,
                                               " in one request"));
  }
  const bool strings = prompt[0].is_string();
  for (size_t p = 0; p < prompt.size(); ++p) {
    const std::string what =
        prompt.size() == 1 ? "" : absl::StrCat("prompt ", p);
    if (strings ? !prompt[p].is_string() : !prompt[p].is_array()) {
      return InvalidParam(
          "prompt", absl::StrCat(Lead(what), "is not ",
                                 strings ? "a string" : "an array of token ids",
                                 " like the first (an array of prompts holds "
                                 "strings or token-id arrays, not both)"));
    }
    std::vector<int32_t>* ids = &first->prompt_ids;
    std::string* text = first_text;
    if (p > 0) {
      more->emplace_back();
      ids = &more->back().ids;
      text = &more->back().echo_text;
    }
    if (auto s = ParseOnePrompt(prompt[p], model, add_special_tokens, what, ids, text);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const Json& ids, absl::string_view param,
                                                   absl::string_view what,
                                                   const ServedModel& model) {
  if (!ids.is_array()) {
    return InvalidParam(param, absl::StrCat(Lead(what), "must be an array of token ids"));
  }
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const Json& id = ids[i];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= model.vocab_size) {
      return InvalidParam(param, absl::StrCat(what, what.empty() ? "" : ": ", "token ", i,
                                              " is not a token id in [0, ",
                                              model.vocab_size, ")"));
    }
    out.push_back(id.get<int32_t>());
  }
  return out;
}

const char* JsonTypeName(const Json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  if (value.is_string()) return "string";
  if (value.is_array()) return "array";
  return "object";
}

const Json* FieldReader::Find(absl::string_view name) const {
  auto it = object_.find(std::string(name));
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string FieldReader::Param(absl::string_view name) const {
  return absl::StrCat(prefix_, name);
}

void FieldReader::Fail(absl::Status status) {
  if (status_.ok()) status_ = std::move(status);
}

std::optional<double> FieldReader::Number(absl::string_view name, double lo,
                                          double hi) {
  const Json* value = Find(name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be a number, got ",
                                                JsonTypeName(*value))));
    return std::nullopt;
  }
  const double number = value->get<double>();
  if (!(number >= lo && number <= hi)) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be in [", lo, ", ", hi,
                                                "], got ", number)));
    return std::nullopt;
  }
  return number;
}

std::optional<int64_t> FieldReader::Integer(absl::string_view name, int64_t lo,
                                            int64_t hi) {
  const Json* value = Find(name);
  if (value == nullptr) return std::nullopt;
  const bool fractional = value->is_number_float() &&
                          std::trunc(value->get<double>()) != value->get<double>();
  if (!value->is_number() || fractional) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be an integer, got ",
                                                JsonTypeName(*value))));
    return std::nullopt;
  }
  std::optional<int64_t> integer;
  if (value->is_number_unsigned()) {
    const uint64_t u = value->get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      integer = static_cast<int64_t>(u);
    }
  } else if (value->is_number_integer()) {
    integer = value->get<int64_t>();
  } else if (std::abs(value->get<double>()) < 9.0e18) {
    integer = static_cast<int64_t>(value->get<double>());
  }
  if (!integer || *integer < lo || *integer > hi) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be in [", lo, ", ", hi,
                                                "], got ", value->dump())));
    return std::nullopt;
  }
  return integer;
}

std::optional<bool> FieldReader::Bool(absl::string_view name) {
  const Json* value = Find(name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be a boolean, got ",
                                                JsonTypeName(*value))));
    return std::nullopt;
  }
  return value->get<bool>();
}

std::optional<std::string> FieldReader::String(absl::string_view name) {
  const Json* value = Find(name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) {
    Fail(InvalidParam(Param(name), absl::StrCat("must be a string, got ",
                                                JsonTypeName(*value))));
    return std::nullopt;
  }
  return value->get<std::string>();
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  if (JsonTextDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels"));
  }
  // Thrown by the callback to stop the parse at a cap, before the
  // quadratic insert it guards against.
  struct OverLimit {
    std::string why;
  };
  std::vector<int> keys;  // per open object (0 for an open array)
  int64_t values = 0;
  auto limit = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                   Json& /*parsed*/) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        keys.push_back(0);
        [[fallthrough]];
      case Event::value:
        if (++values > kMaxJsonValues) {
          throw OverLimit{absl::StrCat("has more than ", kMaxJsonValues,
                                       " JSON values")};
        }
        break;
      case Event::key:
        if (!keys.empty() && ++keys.back() > kMaxJsonObjectKeys) {
          throw OverLimit{absl::StrCat("has an object with more than ",
                                       kMaxJsonObjectKeys, " keys")};
        }
        break;
      case Event::object_end:
      case Event::array_end:
        if (!keys.empty()) keys.pop_back();
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), limit);
  } catch (const OverLimit& e) {
    return absl::InvalidArgumentError(e.why);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("is not valid JSON: ", e.what()));
  }
}

absl::StatusOr<Json> ParseJsonObject(absl::string_view body) {
  absl::StatusOr<Json> parsed = ParseJson(body);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body ", parsed.status().message()));
  }
  Json json = *std::move(parsed);
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request body must be a JSON object, got ", JsonTypeName(json)));
  }
  return json;
}

absl::Status ParseCommonFields(const Json& body, const ServedModel& model,
                               OpenAiRequest* out) {
  absl::StatusOr<RequestedStructure> structure = ParseStructuredOutput(body);
  if (!structure.ok()) return structure.status();
  out->structure = *std::move(structure);
  FieldReader f(body);
  if (auto name = f.String("model"); name && *name != model.name) {
    return ModelNotFound(*name, model.name);
  }
  out->stream = f.Bool("stream").value_or(false);
  if (const Json* options = f.Find("stream_options")) {
    if (!options->is_object()) {
      f.Fail(InvalidParam("stream_options", "must be an object"));
    } else if (!out->stream) {
      f.Fail(InvalidParam("stream_options",
                          "is only allowed when stream is true"));
    } else {
      FieldReader o(*options, "stream_options.");
      out->include_usage = o.Bool("include_usage").value_or(false);
      out->continuous_usage =
          out->include_usage && o.Bool("continuous_usage_stats").value_or(false);
      f.Fail(o.status());
    }
  }

  SamplingParams& s = out->request.sampling;
  s.n = static_cast<int>(f.Integer("n", 1, model.max_n).value_or(1));
  s.temperature = static_cast<float>(f.Number("temperature", 0, 2).value_or(1));
  if (auto top_p = f.Number("top_p", 0, 1)) {
    if (*top_p == 0) f.Fail(InvalidParam("top_p", "must be in (0, 1], got 0"));
    s.top_p = static_cast<float>(*top_p);
  }
  // vLLM: -1 (or 0) means no top-k.
  if (auto top_k = f.Integer("top_k", -1, kInt32Max)) {
    s.top_k = static_cast<int>(std::max<int64_t>(*top_k, 0));
  }
  s.min_p = static_cast<float>(f.Number("min_p", 0, 1).value_or(0));
  if (auto penalty = f.Number("repetition_penalty", 0, 1e6)) {
    if (*penalty == 0) {
      f.Fail(InvalidParam("repetition_penalty", "must be > 0, got 0"));
    }
    s.repetition_penalty = static_cast<float>(*penalty);
  }
  s.presence_penalty =
      static_cast<float>(f.Number("presence_penalty", -2, 2).value_or(0));
  s.frequency_penalty =
      static_cast<float>(f.Number("frequency_penalty", -2, 2).value_or(0));
  if (const Json* bias = f.Find("logit_bias")) ParseLogitBias(*bias, model, &f, &s);
  if (auto seed = f.Integer("seed", std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max())) {
    s.seed = static_cast<uint64_t>(*seed);
  }

  StoppingParams& stopping = out->request.stopping;
  if (const Json* stop = f.Find("stop")) ParseStop(*stop, &f, &stopping);
  if (const Json* ids = f.Find("stop_token_ids")) {
    ParseStopTokenIds(*ids, model, &f, &stopping);
  }
  stopping.ignore_eos = f.Bool("ignore_eos").value_or(false);
  stopping.min_tokens =
      static_cast<int>(f.Integer("min_tokens", 0, kInt32Max).value_or(0));
  stopping.include_stop_str_in_output =
      f.Bool("include_stop_str_in_output").value_or(false);
  stopping.skip_special_tokens = f.Bool("skip_special_tokens").value_or(true);

  // vLLM's prompt_logprobs (its -1, the whole vocabulary, is refused).
  // A stream carries none: above 0 it is refused there, as in vLLM, and 0
  // is accepted and asks for nothing.
  if (auto k = f.Integer("prompt_logprobs", 0, kMaxLogprobs)) {
    if (!out->stream) {
      out->prompt_logprobs = static_cast<int>(*k);
    } else if (*k > 0) {
      f.Fail(InvalidParam("prompt_logprobs", "above 0 is not available with stream"));
    }
  }
  out->request.priority = static_cast<int>(
      f.Integer("priority", -kInt32Max, kInt32Max).value_or(0));
  f.String("user");  // type-checked, otherwise unused
  return f.status();
}

absl::Status ResolveMaxTokens(std::optional<int64_t> requested,
                              absl::string_view requested_param,
                              std::optional<int> default_max_tokens,
                              absl::string_view prompt_param,
                              const ServedModel& model, Request* request,
                              absl::string_view prompt_label) {
  const int64_t prompt_tokens = static_cast<int64_t>(request->prompt_ids.size());
  const int64_t room = model.max_model_len - prompt_tokens;
  if (room < 1) {
    return ContextLengthExceeded(
        prompt_param,
        absl::StrCat("This model's maximum context length is ",
                     model.max_model_len, " tokens; ", prompt_label, " has ",
                     prompt_tokens, " tokens, which leaves no room for output"));
  }
  if (!requested) {
    request->stopping.max_tokens = static_cast<int>(
        default_max_tokens ? std::min<int64_t>(*default_max_tokens, room) : room);
    return absl::OkStatus();
  }
  if (*requested > room) {
    return ContextLengthExceeded(
        requested_param,
        absl::StrCat("This model's maximum context length is ",
                     model.max_model_len, " tokens. However, you requested ",
                     prompt_tokens + *requested, " tokens (", prompt_tokens,
                     " in ", prompt_label, ", ", *requested,
                     " in the completion). Reduce the prompt or ",
                     requested_param, "."));
  }
  request->stopping.max_tokens = static_cast<int>(*requested);
  return absl::OkStatus();
}

absl::Status ValidateRuntimeParams(const ServedModel& model,
                                   const Request& request) {
  if (auto s = RuntimeCheck(request.sampling.Validate(model.vocab_size));
      !s.ok()) {
    return s;
  }
  return RuntimeCheck(request.stopping.Validate());
}

absl::StatusOr<OpenAiRequest> ParseCompletionRequest(absl::string_view text,
                                                     const ServedModel& model) {
  absl::StatusOr<Json> body = ParseJsonObject(text);
  if (!body.ok()) return body.status();
  OpenAiRequest out;
  out.api = OpenAiApi::kCompletions;
  if (auto s = ParseCommonFields(*body, model, &out); !s.ok()) return s;

  FieldReader f(*body);
  const bool add_special_tokens = f.Bool("add_special_tokens").value_or(true);
  out.echo = f.Bool("echo").value_or(false);
  if (auto logprobs = f.Integer("logprobs", 0, kMaxLogprobs)) {
    out.logprobs = true;
    out.top_logprobs = static_cast<int>(*logprobs);
    out.request.sampling.logprobs = out.top_logprobs;
  }
  if (auto suffix = f.String("suffix"); suffix && !suffix->empty()) {
    f.Fail(InvalidParam("suffix", "is not supported"));
  }
  if (auto best_of = f.Integer("best_of", 1, kInt32Max);
      best_of && *best_of != out.request.sampling.n) {
    f.Fail(InvalidParam("best_of", "is not supported unless it equals n"));
  }
  std::optional<int64_t> max_tokens =
      f.Integer("max_tokens", 0, kInt32Max);  // no overflow adding the prompt
  if (!f.ok()) return f.status();
  if (max_tokens == 0) {
    if (!out.echo) {
      return InvalidParam("max_tokens",
                          "must be at least 1 (0 only with echo: the prompt "
                          "without a completion), got 0");
    }
    if (out.request.stopping.min_tokens > 0) {
      return InvalidParam("min_tokens",
                          absl::StrCat("must be in [0, max_tokens = 0], got ",
                                       out.request.stopping.min_tokens));
    }
    out.echo_only = true;
    max_tokens = 1;  // generated, then left out of the response
  }

  std::string prompt_text;
  if (auto s = ParsePrompts(*body, model, add_special_tokens, &out.request,
                            &prompt_text, &out.more_prompts);
      !s.ok()) {
    return s;
  }
  if (out.echo) out.echo_text = std::move(prompt_text);
  if (auto s = ResolveMaxTokens(
          max_tokens, "max_tokens", kDefaultCompletionMaxTokens, "prompt", model,
          &out.request, out.more_prompts.empty() ? "the prompt" : "prompt 0");
      !s.ok()) {
    return s;
  }
  for (size_t p = 1; p <= out.more_prompts.size(); ++p) {
    OpenAiPrompt& more = out.more_prompts[p - 1];
    if (!out.echo) more.echo_text.clear();
    Request request;
    request.prompt_ids = std::move(more.ids);
    if (auto s = ResolveMaxTokens(max_tokens, "max_tokens",
                                  kDefaultCompletionMaxTokens, "prompt", model,
                                  &request, absl::StrCat("prompt ", p));
        !s.ok()) {
      return s;
    }
    more.ids = std::move(request.prompt_ids);
    more.max_tokens = request.stopping.max_tokens;
  }
  if (auto s = ResolvePromptLogprobs(&out); !s.ok()) return s;
  if (auto s = ValidateRuntimeParams(model, out.request); !s.ok()) return s;
  for (int p = 1; p < out.num_prompts(); ++p) {
    if (auto s = ValidateRuntimeParams(model, out.PromptRequest(p)); !s.ok()) {
      return s;
    }
  }
  // Last: compiling is the costly check. Every prompt shares the grammar.
  if (auto s = CompileStructuredOutput(out.structure, model, &out.request);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::Status ResolvePromptLogprobs(OpenAiRequest* request) {
  // Per choice: echo's entries (the prompt's tokens and `logprobs`
  // alternatives each); completions' prompt_logprobs per choice too,
  // chat's once per response.
  const bool echoed = request->echo && request->logprobs;
  const int64_t n = request->request.sampling.n;
  int64_t per_token = 0;
  if (echoed) per_token += n * (request->top_logprobs + 1);
  if (request->prompt_logprobs >= 0) {
    per_token += (request->api == OpenAiApi::kCompletions ? n : 1) *
                 (request->prompt_logprobs + 1);
  }
  int64_t values = 0;
  for (int p = 0; p < request->num_prompts(); ++p) {
    values += static_cast<int64_t>(request->PromptIds(p).size()) * per_token;
  }
  if (values > kMaxPromptLogprobValues) {
    return InvalidParam(
        request->prompt_logprobs >= 0 ? "prompt_logprobs" : "logprobs",
        absl::StrCat("the prompt's log-probs would be ", values,
                     " values (prompt tokens × choices × (alternatives + 1)); "
                     "at most ", kMaxPromptLogprobValues, " in one request"));
  }
  // The engine scores the prompt once, with the most alternatives either
  // asks for; each part of the response shows its own number.
  int alternatives = request->prompt_logprobs;
  if (echoed) alternatives = std::max(alternatives, request->top_logprobs);
  request->request.sampling.prompt_logprobs = alternatives;
  return absl::OkStatus();
}

Request OpenAiRequest::PromptRequest(int p) const {
  Request out = request;
  if (p > 0) {
    const OpenAiPrompt& prompt = more_prompts[static_cast<size_t>(p - 1)];
    out.prompt_ids = prompt.ids;
    out.stopping.max_tokens = prompt.max_tokens;
  }
  return out;
}

const std::vector<int32_t>& OpenAiRequest::PromptIds(int p) const {
  return p == 0 ? request.prompt_ids : more_prompts[static_cast<size_t>(p - 1)].ids;
}

const std::string& OpenAiRequest::EchoText(int p) const {
  return p == 0 ? echo_text : more_prompts[static_cast<size_t>(p - 1)].echo_text;
}

}  // namespace weft
