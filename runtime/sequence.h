// One sample stream of a request as the engine tracks it: its tokens
// (prompt, then output), how many of them have K/V in the cache, and the
// blocks holding that K/V. A request with n > 1 samples is prefilled as one
// sequence and forked into n once its prompt is computed.
#ifndef WEFT_RUNTIME_SEQUENCE_H_
#define WEFT_RUNTIME_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/grammar.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"

namespace weft {

struct RequestState;  // engine.cc

enum class SequenceStatus { kWaiting, kRunning, kFinished };

struct Sequence {
  int64_t seq_id = 0;         // increasing with creation: larger is newer
  int64_t arrival_order = 0;  // of its request: smaller arrived earlier
  int priority = 0;           // the request's; lower is served first
  RequestState* request = nullptr;
  int index = 0;              // which of the request's samples

  std::vector<int32_t> tokens;  // prompt, then generated
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;  // tokens whose K/V is in `blocks`
  BlockTable blocks;
  SequenceStatus status = SequenceStatus::kWaiting;

  int num_forks_pending = 0;    // samples to fork off once the prompt is done
  bool prompt_logprobs = false; // every prompt position needs logits

  std::unique_ptr<SequenceSampler> sampler;
  // The request's structured output, as far as this sample has come;
  // null when unconstrained.
  std::unique_ptr<GrammarMatcher> grammar;
  std::unique_ptr<TextStream> text;

  int num_output_tokens() const {
    return static_cast<int>(tokens.size()) - num_prompt_tokens;
  }
  // Tokens the model still has to run before it can sample.
  int num_uncomputed_tokens() const {
    return static_cast<int>(tokens.size()) - num_computed_tokens;
  }
  bool in_prefill() const { return num_computed_tokens < num_prompt_tokens; }
};

}  // namespace weft

#endif  // WEFT_RUNTIME_SEQUENCE_H_
