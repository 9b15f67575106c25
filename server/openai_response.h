// Response bodies of /v1/completions and /v1/chat/completions, built from
// one request's engine events: the whole JSON object, or server-sent-event
// chunks ("data: {…}\n\n", ending with "data: [DONE]\n\n"). Shapes follow
// OpenAI's API reference (docs/http.md shows them); vLLM's `stop_reason`
// is added to each choice.
#ifndef WEFT_SERVER_OPENAI_RESPONSE_H_
#define WEFT_SERVER_OPENAI_RESPONSE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/request.h"
#include "runtime/tokenizer/tokenizer.h"
#include "server/openai_request.h"
#include "server/tool_calls.h"

namespace weft {

// How a token is shown in log-probs: its bytes when they are valid UTF-8,
// else "bytes:\xNN…" (OpenAI's convention for partial characters).
std::string TokenString(const Tokenizer& tokenizer, int32_t token);

// One SSE event carrying `data`.
std::string SseEvent(const Json& data);
inline constexpr absl::string_view kSseDone = "data: [DONE]\n\n";
// A failure after the stream started: an event holding OpenAI's error
// object (the `openai` client raises it), then [DONE].
std::string SseError(const absl::Status& status);

class OpenAiResponseBuilder {
 public:
  // `request` is the parsed request; `id` the response id ("cmpl-…",
  // "chatcmpl-…"); `created` Unix seconds. `tokenizer` must outlive this.
  OpenAiResponseBuilder(const OpenAiRequest& request, std::string id,
                        std::string model, int64_t created,
                        const Tokenizer& tokenizer);

  // Streaming. Chat opens every choice with a chunk holding the role.
  std::string StreamStart();
  std::string StreamDelta(const Delta& delta);
  // The finish reason of each choice whose end no delta reported (a
  // sample that ends while others go on reports it in its last delta),
  // the usage chunk when asked for, [DONE].
  std::string StreamFinish(const Finished& finished);

  // Not streaming: collect every delta, then build the whole object.
  void Accumulate(const Delta& delta);
  Json Complete(const Finished& finished) const;

 private:
  // Completions' logprobs text_offset: the code points of the text before
  // each token, counted on the tokens' real bytes (not their "bytes:…"
  // display) up to the last whole character, so that a character split
  // over tokens counts once, at the token that completes it.
  struct TextOffset {
    int64_t code_points = 0;  // of the complete characters so far
    std::string pending;      // bytes of a character not yet complete
    // The offset of a token with `bytes`; then counts them.
    int64_t Take(const std::string& bytes);
  };

  struct Choice {
    std::string text;
    std::vector<SampledToken> logprobs;
    bool started = false;   // streaming: a chunk for it was sent
    TextOffset text_offset;  // completions' logprobs
    int num_tokens = 0;      // streaming: tokens generated so far
    bool finished = false;   // streaming: its finish_reason was sent
    // Chat with tools: the text as it streams, split into content and
    // tool calls; the calls sent so far.
    std::optional<ToolCallParser> tools;
    int num_tool_calls = 0;
  };

  // What the response shows of one prompt (a completions request may have
  // several; choice c belongs to prompt c / n).
  struct Prompt {
    int num_tokens = 0;
    int32_t first_token = -1;
    std::string echo_text;  // empty unless echo
    // Where the completion starts in the choice's text: its tokens'
    // text_offset count from here, whatever the prompt's tokens add up to
    // (an added BOS, a tokenizer's stripped leading space).
    int64_t echo_code_points = 0;
    // Its tokens' scores after the first (echo with logprobs), from the
    // first delta of its engine request.
    std::vector<SampledToken> logprobs;
  };

  const Prompt& PromptOf(int choice) const { return prompts_[choice / n_]; }
  Json ChunkHeader() const;
  // A chunk for choice `index`: with continuous usage, its usage so far.
  Json ChoiceChunk(int index) const;
  Json StreamChoice(int index, std::string text,
                    const std::vector<SampledToken>& logprobs,
                    Choice* choice) const;
  // The chunk with choice `index`'s finish_reason; marks it finished.
  std::string FinishChunk(int index, const SampleResult& sample);
  // The `logprobs` object of a choice, or null when not asked for; with
  // `prompt` (completions with echo and logprobs) its tokens come first:
  // the first with null log-prob and alternatives (nothing precedes it),
  // then the engine's prompt log-probs.
  Json Logprobs(const std::vector<SampledToken>& tokens,
                TextOffset* text_offset, const Prompt* prompt = nullptr) const;
  // Keeps the prompt log-probs a delta carries (the request's first one).
  void TakePromptLogprobs(const Delta& delta);
  // vLLM's prompt_logprobs: null for the first token, then per token
  // {"<id>": {"logprob", "rank", "decoded_token"}, …}, the token first.
  Json PromptLogprobsJson(const Prompt& prompt) const;
  Json ChatLogprobEntry(int32_t token, float logprob) const;
  // A tool call as a message or a chunk shows it; a fresh id each call.
  Json ToolCallJson(const ToolCall& call) const;
  // Streaming, chat with tools: the parser's output in order, a chunk per
  // content piece and per call ("delta": {"tool_calls": [{"index", …}]}).
  std::string ParsedChunks(int index, ToolCallParser::Output parsed,
                           const std::vector<SampledToken>& logprobs);
  // "tool_calls" for a sample that stopped after calling tools.
  static const char* FinishReasonOf(const SampleResult& sample, bool called);
  Json UsageJson(const Finished& finished) const;

  OpenAiApi api_;
  bool logprobs_;
  bool include_usage_;
  bool continuous_usage_;
  ToolCallFormat tool_format_;  // chat with tools; kNone otherwise
  std::string tool_function_;   // kNamedFunction's function
  bool mistral_ids_;            // call ids in Mistral's 9-character form
  // A named tool_choice's call ends with "stop", as OpenAI's and vLLM's.
  bool named_call() const { return tool_format_ == ToolCallFormat::kNamedFunction; }
  bool echo_logprobs_;     // completions with echo and logprobs
  int top_logprobs_;       // alternatives per legacy logprobs entry
  int prompt_logprobs_;    // vLLM's prompt_logprobs; -1: not asked
  bool echo_only_;         // echo with max_tokens 0: no completion shown
  int n_;                  // choices per prompt
  std::vector<Prompt> prompts_;
  std::string id_;
  std::string model_;
  int64_t created_;
  const Tokenizer& tokenizer_;
  std::vector<Choice> choices_;
};

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_RESPONSE_H_
