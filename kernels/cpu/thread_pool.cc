#include "kernels/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace weft {
namespace {

// How long the caller spins for workers to finish before yielding its core.
constexpr int kCallerSpinIterations = 1 << 10;

constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kJoinedMask = kClosed - 1;

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int num_threads, int spin_iterations)
    : num_threads_(std::max(1, num_threads)),
      spin_iterations_(std::max(0, spin_iterations)),
      chunk_begin_(8 * static_cast<size_t>(num_threads_) + 2) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::WorkerLoop(int thread_index) {
  uint32_t seen = 0;
  while (true) {
    uint32_t now = generation_.load(std::memory_order_acquire);
    for (int spin = 0; now == seen && spin < spin_iterations_; ++spin) {
      CpuRelax();
      now = generation_.load(std::memory_order_acquire);
    }
    if (now == seen) {
      // Announce the sleep before the last look, so that Run() either sees
      // a sleeper and wakes it or this thread sees the new generation.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) {
        generation_.wait(seen, std::memory_order_acquire);
      }
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      continue;
    }
    seen = now;
    if (stop_.load(std::memory_order_acquire)) return;
    // Join the job unless the caller has closed it (or moved on).
    uint64_t state = job_state_.load(std::memory_order_acquire);
    while ((state >> 32) == now && (state & kClosed) == 0) {
      if (job_state_.compare_exchange_weak(state, state + 1,
                                           std::memory_order_acq_rel)) {
        (*job_)(thread_index);
        finished_.fetch_add(1, std::memory_order_release);
        break;
      }
    }
  }
}

void ThreadPool::Run(absl::FunctionRef<void(int)> fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  Dispatch(fn, /*wait_for_all=*/true);
}

void ThreadPool::Dispatch(absl::FunctionRef<void(int)> fn, bool wait_for_all) {
  job_ = &fn;
  finished_.store(0, std::memory_order_relaxed);
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  job_state_.store(uint64_t{generation} << 32, std::memory_order_relaxed);
  generation_.store(generation, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  fn(0);
  // Spin briefly, then yield: on an oversubscribed machine a worker may not
  // be running, and spinning would only keep it off this core longer.
  auto wait_until = [](auto done) {
    for (int spin = 0; !done(); ++spin) {
      if (spin < kCallerSpinIterations) {
        CpuRelax();
      } else {
        std::this_thread::yield();
      }
    }
  };
  if (wait_for_all) {
    wait_until([&] {
      return finished_.load(std::memory_order_acquire) == num_threads_ - 1;
    });
  }
  const uint64_t state = job_state_.fetch_or(kClosed, std::memory_order_acq_rel);
  const int joined = static_cast<int>(state & kJoinedMask);
  wait_until([&] { return finished_.load(std::memory_order_acquire) == joined; });
  job_ = nullptr;
}

void ThreadPool::ParallelFor(
    int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn, int64_t grain) {
  ParallelFor(n, [&](int, int64_t begin, int64_t end) { fn(begin, end); },
              grain);
}

void ThreadPool::ParallelFor(
    int64_t n, absl::FunctionRef<void(int, int64_t, int64_t)> fn,
    int64_t grain) {
  if (n <= 0) return;
  if (n == 1 || num_threads_ == 1) {
    fn(0, 0, n);
    return;
  }
  // Ranges are taken from a shared counter, so a thread that starts late
  // (descheduled, or woken from sleep) finds the work already done by the
  // others instead of holding the whole op back. Guided sizes: equal
  // quarters of a thread's share (as before) left one thread idle for up to
  // a quarter share at the end of every op; in a 2-thread batched decode
  // the pool's spin loops held ~8% of the samples.
  const int64_t shares = 2 * int64_t{num_threads_};
  const int64_t floor = std::max<int64_t>(1, (n + 8 * shares - 1) / (8 * shares));
  grain = std::max<int64_t>(1, grain);
  int chunks = 0;
  for (int64_t begin = 0; begin < n;) {
    chunk_begin_[chunks++] = begin;
    if (chunks == max_chunks()) break;
    const int64_t size = std::max((n - begin + shares - 1) / shares, floor);
    begin += (size + grain - 1) / grain * grain;
  }
  chunk_begin_[chunks] = n;
  if (chunks == 1) {  // n <= grain: nothing to share
    fn(0, 0, n);
    return;
  }
  next_chunk_.store(0, std::memory_order_relaxed);
  Dispatch([&](int thread) {
    for (int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) {
      fn(thread, chunk_begin_[c], chunk_begin_[c + 1]);
    }
  }, /*wait_for_all=*/false);
}

void EqualCostRanges(int64_t n, int parts, absl::FunctionRef<int64_t(int64_t)> cost,
                     std::vector<int64_t>* bounds) {
  parts = std::max(parts, 1);
  bounds->assign(static_cast<size_t>(parts) + 1, n);
  (*bounds)[0] = 0;
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += cost(i);
  int64_t before_i = 0;  // cost of items [0, i)
  int range = 1;
  for (int64_t i = 0; i < n && range < parts; ++i) {
    const int64_t item = cost(i);
    // Shares scaled by parts: range r's ends at total × r.
    while (range < parts && (before_i + item) * parts >= total * range) {
      const int64_t share = total * range;
      const bool end_before = i > (*bounds)[range - 1] &&
                              share - before_i * parts < (before_i + item) * parts - share;
      (*bounds)[range++] = end_before ? i : i + 1;
    }
    before_i += item;
  }
}

}  // namespace weft
