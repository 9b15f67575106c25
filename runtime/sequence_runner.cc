#include "runtime/sequence_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace weft {

BatchMetadata SingleSequenceBatch(absl::Span<const int32_t> tokens,
                                  int start_position,
                                  absl::Span<const int32_t> block_table,
                                  int block_size, bool all_logits) {
  BatchMetadata batch;
  const int n = static_cast<int>(tokens.size());
  const int end = start_position + n;
  batch.token_ids.assign(tokens.begin(), tokens.end());
  for (int i = 0; i < n; ++i) {
    const int position = start_position + i;
    batch.positions.push_back(position);
    batch.slot_mapping.push_back(
        int64_t{block_table[position / block_size]} * block_size +
        position % block_size);
    if (all_logits || i == n - 1) batch.logits_rows.push_back(i);
  }
  const int num_blocks = (end + block_size - 1) / block_size;
  batch.query_indptr = {0, n};
  batch.kv_indptr = {0, num_blocks};
  batch.kv_indices.assign(block_table.begin(), block_table.begin() + num_blocks);
  batch.kv_last_block_len = {end - (num_blocks - 1) * block_size};
  return batch;
}

SequenceRunner::SequenceRunner(LlamaModel* model) : model_(model) {
  const ModelPlan& plan = model->plan();
  capacity_ = std::min(plan.num_kv_blocks * plan.block_size,
                       model->config().max_position_embeddings);
  for (int b = 0; b < plan.num_kv_blocks; ++b) block_table_.push_back(b);
}

absl::StatusOr<absl::Span<const float>> SequenceRunner::Append(
    absl::Span<const int32_t> tokens) {
  return Run(tokens, /*all_logits=*/false);
}

absl::StatusOr<absl::Span<const float>> SequenceRunner::AppendAllLogits(
    absl::Span<const int32_t> tokens) {
  return Run(tokens, /*all_logits=*/true);
}

absl::StatusOr<absl::Span<const float>> SequenceRunner::Run(
    absl::Span<const int32_t> tokens, bool all_logits) {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to append");
  if (length_ + static_cast<int64_t>(tokens.size()) > capacity_) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", length_ + tokens.size(),
        " tokens exceeds the context of ", capacity_, " tokens"));
  }
  const ModelPlan& plan = model_->plan();
  const int vocab = model_->config().vocab_size;
  // A chunk may ask for at most max_num_logits rows of logits.
  const int chunk_limit = all_logits
                              ? std::min(plan.max_num_tokens, plan.max_num_logits)
                              : plan.max_num_tokens;
  logits_.clear();
  int done = 0;
  const int start = length_;
  while (done < static_cast<int>(tokens.size())) {
    const int n =
        std::min(chunk_limit, static_cast<int>(tokens.size()) - done);
    const BatchMetadata batch =
        SingleSequenceBatch(tokens.subspan(done, n), start + done,
                            block_table_, plan.block_size, all_logits);
    if (absl::Status s = model_->Forward(batch, &step_logits_); !s.ok()) {
      length_ = start;
      return s;
    }
    if (all_logits || done + n == static_cast<int>(tokens.size())) {
      logits_.insert(logits_.end(), step_logits_.begin(), step_logits_.end());
    }
    done += n;
  }
  length_ = start + done;
  if (!all_logits) {
    return absl::Span<const float>(logits_.data() + logits_.size() - vocab,
                                   vocab);
  }
  return absl::Span<const float>(logits_);
}

}  // namespace weft
