// The scheduler alone, on hand-built sequences (no model): token budget,
// chunked prefill, admission order, limits and preemption order.
#include "runtime/scheduler.h"

#include <memory>
#include <numeric>

#include "gtest/gtest.h"

namespace weft {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  // 4-token blocks.
  void Make(int num_blocks, SchedulerConfig config) {
    blocks_ = std::make_unique<BlockManager>(num_blocks, 4);
    scheduler_ = std::make_unique<Scheduler>(config, blocks_.get());
  }

  static SchedulerConfig Config(int max_tokens, int max_seqs = 8) {
    SchedulerConfig c;
    c.max_num_batched_tokens = max_tokens;
    c.max_num_seqs = max_seqs;
    c.max_num_logit_rows = 8;
    return c;
  }

  // A waiting sequence with a prompt of `length` distinct tokens.
  Sequence* Add(int length, int priority = 0, int first_token = 100) {
    auto seq = std::make_unique<Sequence>();
    seq->seq_id = static_cast<int64_t>(seqs_.size());
    seq->arrival_order = seq->seq_id;
    seq->priority = priority;
    seq->tokens.resize(length);
    std::iota(seq->tokens.begin(), seq->tokens.end(), first_token);
    seq->num_prompt_tokens = length;
    scheduler_->AddWaiting(seq.get());
    seqs_.push_back(std::move(seq));
    return seqs_.back().get();
  }

  // What the engine does after a step: tokens computed, one sampled each.
  void Complete(const Batch& batch) {
    for (const ScheduledSequence& s : batch.seqs) {
      s.seq->num_computed_tokens += s.num_new_tokens;
      if (s.samples) s.seq->tokens.push_back(7);
    }
  }

  static int TokensOf(const Batch& batch, const Sequence* seq) {
    for (const ScheduledSequence& s : batch.seqs) {
      if (s.seq == seq) return s.num_new_tokens;
    }
    return 0;
  }

  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<Sequence>> seqs_;
};

TEST_F(SchedulerTest, LongPromptIsChunkedByTheTokenBudget) {
  Make(32, Config(8));
  Sequence* seq = Add(20);
  Batch first = scheduler_->Schedule();
  EXPECT_EQ(TokensOf(first, seq), 8);
  EXPECT_FALSE(first.seqs[0].samples);
  Complete(first);
  Batch second = scheduler_->Schedule();
  EXPECT_EQ(TokensOf(second, seq), 8);
  Complete(second);
  Batch third = scheduler_->Schedule();
  EXPECT_EQ(TokensOf(third, seq), 4);
  EXPECT_TRUE(third.seqs[0].samples);
  EXPECT_EQ(third.seqs[0].num_logit_rows, 1);
}

TEST_F(SchedulerTest, RunningDecodesComeBeforeWaitingPrompts) {
  Make(32, Config(6));
  Sequence* running = Add(3);
  Complete(scheduler_->Schedule());  // prefilled; now decoding
  Sequence* waiting = Add(10);
  Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.seqs.size(), 2u);
  EXPECT_EQ(batch.seqs[0].seq, running);
  EXPECT_EQ(TokensOf(batch, running), 1);
  EXPECT_EQ(TokensOf(batch, waiting), 5);  // what the budget leaves
  EXPECT_EQ(batch.num_tokens, 6);
}

TEST_F(SchedulerTest, MaxNumSeqsLimitsAdmission) {
  Make(32, Config(64, /*max_seqs=*/2));
  Add(3);
  Add(3);
  Sequence* third = Add(3);
  Batch batch = scheduler_->Schedule();
  EXPECT_EQ(batch.seqs.size(), 2u);
  EXPECT_EQ(TokensOf(batch, third), 0);
  EXPECT_EQ(scheduler_->num_waiting(), 1);
}

TEST_F(SchedulerTest, AdmitsByPriorityThenArrival) {
  Make(32, Config(64, /*max_seqs=*/2));
  Sequence* late_low = Add(3, /*priority=*/5);
  Sequence* early_high = Add(3, /*priority=*/0);
  Sequence* late_high = Add(3, /*priority=*/0);
  Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.seqs.size(), 2u);
  EXPECT_EQ(batch.seqs[0].seq, early_high);
  EXPECT_EQ(batch.seqs[1].seq, late_high);
  EXPECT_EQ(TokensOf(batch, late_low), 0);
}

TEST_F(SchedulerTest, ReplaceablePolicyDecidesAdmissionOrder) {
  blocks_ = std::make_unique<BlockManager>(32, 4);
  // Shortest prompt first.
  scheduler_ = std::make_unique<Scheduler>(
      Config(64, 1), blocks_.get(), [](const Sequence& a, const Sequence& b) {
        return a.tokens.size() < b.tokens.size();
      });
  Add(9);
  Sequence* shortest = Add(2);
  Add(5);
  Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.seqs.size(), 1u);
  EXPECT_EQ(batch.seqs[0].seq, shortest);
}

