#include "server/openai_response.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/detokenizer.h"
#include "runtime/tokenizer/utf8.h"
#include "server/openai_errors.h"

namespace weft {
namespace {

// JSON has no -infinity (a token the model gives zero probability): report
// vLLM's floor instead.
constexpr double kMinLogprob = -9999.0;

double FiniteLogprob(float logprob) {
  return std::isfinite(logprob) ? static_cast<double>(logprob) : kMinLogprob;
}

std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
    case FinishReason::kError: return "error";
  }
  return "stop";
}

// vLLM's stop_reason: the stop token (an integer: a stop_token_ids entry or
// one of the generation config's other EOS ids) or the stop string that
// ended the choice; null for the tokenizer's EOS, length or cancel.
Json StopReason(const SampleResult& sample) {
  if (sample.reason != FinishReason::kStop) return nullptr;
  if (sample.stop_token >= 0) return sample.stop_token;
  if (sample.stop_string) return sample.stop_reason;
  return nullptr;
}

}  // namespace

std::string TokenString(const Tokenizer& tokenizer, int32_t token) {
  const std::string bytes = tokenizer.TokenBytes(token);
  if (tokenizer_internal::IsValidUtf8(bytes)) return bytes;
  std::string out = "bytes:";
  for (unsigned char byte : bytes) absl::StrAppendFormat(&out, "\\x%02x", byte);
  return out;
}

std::string SseEvent(const Json& data) {
  return absl::StrCat("data: ", Dump(data), "\n\n");
}

std::string SseError(const absl::Status& status) {
  const HttpError error = ToHttpError(status);
  return absl::StrCat("data: ", error.body, "\n\n", kSseDone);
}

OpenAiResponseBuilder::OpenAiResponseBuilder(const OpenAiRequest& request,
                                             std::string id, std::string model,
                                             int64_t created,
                                             const Tokenizer& tokenizer)
    : api_(request.api),
      logprobs_(request.logprobs),
      include_usage_(request.include_usage),
      continuous_usage_(request.continuous_usage),
      tool_format_(request.api == OpenAiApi::kChatCompletions
                       ? request.tool_call_format
                       : ToolCallFormat::kNone),
      tool_function_(request.tool_choice_function),
      mistral_ids_(request.mistral_tool_call_ids ||
                   request.tool_call_format == ToolCallFormat::kMistral),
      echo_logprobs_(request.api == OpenAiApi::kCompletions && request.echo &&
                     request.logprobs),
      top_logprobs_(request.top_logprobs),
      prompt_logprobs_(request.prompt_logprobs),
      echo_only_(request.echo_only),
      n_(std::max(1, request.request.sampling.n)),
      prompts_(static_cast<size_t>(request.num_prompts())),
      id_(std::move(id)),
      model_(std::move(model)),
      created_(created),
      tokenizer_(tokenizer),
      choices_(static_cast<size_t>(request.num_prompts() * n_)) {
  if (tool_format_ != ToolCallFormat::kNone) {
    for (Choice& choice : choices_) choice.tools.emplace(tool_format_, tool_function_);
  }
  for (int p = 0; p < request.num_prompts(); ++p) {
    const std::vector<int32_t>& ids = request.PromptIds(p);
    Prompt& prompt = prompts_[static_cast<size_t>(p)];
    prompt.num_tokens = static_cast<int>(ids.size());
    if (!ids.empty()) prompt.first_token = ids.front();
    if (request.echo) {
      prompt.echo_text = request.EchoText(p);
      prompt.echo_code_points =
          static_cast<int64_t>(tokenizer_internal::CountCodePoints(
              tokenizer_internal::Utf8Lossy(prompt.echo_text)));
    }
  }
}

Json OpenAiResponseBuilder::ChunkHeader() const {
  Json chunk = {
      {"id", id_},
      {"object", api_ == OpenAiApi::kChatCompletions ? "chat.completion.chunk"
                                                     : "text_completion"},
      {"created", created_},
      {"model", model_},
      {"system_fingerprint", nullptr},
      {"choices", Json::array()},
  };
  if (include_usage_) chunk["usage"] = nullptr;
  return chunk;
}

