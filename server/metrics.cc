#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace weft {

const std::vector<double>& TimeToFirstTokenBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
  return *buckets;
}

const std::vector<double>& InterTokenBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,  0.4, 0.5,
      0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
  return *buckets;
}

const std::vector<double>& RequestLatencyBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
      30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
  return *buckets;
}

std::vector<double> OneTwoFiveBuckets(int64_t max_value) {
  std::vector<double> buckets;
  for (int64_t scale = 1; scale <= max_value; scale *= 10) {
    for (int64_t mantissa : {1, 2, 5}) {
      if (mantissa * scale > max_value) return buckets;
      buckets.push_back(static_cast<double>(mantissa * scale));
    }
  }
  return buckets;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

absl::StatusCode FinishedCode(const Finished& finished) {
  for (const SampleResult& sample : finished.samples) {
    if (sample.reason == FinishReason::kCancelled) return absl::StatusCode::kCancelled;
  }
  return absl::StatusCode::kOk;
}

namespace {

// vLLM's finished_reason label values, indexed by FinishReason.
constexpr const char* kFinishReasonNames[] = {"stop", "length", "abort", "error"};
constexpr int kNumFinishReasons = 4;

int ReasonIndex(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return 0;
    case FinishReason::kLength: return 1;
    case FinishReason::kCancelled: return 2;
    case FinishReason::kError: return 3;
  }
  return 3;
}

// Shortest text that reads back as the same double (Go's and Prometheus's
// own formatting: 1, 0.25, 2560); +Inf, -Inf and NaN as the format spells
// them.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

// Writes one metric family in the text format.
class FamilyWriter {
 public:
  FamilyWriter(std::string* out, absl::string_view name, absl::string_view type,
               absl::string_view help)
      : out_(out), name_(name) {
    absl::StrAppend(out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  }

  // `labels` is the rendered label list without braces, e.g.
  // model_name="m",tenant="t".
  void Sample(absl::string_view labels, double value,
              absl::string_view suffix = "") {
    absl::StrAppend(out_, name_, suffix, "{", labels, "} ", FormatValue(value),
                    "\n");
  }

 private:
  std::string* out_;
  std::string name_;
};

std::string Label(absl::string_view name, absl::string_view value) {
  return absl::StrCat(name, "=\"", EscapeLabelValue(value), "\"");
}

}  // namespace

void ServerMetrics::Histogram::Observe(double value) {
  // Bucket i counts bounds[i-1] < value <= bounds[i] ("le" is inclusive).
  const size_t i = std::lower_bound(bounds->begin(), bounds->end(), value) -
                   bounds->begin();
  counts[i]++;
  sum += value;
  count++;
}

struct ServerMetrics::TenantSeries {
  explicit TenantSeries(const std::vector<double>* token_buckets)
      : time_to_first_token(&TimeToFirstTokenBuckets()),
        inter_token_latency(&InterTokenBuckets()),
        time_per_output_token(&InterTokenBuckets()),
        e2e_latency(&RequestLatencyBuckets()),
        queue_time(&RequestLatencyBuckets()),
        prefill_time(&RequestLatencyBuckets()),
        decode_time(&RequestLatencyBuckets()),
        inference_time(&RequestLatencyBuckets()),
        prompt_tokens_per_request(token_buckets),
        generation_tokens_per_request(token_buckets) {}

  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  int64_t success[kNumFinishReasons] = {};
  Histogram time_to_first_token;
  Histogram inter_token_latency;
  Histogram time_per_output_token;
  Histogram e2e_latency;
  Histogram queue_time;
  Histogram prefill_time;
  Histogram decode_time;
  Histogram inference_time;
  Histogram prompt_tokens_per_request;
  Histogram generation_tokens_per_request;
};

ServerMetrics::ServerMetrics(std::string model_name, int max_model_len)
    : model_name_(std::move(model_name)),
      token_buckets_(OneTwoFiveBuckets(std::max(max_model_len, 1))) {}

ServerMetrics::~ServerMetrics() = default;

ServerMetrics::TenantSeries& ServerMetrics::Tenant(absl::string_view tenant) {
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) {
    it = tenants_
             .emplace(std::string(tenant),
                      std::make_unique<TenantSeries>(&token_buckets_))
             .first;
  }
  return *it->second;
}

