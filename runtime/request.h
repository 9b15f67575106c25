// What a client asks of the engine, and what the engine reports back.
//
// Every accepted request ends with exactly one terminal event: OnFinished
// (after all of its `n` samples ended) or OnError. Deltas carry the sample
// index they belong to.
#ifndef WEFT_RUNTIME_REQUEST_H_
#define WEFT_RUNTIME_REQUEST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/grammar.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"

namespace weft {

struct Request {
  std::string id;  // unique among live requests; Cancel() names it
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  StoppingParams stopping;
  // Lower values are served first and preempted last (vLLM's convention).
  int priority = 0;
  std::string tenant;  // who sent it (auth); for admission policies
  // Structured output: every sample's text matches this grammar (compiled
  // by the front end with the served model's GrammarCompiler). Null: free.
  std::shared_ptr<const CompiledGrammar> grammar;
};

struct SampleResult {
  FinishReason reason = FinishReason::kStop;
  std::string stop_reason;  // the stop string or token that ended it
  int num_tokens = 0;
  // The stop token that ended it; -1 for the tokenizer's EOS, a stop
  // string, length or cancel (vLLM's stop_reason).
  int32_t stop_token = -1;
  bool stop_string = false;  // stop_reason is a matched stop string
};

// New output of one sample since the previous delta. A slow consumer's
// deltas are merged, so one Delta may hold several tokens.
struct Delta {
  int index = 0;  // which of the request's n samples
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<SampledToken> logprobs;  // one per token when requested
  // Prompt log-probs (one per prompt token after the first), in the first
  // delta of sample 0 when requested.
  std::vector<SampledToken> prompt_logprobs;
  // How this sample ended, in its last delta, when it ends before its
  // request does (n > 1: the other samples go on). The request's Finished
  // lists every sample again.
  std::optional<SampleResult> finished;

  // Appends `later` to this delta (same index).
  void Merge(Delta&& later);
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;     // over all samples
  int cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
};

struct RequestTimings {
  absl::Duration queue_time;         // submission → first scheduled
  absl::Duration time_to_first_token;  // submission → first token
  absl::Duration end_to_end;         // submission → finish
  // Gaps between consecutive tokens of sample 0 (inter-token latency).
  std::vector<absl::Duration> inter_token;
};

struct Finished {
  std::vector<SampleResult> samples;  // one per index
  Usage usage;
  RequestTimings timings;
};

// Receives one request's events. Called on the engine thread: an
// implementation must return quickly and never block (StreamBuffer is one
// that coalesces for a consumer thread).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnDelta(Delta delta) = 0;
  virtual void OnFinished(Finished finished) = 0;
  virtual void OnError(absl::Status status) = 0;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_REQUEST_H_
