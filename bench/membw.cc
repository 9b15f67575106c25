// weft-bench-membw: the machine's memory read bandwidth, the roofline that
// single-sequence generation on the CPU is measured against (each generated
// token streams every weight once).
//
// For each buffer size and thread count, every thread streams its own
// contiguous slice of one buffer (first touched by that thread) as 8
// concurrent sequential streams, XOR-folding 64-byte lines with the widest
// vector loads the processor has; a pass is timed from a barrier before the
// first load to the last thread's end. The
// best pass over `--min-seconds` is reported (the machine is shared, so the
// best pass is the least disturbed one), with the median alongside. One
// JSON line per (bytes, threads):
//   {"bench":"membw","bytes":...,"threads":...,"passes":...,
//    "best_gbps":...,"median_gbps":...}            GB/s = 1e9 bytes/s
//
//   build-bench/bench/weft-bench-membw --threads 1,2 --bytes dram,100000000
// "dram" is a buffer four times the last-level cache (at least 1 GiB), so
// that the result is DRAM bandwidth; any number is a buffer of that many
// bytes (one the size of a model file measures what generation can get when
// that model sits in the last-level cache).
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, threads, "1,2", "comma-separated thread counts");
ABSL_FLAG(std::string, bytes, "dram",
          "comma-separated buffer sizes in bytes, or 'dram' (4 x L3, >= 1 GiB)");
ABSL_FLAG(double, min_seconds, 1.0, "measure each point for at least this long");
ABSL_FLAG(int, min_passes, 5, "and at least this many passes");

