#include "runtime/model_runner.h"

#include "runtime/sampler.h"

namespace weft {

ModelRunner::ModelRunner(LlamaModel* model, Backend* backend)
    : model_(model),
      backend_(backend),
      block_size_(model->plan().block_size),
      vocab_size_(model->config().vocab_size) {}

BatchMetadata ModelRunner::BuildMetadata(const Batch& batch) const {
  BatchMetadata meta;
  meta.query_indptr.push_back(0);
  meta.kv_indptr.push_back(0);
  for (const ScheduledSequence& s : batch.seqs) {
    const Sequence& seq = *s.seq;
    const std::vector<BlockId>& blocks = seq.blocks.blocks();
    const int begin = seq.num_computed_tokens;
    const int end = begin + s.num_new_tokens;
    const int first_row = meta.num_tokens();
    for (int p = begin; p < end; ++p) {
      meta.token_ids.push_back(seq.tokens[p]);
      meta.positions.push_back(p);
      meta.slot_mapping.push_back(int64_t{blocks[p / block_size_]} * block_size_ +
                                  p % block_size_);
    }
    // The rows whose logits are wanted are the chunk's last ones.
    for (int r = 0; r < s.num_logit_rows; ++r) {
      meta.logits_rows.push_back(first_row + s.num_new_tokens -
                                 s.num_logit_rows + r);
    }
    meta.query_indptr.push_back(meta.num_tokens());
    const int num_blocks = (end + block_size_ - 1) / block_size_;
    meta.kv_indices.insert(meta.kv_indices.end(), blocks.begin(),
                           blocks.begin() + num_blocks);
    meta.kv_indptr.push_back(static_cast<int>(meta.kv_indices.size()));
    meta.kv_last_block_len.push_back(end - (num_blocks - 1) * block_size_);
  }
  return meta;
}

absl::Status StepExecutor::ExecuteArgMax(const Batch& batch) {
  return Execute(batch);
}

int32_t StepExecutor::argmax_row(int row) const {
  return ArgMax(logits_row(row));
}

absl::Status ModelRunner::CopyBlocks(const Batch& batch) {
  if (batch.copies.empty()) return absl::OkStatus();
  copy_src_.clear();
  copy_dst_.clear();
  for (const BlockCopy& copy : batch.copies) {
    copy_src_.push_back(copy.src);
    copy_dst_.push_back(copy.dst);
  }
  return backend_->CopyKvBlocks(copy_src_, copy_dst_);
}

absl::Status ModelRunner::Execute(const Batch& batch) {
  if (absl::Status s = CopyBlocks(batch); !s.ok()) return s;
  return model_->Forward(BuildMetadata(batch), &logits_);
}

absl::Status ModelRunner::ExecuteArgMax(const Batch& batch) {
  if (absl::Status s = CopyBlocks(batch); !s.ok()) return s;
  logits_.clear();
  if (absl::Status s = model_->ForwardArgMax(BuildMetadata(batch), &argmax_);
      !s.ok()) {
    return s;
  }
  // A row with a NaN: the sampler's ArgMax decides, on that row's logits.
  for (size_t r = 0; r < argmax_.size(); ++r) {
    if (argmax_[r] >= 0) continue;
    nan_row_.resize(vocab_size_);
    if (absl::Status s = model_->CopyLogitsRow(static_cast<int>(r), nan_row_.data());
        !s.ok()) {
      return s;
    }
    argmax_[r] = ArgMax(nan_row_);
  }
  return absl::OkStatus();
}

absl::Span<const float> ModelRunner::logits_row(int row) const {
  return absl::MakeConstSpan(logits_).subspan(
      static_cast<size_t>(row) * vocab_size_, vocab_size_);
}

}  // namespace weft
