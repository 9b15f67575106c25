#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kSeed = 1234;

SamplingParams Greedy() {
  SamplingParams params;
  params.temperature = 0.0f;
  return params;
}

// The token greedy decoding picks with `params` (temperature forced to 0).
int32_t GreedyPick(SamplingParams params, const std::vector<float>& logits,
                   const std::vector<int32_t>& prompt = {},
                   const std::vector<int32_t>& output = {}) {
  params.temperature = 0.0f;
  SequenceSampler sampler(params, kSeed, 0);
  return sampler.Sample(logits, prompt, output).token;
}

// How often each token is drawn in `draws` calls of one sampler.
std::vector<int> Histogram(const SamplingParams& params,
                           const std::vector<float>& logits, int draws,
                           uint64_t seed = kSeed) {
  SequenceSampler sampler(params, seed, 0);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits, {}, {}).token];
  return counts;
}

std::vector<int32_t> Draws(SequenceSampler& sampler,
                           const std::vector<float>& logits, int count) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < count; ++i) {
    tokens.push_back(sampler.Sample(logits, {}, tokens).token);
  }
  return tokens;
}

// ---------------------------------------------------------------- greedy

TEST(SequenceSamplerTest, GreedyPicksTheLargestLogitAndLowestIdOnTies) {
  EXPECT_EQ(GreedyPick(Greedy(), {0.5f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(GreedyPick(Greedy(), {1.0f, 4.0f, 4.0f}), 1);
}

// A NaN logit is skipped wherever it sits: among the 8 lanes of the
// vectorized maximum (first, last of a lane) or in the tail past them.
TEST(ArgMaxTest, SkipsNaNLogits) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(ArgMax({nan, 1, 2, 3, 4, 5, 6, 7}), 7);
  EXPECT_EQ(ArgMax({1, 2, nan}), 1);
  EXPECT_EQ(ArgMax({nan, 9, 0, 0, 0, 0, 0, 0, 1}), 1);
  EXPECT_EQ(ArgMax({0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 0, 0, 0, 0, 0, nan, 0}), 7);
  EXPECT_EQ(ArgMax({nan, nan}), 0);  // every logit NaN
  std::vector<float> vocab(49152, 0.0f);
  vocab[100] = 5.0f;
  for (size_t at : {size_t{0}, size_t{99}, vocab.size() - 8, vocab.size() - 1}) {
    std::vector<float> logits = vocab;
    logits[at] = nan;
    EXPECT_EQ(ArgMax(logits), 100) << "NaN at " << at;
    EXPECT_EQ(GreedyPick(Greedy(), logits), 100) << "NaN at " << at;
  }
}

// An overflowed (+inf) logit takes all the mass when sampling too; before,
// e^(inf - inf) = NaN left every weight 0 and the fallback drew token 0,
// even a banned one.
TEST(SequenceSamplerTest, SamplingAnInfiniteLogitPicksIt) {
  const float inf = std::numeric_limits<float>::infinity();
  SamplingParams params;
  params.temperature = 1.0f;
  for (uint64_t seed : {1, 2, 3}) {
    SequenceSampler sampler(params, seed, 0);
    EXPECT_EQ(sampler.Sample({0.0f, inf, 0.0f}, {}, {}).token, 1);
    EXPECT_EQ(sampler.Sample({0.0f, 2.0f, inf, 1.0f}, {}, {}, {0}).token, 2);
    const int32_t tied = sampler.Sample({inf, 0.0f, inf}, {}, {}, {}).token;
    EXPECT_TRUE(tied == 0 || tied == 2) << tied;
  }
  params.top_k = 2;
  params.top_p = 0.5f;
  params.min_p = 0.5f;
  SequenceSampler filtered(params, kSeed, 0);
  EXPECT_EQ(filtered.Sample({5.0f, 4.0f, inf}, {}, {}).token, 2);
}

TEST(SequenceSamplerTest, TopKOfOneIsGreedyAtAnyTemperature) {
  SamplingParams params{.temperature = 5.0f, .top_k = 1};
  const std::vector<int> counts =
      Histogram(params, {0.1f, 0.2f, 0.3f, 0.25f}, 200);
  EXPECT_EQ(counts[2], 200);
}

// ------------------------------------------------------------- penalties
// Each penalty moves token 0's logit to a hand-computed value; token 1 sits
// just below or just above it, and greedy decoding shows which side won.

TEST(SequenceSamplerTest, RepetitionPenaltyDividesAPositiveLogit) {
  // 3.0 / 1.5 = 2.0; token 0 is in the prompt.
  SamplingParams params{.repetition_penalty = 1.5f};
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.99f}, /*prompt=*/{0}), 0);
  EXPECT_EQ(GreedyPick(params, {3.0f, 2.01f}, /*prompt=*/{0}), 1);
}

