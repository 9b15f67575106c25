#include "runtime/request_queue.h"

#include "gtest/gtest.h"

namespace weft {
namespace {

Submission Named(const std::string& id) {
  Submission s;
  s.request.id = id;
  s.sink = std::make_shared<StreamBuffer>();
  return s;
}

TEST(RequestQueueTest, ACancelForAnEndedRequestDoesNotHitANewOneWithItsId) {
  RequestQueue queue(8);
  ASSERT_TRUE(queue.Push(Named("a")).ok());
  std::vector<Submission> submissions;
  std::vector<std::string> cancels;
  queue.Drain(&submissions, &cancels);
  queue.Cancel("a");
  queue.Ended("a");  // finished in the same step the cancel arrived
  ASSERT_TRUE(queue.Push(Named("a")).ok());
  submissions.clear();
  queue.Drain(&submissions, &cancels);
  EXPECT_EQ(submissions.size(), 1u);
  EXPECT_TRUE(cancels.empty());
}

TEST(RequestQueueTest, RepeatedCancelsOfOneRequestAreQueuedOnce) {
  RequestQueue queue(8);
  ASSERT_TRUE(queue.Push(Named("a")).ok());
  for (int i = 0; i < 100; ++i) queue.Cancel("a");
  std::vector<Submission> submissions;
  std::vector<std::string> cancels;
  queue.Drain(&submissions, &cancels);
  EXPECT_EQ(cancels, std::vector<std::string>{"a"});
}

TEST(RequestQueueTest, LiveIdsAreUniqueAndBounded) {
  RequestQueue queue(2);
  ASSERT_TRUE(queue.Push(Named("a")).ok());
  EXPECT_EQ(queue.Push(Named("a")).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(queue.Push(Named("b")).ok());
  EXPECT_EQ(queue.Push(Named("c")).code(), absl::StatusCode::kResourceExhausted);
  queue.Ended("a");
  EXPECT_TRUE(queue.Push(Named("c")).ok());
  queue.Close();
  EXPECT_EQ(queue.Push(Named("d")).code(), absl::StatusCode::kUnavailable);
}

// A completions call's prompts are admitted together or not at all.
TEST(RequestQueueTest, PushAllAdmitsAllOrNothing) {
  RequestQueue queue(3);
  ASSERT_TRUE(queue.Push(Named("a")).ok());
  auto batch = [](std::vector<std::string> ids) {
    std::vector<Submission> out;
    for (const std::string& id : ids) out.push_back(Named(id));
    return out;
  };
  EXPECT_EQ(queue.PushAll(batch({"b", "c", "d"})).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(queue.PushAll(batch({"b", "a"})).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(queue.PushAll(batch({"b", "b"})).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(queue.num_live(), 1);  // nothing of the refused batches stayed
  ASSERT_TRUE(queue.PushAll(batch({"b", "c"})).ok());
  EXPECT_EQ(queue.num_live(), 3);
  std::vector<Submission> submissions;
  std::vector<std::string> cancels;
  queue.Drain(&submissions, &cancels);
  ASSERT_EQ(submissions.size(), 3u);
  EXPECT_EQ(submissions[2].request.id, "c");
}

TEST(StreamBufferTest, ASlowReaderGetsOneMergedDeltaPerSample) {
  StreamBuffer buffer;
  for (int i = 0; i < 50; ++i) {
    Delta d;
    d.index = i % 2;
    d.token_ids = {i};
    d.text = std::to_string(i % 10);
    buffer.OnDelta(std::move(d));
  }
  buffer.OnFinished(Finished{});
  auto first = buffer.Next(absl::ZeroDuration());
  auto second = buffer.Next(absl::ZeroDuration());
  auto last = buffer.Next(absl::ZeroDuration());
  ASSERT_TRUE(first && second && last);
  const Delta& even = std::get<Delta>(*first);
  const Delta& odd = std::get<Delta>(*second);
  EXPECT_EQ(even.index, 0);
  EXPECT_EQ(even.token_ids.size(), 25u);
  EXPECT_EQ(even.text, "0246802468024680246802468");
  EXPECT_EQ(odd.token_ids.size(), 25u);
  EXPECT_TRUE(std::holds_alternative<Finished>(*last));
  EXPECT_FALSE(buffer.Next(absl::ZeroDuration()).has_value());
}

TEST(StreamBufferTest, AMergedDeltaKeepsTheEndOfItsSample) {
  StreamBuffer buffer;
  Delta text;
  text.index = 1;
  text.token_ids = {7};
  text.text = "x";
  buffer.OnDelta(std::move(text));
  Delta end;
  end.index = 1;
  end.finished = SampleResult{FinishReason::kStop, "", 1, 7, false};
  buffer.OnDelta(std::move(end));
  auto merged = buffer.Next(absl::ZeroDuration());
  ASSERT_TRUE(merged.has_value());
  const Delta& delta = std::get<Delta>(*merged);
  EXPECT_EQ(delta.text, "x");
  ASSERT_TRUE(delta.finished.has_value());
  EXPECT_EQ(delta.finished->stop_token, 7);
  EXPECT_FALSE(buffer.Next(absl::ZeroDuration()).has_value());
}

TEST(StreamBufferTest, TheListenerFiresOnceWhenArmedAndNeverAfterClearing) {
  StreamBuffer buffer;
  int calls = 0;
  buffer.SetListener([&] { ++calls; });
  buffer.OnDelta(Delta{});  // not armed: no call
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(buffer.TryNext().has_value());
  EXPECT_FALSE(buffer.TryNext().has_value());  // empty: arms the listener
  buffer.OnDelta(Delta{});
  buffer.OnDelta(Delta{});  // fired already, not re-armed
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(buffer.TryNext().has_value());  // the two merged
  EXPECT_FALSE(buffer.TryNext().has_value());
  buffer.ClearListener();
  buffer.OnFinished(Finished{});
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace weft