Json OpenAiResponseBuilder::ChoiceChunk(int index) const {
  Json chunk = ChunkHeader();
  if (continuous_usage_) {
    const int prompt_tokens = PromptOf(index).num_tokens;
    const int completion_tokens = choices_[static_cast<size_t>(index)].num_tokens;
    chunk["usage"] = Json{{"prompt_tokens", prompt_tokens},
                          {"completion_tokens", completion_tokens},
                          {"total_tokens", prompt_tokens + completion_tokens}};
  }
  return chunk;
}

Json OpenAiResponseBuilder::ChatLogprobEntry(int32_t token,
                                             float logprob) const {
  const std::string bytes = tokenizer_.TokenBytes(token);
  Json byte_values = Json::array();
  for (unsigned char byte : bytes) byte_values.push_back(static_cast<int>(byte));
  return Json{{"token", TokenString(tokenizer_, token)},
              {"logprob", FiniteLogprob(logprob)},
              {"bytes", std::move(byte_values)}};
}

Json OpenAiResponseBuilder::PromptLogprobsJson(const Prompt& prompt) const {
  Json out = Json::array({nullptr});
  auto entry = [&](int32_t token, float logprob, int rank) {
    return Json{{"logprob", FiniteLogprob(logprob)},
                {"rank", rank},
                {"decoded_token",
                 tokenizer_internal::Utf8Lossy(tokenizer_.TokenBytes(token))}};
  };
  for (const SampledToken& t : prompt.logprobs) {
    Json position = Json::object();
    position[absl::StrCat(t.token)] = entry(t.token, t.logprob, t.rank);
    const size_t shown = std::min(t.top.size(), static_cast<size_t>(prompt_logprobs_));
    for (size_t j = 0; j < shown; ++j) {
      const std::string key = absl::StrCat(t.top[j].token);
      if (!position.contains(key)) {
        position[key] = entry(t.top[j].token, t.top[j].logprob, static_cast<int>(j) + 1);
      }
    }
    out.push_back(std::move(position));
  }
  return out;
}

