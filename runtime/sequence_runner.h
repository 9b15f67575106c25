// Runs one sequence through a LlamaModel step by step: a prompt (in chunks
// of the model plan's max_num_tokens) and then one token at a time. The
// sequence owns KV blocks 0, 1, 2, … in order. It is what weft-generate and
// the model's golden tests use; the serving core replaces it with the
// scheduler and block manager, which build the same BatchMetadata for many
// sequences at once.
#ifndef WEFT_RUNTIME_SEQUENCE_RUNNER_H_
#define WEFT_RUNTIME_SEQUENCE_RUNNER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model/llama.h"

namespace weft {

// The batch for `tokens` appended to a sequence that holds `start_position`
// tokens already, in blocks `block_table` (enough for the new tokens too).
// Logits are requested for every new token when `all_logits`, else for the
// last one.
BatchMetadata SingleSequenceBatch(absl::Span<const int32_t> tokens,
                                  int start_position,
                                  absl::Span<const int32_t> block_table,
                                  int block_size, bool all_logits);

class SequenceRunner {
 public:
  explicit SequenceRunner(LlamaModel* model);

  // Appends `tokens` and returns the logits after the last of them, [vocab].
  // OutOfRange when the sequence would exceed the model's context or the KV
  // cache; the sequence is unchanged then.
  absl::StatusOr<absl::Span<const float>> Append(
      absl::Span<const int32_t> tokens);

  // Like Append, and returns the logits after every one of the tokens,
  // [tokens.size(), vocab] row-major.
  absl::StatusOr<absl::Span<const float>> AppendAllLogits(
      absl::Span<const int32_t> tokens);

  int length() const { return length_; }
  int capacity() const { return capacity_; }
  void Reset() { length_ = 0; }

 private:
  absl::StatusOr<absl::Span<const float>> Run(absl::Span<const int32_t> tokens,
                                              bool all_logits);

  LlamaModel* model_;
  int length_ = 0;
  int capacity_ = 0;
  std::vector<int32_t> block_table_;
  std::vector<float> step_logits_;
  std::vector<float> logits_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_SEQUENCE_RUNNER_H_
