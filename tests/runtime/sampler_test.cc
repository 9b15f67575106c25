#include "runtime/sampler.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace weft {
namespace {

TEST(SamplerTest, GreedyPicksTheLargestLogitAndLowestIdOnTies) {
  Sampler sampler(SamplingParams{});
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.5f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{1.0f, 4.0f, 4.0f}), 1);
}

TEST(SamplerTest, TopKOfOneIsGreedyAtAnyTemperature) {
  SamplingParams params{.temperature = 5.0f, .top_k = 1, .seed = 9};
  Sampler sampler(params);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(sampler.Sample(std::vector<float>{0.1f, 0.2f, 0.3f, 0.25f}), 2);
  }
}

TEST(SamplerTest, SameSeedSameSamplesDifferentSeedDifferent) {
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  auto draw = [&](uint64_t seed) {
    Sampler sampler(SamplingParams{.temperature = 1.0f, .seed = seed});
    std::vector<int32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(sampler.Sample(logits));
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(SamplerTest, FrequenciesFollowTheTemperedSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f};
  const float temperature = 0.7f;
  Sampler sampler(SamplingParams{.temperature = temperature, .seed = 1});
  const int draws = 40000;
  std::vector<int> counts(3, 0);
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits)];
  double total = 0;
  std::vector<double> p(3);
  for (int i = 0; i < 3; ++i) total += (p[i] = std::exp(logits[i] / temperature));
  for (int i = 0; i < 3; ++i) {
    const double expected = p[i] / total;
    const double sigma = std::sqrt(expected * (1 - expected) / draws);
    EXPECT_NEAR(counts[i] / double(draws), expected, 5 * sigma) << "token " << i;
  }
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities ~0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps tokens 3 and 1.
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f, 3.0f};
  Sampler sampler(SamplingParams{.temperature = 1.0f, .top_p = 0.8f, .seed = 5});
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 5000; ++i) ++counts[sampler.Sample(logits)];
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], counts[1]);
}

TEST(SamplingParamsTest, RejectsOutOfRangeValues) {
  EXPECT_EQ(SamplingParams{.temperature = -1.0f}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SamplingParams{.temperature = NAN}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SamplingParams{.top_p = 0.0f}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SamplingParams{.top_p = 1.5f}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SamplingParams{.top_k = -2}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace weft
