// The scheduler: which sequences run in the next step, and how many tokens
// of each (vLLM V1 style, one token budget per step).
//
//   1. Running sequences first, by priority, then oldest request first: a
//      decode takes one token, an unfinished prompt its next chunk. When the
//      KV cache cannot hold a sequence's new tokens, the lowest-priority,
//      newest running sequence not yet in the batch is preempted (its
//      blocks freed, recomputed later) until it can.
//   2. Then waiting sequences in admission order (a replaceable policy;
//      default: priority, then arrival), each taking a chunk of its prompt
//      (after any prefix-cache hit) while the budget, max_num_seqs and the
//      KV cache allow. Nothing is admitted in a step that preempted.
// Prefill chunks and decodes share one forward pass. Pure CPU and
// deterministic; owned by the engine thread.
#ifndef WEFT_RUNTIME_SCHEDULER_H_
#define WEFT_RUNTIME_SCHEDULER_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "runtime/block_manager.h"
#include "runtime/sequence.h"

namespace weft {

struct SchedulerConfig {
  int max_num_seqs = 256;             // running sequences at once
  int max_num_batched_tokens = 2048;  // tokens in one forward pass
  int max_num_logit_rows = 512;       // rows of logits in one forward pass
  bool enable_prefix_caching = true;

  absl::Status Validate() const;
};

// True when `a` should be admitted before `b`.
using AdmissionPolicy =
    std::function<bool(const Sequence& a, const Sequence& b)>;
// Lower priority value first, then earlier arrival, then older sequence.
bool PriorityThenArrival(const Sequence& a, const Sequence& b);

struct ScheduledSequence {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;  // tokens[num_computed, num_computed + num_new)
  bool samples = false;    // the chunk reaches the end: sample a token
  int first_logit_row = 0;
  int num_logit_rows = 0;  // 1 when sampling; every row for prompt logprobs
};

struct Batch {
  std::vector<ScheduledSequence> seqs;
  std::vector<BlockCopy> copies;    // copy-on-write, before the forward pass
  std::vector<Sequence*> preempted;  // moved back to waiting this step
  int num_tokens = 0;
  int num_logit_rows = 0;
  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager* blocks,
            AdmissionPolicy policy = PriorityThenArrival);

  // A new sequence (no blocks yet).
  void AddWaiting(Sequence* seq);
  // A sequence that already holds its blocks (a fork).
  void AddRunning(Sequence* seq);
  // Takes a finished or cancelled sequence out of the queues and frees its
  // blocks.
  void Remove(Sequence* seq);

  Batch Schedule();

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  const SchedulerConfig& config() const { return config_; }

 private:
  bool ScheduleRunning(Batch* batch, int* token_budget);
  void ScheduleWaiting(Batch* batch, int* token_budget);
  // Chooses and preempts the lowest-priority, newest running sequence that
  // is not yet in `batch`; nullptr when there is none.
  Sequence* PreemptOne(Batch* batch);
  // Adds `seq` with `num_new` tokens; reserves logit rows.
  void Add(Batch* batch, Sequence* seq, int num_new);
  // Running sequences plus the samples they will fork into (n > 1).
  int NumReservedSlots() const;
  // Largest chunk of `seq` that fits the token and logit-row budgets.
  int ChunkSize(const Sequence& seq, int token_budget, int logit_budget) const;

  SchedulerConfig config_;
  BlockManager* blocks_;
  AdmissionPolicy policy_;
  std::vector<Sequence*> waiting_;  // kept in admission order
  std::vector<Sequence*> running_;  // in the order they started running
};

}  // namespace weft

#endif  // WEFT_RUNTIME_SCHEDULER_H_
