// A completions request with several prompts runs as one engine request
// per prompt; PromptBatch joins their events into the events of one
// request for one sink (the HTTP side's StreamBuffer), so that the
// response is built as for a single prompt:
//
// - prompt p's sample i becomes index p·n + i (OpenAI's and vLLM's order);
// - a prompt that ends before the others reports each of its samples' end
//   in a Delta (Delta::finished), as a request's early samples do; its
//   Finished is held until every prompt's has come, then one Finished goes
//   on: samples in prompt order, usage summed (timings are left empty:
//   each prompt's were recorded by its own RequestRecorder);
// - the first Error goes on at once and ends the batch: later events of
//   any prompt are dropped (the HTTP side cancels the other prompts).
//
// So the sink sees exactly one terminal event, last, like any request's.
#ifndef WEFT_SERVER_PROMPT_BATCH_H_
#define WEFT_SERVER_PROMPT_BATCH_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/request.h"

namespace weft {

class PromptBatch : public std::enable_shared_from_this<PromptBatch> {
 public:
  // `n`: samples per prompt.
  static std::shared_ptr<PromptBatch> Create(int num_prompts, int n,
                                             std::shared_ptr<EventSink> out);

  // The sink to give prompt p's engine request.
  std::shared_ptr<EventSink> PromptSink(int p);

 private:
  class Sink;
  PromptBatch(int num_prompts, int n, std::shared_ptr<EventSink> out);

  void OnDelta(int p, Delta delta);
  void OnFinished(int p, Finished finished);
  void OnError(absl::Status status);

  const int n_;
  const std::shared_ptr<EventSink> out_;
  // The engine calls sinks from its loop thread, but a request still
  // queued when the engine stops gets its error on the stopping thread.
  absl::Mutex mu_;
  std::vector<std::optional<Finished>> finished_ ABSL_GUARDED_BY(mu_);
  int num_finished_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // the terminal event went on
};

}  // namespace weft

#endif  // WEFT_SERVER_PROMPT_BATCH_H_
