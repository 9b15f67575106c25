// PromptBatch: a completions request's prompts, one engine request each,
// reach one sink as one request's events — indices p·n + i, one Finished
// after every prompt's (samples in prompt order, usage summed), or the
// first error alone.
#include "server/prompt_batch.h"

#include <variant>

#include "gtest/gtest.h"
#include "runtime/request_queue.h"

namespace weft {
namespace {

Delta TextDelta(int index, std::string text) {
  Delta delta;
  delta.index = index;
  delta.text = std::move(text);
  return delta;
}

Finished Done(std::vector<FinishReason> reasons, int prompt, int completion,
              int cached) {
  Finished finished;
  for (FinishReason r : reasons) finished.samples.push_back({r, "", 1});
  finished.usage = {prompt, completion, cached};
  return finished;
}

// Every event the buffer holds, in order.
std::vector<StreamEvent> Drain(StreamBuffer& buffer) {
  std::vector<StreamEvent> events;
  while (auto event = buffer.TryNext()) events.push_back(*std::move(event));
  return events;
}

TEST(PromptBatchTest, SamplesBecomeChoicesAndOneFinishedEndsTheBatch) {
  auto buffer = std::make_shared<StreamBuffer>();
  auto batch = PromptBatch::Create(/*num_prompts=*/3, /*n=*/2, buffer);
  auto p0 = batch->PromptSink(0);
  auto p1 = batch->PromptSink(1);
  auto p2 = batch->PromptSink(2);
  p1->OnDelta(TextDelta(1, "b"));
  p0->OnDelta(TextDelta(0, "a"));
  p2->OnDelta(TextDelta(0, "c"));
  p1->OnFinished(Done({FinishReason::kStop, FinishReason::kLength}, 5, 3, 1));
  p2->OnDelta(TextDelta(1, "d"));  // prompt 2 goes on after prompt 1 ended
  p0->OnFinished(Done({FinishReason::kLength, FinishReason::kStop}, 4, 2, 0));
  std::vector<StreamEvent> events = Drain(*buffer);
  // Nothing terminal yet; the samples of prompts 0 and 1 report their
  // ends in deltas (merged into a sample's pending one).
  ASSERT_EQ(events.size(), 6u);
  std::vector<int> indices;
  std::vector<int> ended;
  for (const StreamEvent& event : events) {
    const Delta& delta = std::get<Delta>(event);
    indices.push_back(delta.index);
    if (delta.finished) ended.push_back(delta.index);
  }
  EXPECT_EQ(indices, (std::vector<int>{3, 0, 4, 2, 5, 1}));
  EXPECT_EQ(ended, (std::vector<int>{3, 0, 2, 1}));
  EXPECT_EQ(std::get<Delta>(events[0]).text, "b");
  EXPECT_EQ(std::get<Delta>(events[0]).finished->reason, FinishReason::kLength);
  EXPECT_EQ(std::get<Delta>(events[2]).text, "c");

  p2->OnFinished(Done({FinishReason::kStop, FinishReason::kStop}, 6, 7, 2));
  events = Drain(*buffer);
  ASSERT_EQ(events.size(), 1u);
  const Finished& all = std::get<Finished>(events[0]);
  ASSERT_EQ(all.samples.size(), 6u);
  const std::vector<FinishReason> reasons = {
      FinishReason::kLength, FinishReason::kStop,  FinishReason::kStop,
      FinishReason::kLength, FinishReason::kStop,  FinishReason::kStop};
  for (size_t i = 0; i < reasons.size(); ++i) {
    EXPECT_EQ(all.samples[i].reason, reasons[i]) << i;
  }
  EXPECT_EQ(all.usage.prompt_tokens, 15);
  EXPECT_EQ(all.usage.completion_tokens, 12);
  EXPECT_EQ(all.usage.cached_prompt_tokens, 3);
}

TEST(PromptBatchTest, TheFirstErrorEndsTheBatchAndNothingFollowsIt) {
  auto buffer = std::make_shared<StreamBuffer>();
  auto batch = PromptBatch::Create(2, 1, buffer);
  auto p0 = batch->PromptSink(0);
  auto p1 = batch->PromptSink(1);
  p0->OnDelta(TextDelta(0, "a"));
  p1->OnError(absl::UnavailableError("stopped"));
  p0->OnDelta(TextDelta(0, "b"));
  p0->OnFinished(Done({FinishReason::kStop}, 1, 1, 0));
  p1->OnError(absl::InternalError("again"));
  const std::vector<StreamEvent> events = Drain(*buffer);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(std::get<Delta>(events[0]).text, "a");
  EXPECT_EQ(std::get<absl::Status>(events[1]).code(), absl::StatusCode::kUnavailable);
}

TEST(PromptBatchTest, APromptsSecondFinishedIsIgnored) {
  auto buffer = std::make_shared<StreamBuffer>();
  auto batch = PromptBatch::Create(2, 1, buffer);
  auto p0 = batch->PromptSink(0);
  p0->OnFinished(Done({FinishReason::kStop}, 1, 1, 0));
  p0->OnFinished(Done({FinishReason::kStop}, 1, 1, 0));
  EXPECT_EQ(Drain(*buffer).size(), 1u);  // sample 0's end; prompt 1 goes on
  batch->PromptSink(1)->OnFinished(Done({FinishReason::kLength}, 2, 2, 0));
  const std::vector<StreamEvent> events = Drain(*buffer);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<Finished>(events[0]).samples.size(), 2u);
}

}  // namespace
}  // namespace weft
