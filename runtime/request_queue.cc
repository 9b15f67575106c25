#include "runtime/request_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace weft {

void Delta::Merge(Delta&& later) {
  token_ids.insert(token_ids.end(), later.token_ids.begin(),
                   later.token_ids.end());
  text += later.text;
  for (SampledToken& t : later.logprobs) logprobs.push_back(std::move(t));
  for (SampledToken& t : later.prompt_logprobs) {
    prompt_logprobs.push_back(std::move(t));
  }
  if (later.finished) finished = std::move(later.finished);
}

RequestQueue::RequestQueue(int max_live_requests)
    : max_live_(max_live_requests) {}

absl::Status RequestQueue::Push(Submission submission) {
  std::vector<Submission> one;
  one.push_back(std::move(submission));
  return PushAll(std::move(one));
}

absl::Status RequestQueue::PushAll(std::vector<Submission> submissions) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the engine is shutting down");
  if (live_.size() + submissions.size() > static_cast<size_t>(max_live_)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many requests in flight (", max_live_, "); retry later"));
  }
  for (size_t i = 0; i < submissions.size(); ++i) {
    if (!live_.insert(submissions[i].request.id).second) {
      for (size_t j = 0; j < i; ++j) live_.erase(submissions[j].request.id);
      return absl::AlreadyExistsError(absl::StrCat(
          "request id '", submissions[i].request.id, "' is already in flight"));
    }
  }
  for (Submission& s : submissions) submissions_.push_back(std::move(s));
  return absl::OkStatus();
}

void RequestQueue::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (live_.contains(id) &&
      std::find(cancels_.begin(), cancels_.end(), id) == cancels_.end()) {
    cancels_.push_back(id);
  }
}

void RequestQueue::Drain(std::vector<Submission>* submissions,
                         std::vector<std::string>* cancels) {
  absl::MutexLock lock(&mu_);
  for (Submission& s : submissions_) submissions->push_back(std::move(s));
  submissions_.clear();
  for (std::string& id : cancels_) cancels->push_back(std::move(id));
  cancels_.clear();
}

void RequestQueue::WaitForWork(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return closed_ || !submissions_.empty() || !cancels_.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
}

void RequestQueue::Ended(const std::string& id) {
  absl::MutexLock lock(&mu_);
  live_.erase(id);
  // A cancel queued for the ended request must not hit a new one that
  // reuses its id.
  std::erase(cancels_, id);
}

std::vector<Submission> RequestQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  std::vector<Submission> undrained = std::move(submissions_);
  submissions_.clear();
  cancels_.clear();
  return undrained;
}

int RequestQueue::num_live() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(live_.size());
}

int RequestQueue::num_queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(submissions_.size());
}

std::function<void()> StreamBuffer::PushLocked(StreamEvent event) {
  bool merged = false;
  if (Delta* delta = std::get_if<Delta>(&event)) {
    // Merge into the pending delta of the same sample: at most one pending
    // delta per sample, however slow the consumer (a terminal event is
    // always last, so nothing is merged across it).
    for (auto it = events_.rbegin(); it != events_.rend() && !merged; ++it) {
      if (Delta* pending = std::get_if<Delta>(&*it);
          pending != nullptr && pending->index == delta->index) {
        pending->Merge(std::move(*delta));
        merged = true;
      }
    }
  }
  if (!merged) events_.push_back(std::move(event));
  if (!listener_armed_ || !listener_) return nullptr;
  listener_armed_ = false;
  ++listener_calls_running_;
  return listener_;
}

void StreamBuffer::CallListener(std::function<void()> listener) {
  if (!listener) return;
  listener();
  absl::MutexLock lock(&mu_);
  --listener_calls_running_;
}

void StreamBuffer::OnDelta(Delta delta) {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = PushLocked(std::move(delta));
  }
  CallListener(std::move(listener));
}

void StreamBuffer::OnFinished(Finished finished) {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = PushLocked(std::move(finished));
  }
  CallListener(std::move(listener));
}

void StreamBuffer::OnError(absl::Status status) {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = PushLocked(std::move(status));
  }
  CallListener(std::move(listener));
}

void StreamBuffer::SetListener(std::function<void()> listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

std::optional<StreamEvent> StreamBuffer::TryNext() {
  absl::MutexLock lock(&mu_);
  if (events_.empty()) {
    listener_armed_ = true;
    return std::nullopt;
  }
  StreamEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

void StreamBuffer::ClearListener() {
  absl::MutexLock lock(&mu_);
  listener_ = nullptr;
  listener_armed_ = false;
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return listener_calls_running_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

std::optional<StreamEvent> StreamBuffer::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !events_.empty();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return std::nullopt;
  }
  StreamEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

}  // namespace weft