void ServerMetrics::RecordFinished(absl::string_view tenant,
                                   const Finished& finished) {
  const RequestTimings& t = finished.timings;
  const double queue = absl::ToDoubleSeconds(t.queue_time);
  const double ttft = absl::ToDoubleSeconds(t.time_to_first_token);
  const double e2e = absl::ToDoubleSeconds(t.end_to_end);
  const bool produced_tokens = finished.usage.completion_tokens > 0;
  absl::MutexLock lock(&mu_);
  TenantSeries& s = Tenant(tenant);
  s.prompt_tokens += finished.usage.prompt_tokens;
  s.generation_tokens += finished.usage.completion_tokens;
  s.cached_prompt_tokens += finished.usage.cached_prompt_tokens;
  // vLLM runs each of n samples as its own request: count each sample's end.
  for (const SampleResult& sample : finished.samples) {
    s.success[ReasonIndex(sample.reason)]++;
  }
  s.e2e_latency.Observe(e2e);
  s.queue_time.Observe(queue);
  s.inference_time.Observe(std::max(0.0, e2e - queue));
  s.prompt_tokens_per_request.Observe(finished.usage.prompt_tokens);
  s.generation_tokens_per_request.Observe(finished.usage.completion_tokens);
  if (produced_tokens) {  // a request cancelled while queued has no TTFT
    s.time_to_first_token.Observe(ttft);
    s.prefill_time.Observe(std::max(0.0, ttft - queue));
    s.decode_time.Observe(std::max(0.0, e2e - ttft));
  }
  double gaps = 0;
  for (absl::Duration gap : t.inter_token) {
    const double seconds = absl::ToDoubleSeconds(gap);
    s.inter_token_latency.Observe(seconds);
    gaps += seconds;
  }
  if (!t.inter_token.empty()) {
    s.time_per_output_token.Observe(gaps / t.inter_token.size());
  }
}

void ServerMetrics::RecordStatus(absl::string_view tenant, absl::StatusCode code) {
  absl::MutexLock lock(&mu_);
  status_counts_[{std::string(tenant), absl::StatusCodeToString(code)}]++;
}