TEST(SequenceSamplerTest, RepetitionPenaltyMultipliesANegativeLogit) {
  // -1.0 * 1.5 = -1.5; token 0 is in the output.
  SamplingParams params{.repetition_penalty = 1.5f};
  EXPECT_EQ(GreedyPick(params, {-1.0f, -1.51f}, {}, /*output=*/{0}), 0);
  EXPECT_EQ(GreedyPick(params, {-1.0f, -1.49f}, {}, /*output=*/{0}), 1);
}

TEST(SequenceSamplerTest, RepetitionPenaltyCountsATokenOnce) {
  // Seen three times, still 3.0 / 1.5 = 2.0 (not 3.0 / 1.5^3).
  SamplingParams params{.repetition_penalty = 1.5f};
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.99f}, {0, 0}, {0}), 0);
  EXPECT_EQ(GreedyPick(params, {3.0f, 2.01f}, {0, 0}, {0}), 1);
}

TEST(SequenceSamplerTest, FrequencyPenaltyScalesWithOutputCount) {
  // 3.0 - 0.5 * 3 occurrences = 1.5.
  SamplingParams params{.frequency_penalty = 0.5f};
  const std::vector<int32_t> output = {0, 2, 0, 0};
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.49f, -9.0f}, {}, output), 0);
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.51f, -9.0f}, {}, output), 1);
}

TEST(SequenceSamplerTest, PresencePenaltyIsPaidOnceWhateverTheCount) {
  // 3.0 - 1.0 = 2.0 after three occurrences.
  SamplingParams params{.presence_penalty = 1.0f};
  const std::vector<int32_t> output = {0, 0, 0};
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.99f}, {}, output), 0);
  EXPECT_EQ(GreedyPick(params, {3.0f, 2.01f}, {}, output), 1);
}

TEST(SequenceSamplerTest, FrequencyAndPresencePenaltiesIgnoreThePrompt) {
  SamplingParams params{.presence_penalty = 2.0f, .frequency_penalty = 2.0f};
  EXPECT_EQ(GreedyPick(params, {3.0f, 2.99f}, /*prompt=*/{0, 0, 0}), 0);
}

TEST(SequenceSamplerTest, PenaltiesApplyAfterTheRepetitionPenalty) {
  // vLLM order: (3.0 / 1.5) - 0.5 * 2 - 0.25 = 0.75.
  SamplingParams params{.repetition_penalty = 1.5f,
                        .presence_penalty = 0.25f,
                        .frequency_penalty = 0.5f};
  EXPECT_EQ(GreedyPick(params, {3.0f, 0.74f}, {}, {0, 0}), 0);
  EXPECT_EQ(GreedyPick(params, {3.0f, 0.76f}, {}, {0, 0}), 1);
}

TEST(SequenceSamplerTest, PenaltyScratchIsClearedBetweenCalls) {
  SamplingParams params = Greedy();
  params.frequency_penalty = 2.0f;
  SequenceSampler sampler(params, kSeed, 0);
  const std::vector<float> logits = {3.0f, 2.0f};
  const std::vector<int32_t> repeated = {0, 0};
  EXPECT_EQ(sampler.Sample(logits, {}, repeated).token, 1);
  EXPECT_EQ(sampler.Sample(logits, {}, {}).token, 0);
}