namespace weft {
namespace {

// XOR of every 64-bit word in [begin, end), whose length is a multiple of
// kStreams lines, read as kStreams concurrent sequential streams (one per
// equal part): the hardware prefetchers follow several streams at once, and
// several streams keep more misses in flight than one, which measured up to
// 1.5x more read bandwidth per core than a single stream on the machine
// this was written on. Cloned for AVX-512, AVX2 and baseline x86-64; the
// loader picks the widest the processor supports.
constexpr int kStreams = 8;
constexpr int kWordsPerLine = 8;
__attribute__((target_clones("avx512f", "avx2", "default"), noinline))
uint64_t XorFold(const uint64_t* begin, const uint64_t* end) {
  const int64_t part = (end - begin) / kStreams;
  uint64_t acc[kStreams][kWordsPerLine] = {};
  for (int64_t i = 0; i < part; i += kWordsPerLine) {
    for (int s = 0; s < kStreams; ++s) {
      for (int w = 0; w < kWordsPerLine; ++w) acc[s][w] ^= begin[s * part + i + w];
    }
  }
  uint64_t r = 0;
  for (int s = 0; s < kStreams; ++s) {
    for (int w = 0; w < kWordsPerLine; ++w) r ^= acc[s][w];
  }
  return r;
}

// Bytes of the last-level cache, 0 when unknown.
// The kernel's figure first: on an AMD EPYC (Zen 4) VM with a 32 MiB L3,
// glibc's sysconf(_SC_LEVEL3_CACHE_SIZE) said 320 MiB (2026-11-30).
int64_t LastLevelCacheBytes() {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index3/size");
  std::string text;
  if (in >> text && !text.empty()) {
    int64_t value = 0;
    const char unit = text.back();
    if (unit == 'K' || unit == 'M') text.pop_back();
    if (absl::SimpleAtoi(text, &value) && value > 0) {
      return value * (unit == 'M' ? 1 << 20 : unit == 'K' ? 1 << 10 : 1);
    }
  }
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return l3 > 0 ? l3 : 0;
}

struct Point {
  int64_t bytes = 0;
  int threads = 0;
  int passes = 0;
  double best_gbps = 0;
  double median_gbps = 0;
  uint64_t checksum = 0;
};

Point Measure(int64_t bytes, int num_threads, double min_seconds, int min_passes) {
  // Every thread's slice is a whole number of kStreams lines.
  constexpr int64_t kChunk = int64_t{kStreams} * kWordsPerLine;  // words
  const int64_t words = bytes / 8 / (kChunk * num_threads) * (kChunk * num_threads);
  auto* raw = static_cast<uint64_t*>(std::aligned_alloc(4096, (words * 8 + 4095) / 4096 * 4096));
  std::unique_ptr<uint64_t, decltype(&std::free)> buffer(raw, &std::free);
  std::vector<int64_t> first(num_threads + 1);
  for (int t = 0; t <= num_threads; ++t) first[t] = words / num_threads * t;

  std::barrier start(num_threads + 1), done(num_threads + 1);
  std::vector<uint64_t> results(num_threads * 8);  // one cache line apart
  bool stop = false;
  std::vector<std::thread> workers;
  for (int t = 0; t < num_threads; ++t) {
    workers.emplace_back([&, t] {
      // First touch by the thread that reads the slice (NUMA placement).
      for (int64_t i = first[t]; i < first[t + 1]; ++i) raw[i] = i * 0x9E3779B97F4A7C15ull;
      done.arrive_and_wait();
      while (true) {
        start.arrive_and_wait();
        if (stop) break;
        results[t * 8] ^= XorFold(raw + first[t], raw + first[t + 1]);
        done.arrive_and_wait();
      }
    });
  }
  done.arrive_and_wait();  // buffer written

  std::vector<double> gbps;
  const auto begin = std::chrono::steady_clock::now();
  while (static_cast<int>(gbps.size()) < min_passes ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count() <
             min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    start.arrive_and_wait();
    done.arrive_and_wait();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbps.push_back(static_cast<double>(words * 8) / s / 1e9);
  }
  stop = true;
  start.arrive_and_wait();
  for (std::thread& w : workers) w.join();

  Point p;
  p.bytes = words * 8;
  p.threads = num_threads;
  p.passes = static_cast<int>(gbps.size());
  std::sort(gbps.begin(), gbps.end());
  p.best_gbps = gbps.back();
  p.median_gbps = gbps[gbps.size() / 2];
  for (int t = 0; t < num_threads; ++t) p.checksum ^= results[t * 8];
  return p;
}

int Main() {
  std::vector<int> thread_counts;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_threads), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      std::fprintf(stderr, "weft-bench-membw: bad --threads entry '%s'\n",
                   std::string(s).c_str());
      return 1;
    }
    thread_counts.push_back(n);
  }
  const int64_t llc = LastLevelCacheBytes();
  std::vector<int64_t> sizes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_bytes), ',')) {
    int64_t n = 0;
    if (s == "dram") {
      sizes.push_back(std::max<int64_t>(int64_t{1} << 30, 4 * llc));
    } else if (absl::SimpleAtoi(s, &n) && n >= 4096) {
      sizes.push_back(n);
    } else {
      std::fprintf(stderr, "weft-bench-membw: bad --bytes entry '%s' (>= 4096 or dram)\n",
                   std::string(s).c_str());
      return 1;
    }
  }
  for (int64_t bytes : sizes) {
    for (int threads : thread_counts) {
      const Point p = Measure(bytes, threads, absl::GetFlag(FLAGS_min_seconds),
                              absl::GetFlag(FLAGS_min_passes));
      std::printf(
          "{\"bench\":\"membw\",\"bytes\":%lld,\"llc_bytes\":%lld,\"threads\":%d,"
          "\"passes\":%d,\"best_gbps\":%.3f,\"median_gbps\":%.3f,\"checksum\":%llu}\n",
          static_cast<long long>(p.bytes), static_cast<long long>(llc), p.threads,
          p.passes, p.best_gbps, p.median_gbps,
          static_cast<unsigned long long>(p.checksum & 0xffff));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  absl::ParseCommandLine(argc, argv);
  return weft::Main();
}