TEST_F(SchedulerTest, PreemptsTheLowestPriorityThenTheNewestWhenBlocksRunOut) {
  // 3 blocks: three sequences of 4 prompt tokens fill them exactly; every
  // first decode needs a block of its own.
  Make(3, Config(64));
  Sequence* old_high = Add(4, /*priority=*/0, 100);
  Sequence* old_low = Add(4, /*priority=*/1, 200);
  Sequence* new_high = Add(4, /*priority=*/0, 300);
  Complete(scheduler_->Schedule());
  Batch batch = scheduler_->Schedule();
  // old_high needs a block: the lowest priority goes first, though older.
  // new_high then needs one too: of the equal-priority rest, the newest
  // (itself) goes.
  ASSERT_EQ(batch.preempted.size(), 2u);
  EXPECT_EQ(batch.preempted[0], old_low);
  EXPECT_EQ(batch.preempted[1], new_high);
  ASSERT_EQ(batch.seqs.size(), 1u);
  EXPECT_EQ(TokensOf(batch, old_high), 1);
  for (Sequence* preempted : {old_low, new_high}) {
    EXPECT_EQ(preempted->status, SequenceStatus::kWaiting);
    EXPECT_EQ(preempted->num_computed_tokens, 0);
    EXPECT_TRUE(preempted->blocks.empty());
  }
  EXPECT_EQ(blocks_->num_used_blocks(), 2);  // old_high's two blocks
}

// A low-priority sequence that started first (and needs no block this
// step) must not keep its blocks while a high-priority one preempts
// itself: running sequences are scheduled by priority, so the victim is
// the low-priority one, not yet in the batch.
TEST_F(SchedulerTest, AHighPrioritySequenceIsNotPreemptedForALowerOneThatStartedFirst) {
  Make(3, Config(64));
  Sequence* low = Add(4, /*priority=*/1, 100);
  Complete(scheduler_->Schedule());  // low: 5 tokens, one block
  Sequence* high = Add(4, /*priority=*/0, 200);
  Complete(scheduler_->Schedule());  // low's decode takes a 2nd block, high the 3rd
  // low's next token fits its 2nd block; high's needs a new one.
  const Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.preempted.size(), 1u);
  EXPECT_EQ(batch.preempted[0], low);
  EXPECT_EQ(TokensOf(batch, high), 1);
  EXPECT_EQ(high->status, SequenceStatus::kRunning);
}

TEST_F(SchedulerTest, NothingIsAdmittedInAStepThatPreempted) {
  Make(2, Config(64));
  Sequence* a = Add(4, 0, 100);
  Sequence* b = Add(4, 0, 200);
  Complete(scheduler_->Schedule());
  Add(1, 0, 300);  // would fit once b is gone
  Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.preempted.size(), 1u);
  EXPECT_EQ(batch.preempted[0], b);
  EXPECT_EQ(batch.seqs.size(), 1u);
  EXPECT_EQ(batch.seqs[0].seq, a);
}

TEST_F(SchedulerTest, APreemptedSequenceIsRecomputedWithItsOutput) {
  Make(2, Config(64));
  Add(4, 0, 100);
  Sequence* b = Add(4, 0, 200);
  Complete(scheduler_->Schedule());  // b has sampled one token: 5 tokens
  Batch batch = scheduler_->Schedule();
  ASSERT_EQ(batch.preempted.size(), 1u);
  Complete(batch);
  // Finish the other one; b comes back and recomputes prompt + output.
  scheduler_->Remove(seqs_[0].get());
  Batch again = scheduler_->Schedule();
  EXPECT_EQ(TokensOf(again, b), 5);
  EXPECT_TRUE(again.seqs[0].samples);
}

TEST_F(SchedulerTest, CachedPrefixIsSkippedAndTheChunkStartsAfterIt) {
  Make(32, Config(64));
  Sequence* first = Add(12, 0, 100);
  Complete(scheduler_->Schedule());
  scheduler_->Remove(first);  // its full blocks stay cached
  Sequence* second = Add(14, 0, 100);  // same 12 tokens, then 2 more
  Batch batch = scheduler_->Schedule();
  EXPECT_EQ(second->num_computed_tokens, 12);
  EXPECT_EQ(TokensOf(batch, second), 2);
}

TEST_F(SchedulerTest, PromptLogprobsTakeALogitRowPerToken) {
  Make(32, Config(64));
  Sequence* seq = Add(12);
  seq->prompt_logprobs = true;
  Batch batch = scheduler_->Schedule();
  EXPECT_EQ(TokensOf(batch, seq), 8);  // the 8 logit rows of the budget
  EXPECT_EQ(batch.seqs[0].num_logit_rows, 8);
}

TEST(SchedulerConfigTest, RejectsFewerLogitRowsThanSequences) {
  SchedulerConfig c;
  c.max_num_seqs = 16;
  c.max_num_logit_rows = 8;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft
