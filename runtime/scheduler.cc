#include "runtime/scheduler.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace weft {

absl::Status SchedulerConfig::Validate() const {
  if (max_num_seqs < 1 || max_num_batched_tokens < 1 || max_num_logit_rows < 1) {
    return absl::InvalidArgumentError(
        "scheduler: max_num_seqs, max_num_batched_tokens and "
        "max_num_logit_rows must be positive");
  }
  if (max_num_logit_rows < max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_num_logit_rows (", max_num_logit_rows,
        ") must be at least max_num_seqs (", max_num_seqs,
        ") so every running sequence can sample in one step"));
  }
  return absl::OkStatus();
}

bool PriorityThenArrival(const Sequence& a, const Sequence& b) {
  if (a.priority != b.priority) return a.priority < b.priority;
  if (a.arrival_order != b.arrival_order) {
    return a.arrival_order < b.arrival_order;
  }
  return a.seq_id < b.seq_id;
}

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager* blocks,
                     AdmissionPolicy policy)
    : config_(config), blocks_(blocks), policy_(std::move(policy)) {}

void Scheduler::AddWaiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  auto at = std::upper_bound(
      waiting_.begin(), waiting_.end(), seq,
      [this](const Sequence* a, const Sequence* b) { return policy_(*a, *b); });
  waiting_.insert(at, seq);
}

void Scheduler::AddRunning(Sequence* seq) {
  seq->status = SequenceStatus::kRunning;
  running_.push_back(seq);
}

void Scheduler::Remove(Sequence* seq) {
  std::erase(waiting_, seq);
  std::erase(running_, seq);
  seq->blocks.Reset();
  seq->status = SequenceStatus::kFinished;
}

int Scheduler::ChunkSize(const Sequence& seq, int token_budget,
                         int logit_budget) const {
  const int uncomputed = seq.num_uncomputed_tokens();
  int n = std::min(uncomputed, token_budget);
  if (seq.prompt_logprobs && seq.in_prefill()) {
    return std::min(n, logit_budget);  // a logit row for every position
  }
  // Only the chunk that reaches the end samples and needs a row.
  if (n == uncomputed && logit_budget < 1) return uncomputed - 1;
  return n;
}

void Scheduler::Add(Batch* batch, Sequence* seq, int num_new) {
  ScheduledSequence s;
  s.seq = seq;
  s.num_new_tokens = num_new;
  s.samples = seq->num_computed_tokens + num_new ==
              static_cast<int>(seq->tokens.size());
  s.num_logit_rows =
      seq->prompt_logprobs && seq->in_prefill() ? num_new : (s.samples ? 1 : 0);
  s.first_logit_row = batch->num_logit_rows;
  batch->seqs.push_back(s);
  batch->num_tokens += num_new;
  batch->num_logit_rows += s.num_logit_rows;
}

Sequence* Scheduler::PreemptOne(Batch* batch) {
  Sequence* victim = nullptr;
  for (Sequence* seq : running_) {
    const bool scheduled =
        std::any_of(batch->seqs.begin(), batch->seqs.end(),
                    [seq](const ScheduledSequence& s) { return s.seq == seq; });
    if (scheduled) continue;
    // Lowest priority first, then the newest request (forks of an old
    // request are not "new"), then the newest sequence.
    const auto order = [](const Sequence* s) {
      return std::tuple(s->priority, s->arrival_order, s->seq_id);
    };
    if (victim == nullptr || order(seq) > order(victim)) victim = seq;
  }
  if (victim == nullptr) return nullptr;
  std::erase(running_, victim);
  victim->blocks.Reset();
  victim->num_computed_tokens = 0;  // recomputed from scratch later
  AddWaiting(victim);
  batch->preempted.push_back(victim);
  return victim;
}

bool Scheduler::ScheduleRunning(Batch* batch, int* token_budget) {
  bool preempted = false;
  // Highest priority first, then the oldest request: a sequence that needs
  // a block can then only preempt ones that come after it here (PreemptOne
  // skips those already in the batch). In start order, a low-priority
  // sequence that started first kept its blocks while the high-priority
  // one behind it preempted itself, step after step.
  std::vector<Sequence*> order = running_;
  std::stable_sort(order.begin(), order.end(), [](const Sequence* a, const Sequence* b) {
    return std::tuple(a->priority, a->arrival_order, a->seq_id) <
           std::tuple(b->priority, b->arrival_order, b->seq_id);
  });
  for (Sequence* seq : order) {
    if (*token_budget == 0) break;
    if (seq->status != SequenceStatus::kRunning) continue;  // preempted
    const int n = ChunkSize(*seq, *token_budget,
                            config_.max_num_logit_rows - batch->num_logit_rows);
    if (n == 0) continue;
    while (!blocks_->CanAppend(seq->blocks, n)) {
      Sequence* victim = PreemptOne(batch);
      preempted = true;
      if (victim == nullptr || victim == seq) break;
    }
    if (seq->status != SequenceStatus::kRunning) continue;
    const auto new_tokens = absl::MakeConstSpan(seq->tokens)
                                .subspan(seq->num_computed_tokens, n);
    if (!blocks_->Append(&seq->blocks, new_tokens, &batch->copies).ok()) {
      continue;  // CanAppend said yes; cannot happen
    }
    Add(batch, seq, n);
    *token_budget -= n;
  }
  return preempted;
}

void Scheduler::ScheduleWaiting(Batch* batch, int* token_budget) {
  while (!waiting_.empty() && *token_budget > 0) {
    Sequence* seq = waiting_.front();
    // A request with n > 1 samples forks into n running sequences once its
    // prompt is done: admit it only with room for all of them.
    if (NumReservedSlots() + 1 + seq->num_forks_pending >
        config_.max_num_seqs) {
      break;
    }
    const int logit_budget =
        config_.max_num_logit_rows - batch->num_logit_rows;
    const bool use_cache = config_.enable_prefix_caching && !seq->prompt_logprobs;
    const int cached =
        use_cache ? blocks_->NumCachedTokens(seq->tokens) : 0;
    const int total = static_cast<int>(seq->tokens.size());
    // As if `cached` tokens were computed: the chunk after them.
    seq->num_computed_tokens = cached;
    const int n = ChunkSize(*seq, *token_budget, logit_budget);
    seq->num_computed_tokens = 0;
    if (n == 0) break;
    // Allocate checks room itself (ResourceExhausted, nothing changed):
    // no separate CanAllocate, which would hash the prompt once more.
    auto table = blocks_->Allocate(seq->tokens, cached + n, use_cache);
    if (!table.ok()) break;
    seq->blocks = *std::move(table);
    seq->num_computed_tokens = seq->blocks.num_cached_tokens();
    // The cache may have held less than the lookup promised (never more).
    const int chunk = cached + n - seq->num_computed_tokens;
    if (chunk <= 0 || chunk > *token_budget ||
        chunk > total - seq->num_computed_tokens) {
      // Unreachable while NumCachedTokens and Allocate agree (nothing runs
      // between them). Should they not, give the blocks back and forget
      // what Allocate cached for KV that will not be written.
      seq->blocks.Reset();
      seq->num_computed_tokens = 0;
      blocks_->DropUnreferencedCachedBlocks();
      break;
    }
    waiting_.erase(waiting_.begin());
    AddRunning(seq);
    Add(batch, seq, chunk);
    *token_budget -= chunk;
  }
}

int Scheduler::NumReservedSlots() const {
  int slots = num_running();
  for (const Sequence* seq : running_) slots += seq->num_forks_pending;
  return slots;
}

Batch Scheduler::Schedule() {
  Batch batch;
  int token_budget = config_.max_num_batched_tokens;
  const bool preempted = ScheduleRunning(&batch, &token_budget);
  if (!preempted) ScheduleWaiting(&batch, &token_budget);
  return batch;
}

}  // namespace weft