// ------------------------------------------------------------ logit bias

TEST(SequenceSamplerTest, LogitBiasOfPlus100ForcesAToken) {
  SamplingParams params{.logit_bias = {{2, 100.0f}}};
  const std::vector<int> counts =
      Histogram(params, {5.0f, 4.0f, -3.0f, 1.0f}, 1000);
  EXPECT_EQ(counts[2], 1000);
}

TEST(SequenceSamplerTest, LogitBiasOfMinus100ForbidsAToken) {
  SamplingParams params{.logit_bias = {{0, -100.0f}}};
  const std::vector<int> counts =
      Histogram(params, {5.0f, 0.0f, 0.0f, 0.0f}, 3000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_GT(counts[3], 0);
}

TEST(SequenceSamplerTest, GreedyUsesTheBiasedLogits) {
  SamplingParams params{.logit_bias = {{1, 1.5f}}};
  EXPECT_EQ(GreedyPick(params, {3.0f, 1.6f}), 1);
}

// ----------------------------------------------- structured output mask

// A mask over `vocab` tokens allowing `tokens` (GrammarMatcher's layout).
std::vector<uint32_t> Mask(size_t vocab, const std::vector<int32_t>& tokens) {
  std::vector<uint32_t> mask((vocab + 31) / 32, 0u);
  for (int32_t t : tokens) mask[t / 32] |= 1u << (t % 32);
  return mask;
}

TEST(SequenceSamplerTest, GreedyTakesTheBestAllowedToken) {
  // 40 tokens: the mask spans two words, the second partly.
  std::vector<float> logits(40, 0.0f);
  logits[3] = 9.0f;
  logits[35] = 2.0f;
  logits[36] = 1.0f;
  SequenceSampler sampler(Greedy(), kSeed, 0);
  EXPECT_EQ(sampler.Sample(logits, {}, {}, {}, Mask(40, {35, 36})).token, 35);
  EXPECT_EQ(sampler.Sample(logits, {}, {}, {}, Mask(40, {0, 36})).token, 36);
  EXPECT_EQ(sampler.Sample(logits, {}, {}, {}).token, 3);  // no mask
}

TEST(SequenceSamplerTest, SamplingDrawsOnlyAllowedTokens) {
  std::vector<float> logits(70, 1.0f);
  logits[5] = 6.0f;  // would take most draws
  SamplingParams params;
  params.logit_bias = {{64, 100.0f}};  // a bias cannot lift a masked token
  SequenceSampler sampler(params, kSeed, 0);
  std::vector<int> counts(logits.size(), 0);
  const std::vector<uint32_t> mask = Mask(70, {1, 33, 63, 69});
  for (int i = 0; i < 2000; ++i) {
    ++counts[sampler.Sample(logits, {}, {}, {}, mask).token];
  }
  for (int t = 0; t < 70; ++t) {
    if (t == 1 || t == 33 || t == 63 || t == 69) {
      EXPECT_GT(counts[t], 350) << t;  // ~500 each
    } else {
      EXPECT_EQ(counts[t], 0) << t;
    }
  }
}

TEST(SequenceSamplerTest, MaskLeavesTheLogprobsRaw) {
  SamplingParams params = Greedy();
  params.logprobs = 1;
  SequenceSampler sampler(params, kSeed, 0);
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  const SampledToken sampled = sampler.Sample(logits, {}, {}, {}, Mask(3, {2}));
  EXPECT_EQ(sampled.token, 2);
  const double lse = std::log(std::exp(2.0) + std::exp(1.0) + std::exp(0.0));
  EXPECT_NEAR(sampled.logprob, 0.0 - lse, 1e-6);
  ASSERT_EQ(sampled.top.size(), 1u);
  EXPECT_EQ(sampled.top[0].token, 0);
}

// --------------------------------------------------------------- filters

TEST(SequenceSamplerTest, MinPDropsTokensBelowTheScaledMaximum) {
  // Probabilities relative to the best: 1, 0.5, 0.09, 0.11. min_p 0.1 drops
  // token 2 only.
  const std::vector<float> logits = {0.0f, std::log(0.5f), std::log(0.09f),
                                     std::log(0.11f)};
  SamplingParams params{.min_p = 0.1f};
  const std::vector<int> counts = Histogram(params, logits, 20000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[3], 0);
  // The rest keep their relative weights: 1 : 0.5 : 0.11.
  const double expected = 0.11 / 1.61;
  EXPECT_NEAR(counts[3] / 20000.0, expected,
              5 * std::sqrt(expected * (1 - expected) / 20000));
}

TEST(SequenceSamplerTest, MinPIsRelativeToTheTemperedDistribution) {
  // At temperature 2 the weights become sqrt: 1, 0.3 (kept at min_p 0.2),
  // where at temperature 1 token 1 (0.09) would be dropped.
  const std::vector<float> logits = {0.0f, std::log(0.09f)};
  SamplingParams params{.temperature = 2.0f, .min_p = 0.2f};
  EXPECT_GT(Histogram(params, logits, 2000)[1], 0);
  params.temperature = 1.0f;
  EXPECT_EQ(Histogram(params, logits, 2000)[1], 0);
}

TEST(SequenceSamplerTest, TopKKeepsTheKMostLikely) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 2.5f, 0.0f};
  SamplingParams params{.top_k = 2};
  const std::vector<int> counts = Histogram(params, logits, 5000);
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_GT(counts[3], 0);
  EXPECT_GT(counts[1], counts[3]);
}