Json OpenAiResponseBuilder::ToolCallJson(const ToolCall& call) const {
  // Mistral's templates accept only 9 letters and digits as an id; others
  // get vLLM's "chatcmpl-tool-" + 32 hex digits.
  absl::BitGen random;
  std::string id;
  if (mistral_ids_) {
    constexpr absl::string_view kChars =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int i = 0; i < 9; ++i) {
      id += kChars[absl::Uniform<size_t>(random, 0, kChars.size())];
    }
  } else {
    id = absl::StrFormat("chatcmpl-tool-%016x%016x", absl::Uniform<uint64_t>(random),
                         absl::Uniform<uint64_t>(random));
  }
  return Json{{"id", std::move(id)},
              {"type", "function"},
              {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

std::string OpenAiResponseBuilder::ParsedChunks(
    int index, ToolCallParser::Output parsed,
    const std::vector<SampledToken>& logprobs) {
  std::string events;
  Choice& choice = choices_[static_cast<size_t>(index)];
  // The delta's log-probs go with its first content chunk, or alone (as
  // for held-back text) when it has none.
  bool logprobs_sent = !logprobs_ || logprobs.empty();
  static const std::vector<SampledToken> kNone;
  for (auto& item : parsed.items) {
    Json chunk = ChoiceChunk(index);
    if (std::string* text = std::get_if<std::string>(&item)) {
      chunk["choices"].push_back(
          StreamChoice(index, std::move(*text), logprobs_sent ? kNone : logprobs, &choice));
      logprobs_sent = true;
    } else {
      Json entry = {{"index", choice.num_tool_calls++}};
      entry.update(ToolCallJson(std::get<ToolCall>(item)));
      chunk["choices"].push_back(Json{{"index", index},
                                      {"delta", {{"tool_calls", Json::array({entry})}}},
                                      {"logprobs", nullptr},
                                      {"finish_reason", nullptr}});
    }
    events += SseEvent(chunk);
  }
  if (!logprobs_sent) {
    Json chunk = ChoiceChunk(index);
    chunk["choices"].push_back(StreamChoice(index, "", logprobs, &choice));
    events += SseEvent(chunk);
  }
  return events;
}

const char* OpenAiResponseBuilder::FinishReasonOf(const SampleResult& sample,
                                                  bool called) {
  // vLLM's rule: a sample that called tools ends with "tool_calls", also
  // when max_tokens cut what followed (the calls it made are whole).
  if (called && (sample.reason == FinishReason::kStop ||
                 sample.reason == FinishReason::kLength)) {
    return "tool_calls";
  }
  return FinishReasonName(sample.reason);
}

void OpenAiResponseBuilder::TakePromptLogprobs(const Delta& delta) {
  if ((!echo_logprobs_ && prompt_logprobs_ < 0) || delta.prompt_logprobs.empty()) {
    return;
  }
  std::vector<SampledToken>& logprobs = prompts_[delta.index / n_].logprobs;
  logprobs.insert(logprobs.end(), delta.prompt_logprobs.begin(),
                  delta.prompt_logprobs.end());
}

Json OpenAiResponseBuilder::Logprobs(const std::vector<SampledToken>& tokens,
                                     TextOffset* text_offset,
                                     const Prompt* prompt) const {
  if (!logprobs_) return nullptr;
  if (api_ == OpenAiApi::kChatCompletions) {
    Json content = Json::array();
    for (const SampledToken& t : tokens) {
      Json entry = ChatLogprobEntry(t.token, t.logprob);
      Json top = Json::array();
      for (const TokenLogprob& alt : t.top) {
        top.push_back(ChatLogprobEntry(alt.token, alt.logprob));
      }
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    return Json{{"content", std::move(content)}};
  }
  // The legacy shape: parallel arrays.
  Json strings = Json::array();
  Json logprobs = Json::array();
  Json top_logprobs = Json::array();
  Json offsets = Json::array();
  // `scored` is null for the prompt's first token. A prompt token's
  // alternatives may be more than `logprobs` (the engine scored the prompt
  // for prompt_logprobs too): `max_top` cuts them.
  auto add = [&](int32_t token, const SampledToken* scored,
                 size_t max_top = std::numeric_limits<size_t>::max()) {
    const std::string text = TokenString(tokenizer_, token);
    strings.push_back(text);
    offsets.push_back(text_offset->Take(tokenizer_.TokenBytes(token)));
    if (scored == nullptr) {
      logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      return;
    }
    logprobs.push_back(FiniteLogprob(scored->logprob));
    Json top = Json::object();
    const size_t shown = std::min(scored->top.size(), max_top);
    for (size_t j = 0; j < shown; ++j) {
      const TokenLogprob& alt = scored->top[j];
      top[TokenString(tokenizer_, alt.token)] = FiniteLogprob(alt.logprob);
    }
    // OpenAI: "up to logprobs + 1 elements": the sampled token is always
    // among them (vLLM adds it too), even at logprobs 0 or when sampling
    // drew a token outside the top ones.
    if (!top.contains(text)) top[text] = FiniteLogprob(scored->logprob);
    top_logprobs.push_back(std::move(top));
  };
  if (prompt != nullptr && prompt->first_token >= 0) {
    add(prompt->first_token, nullptr);
    for (const SampledToken& t : prompt->logprobs) {
      add(t.token, &t, static_cast<size_t>(top_logprobs_));
    }
    // The prompt's entries count their tokens' bytes from 0 (as vLLM's
    // do); the completion's index the returned text.
    text_offset->code_points = prompt->echo_code_points;
    text_offset->pending.clear();
  }
  for (const SampledToken& t : tokens) add(t.token, &t);
  return Json{{"tokens", std::move(strings)},
              {"token_logprobs", std::move(logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(offsets)}};
}

int64_t OpenAiResponseBuilder::TextOffset::Take(const std::string& bytes) {
  const int64_t offset = code_points;
  pending += bytes;
  const size_t complete = CompleteUtf8Prefix(pending);
  code_points += static_cast<int64_t>(tokenizer_internal::CountCodePoints(
      tokenizer_internal::Utf8Lossy(absl::string_view(pending).substr(0, complete))));
  pending.erase(0, complete);
  return offset;
}

Json OpenAiResponseBuilder::UsageJson(const Finished& finished) const {
  const weft::Usage& usage = finished.usage;
  return Json{
      {"prompt_tokens", usage.prompt_tokens},
      {"completion_tokens", usage.completion_tokens},
      {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
      {"prompt_tokens_details", {{"cached_tokens", usage.cached_prompt_tokens}}},
  };
}

Json OpenAiResponseBuilder::StreamChoice(
    int index, std::string text, const std::vector<SampledToken>& logprobs,
    Choice* choice) const {
  const bool first = !choice->started;
  const Prompt& prompt = PromptOf(index);
  if (first && !prompt.echo_text.empty()) text = prompt.echo_text + text;
  choice->started = true;
  Json out = {{"index", index}};
  if (api_ == OpenAiApi::kChatCompletions) {
    out["delta"] = Json::object();
    if (!text.empty()) out["delta"]["content"] = std::move(text);
  } else {
    out["text"] = std::move(text);
  }
  out["logprobs"] = Logprobs(logprobs, &choice->text_offset,
                             first && echo_logprobs_ ? &prompt : nullptr);
  out["finish_reason"] = nullptr;
  return out;
}

std::string OpenAiResponseBuilder::StreamStart() {
  if (api_ != OpenAiApi::kChatCompletions) return "";
  std::string events;
  for (size_t i = 0; i < choices_.size(); ++i) {
    Json chunk = ChoiceChunk(static_cast<int>(i));
    chunk["choices"].push_back(
        Json{{"index", i},
             {"delta", {{"role", "assistant"}, {"content", ""}}},
             {"logprobs", nullptr},
             {"finish_reason", nullptr}});
    events += SseEvent(chunk);
  }
  return events;
}

std::string OpenAiResponseBuilder::StreamDelta(const Delta& delta) {
  if (delta.index < 0 || delta.index >= static_cast<int>(choices_.size())) {
    return "";
  }
  TakePromptLogprobs(delta);
  Choice& choice = choices_[delta.index];
  choice.num_tokens += static_cast<int>(delta.token_ids.size());
  std::string events;
  // echo with max_tokens 0: the prompt alone, in the choice's first chunk.
  static const std::vector<SampledToken> kNone;
  std::string text = echo_only_ ? std::string() : delta.text;
  const std::vector<SampledToken>& logprobs =
      echo_only_ ? kNone : delta.logprobs;
  if (choice.tools) {
    events = ParsedChunks(delta.index, choice.tools->Add(text), logprobs);
  } else if (!text.empty() || (logprobs_ && !logprobs.empty()) ||
             (echo_only_ && !choice.started)) {
    // A delta may carry only held-back tokens (no text yet): send it when
    // it has something the client sees.
    Json chunk = ChoiceChunk(delta.index);
    chunk["choices"].push_back(
        StreamChoice(delta.index, std::move(text), logprobs, &choice));
    events = SseEvent(chunk);
  }
  // A sample that ended before the others: its finish_reason now (vLLM).
  if (delta.finished && !choice.finished) {
    events += FinishChunk(delta.index, *delta.finished);
  }
  return events;
}

std::string OpenAiResponseBuilder::FinishChunk(int index,
                                               const SampleResult& sample) {
  Choice& choice = choices_[index];
  std::string events;
  if (choice.tools) {  // what the parser held back: content or calls
    events = ParsedChunks(index, choice.tools->Finish(), {});
  }
  choice.finished = true;
  Json chunk = ChoiceChunk(index);
  Json out = StreamChoice(index, "", {}, &choice);
  out["finish_reason"] = FinishReasonOf(sample, choice.num_tool_calls > 0 && !named_call());
  out["stop_reason"] = StopReason(sample);
  chunk["choices"].push_back(std::move(out));
  return events + SseEvent(chunk);
}

std::string OpenAiResponseBuilder::StreamFinish(const Finished& finished) {
  std::string events;
  for (size_t i = 0; i < choices_.size() && i < finished.samples.size(); ++i) {
    if (!choices_[i].finished) {
      events += FinishChunk(static_cast<int>(i), finished.samples[i]);
    }
  }
  if (include_usage_) {
    Json chunk = ChunkHeader();
    chunk["usage"] = UsageJson(finished);
    events += SseEvent(chunk);
  }
  absl::StrAppend(&events, kSseDone);
  return events;
}

void OpenAiResponseBuilder::Accumulate(const Delta& delta) {
  if (delta.index < 0 || delta.index >= static_cast<int>(choices_.size())) {
    return;
  }
  TakePromptLogprobs(delta);
  if (echo_only_) return;  // the prompt alone
  Choice& choice = choices_[delta.index];
  choice.text += delta.text;
  choice.logprobs.insert(choice.logprobs.end(), delta.logprobs.begin(),
                         delta.logprobs.end());
}

Json OpenAiResponseBuilder::Complete(const Finished& finished) const {
  const bool chat = api_ == OpenAiApi::kChatCompletions;
  Json response = {
      {"id", id_},
      {"object", chat ? "chat.completion" : "text_completion"},
      {"created", created_},
      {"model", model_},
      {"system_fingerprint", nullptr},
      {"choices", Json::array()},
  };
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& choice = choices_[i];
    Json out = {{"index", i}};
    const SampleResult sample =
        i < finished.samples.size() ? finished.samples[i] : SampleResult{};
    bool called = false;
    if (chat) {
      std::string content = choice.text;
      Json tool_calls = Json::array();
      if (tool_format_ != ToolCallFormat::kNone) {
        ToolCallParser parser(tool_format_, tool_function_);
        ToolCallParser::Output head = parser.Add(choice.text);
        ToolCallParser::Output tail = parser.Finish();
        content = head.JoinedContent() + tail.JoinedContent();
        for (auto* part : {&head, &tail}) {
          for (const ToolCall& call : part->Calls()) tool_calls.push_back(ToolCallJson(call));
        }
      }
      called = !tool_calls.empty();
      out["message"] = {{"role", "assistant"},
                        // Only spaces around the calls: no content (vLLM: null).
                        {"content", called && absl::StripAsciiWhitespace(content).empty()
                                        ? Json(nullptr)
                                        : Json(content)},
                        {"refusal", nullptr}};
      if (called) out["message"]["tool_calls"] = std::move(tool_calls);
    } else {
      out["text"] = PromptOf(static_cast<int>(i)).echo_text + choice.text;
    }
    TextOffset text_offset;
    out["logprobs"] =
        Logprobs(choice.logprobs, &text_offset,
                 echo_logprobs_ ? &PromptOf(static_cast<int>(i)) : nullptr);
    out["finish_reason"] = FinishReasonOf(sample, called && !named_call());
    out["stop_reason"] = StopReason(sample);
    if (!chat && prompt_logprobs_ >= 0) {
      out["prompt_logprobs"] = PromptLogprobsJson(PromptOf(static_cast<int>(i)));
    }
    response["choices"].push_back(std::move(out));
  }
  if (chat && prompt_logprobs_ >= 0) {  // vLLM: once, beside the choices
    response["prompt_logprobs"] = PromptLogprobsJson(prompts_[0]);
  }
  response["usage"] = UsageJson(finished);
  return response;
}

}  // namespace weft
