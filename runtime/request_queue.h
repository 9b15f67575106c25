// All locking between the front end's threads and the engine thread lives
// in this file:
//   - RequestQueue: the engine's inbox (new requests, cancellations) with
//     the set of live request ids and a bound on how many may be live;
//   - StreamBuffer: an EventSink that the engine writes without blocking
//     and a consumer thread reads, merging deltas while the consumer is
//     slow, so a slow reader costs memory proportional to its output, never
//     engine time.
#ifndef WEFT_RUNTIME_REQUEST_QUEUE_H_
#define WEFT_RUNTIME_REQUEST_QUEUE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/request.h"

namespace weft {

struct Submission {
  Request request;
  std::shared_ptr<EventSink> sink;
  absl::Time arrival;  // on the engine's monotonic clock (engine.cc)
  uint64_t seed = 0;  // resolved sampling seed
};

class RequestQueue {
 public:
  // At most `max_live_requests` requests accepted and not yet ended.
  explicit RequestQueue(int max_live_requests);

  // Front end, any thread. AlreadyExists for a live id, ResourceExhausted
  // when full, Unavailable once closed.
  absl::Status Push(Submission submission);
  // All of `submissions` or none of them (the same errors; AlreadyExists
  // also for an id given twice).
  absl::Status PushAll(std::vector<Submission> submissions);
  // Unknown or ended ids are ignored.
  void Cancel(const std::string& id);

  // Engine thread: takes everything queued.
  void Drain(std::vector<Submission>* submissions,
             std::vector<std::string>* cancels);
  // Engine thread: waits until something is queued, the queue is closed, or
  // `timeout` passes.
  void WaitForWork(absl::Duration timeout);
  // Engine thread: the request `id` has sent its terminal event.
  void Ended(const std::string& id);
  // Refuses further pushes and wakes the engine; returns what was queued
  // but never drained, for the engine to end.
  std::vector<Submission> Close();

  int num_live() const;
  int num_queued() const;

 private:
  mutable absl::Mutex mu_;
  const int max_live_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::string> live_ ABSL_GUARDED_BY(mu_);
  std::vector<Submission> submissions_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> cancels_ ABSL_GUARDED_BY(mu_);
};

// One event as a StreamBuffer's consumer receives it.
using StreamEvent = std::variant<Delta, Finished, absl::Status>;

class StreamBuffer : public EventSink {
 public:
  // Engine thread: never blocks beyond the buffer's short critical section
  // (and the listener, which must not block either).
  void OnDelta(Delta delta) override;
  void OnFinished(Finished finished) override;
  void OnError(absl::Status status) override;

  // Consumer, blocking: the next event, merging every pending delta of one
  // sample into one; waits up to `timeout` (nullopt when nothing came).
  std::optional<StreamEvent> Next(absl::Duration timeout = absl::InfiniteDuration());

  // Consumer, callback style (a gRPC reactor with one write in flight):
  // TryNext returns the next event, or nullopt and arms the listener, which
  // the next event then calls once, on the engine thread. So exactly one of
  // "a TryNext caller holds an event" and "the listener is armed" is true.
  void SetListener(std::function<void()> listener);
  std::optional<StreamEvent> TryNext();
  // After it returns the listener is neither running nor called again.
  void ClearListener();

 private:
  // Pushes `event` (merging a delta) and returns the listener to call, if
  // it was armed.
  std::function<void()> PushLocked(StreamEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CallListener(std::function<void()> listener);

  absl::Mutex mu_;
  std::deque<StreamEvent> events_ ABSL_GUARDED_BY(mu_);
  std::function<void()> listener_ ABSL_GUARDED_BY(mu_);
  bool listener_armed_ ABSL_GUARDED_BY(mu_) = false;
  int listener_calls_running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_REQUEST_QUEUE_H_
