// ServerMetrics: the exact Prometheus text for small known states,
// cumulative histogram buckets, label escaping, and the recorder that
// wraps a request's sink.
#include "server/metrics.h"

#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/request_queue.h"

namespace weft {
namespace {

// The lines of one metric family: from its "# HELP" line up to the next
// family's.
std::string Family(const std::string& text, absl::string_view name) {
  const std::string start = absl::StrCat("# HELP ", name, " ");
  const size_t begin = text.find(start);
  if (begin == std::string::npos) return "";
  const size_t end = text.find("# HELP ", begin + start.size());
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

Finished MakeFinished(int prompt_tokens, int completion_tokens,
                      FinishReason reason = FinishReason::kLength) {
  Finished f;
  f.samples.push_back(SampleResult{reason, "", completion_tokens});
  f.usage.prompt_tokens = prompt_tokens;
  f.usage.completion_tokens = completion_tokens;
  f.timings.queue_time = absl::Milliseconds(100);
  f.timings.time_to_first_token = absl::Milliseconds(300);
  f.timings.end_to_end = absl::Seconds(1);
  return f;
}

TEST(ServerMetricsTest, RendersExactTextBeforeAnyRequestEnded) {
  ServerMetrics metrics("smol", 100);
  EngineStats stats;
  stats.num_running = 3;
  stats.num_waiting = 2;
  stats.kv_blocks_total = 8;
  stats.kv_blocks_used = 2;
  stats.prefix_cache_queried_tokens = 40;
  stats.prefix_cache_hit_tokens = 16;
  stats.num_preemptions = 1;
  const std::string text = metrics.Render(stats);
  const std::string engine_part =
      "# HELP weft:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE weft:num_requests_running gauge\n"
      "weft:num_requests_running{model_name=\"smol\"} 3\n"
      "# HELP weft:num_requests_waiting Number of requests waiting to be processed.\n"
      "# TYPE weft:num_requests_waiting gauge\n"
      "weft:num_requests_waiting{model_name=\"smol\"} 2\n"
      "# HELP weft:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE weft:kv_cache_usage_perc gauge\n"
      "weft:kv_cache_usage_perc{model_name=\"smol\"} 0.25\n"
      "# HELP weft:prefix_cache_queries_total Prefix cache queries, in terms of "
      "number of queried tokens.\n"
      "# TYPE weft:prefix_cache_queries_total counter\n"
      "weft:prefix_cache_queries_total{model_name=\"smol\"} 40\n"
      "# HELP weft:prefix_cache_hits_total Prefix cache hits, in terms of number "
      "of cached tokens.\n"
      "# TYPE weft:prefix_cache_hits_total counter\n"
      "weft:prefix_cache_hits_total{model_name=\"smol\"} 16\n"
      "# HELP weft:num_preemptions_total Cumulative number of preemptions from "
      "the engine.\n"
      "# TYPE weft:num_preemptions_total counter\n"
      "weft:num_preemptions_total{model_name=\"smol\"} 1\n";
  EXPECT_EQ(text.substr(0, engine_part.size()), engine_part);
  // With no request ended, the request-level families have no samples.
  EXPECT_EQ(Family(text, "weft:generation_tokens_total"),
            "# HELP weft:generation_tokens_total Number of generated tokens of "
            "finished requests.\n"
            "# TYPE weft:generation_tokens_total counter\n");
  EXPECT_EQ(Family(text, "weft:e2e_request_latency_seconds"),
            "# HELP weft:e2e_request_latency_seconds Histogram of e2e request "
            "latency in seconds.\n"
            "# TYPE weft:e2e_request_latency_seconds histogram\n");
}

TEST(ServerMetricsTest, SumsTokenCountersPerTenantFromUsage) {
  ServerMetrics metrics("smol");
  metrics.RecordFinished("bob", MakeFinished(7, 5));
  metrics.RecordFinished("alice", MakeFinished(3, 2));
  metrics.RecordFinished("bob", MakeFinished(10, 1));
  const std::string text = metrics.Render(EngineStats{});
  EXPECT_EQ(Family(text, "weft:prompt_tokens_total"),
            "# HELP weft:prompt_tokens_total Number of prompt tokens of finished "
            "requests.\n"
            "# TYPE weft:prompt_tokens_total counter\n"
            "weft:prompt_tokens_total{model_name=\"smol\",tenant=\"alice\"} 3\n"
            "weft:prompt_tokens_total{model_name=\"smol\",tenant=\"bob\"} 17\n");
  EXPECT_EQ(Family(text, "weft:generation_tokens_total"),
            "# HELP weft:generation_tokens_total Number of generated tokens of "
            "finished requests.\n"
            "# TYPE weft:generation_tokens_total counter\n"
            "weft:generation_tokens_total{model_name=\"smol\",tenant=\"alice\"} 2\n"
            "weft:generation_tokens_total{model_name=\"smol\",tenant=\"bob\"} 6\n");
}

TEST(ServerMetricsTest, HistogramBucketsAreCumulativeWithInclusiveBounds) {
  ServerMetrics metrics("m");
  for (double ttft : {0.003, 0.005, 0.05, 3000.0}) {
    Finished f = MakeFinished(1, 1);
    f.timings.time_to_first_token = absl::Seconds(ttft);
    metrics.RecordFinished("t", f);
  }
  const std::string text = metrics.Render(EngineStats{});
  const std::string l = "model_name=\"m\",tenant=\"t\"";
  std::string want =
      "# HELP weft:time_to_first_token_seconds Histogram of time to first token "
      "in seconds.\n"
      "# TYPE weft:time_to_first_token_seconds histogram\n";
  // 0.003 and 0.005 fall in le=0.005 (bounds are inclusive), 0.05 in 0.06,
  // 3000 above the last bound.
  const std::pair<const char*, int> buckets[] = {
      {"0.001", 0}, {"0.005", 2}, {"0.01", 2}, {"0.02", 2}, {"0.04", 2},
      {"0.06", 3},  {"0.08", 3},  {"0.1", 3},  {"0.25", 3}, {"0.5", 3},
      {"0.75", 3},  {"1", 3},     {"2.5", 3},  {"5", 3},    {"7.5", 3},
      {"10", 3},    {"20", 3},    {"40", 3},   {"80", 3},   {"160", 3},
      {"640", 3},   {"2560", 3},  {"+Inf", 4}};
  for (const auto& [le, count] : buckets) {
    absl::StrAppend(&want, "weft:time_to_first_token_seconds_bucket{", l,
                    ",le=\"", le, "\"} ", count, "\n");
  }
  absl::StrAppend(&want, "weft:time_to_first_token_seconds_sum{", l, "} 3000.058\n",
                  "weft:time_to_first_token_seconds_count{", l, "} 4\n");
  EXPECT_EQ(Family(text, "weft:time_to_first_token_seconds"), want);
}

TEST(ServerMetricsTest, EscapesBackslashQuoteAndNewlineInLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  ServerMetrics metrics("model \"x\"");
  metrics.RecordStatus("ten\\ant\n", absl::StatusCode::kOk);
  const std::string text = metrics.Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(
      text, "weft:requests_total{model_name=\"model \\\"x\\\"\","
            "tenant=\"ten\\\\ant\\n\",code=\"OK\"} 1\n"))
      << text;
}

TEST(ServerMetricsTest, CountsRequestsByStatusCodeAndTenant) {
  ServerMetrics metrics("m");
  metrics.RecordStatus("a", absl::StatusCode::kOk);
  metrics.RecordStatus("a", absl::StatusCode::kOk);
  metrics.RecordStatus("a", absl::StatusCode::kInvalidArgument);
  metrics.RecordStatus("", absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Family(metrics.Render(EngineStats{}), "weft:requests_total"),
            "# HELP weft:requests_total Requests that ended or were refused, by "
            "status code.\n"
            "# TYPE weft:requests_total counter\n"
            "weft:requests_total{model_name=\"m\",tenant=\"\",code=\"UNAUTHENTICATED\"} 1\n"
            "weft:requests_total{model_name=\"m\",tenant=\"a\",code=\"INVALID_ARGUMENT\"} 1\n"
            "weft:requests_total{model_name=\"m\",tenant=\"a\",code=\"OK\"} 2\n");
}

TEST(ServerMetricsTest, CountsEachSampleByFinishedReasonWithEveryReasonListed) {
  ServerMetrics metrics("m");
  Finished f = MakeFinished(4, 6, FinishReason::kStop);
  f.samples.push_back(SampleResult{FinishReason::kLength, "", 3});
  f.samples.push_back(SampleResult{FinishReason::kStop, "", 1});
  metrics.RecordFinished("t", f);
  const std::string l = "model_name=\"m\",tenant=\"t\"";
  EXPECT_EQ(Family(metrics.Render(EngineStats{}), "weft:request_success_total"),
            absl::StrCat(
                "# HELP weft:request_success_total Count of finished requests "
                "(one per sample), by finished_reason.\n"
                "# TYPE weft:request_success_total counter\n",
                "weft:request_success_total{", l, ",finished_reason=\"stop\"} 2\n",
                "weft:request_success_total{", l, ",finished_reason=\"length\"} 1\n",
                "weft:request_success_total{", l, ",finished_reason=\"abort\"} 0\n",
                "weft:request_success_total{", l, ",finished_reason=\"error\"} 0\n"));
}

TEST(ServerMetricsTest, ObservesEveryInterTokenGapAndThePerRequestMean) {
  ServerMetrics metrics("m");
  Finished f = MakeFinished(2, 3);
  // Binary fractions, so the sums are exact.
  f.timings.inter_token = {absl::Milliseconds(62.5), absl::Milliseconds(125)};
  metrics.RecordFinished("t", f);
  const std::string text = metrics.Render(EngineStats{});
  const std::string l = "model_name=\"m\",tenant=\"t\"";
  const std::string itl = Family(text, "weft:inter_token_latency_seconds");
  for (const auto& [le, count] : {std::pair<const char*, int>{"0.05", 0},
                                  {"0.075", 1}, {"0.1", 1}, {"0.15", 2}}) {
    EXPECT_TRUE(absl::StrContains(
        itl, absl::StrCat("weft:inter_token_latency_seconds_bucket{", l, ",le=\"",
                          le, "\"} ", count, "\n")))
        << le << "\n" << itl;
  }
  EXPECT_TRUE(absl::StrContains(
      itl, absl::StrCat("weft:inter_token_latency_seconds_sum{", l, "} 0.1875\n")));
  EXPECT_TRUE(absl::StrContains(
      itl, absl::StrCat("weft:inter_token_latency_seconds_count{", l, "} 2\n")));
  const std::string tpot = Family(text, "weft:request_time_per_output_token_seconds");
  EXPECT_TRUE(absl::StrContains(
      tpot, absl::StrCat("weft:request_time_per_output_token_seconds_sum{", l,
                         "} 0.09375\n")))
      << tpot;
  EXPECT_TRUE(absl::StrContains(
      tpot, absl::StrCat("weft:request_time_per_output_token_seconds_count{", l,
                         "} 1\n")));
}

TEST(ServerMetricsTest, SkipsTimeToFirstTokenOfARequestThatGeneratedNothing) {
  ServerMetrics metrics("m");
  metrics.RecordFinished("t", MakeFinished(5, 0, FinishReason::kCancelled));
  const std::string text = metrics.Render(EngineStats{});
  const std::string l = "model_name=\"m\",tenant=\"t\"";
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("weft:time_to_first_token_seconds_count{", l, "} 0\n")));
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("weft:e2e_request_latency_seconds_count{", l, "} 1\n")));
}

