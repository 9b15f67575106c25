// Turns the scheduler's Batch into one flattened BatchMetadata (token ids,
// positions, slot mapping, CSR block tables, logit rows) for a mix of
// prefill chunks and decodes, performs the step's copy-on-write block
// copies, and runs the forward pass once.
#ifndef WEFT_RUNTIME_MODEL_RUNNER_H_
#define WEFT_RUNTIME_MODEL_RUNNER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"
#include "runtime/model/llama.h"
#include "runtime/scheduler.h"

namespace weft {

// What the engine needs of a model: run one scheduled step and expose its
// logits. ModelRunner is the real one; benchmarks of the engine's own
// overhead plug in one that computes nothing.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Runs `batch`; afterwards logits_row(r) for r < batch.num_logit_rows
  // holds the rows in the order of ScheduledSequence::first_logit_row.
  virtual absl::Status Execute(const Batch& batch) = 0;
  virtual absl::Span<const float> logits_row(int row) const = 0;
  // Like Execute when only each logits row's argmax is needed (every row's
  // sequence samples greedily from the raw logits): afterwards argmax_row(r)
  // is ArgMax (runtime/sampler.h) of row r, and logits_row is not valid.
  // The default runs Execute and scans logits_row; ModelRunner reduces on
  // the backend instead, which spares a GPU the copy of every logit.
  virtual absl::Status ExecuteArgMax(const Batch& batch);
  virtual int32_t argmax_row(int row) const;
  virtual int vocab_size() const = 0;
  virtual int max_position_embeddings() const = 0;
  virtual const ModelPlan& plan() const = 0;
};

class ModelRunner : public StepExecutor {
 public:
  ModelRunner(LlamaModel* model, Backend* backend);

  absl::Status Execute(const Batch& batch) override;
  absl::Span<const float> logits_row(int row) const override;
  absl::Status ExecuteArgMax(const Batch& batch) override;
  int32_t argmax_row(int row) const override { return argmax_[row]; }
  int vocab_size() const override { return vocab_size_; }
  int max_position_embeddings() const override {
    return model_->config().max_position_embeddings;
  }
  const ModelPlan& plan() const override { return model_->plan(); }

  // The metadata of `batch` (exposed for tests).
  BatchMetadata BuildMetadata(const Batch& batch) const;

 private:
  LlamaModel* model_;
  Backend* backend_;
  int block_size_;
  int vocab_size_;
  // Runs the step's block copies (copy-on-write), if any.
  absl::Status CopyBlocks(const Batch& batch);

  std::vector<float> logits_;
  std::vector<int32_t> argmax_;
  std::vector<float> nan_row_;  // a row whose argmax the backend left to us
  std::vector<int32_t> copy_src_, copy_dst_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_RUNNER_H_