TEST(SequenceSamplerTest, TopKBreaksTiesByLowerId) {
  SamplingParams params{.top_k = 2};
  const std::vector<int> counts =
      Histogram(params, {1.0f, 2.0f, 2.0f, 2.0f}, 3000);
  EXPECT_EQ(counts[0] + counts[3], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
}

TEST(SequenceSamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities ~0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps tokens 3 and 1.
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f, 3.0f};
  SamplingParams params{.top_p = 0.8f};
  const std::vector<int> counts = Histogram(params, logits, 5000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], counts[1]);
}

TEST(SequenceSamplerTest, TopPIsTakenWithinTheTopKSet) {
  // Probabilities 0.5, 0.3, 0.2. Top-k 2 renormalizes to 0.625, 0.375, so
  // top-p 0.6 keeps token 0 alone (over all three it would keep two).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f),
                                     std::log(0.2f)};
  SamplingParams params{.top_p = 0.6f, .top_k = 2};
  EXPECT_EQ(Histogram(params, logits, 1000)[0], 1000);
  params.top_k = 0;
  EXPECT_GT(Histogram(params, logits, 1000)[1], 0);
}

TEST(SequenceSamplerTest, TopPNucleusOfManyTokens) {
  // 1000 tokens with logits -0.01 * id: the nucleus for 0.5 holds ~69
  // tokens, spread over several of the top-p histogram's buckets.
  std::vector<float> logits(1000);
  for (int i = 0; i < 1000; ++i) logits[i] = -0.01f * i;
  double total = 0;
  for (float x : logits) total += std::exp(static_cast<double>(x));
  int nucleus = 0;
  for (double mass = 0; mass < 0.5 * total; ++nucleus) {
    mass += std::exp(static_cast<double>(logits[nucleus]));
  }
  ASSERT_GT(nucleus, 64);
  SamplingParams params{.top_p = 0.5f};
  const std::vector<int> counts = Histogram(params, logits, 20000);
  for (int i = nucleus; i < 1000; ++i) ASSERT_EQ(counts[i], 0) << "token " << i;
  EXPECT_GT(counts[nucleus - 1], 0);
}

