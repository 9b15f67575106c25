// ThreadPool: every index exactly once, ranges near a fair share and on
// the grain, Run after the workers slept; and EqualCostRanges' static split.
#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace weft {
namespace {

TEST(ThreadPoolTest, ParallelForCoversEveryIndexOnce) {
  // Thread counts around the guided split's range count (~6.2 per thread).
  for (int threads : {1, 2, 5, 17}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 1000, 100000}) {
      std::vector<std::atomic<int>> hits(n);
      for (int repeat = 0; repeat < 50; ++repeat) {
        pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) hits[i]++;
        });
      }
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 50) << i;
    }
  }
}

// No range is much larger than a thread's fair share at any thread count:
// with a fixed 64 ranges the last one took what was left, 2× a fair share
// at 16 threads, 12× at 32 and 39× at 64 (every op waited on it).
TEST(ThreadPoolTest, ParallelForRangesStayNearAFairShare) {
  for (int threads : {2, 16, 32, 64}) {
    ThreadPool pool(threads);
    for (int64_t n : {int64_t{4096}, int64_t{100000}}) {
      std::mutex mu;
      int64_t largest = 0;
      pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
        std::lock_guard<std::mutex> lock(mu);
        largest = std::max(largest, end - begin);
      });
      const int64_t fair = (n + threads - 1) / threads;
      EXPECT_LE(largest, fair) << threads << " threads, n " << n;
    }
  }
}

TEST(ThreadPoolTest, ParallelForRangesStartOnTheGrain) {
  for (int threads : {2, 5}) {
    ThreadPool pool(threads);
    for (int64_t grain : {2, 3, 4, 8}) {
      for (int64_t n : {1, 3, 4, 9, 36, 60, 1001, 100000}) {
        SCOPED_TRACE(testing::Message() << threads << " threads, grain " << grain
                                        << ", n " << n);
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> off_grain{0};
        pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
          // Every range starts on the grain and ends on it or at n.
          if (begin % grain != 0 || (end != n && end % grain != 0)) off_grain++;
          for (int64_t i = begin; i < end; ++i) hits[i]++;
        }, grain);
        EXPECT_EQ(off_grain, 0);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << i;
      }
    }
  }
}

TEST(ThreadPoolTest, RunGivesEachThreadItsIndexAfterSleeping) {
  ThreadPool pool(4);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::atomic<int>> seen(4);
    pool.Run([&](int thread) { seen[thread]++; });
    for (int t = 0; t < 4; ++t) ASSERT_EQ(seen[t], 1);
    // Long enough for the workers to stop spinning and sleep on the futex.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(EqualCostRangesTest, EqualItemsSplitEvenly) {
  std::vector<int64_t> bounds;
  EqualCostRanges(48, 2, [](int64_t) { return 1; }, &bounds);
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 24, 48}));
  EqualCostRanges(48, 3, [](int64_t) { return 5; }, &bounds);
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 16, 32, 48}));
  EqualCostRanges(7, 1, [](int64_t) { return 5; }, &bounds);
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 7}));
}

// The item that crosses a share goes to whichever side leaves the range
// nearer it: [10, 10, 10, 100] at 2 parts is 30 | 100, not 130 | 0.
TEST(EqualCostRangesTest, ACrossingItemGoesToTheNearerSide) {
  const std::vector<int64_t> costs = {10, 10, 10, 100};
  std::vector<int64_t> bounds;
  EqualCostRanges(4, 2, [&](int64_t i) { return costs[i]; }, &bounds);
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 3, 4}));
  const std::vector<int64_t> late = {100, 10, 10, 10};
  EqualCostRanges(4, 2, [&](int64_t i) { return late[i]; }, &bounds);
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 1, 4}));
}

// Any costs: bounds start at 0, end at n, never decrease, and no range
// holds more than its share plus its largest item.
TEST(EqualCostRangesTest, BoundsCoverEveryItemOnceAndStayNearTheShare) {
  std::vector<int64_t> costs;
  uint32_t state = 12345;
  for (int64_t n : {0, 1, 2, 5, 37, 300}) {
    costs.resize(n);
    for (int64_t& c : costs) {
      state = state * 1664525u + 1013904223u;
      c = (state >> 8) % 3 == 0 ? 0 : (state >> 12) % 1000;
    }
    const int64_t total = std::accumulate(costs.begin(), costs.end(), int64_t{0});
    const int64_t largest = n == 0 ? 0 : *std::max_element(costs.begin(), costs.end());
    for (int parts : {1, 2, 3, 8, 400}) {
      SCOPED_TRACE(testing::Message() << "n " << n << ", parts " << parts);
      std::vector<int64_t> bounds;
      EqualCostRanges(n, parts, [&](int64_t i) { return costs[i]; }, &bounds);
      ASSERT_EQ(bounds.size(), static_cast<size_t>(parts) + 1);
      EXPECT_EQ(bounds.front(), 0);
      EXPECT_EQ(bounds.back(), n);
      for (int r = 0; r < parts; ++r) {
        ASSERT_LE(bounds[r], bounds[r + 1]);
        const int64_t cost = std::accumulate(costs.begin() + bounds[r],
                                             costs.begin() + bounds[r + 1], int64_t{0});
        EXPECT_LE(cost * parts, total + largest * parts) << "range " << r;
      }
    }
  }
}

}  // namespace
}  // namespace weft
