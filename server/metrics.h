// Prometheus metrics of the serving front ends, with vLLM's names under a
// `weft:` prefix, vLLM's units and its bucket boundaries, so dashboards
// built for vLLM chart weft by swapping the prefix (docs/metrics.md lists
// every metric with its vLLM equivalent).
//
// Request-level series carry {model_name, tenant}; engine-level ones (queue
// gauges, KV usage, prefix-cache and preemption counters, read from
// EngineStats at scrape time) carry {model_name} only, because the engine
// does not split them by tenant.
#ifndef WEFT_SERVER_METRICS_H_
#define WEFT_SERVER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "runtime/engine.h"
#include "runtime/request.h"

namespace weft {

// Bucket upper bounds (seconds), the same as vLLM's.
const std::vector<double>& TimeToFirstTokenBuckets();  // 22 bounds, 1 ms .. 2560 s
const std::vector<double>& InterTokenBuckets();        // 19 bounds, 10 ms .. 80 s
const std::vector<double>& RequestLatencyBuckets();    // 21 bounds, 0.3 s .. 7680 s
// 1, 2, 5, 10, 20, 50, ... up to and including `max_value` (token counts).
std::vector<double> OneTwoFiveBuckets(int64_t max_value);

// `value` escaped for a label value in the text format: \ → \\, " → \",
// newline → \n.
std::string EscapeLabelValue(absl::string_view value);

// The Finished event's outcome as a status code: OK, or CANCELLED when the
// client cancelled (or its deadline passed) before the request ended.
absl::StatusCode FinishedCode(const Finished& finished);

class ServerMetrics {  // thread-safe
 public:
  // `max_model_len` bounds the token-count histograms' buckets.
  explicit ServerMetrics(std::string model_name, int max_model_len = 8192);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // A request's terminal Finished event: its usage, finish reasons and
  // timings.
  void RecordFinished(absl::string_view tenant, const Finished& finished);
  // Every request that ends (OK included) or is refused, by code. Refused
  // before authentication: tenant "".
  void RecordStatus(absl::string_view tenant, absl::StatusCode code);
  // Prometheus text format 0.0.4; gauges from the engine's stats.
  std::string Render(const EngineStats& stats) const;

  const std::string& model_name() const { return model_name_; }

 private:
  struct Histogram {
    explicit Histogram(const std::vector<double>* bounds)
        : bounds(bounds), counts(bounds->size() + 1, 0) {}
    void Observe(double value);

    const std::vector<double>* bounds;
    std::vector<int64_t> counts;  // per bucket, not cumulative; last: > every bound
    double sum = 0;
    int64_t count = 0;
  };
  struct TenantSeries;  // every request-level series of one tenant

  TenantSeries& Tenant(absl::string_view tenant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string model_name_;
  const std::vector<double> token_buckets_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<TenantSeries>, std::less<>> tenants_
      ABSL_GUARDED_BY(mu_);
  // (tenant, code name) → requests.
  std::map<std::pair<std::string, std::string>, int64_t> status_counts_
      ABSL_GUARDED_BY(mu_);
};

// One request's view of ServerMetrics: the tenant it is recorded under.
// A default-constructed recorder records nothing (metrics disabled).
class RequestRecorder {
 public:
  RequestRecorder() = default;
  RequestRecorder(ServerMetrics* metrics, std::string tenant)
      : metrics_(metrics), tenant_(std::move(tenant)) {}

  // The request was refused before the engine accepted it.
  void Refused(const absl::Status& status) const;
  // `sink`, wrapped so that the request's terminal event is recorded
  // (Finished: usage, timings and its code; Error: the error's code) on
  // the engine thread, exactly once, whether or not the client is still
  // there to read it.
  std::shared_ptr<EventSink> Wrap(std::shared_ptr<EventSink> sink) const;

 private:
  ServerMetrics* metrics_ = nullptr;
  std::string tenant_;
};

}  // namespace weft

#endif  // WEFT_SERVER_METRICS_H_
