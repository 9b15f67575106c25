#include "server/prompt_batch.h"

#include <utility>

namespace weft {

class PromptBatch::Sink : public EventSink {
 public:
  Sink(std::shared_ptr<PromptBatch> batch, int p)
      : batch_(std::move(batch)), p_(p) {}
  void OnDelta(Delta delta) override { batch_->OnDelta(p_, std::move(delta)); }
  void OnFinished(Finished finished) override {
    batch_->OnFinished(p_, std::move(finished));
  }
  void OnError(absl::Status status) override { batch_->OnError(std::move(status)); }

 private:
  const std::shared_ptr<PromptBatch> batch_;
  const int p_;
};

std::shared_ptr<PromptBatch> PromptBatch::Create(int num_prompts, int n,
                                                 std::shared_ptr<EventSink> out) {
  return std::shared_ptr<PromptBatch>(new PromptBatch(num_prompts, n, std::move(out)));
}

PromptBatch::PromptBatch(int num_prompts, int n, std::shared_ptr<EventSink> out)
    : n_(n), out_(std::move(out)), finished_(static_cast<size_t>(num_prompts)) {}

std::shared_ptr<EventSink> PromptBatch::PromptSink(int p) {
  return std::make_shared<Sink>(shared_from_this(), p);
}

// Events go on under mu_, so that nothing follows the terminal event
// (the sink never calls back into the batch).
void PromptBatch::OnDelta(int p, Delta delta) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;
  delta.index += p * n_;
  out_->OnDelta(std::move(delta));
}

void PromptBatch::OnFinished(int p, Finished finished) {
  absl::MutexLock lock(&mu_);
  if (ended_ || finished_[static_cast<size_t>(p)]) return;
  if (++num_finished_ < static_cast<int>(finished_.size())) {
    // The others go on: this prompt's samples end now, as a sample of a
    // single request that ends before the others does (a stream sends
    // each choice's finish_reason when it ends; the sink ignores a second
    // report of a sample whose end a delta already carried).
    for (size_t i = 0; i < finished.samples.size(); ++i) {
      Delta delta;
      delta.index = p * n_ + static_cast<int>(i);
      delta.finished = finished.samples[i];
      out_->OnDelta(std::move(delta));
    }
    finished_[static_cast<size_t>(p)] = std::move(finished);
    return;
  }
  finished_[static_cast<size_t>(p)] = std::move(finished);
  ended_ = true;
  Finished all;
  for (std::optional<Finished>& one : finished_) {
    for (SampleResult& sample : one->samples) all.samples.push_back(std::move(sample));
    all.usage.prompt_tokens += one->usage.prompt_tokens;
    all.usage.completion_tokens += one->usage.completion_tokens;
    all.usage.cached_prompt_tokens += one->usage.cached_prompt_tokens;
  }
  out_->OnFinished(std::move(all));
}

void PromptBatch::OnError(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;
  ended_ = true;
  out_->OnError(std::move(status));
}

}  // namespace weft