std::string ServerMetrics::Render(const EngineStats& stats) const {
  std::string out;
  const std::string model = Label("model_name", model_name_);

  // Engine-level: {model_name}.
  FamilyWriter(&out, "weft:num_requests_running", "gauge",
               "Number of requests in model execution batches.")
      .Sample(model, stats.num_running);
  FamilyWriter(&out, "weft:num_requests_waiting", "gauge",
               "Number of requests waiting to be processed.")
      .Sample(model, stats.num_waiting);
  FamilyWriter(&out, "weft:kv_cache_usage_perc", "gauge",
               "KV-cache usage. 1 means 100 percent usage.")
      .Sample(model, stats.kv_blocks_total > 0
                         ? static_cast<double>(stats.kv_blocks_used) /
                               stats.kv_blocks_total
                         : 0.0);
  FamilyWriter(&out, "weft:prefix_cache_queries_total", "counter",
               "Prefix cache queries, in terms of number of queried tokens.")
      .Sample(model, stats.prefix_cache_queried_tokens);
  FamilyWriter(&out, "weft:prefix_cache_hits_total", "counter",
               "Prefix cache hits, in terms of number of cached tokens.")
      .Sample(model, stats.prefix_cache_hit_tokens);
  FamilyWriter(&out, "weft:num_preemptions_total", "counter",
               "Cumulative number of preemptions from the engine.")
      .Sample(model, stats.num_preemptions);

  // Request-level: {model_name, tenant}. Formatted from a copy, so the
  // engine thread (which records) never waits for the text to be written.
  std::vector<std::pair<std::string, std::unique_ptr<TenantSeries>>> tenants;
  std::map<std::pair<std::string, std::string>, int64_t> status_counts;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [tenant, series] : tenants_) {
      tenants.emplace_back(tenant, std::make_unique<TenantSeries>(*series));
    }
    status_counts = status_counts_;
  }
  auto labels = [&](const std::string& tenant) {
    return absl::StrCat(model, ",", Label("tenant", tenant));
  };
  auto counter = [&](absl::string_view name, absl::string_view help,
                     int64_t TenantSeries::*field) {
    FamilyWriter family(&out, name, "counter", help);
    for (const auto& [tenant, series] : tenants) {
      family.Sample(labels(tenant), series.get()->*field);
    }
  };
  counter("weft:prompt_tokens_total",
          "Number of prompt tokens of finished requests.",
          &TenantSeries::prompt_tokens);
  counter("weft:generation_tokens_total",
          "Number of generated tokens of finished requests.",
          &TenantSeries::generation_tokens);
  counter("weft:prompt_tokens_cached_total",
          "Number of prompt tokens of finished requests served from the "
          "prefix cache.",
          &TenantSeries::cached_prompt_tokens);
  {
    FamilyWriter family(&out, "weft:request_success_total", "counter",
                        "Count of finished requests (one per sample), by "
                        "finished_reason.");
    for (const auto& [tenant, series] : tenants) {
      for (int r = 0; r < kNumFinishReasons; ++r) {
        family.Sample(absl::StrCat(labels(tenant), ",",
                                   Label("finished_reason", kFinishReasonNames[r])),
                      series->success[r]);
      }
    }
  }
  {
    FamilyWriter family(&out, "weft:requests_total", "counter",
                        "Requests that ended or were refused, by status code.");
    for (const auto& [key, count] : status_counts) {
      family.Sample(absl::StrCat(labels(key.first), ",", Label("code", key.second)),
                    count);
    }
  }
  auto histogram = [&](absl::string_view name, absl::string_view help,
                       Histogram TenantSeries::*field) {
    FamilyWriter family(&out, name, "histogram", help);
    for (const auto& [tenant, series] : tenants) {
      const Histogram& h = series.get()->*field;
      const std::string base = labels(tenant);
      int64_t cumulative = 0;
      for (size_t i = 0; i < h.bounds->size(); ++i) {
        cumulative += h.counts[i];
        family.Sample(absl::StrCat(base, ",le=\"", FormatValue((*h.bounds)[i]), "\""),
                      cumulative, "_bucket");
      }
      family.Sample(absl::StrCat(base, ",le=\"+Inf\""), h.count, "_bucket");
      family.Sample(base, h.sum, "_sum");
      family.Sample(base, h.count, "_count");
    }
  };
  histogram("weft:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &TenantSeries::time_to_first_token);
  histogram("weft:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &TenantSeries::inter_token_latency);
  histogram("weft:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            &TenantSeries::time_per_output_token);
  histogram("weft:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &TenantSeries::e2e_latency);
  histogram("weft:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &TenantSeries::queue_time);
  histogram("weft:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            &TenantSeries::inference_time);
  histogram("weft:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            &TenantSeries::prefill_time);
  histogram("weft:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            &TenantSeries::decode_time);
  histogram("weft:request_prompt_tokens", "Number of prefill tokens processed.",
            &TenantSeries::prompt_tokens_per_request);
  histogram("weft:request_generation_tokens",
            "Number of generation tokens processed.",
            &TenantSeries::generation_tokens_per_request);
  return out;
}

namespace {

// Forwards every event to the request's real sink and records its end.
class RecordingSink : public EventSink {
 public:
  RecordingSink(std::shared_ptr<EventSink> inner, ServerMetrics* metrics,
                std::string tenant)
      : inner_(std::move(inner)), metrics_(metrics), tenant_(std::move(tenant)) {}

  void OnDelta(Delta delta) override { inner_->OnDelta(std::move(delta)); }
  void OnFinished(Finished finished) override {
    metrics_->RecordFinished(tenant_, finished);
    metrics_->RecordStatus(tenant_, FinishedCode(finished));
    inner_->OnFinished(std::move(finished));
  }
  void OnError(absl::Status status) override {
    metrics_->RecordStatus(tenant_, status.code());
    inner_->OnError(std::move(status));
  }

 private:
  std::shared_ptr<EventSink> inner_;
  ServerMetrics* metrics_;
  std::string tenant_;
};

}  // namespace

void RequestRecorder::Refused(const absl::Status& status) const {
  if (metrics_ != nullptr) metrics_->RecordStatus(tenant_, status.code());
}

std::shared_ptr<EventSink> RequestRecorder::Wrap(
    std::shared_ptr<EventSink> sink) const {
  if (metrics_ == nullptr) return sink;
  return std::make_shared<RecordingSink>(std::move(sink), metrics_, tenant_);
}

}  // namespace weft