TEST(SequenceSamplerTest, TopPOverEqualLogitsKeepsTheLowestIds) {
  // 1000 equally likely tokens: the nucleus for 0.5 is exactly ids 0-499.
  SamplingParams params{.top_p = 0.5f};
  const std::vector<int> counts =
      Histogram(params, std::vector<float>(1000, 0.0f), 20000);
  for (int i = 500; i < 1000; ++i) ASSERT_EQ(counts[i], 0) << "token " << i;
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[499], 0);
}

TEST(SequenceSamplerTest, FrequenciesFollowTheTemperedSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f};
  const float temperature = 0.7f;
  const int draws = 40000;
  const std::vector<int> counts =
      Histogram(SamplingParams{.temperature = temperature}, logits, draws);
  double total = 0;
  std::vector<double> p(3);
  for (int i = 0; i < 3; ++i) total += (p[i] = std::exp(logits[i] / temperature));
  for (int i = 0; i < 3; ++i) {
    const double expected = p[i] / total;
    const double sigma = std::sqrt(expected * (1 - expected) / draws);
    EXPECT_NEAR(counts[i] / double(draws), expected, 5 * sigma) << "token " << i;
  }
}

// ----------------------------------------------------------- determinism

TEST(SequenceSamplerTest, SameSeedAndIndexGiveTheSameTokens) {
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SequenceSampler a(SamplingParams{}, 42, 3);
  SequenceSampler b(SamplingParams{}, 42, 3);
  EXPECT_EQ(Draws(a, logits, 64), Draws(b, logits, 64));
}

TEST(SequenceSamplerTest, EachSeedAndIndexHasItsOwnStream) {
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SequenceSampler base(SamplingParams{}, 42, 0);
  SequenceSampler other_index(SamplingParams{}, 42, 1);
  SequenceSampler other_seed(SamplingParams{}, 43, 0);
  const std::vector<int32_t> tokens = Draws(base, logits, 64);
  EXPECT_NE(tokens, Draws(other_index, logits, 64));
  EXPECT_NE(tokens, Draws(other_seed, logits, 64));
}

TEST(SequenceSamplerTest, TokensDoNotDependOnOtherSamplersCalls) {
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SequenceSampler alone(SamplingParams{}, 7, 0);
  const std::vector<int32_t> expected = Draws(alone, logits, 32);

  // The same stream, interleaved with a busy neighbour of another
  // configuration (as in a batch).
  SequenceSampler mine(SamplingParams{}, 7, 0);
  SequenceSampler neighbour(SamplingParams{.top_p = 0.5f, .top_k = 3}, 7, 1);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 32; ++i) {
    Draws(neighbour, logits, i % 3);
    tokens.push_back(mine.Sample(logits, {}, tokens).token);
  }
  EXPECT_EQ(tokens, expected);
}

TEST(SequenceSamplerTest, SeededTokensArePinned) {
  // mt19937_64, std::seed_seq and our uniform are fully specified, so these
  // draws are the same on every platform and must never change silently.
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  SequenceSampler sampler(SamplingParams{}, 2024, 0);
  EXPECT_THAT(Draws(sampler, logits, 12),
              ElementsAre(4, 3, 3, 5, 2, 1, 5, 4, 3, 5, 5, 1));
}

// -------------------------------------------------------------- logprobs

TEST(SequenceSamplerTest, LogprobsAreTheLogSoftmaxOfTheRawLogits) {
  // log-softmax({1, 2, 3}) = x - (3 + log(1 + e^-1 + e^-2)).
  const double log_sum_exp = 3.0 + std::log(1.0 + std::exp(-1.0) +
                                            std::exp(-2.0));
  // Bias, penalty and temperature change what is drawn (token 0 is
  // forced), not the reported log-probs.
  SamplingParams params{.temperature = 0.5f,
                        .repetition_penalty = 2.0f,
                        .logit_bias = {{0, 100.0f}},
                        .logprobs = 2};
  SequenceSampler sampler(params, kSeed, 0);
  const SampledToken sampled =
      sampler.Sample(std::vector<float>{1.0f, 2.0f, 3.0f}, {2}, {});
  EXPECT_EQ(sampled.token, 0);
  EXPECT_NEAR(sampled.logprob, 1.0 - log_sum_exp, 1e-6);
  ASSERT_EQ(sampled.top.size(), 2u);
  EXPECT_EQ(sampled.top[0].token, 2);
  EXPECT_NEAR(sampled.top[0].logprob, 3.0 - log_sum_exp, 1e-6);
  EXPECT_EQ(sampled.top[1].token, 1);
  EXPECT_NEAR(sampled.top[1].logprob, 2.0 - log_sum_exp, 1e-6);
}

TEST(SequenceSamplerTest, TopLogprobsAreDescendingWithLowerIdFirstOnTies) {
  SamplingParams params = Greedy();
  params.logprobs = 3;
  SequenceSampler sampler(params, kSeed, 0);
  const SampledToken sampled =
      sampler.Sample(std::vector<float>{1.0f, 3.0f, 2.0f, 3.0f, 2.0f}, {}, {});
  std::vector<int32_t> ids;
  for (const TokenLogprob& entry : sampled.top) ids.push_back(entry.token);
  EXPECT_THAT(ids, ElementsAre(1, 3, 2));
}

TEST(SequenceSamplerTest, LogprobsZeroOnlyReportsTheSampledToken) {
  SamplingParams params = Greedy();
  params.logprobs = 0;
  SequenceSampler sampler(params, kSeed, 0);
  const SampledToken sampled =
      sampler.Sample(std::vector<float>{0.0f, 0.0f}, {}, {});
  EXPECT_NEAR(sampled.logprob, std::log(0.5), 1e-6);
  EXPECT_TRUE(sampled.top.empty());
}

TEST(SequenceSamplerTest, NoLogprobsUnlessAsked) {
  SequenceSampler sampler(Greedy(), kSeed, 0);
  const SampledToken sampled =
      sampler.Sample(std::vector<float>{0.0f, 1.0f}, {}, {});
  EXPECT_EQ(sampled.logprob, 0.0f);
  EXPECT_TRUE(sampled.top.empty());
}

TEST(ScoreTokenTest, ReportsTheNextTokensLogprobAndTheTopK) {
  const std::vector<float> logits = {0.0f, std::log(3.0f), std::log(6.0f)};
  const SampledToken scored = ScoreToken(logits, /*next_token=*/1, 1);
  EXPECT_EQ(scored.token, 1);
  EXPECT_NEAR(scored.logprob, std::log(0.3), 1e-6);
  ASSERT_EQ(scored.top.size(), 1u);
  EXPECT_EQ(scored.top[0].token, 2);
  EXPECT_NEAR(scored.top[0].logprob, std::log(0.6), 1e-6);
}

// vLLM's rank: how many tokens are at least as likely (ties count against
// the token; NaN is -infinity).
TEST(ScoreTokenTest, RankCountsTheTokensAtLeastAsLikely) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, std::nanf(""), 0.5f};
  EXPECT_EQ(ScoreToken(logits, 1, 0).rank, 2);  // tied with token 3
  EXPECT_EQ(ScoreToken(logits, 2, 0).rank, 3);
  EXPECT_EQ(ScoreToken(logits, 5, 0).rank, 5);
  EXPECT_EQ(ScoreToken(logits, 4, 0).rank, 6);  // NaN: last
  const std::vector<float> distinct = {0.0f, 4.0f, 1.0f};
  EXPECT_EQ(ScoreToken(distinct, 1, 2).rank, 1);
}

TEST(ScoreTokenTest, MatchesALongDoubleLogSoftmaxOverAFullVocabulary) {
  // 49,157 logits (past several of the log-sum-exp's 512-wide chunks, and
  // not a multiple of them), model-like, and the top 5 of them.
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(49157);
  for (float& x : logits) x = normal(rng);
  logits[40000] = 25.0f;
  long double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<long double>(x) - 25.0L);
  const long double log_sum_exp = 25.0L + std::log(sum);
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const SampledToken scored = ScoreToken(logits, /*next_token=*/123, 5);
  EXPECT_NEAR(scored.logprob, static_cast<double>(logits[123] - log_sum_exp), 1e-5);
  ASSERT_EQ(scored.top.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(scored.top[i].token, order[i]) << "rank " << i;
    EXPECT_NEAR(scored.top[i].logprob,
                static_cast<double>(logits[order[i]] - log_sum_exp), 1e-5);
  }
}

TEST(ScoreTokenTest, TopLogprobsOfSlowlyRisingLogitsAreTheLast) {
  // Every logit beats the current 5th best by a hair: no block of them may
  // be passed over.
  std::vector<float> logits(10000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 1e-3f * static_cast<float>(i);
  const SampledToken scored = ScoreToken(logits, /*next_token=*/0, 5);
  ASSERT_EQ(scored.top.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(scored.top[i].token, 9999 - i);
}

TEST(ScoreTokenTest, NaNLogitsCountAsMinusInfinity) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {std::log(0.6f), nan, std::log(0.4f)};
  const SampledToken scored = ScoreToken(logits, /*next_token=*/2, 2);
  EXPECT_NEAR(scored.logprob, std::log(0.4), 1e-6);
  ASSERT_EQ(scored.top.size(), 2u);
  EXPECT_EQ(scored.top[0].token, 0);
  EXPECT_EQ(scored.top[1].token, 2);
}

// ------------------------------------------------------------ validation

TEST(SamplingParamsTest, AcceptsTheDefaults) {
  EXPECT_TRUE(SamplingParams{}.Validate(100).ok());
}

TEST(SamplingParamsTest, RejectsEachOutOfRangeFieldByName) {
  struct Case {
    std::string field;
    SamplingParams params;
  };
  const std::vector<Case> cases = {
      {"temperature", {.temperature = -1.0f}},
      {"temperature", {.temperature = NAN}},
      {"temperature", {.temperature = INFINITY}},
      {"top_p", {.top_p = 0.0f}},
      {"top_p", {.top_p = 1.5f}},
      {"top_k", {.top_k = -1}},
      {"min_p", {.min_p = -0.1f}},
      {"min_p", {.min_p = 1.1f}},
      {"repetition_penalty", {.repetition_penalty = 0.0f}},
      {"repetition_penalty", {.repetition_penalty = NAN}},
      {"presence_penalty", {.presence_penalty = 2.5f}},
      {"presence_penalty", {.presence_penalty = -2.5f}},
      {"frequency_penalty", {.frequency_penalty = 2.5f}},
      {"frequency_penalty", {.frequency_penalty = NAN}},
      {"logit_bias", {.logit_bias = {{100, 1.0f}}}},
      {"logit_bias", {.logit_bias = {{-1, 1.0f}}}},
      {"logit_bias", {.logit_bias = {{3, 101.0f}}}},
      {"logit_bias", {.logit_bias = {{3, 1.0f}, {3, 2.0f}}}},
      {"logprobs", {.logprobs = -2}},
      {"logprobs", {.logprobs = 21}},
      {"prompt_logprobs", {.prompt_logprobs = 21}},
      {"n", {.n = 0}},
      {"n", {.n = 17}},
  };
  for (const Case& c : cases) {
    const absl::Status status = c.params.Validate(/*vocab_size=*/100);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << c.field << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
  }
}

TEST(SamplingParamsTest, AcceptsTheEdgesOfEachRange) {
  SamplingParams params{.temperature = 0.0f,
                        .top_p = 1.0f,
                        .top_k = 1000,
                        .min_p = 1.0f,
                        .repetition_penalty = 0.01f,
                        .presence_penalty = -2.0f,
                        .frequency_penalty = 2.0f,
                        .logit_bias = {{0, -100.0f}, {99, 100.0f}},
                        .logprobs = 20,
                        .prompt_logprobs = 0,
                        .n = 16};
  EXPECT_TRUE(params.Validate(100).ok());
}

}  // namespace
}  // namespace weft