TEST(ServerMetricsTest, TokenCountBucketsAreOneTwoFiveUpToMaxModelLen) {
  EXPECT_EQ(OneTwoFiveBuckets(100),
            (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  EXPECT_EQ(OneTwoFiveBuckets(30), (std::vector<double>{1, 2, 5, 10, 20}));
  EXPECT_EQ(TimeToFirstTokenBuckets().size(), 22u);
  EXPECT_EQ(InterTokenBuckets().size(), 19u);
  EXPECT_EQ(RequestLatencyBuckets().size(), 21u);
}

TEST(ServerMetricsTest, RecordsFromManyThreadsWhileRenderingWithoutLosingCounts) {
  ServerMetrics metrics("m");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < 500; ++i) {
        metrics.RecordFinished(absl::StrCat("t", t % 2), MakeFinished(3, 2));
        metrics.RecordStatus(absl::StrCat("t", t % 2), absl::StatusCode::kOk);
      }
    });
  }
  threads.emplace_back([&metrics] {
    for (int i = 0; i < 50; ++i) metrics.Render(EngineStats{});
  });
  for (std::thread& thread : threads) thread.join();
  const std::string text = metrics.Render(EngineStats{});
  for (const char* tenant : {"t0", "t1"}) {
    const std::string l = absl::StrCat("model_name=\"m\",tenant=\"", tenant, "\"");
    EXPECT_TRUE(absl::StrContains(
        text, absl::StrCat("weft:generation_tokens_total{", l, "} 2000\n")));
    EXPECT_TRUE(absl::StrContains(
        text, absl::StrCat("weft:requests_total{", l, ",code=\"OK\"} 1000\n")));
  }
}

