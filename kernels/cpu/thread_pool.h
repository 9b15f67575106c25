// A persistent pool of worker threads for the CPU kernels: no thread is
// created per op. The calling thread takes part as thread 0, so a pool of
// N threads starts N - 1 workers. Between jobs the workers spin briefly
// (ops of one forward pass follow each other within microseconds) and then
// sleep on a futex, so an idle server costs no CPU.
#ifndef WEFT_KERNELS_CPU_THREAD_POOL_H_
#define WEFT_KERNELS_CPU_THREAD_POOL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace weft {

class ThreadPool {
 public:
  // Workers spin `spin_iterations` pauses for the next job before they
  // sleep (the default covers the gap between two ops of a forward pass; a
  // pool used once a step, like the engine's sampling pool, passes 0 so its
  // workers never take a core from the next forward pass).
  static constexpr int kDefaultSpinIterations = 1 << 14;
  explicit ThreadPool(int num_threads,
                      int spin_iterations = kDefaultSpinIterations);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(thread_index) once on every thread (the caller is 0) and
  // returns when all have finished. Not reentrant: one caller at a time.
  void Run(absl::FunctionRef<void(int thread_index)> fn);

  // Calls fn on contiguous ranges that together cover [0, n) exactly once,
  // taken by the threads as they come, and waits. Ranges are guided: each
  // is half a thread's share of what is left (at least 1/16 of its share
  // of n), so threads end close together without taking many ranges.
  // Every range but the last starts and ends on a multiple of `grain`
  // (a kernel's tile width: a range of 9 groups for a 4-group tile would
  // leave a lone group to a slower tile). Runs inline when n <= 1, when
  // n <= grain or when the pool has one thread. A worker
  // that has not joined by the time the ranges are all taken (descheduled
  // by another process, or still waking up) is not waited for: on a busy
  // machine an op costs what the running threads take, not a time slice.
  void ParallelFor(int64_t n,
                   absl::FunctionRef<void(int64_t begin, int64_t end)> fn,
                   int64_t grain = 1);
  // The same, telling fn which thread (0..num_threads-1) runs the range.
  void ParallelFor(
      int64_t n,
      absl::FunctionRef<void(int thread, int64_t begin, int64_t end)> fn,
      int64_t grain = 1);

 private:
  void WorkerLoop(int thread_index);
  // Starts fn on the workers, runs fn(0), then waits for every worker
  // (wait_for_all) or only for those that joined before the caller closed
  // the job.
  void Dispatch(absl::FunctionRef<void(int)> fn, bool wait_for_all);

  // Most ranges one ParallelFor cuts n into: the guided split (each range
  // 1/(2T) of what is left, down to 1/(16T) of n) needs ~6.2·T ranges; a
  // fixed 64 made the last range take everything left from 16 threads up
  // (at 32 threads 12× a fair share, bounding every op).
  int max_chunks() const { return static_cast<int>(chunk_begin_.size()) - 1; }

  const int num_threads_;
  const int spin_iterations_;
  std::vector<std::thread> workers_;
  // Bumped once per job; workers run the job when they see it change.
  std::atomic<uint32_t> generation_{0};
  // The current job: generation (high 32 bits), closed (bit 31: no worker
  // may join any more) and how many workers joined (low bits).
  std::atomic<uint64_t> job_state_{0};
  std::atomic<int> finished_{0};  // workers that joined and finished
  std::atomic<int> sleepers_{0};   // workers in (or entering) a futex wait
  std::atomic<bool> stop_{false};
  const absl::FunctionRef<void(int)>* job_ = nullptr;
  // ParallelFor's ranges: the next one to take, on a cache line of its own
  // (every thread's fetch_add moves it; nothing else should move with it),
  // and their bounds, written before the job starts and only read during it
  // (sized once, in the constructor).
  alignas(64) std::atomic<int64_t> next_chunk_{0};
  alignas(64) std::vector<int64_t> chunk_begin_;  // 8·T + 2 entries
};

// Cuts items [0, n) into `parts` contiguous ranges of about equal total
// cost(i) (≥ 0): range r is [(*bounds)[r], (*bounds)[r + 1]), parts + 1
// bounds from 0 to n. A range ends before or after the item that crosses
// its share, whichever leaves it nearer; ranges may be empty. For work a
// static split suits better than ParallelFor's guided one (e.g. tasks
// that prefetch their successor's data: ParallelFor(parts, ...) over the
// ranges keeps successors on one thread).
void EqualCostRanges(int64_t n, int parts, absl::FunctionRef<int64_t(int64_t)> cost,
                     std::vector<int64_t>* bounds);

}  // namespace weft

#endif  // WEFT_KERNELS_CPU_THREAD_POOL_H_