TEST(RequestRecorderTest, WrappedSinkRecordsTheFinishedEventOnceAndForwardsIt) {
  ServerMetrics metrics("m");
  auto buffer = std::make_shared<StreamBuffer>();
  std::shared_ptr<EventSink> sink = RequestRecorder(&metrics, "t").Wrap(buffer);
  Delta delta;
  delta.token_ids = {1, 2};
  sink->OnDelta(delta);
  sink->OnFinished(MakeFinished(3, 2));
  ASSERT_TRUE(std::holds_alternative<Delta>(*buffer->Next(absl::ZeroDuration())));
  ASSERT_TRUE(std::holds_alternative<Finished>(*buffer->Next(absl::ZeroDuration())));
  const std::string text = metrics.Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(
      text, "weft:generation_tokens_total{model_name=\"m\",tenant=\"t\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "weft:requests_total{model_name=\"m\",tenant=\"t\",code=\"OK\"} 1\n"));
}

TEST(RequestRecorderTest, CancelledRequestCountsAsCancelledWithItsTokens) {
  ServerMetrics metrics("m");
  auto sink = RequestRecorder(&metrics, "t").Wrap(std::make_shared<StreamBuffer>());
  sink->OnFinished(MakeFinished(3, 2, FinishReason::kCancelled));
  const std::string text = metrics.Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(
      text, "weft:requests_total{model_name=\"m\",tenant=\"t\",code=\"CANCELLED\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "weft:generation_tokens_total{model_name=\"m\",tenant=\"t\"} 2\n"));
}

TEST(RequestRecorderTest, ErrorsAndRefusalsCountByTheirCode) {
  ServerMetrics metrics("m");
  RequestRecorder recorder(&metrics, "t");
  recorder.Wrap(std::make_shared<StreamBuffer>())
      ->OnError(absl::UnavailableError("stopping"));
  recorder.Refused(absl::ResourceExhaustedError("full"));
  const std::string text = metrics.Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(
      text, "weft:requests_total{model_name=\"m\",tenant=\"t\",code=\"UNAVAILABLE\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "weft:requests_total{model_name=\"m\",tenant=\"t\",code=\"RESOURCE_EXHAUSTED\"} 1\n"));
  // No Finished: no token counts for the tenant.
  EXPECT_FALSE(absl::StrContains(text, "weft:generation_tokens_total{"));
}

TEST(RequestRecorderTest, DefaultRecorderPassesTheSinkThrough) {
  auto buffer = std::make_shared<StreamBuffer>();
  EXPECT_EQ(RequestRecorder().Wrap(buffer), buffer);
}

}  // namespace
}  // namespace weft
