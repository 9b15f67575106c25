// The sampler's vectorized passes against plain references: the exp
// against std::exp, every instruction-set variant this processor runs
// (AVX-512, AVX2, baseline) against the scalar ExpNonPositive compiled
// into this test and against each other, the top-k and top-p cuts and the
// draw against a full sort and a token-by-token walk.
#include "runtime/sampling_math.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <limits>
#include <random>
#include <vector>

namespace weft::sampling {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(SamplingMathTest, ExpNonPositiveIsWithinTwoUlpOfExp) {
  EXPECT_EQ(ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(ExpNonPositive(-0.0f), 1.0f);
  EXPECT_EQ(ExpNonPositive(-kInf), 0.0f);
  EXPECT_EQ(ExpNonPositive(kNaN), 0.0f);
  EXPECT_EQ(ExpNonPositive(-87.5f), 0.0f);
  double worst_ulps = 0;
  for (float x = -87.0f; x <= 0.0f; x = x + 1.37e-3f * (1.0f + std::abs(x))) {
    const double exact = std::exp(static_cast<double>(x));
    const float got = ExpNonPositive(x);
    const double ulp = std::nextafter(static_cast<float>(exact), kInf) -
                       static_cast<float>(exact);
    worst_ulps = std::max(worst_ulps, std::abs(got - exact) / ulp);
  }
  // A few hundred points per unit near 0, where most weights sit.
  for (float x = -1.0f; x < 0.0f; x += 1.0f / 4096) {
    const double exact = std::exp(static_cast<double>(x));
    const double ulp = std::nextafter(static_cast<float>(exact), kInf) -
                       static_cast<float>(exact);
    worst_ulps = std::max(worst_ulps, std::abs(ExpNonPositive(x) - exact) / ulp);
  }
  EXPECT_LE(worst_ulps, 2.0);
}

std::vector<float> RandomLogits(size_t n, std::mt19937& rng, float sigma) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> logits(n);
  for (float& x : logits) x = normal(rng);
  return logits;
}

TEST(SamplingMathTest, EveryVariantMatchesTheScalarLoopBitForBit) {
  const std::vector<internal::Variant> variants = internal::Variants();
  ASSERT_EQ(std::string(variants.back().name), "baseline");
  std::mt19937 rng(5);
  for (size_t n : {size_t{1}, size_t{7}, size_t{16}, size_t{33}, size_t{1000},
                   size_t{49157}}) {
    std::vector<float> logits = RandomLogits(n, rng, 4.0f);
    if (n > 10) {
      logits[3] = -kInf;
      logits[5] = kNaN;
      logits[9] = -200.0f;
    }
    const float max_logit = MaxValue(logits.data(), n);
    for (float temperature : {1.0f, 0.7f, 1.9f}) {
      std::vector<float> want(n);
      for (size_t i = 0; i < n; ++i) {
        volatile float arg = (logits[i] - max_logit) / temperature;
        want[i] = ExpNonPositive(arg);
      }
      for (const internal::Variant& variant : variants) {
        std::vector<float> got = logits;
        variant.to_weights(got.data(), n, max_logit, temperature);
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(absl::bit_cast<uint32_t>(got[i]), absl::bit_cast<uint32_t>(want[i]))
              << variant.name << " n=" << n << " i=" << i << " logit " << logits[i];
        }
      }
      // The dispatched one is the first variant.
      std::vector<float> dispatched = logits;
      ToWeights(dispatched.data(), n, max_logit, temperature);
      ASSERT_EQ(0, std::memcmp(dispatched.data(), want.data(), n * sizeof(float)));
      // KeptMass on these (non-dyadic) weights: the lanes' sums are the
      // same bits in every variant.
      const WeightedToken cut{want[n / 2], static_cast<int32_t>(n / 3)};
      for (auto [begin, end] : std::vector<std::pair<size_t, size_t>>{
               {0, n}, {n / 4, n / 2 + 1}, {n - 1, n}}) {
        const double expected = variants.back().kept_mass(want.data(), begin, end, cut);
        for (const internal::Variant& variant : variants) {
          ASSERT_EQ(absl::bit_cast<uint64_t>(variant.kept_mass(want.data(), begin, end, cut)),
                    absl::bit_cast<uint64_t>(expected))
              << variant.name << " n=" << n << " [" << begin << ", " << end << ")";
        }
      }
    }
  }
  std::string names;
  for (const internal::Variant& variant : variants) names += std::string(" ") + variant.name;
  std::printf("variants compared:%s\n", names.c_str());
}

TEST(SamplingMathTest, FirstAboveOfEveryVariantIsTheFirstLogitAbove) {
  std::mt19937 rng(11);
  std::vector<float> values = RandomLogits(1000, rng, 2.0f);
  for (size_t i = 0; i < values.size(); i += 13) values[i] = kNaN;
  values[777] = 9.0f;
  for (const internal::Variant& variant : internal::Variants()) {
    for (float threshold : {-kInf, -1.0f, 2.5f, 5.0f, 8.9f, 9.0f, kInf}) {
      for (auto [begin, end] : std::vector<std::pair<size_t, size_t>>{
               {0, 1000}, {3, 20}, {500, 999}, {776, 778}, {777, 777}, {999, 1000}}) {
        size_t want = end;
        for (size_t i = begin; i < end; ++i) {
          if (values[i] > threshold) {
            want = i;
            break;
          }
        }
        ASSERT_EQ(variant.first_above(values.data(), begin, end, threshold), want)
            << variant.name << " threshold " << threshold << " [" << begin << ", "
            << end << ")";
      }
    }
  }
  EXPECT_EQ(FirstAbove(values.data(), 0, 1000, 8.9f), 777u);
}

TEST(SamplingMathTest, MaxValueKeepsAnEarlierMaximumPastANaN) {
  // The maximum in lane 0 of the first vector, a NaN in lane 0 of a later
  // one: a vector max with its operands swapped would lose the maximum.
  std::vector<float> values(64, 1.0f);
  values[0] = 5.0f;
  values[48] = kNaN;
  for (const internal::Variant& variant : internal::Variants()) {
    EXPECT_EQ(variant.max_value(values.data(), values.size()), 5.0f) << variant.name;
  }
}

TEST(SamplingMathTest, MaxValueIgnoresNaN) {
  std::mt19937 rng(6);
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17},
                   size_t{1001}}) {
    std::vector<float> values = RandomLogits(n, rng, 3.0f);
    for (size_t i = 0; i < n; i += 7) values[i] = kNaN;
    float want = -kInf;
    for (float v : values) {
      if (v > want) want = v;
    }
    EXPECT_EQ(MaxValue(values.data(), n), want) << "n=" << n;
    for (const internal::Variant& variant : internal::Variants()) {
      EXPECT_EQ(variant.max_value(values.data(), n), want) << variant.name << " n=" << n;
    }
  }
}

// Σ of the weights ranked at or before `cut`, one by one in long double.
long double ReferenceKeptMass(const std::vector<float>& w, size_t begin,
                              size_t end, WeightedToken cut) {
  long double sum = 0;
  for (size_t i = begin; i < end; ++i) {
    if (!RankedBefore(WeightedToken{cut.weight, cut.token},
                      WeightedToken{w[i], static_cast<int32_t>(i)})) {
      sum += w[i];
    }
  }
  return sum;
}

TEST(SamplingMathTest, KeptMassSumsTheTokensAtOrBeforeTheCut) {
  std::mt19937 rng(7);
  // Weights with many ties: a few distinct values.
  std::vector<float> w(3000);
  std::uniform_int_distribution<int> level(0, 6);
  for (float& x : w) x = std::ldexp(1.0f, -level(rng));
  for (size_t i = 0; i < w.size(); i += 11) w[i] = 0.0f;
  const std::vector<WeightedToken> cuts = {
      kKeepAll, {0.25f, 0}, {0.25f, 1500}, {0.25f, 2999}, {0.25f, 100000},
      {1.0f, -1}, {0.0f, 700}, {0.3f, 5}};
  for (auto [begin, end] : std::vector<std::pair<size_t, size_t>>{
           {0, 3000}, {0, 5}, {3, 11}, {1000, 1512}, {1499, 1502}, {2990, 3000}}) {
    for (const WeightedToken& cut : cuts) {
      const long double want = ReferenceKeptMass(w, begin, end, cut);
      // Dyadic weights: every partial sum is exact in double.
      EXPECT_EQ(static_cast<long double>(KeptMass(w.data(), begin, end, cut)), want)
          << begin << ".." << end << " cut (" << cut.weight << ", " << cut.token
          << ")";
    }
  }
}

// The reference top-p cut: sort everything, walk until the mass reaches
// top_p of the total.
WeightedToken ReferenceCut(const std::vector<float>& w, float top_p,
                           long double* mass_through_cut) {
  std::vector<WeightedToken> all;
  long double total = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    all.push_back({w[i], static_cast<int32_t>(i)});
    total += w[i];
  }
  std::sort(all.begin(), all.end(), RankedBefore);
  long double mass = 0;
  for (const WeightedToken& t : all) {
    mass += t.weight;
    if (mass >= top_p * total) {
      *mass_through_cut = mass;
      return t;
    }
  }
  *mass_through_cut = total;
  return all.back();
}

std::vector<float> Weights(std::vector<float> logits, float temperature) {
  ToWeights(logits.data(), logits.size(), MaxValue(logits.data(), logits.size()),
            temperature);
  return logits;
}

TEST(SamplingMathTest, NucleusCutMatchesASortedWalk) {
  std::mt19937 rng(8);
  SamplingScratch scratch;
  int compared = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const size_t vocab = trial % 4 == 0 ? 49152 : 1 + rng() % 3000;
    const float sigma = trial % 3 == 0 ? 0.05f : (trial % 3 == 1 ? 2.0f : 8.0f);
    const std::vector<float> w = Weights(RandomLogits(vocab, rng, sigma), 0.8f);
    for (float top_p : {0.05f, 0.5f, 0.9f, 0.95f, 0.999f}) {
      long double reference_mass = 0;
      const WeightedToken want = ReferenceCut(w, top_p, &reference_mass);
      const WeightedToken got = NucleusCut(w, top_p, &scratch);
      long double total = 0;
      for (float x : w) total += x;
      if (got.weight == kKeepAll.weight) {
        // Keeping everything is right only if the cut is the last-ranked
        // token (these rows have no zero weights and reach the target).
        WeightedToken last = {w[0], 0};
        for (size_t i = 1; i < vocab; ++i) {
          if (RankedBefore(last, WeightedToken{w[i], static_cast<int32_t>(i)})) {
            last = {w[i], static_cast<int32_t>(i)};
          }
        }
        EXPECT_EQ(want.token, last.token) << "vocab " << vocab << " top_p " << top_p;
        continue;
      }
      // Exact unless the running mass lands within rounding of the target.
      if (std::abs(reference_mass - top_p * total) > 1e-9L * total) {
        ASSERT_EQ(got.token, want.token)
            << "vocab " << vocab << " sigma " << sigma << " top_p " << top_p;
        ASSERT_EQ(got.weight, want.weight);
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 150);
}

TEST(SamplingMathTest, TopKMatchesAFullSort) {
  std::mt19937 rng(10);
  SamplingScratch scratch;
  for (int trial = 0; trial < 24; ++trial) {
    const size_t vocab = trial % 3 == 0 ? 49152 : 1 + rng() % 2000;
    std::vector<float> w;
    if (trial % 4 == 1) {
      // Few distinct weights: ties across the k-th.
      std::uniform_int_distribution<int> level(0, 3);
      for (size_t i = 0; i < vocab; ++i) w.push_back(std::ldexp(1.0f, -level(rng)));
    } else {
      w = Weights(RandomLogits(vocab, rng, trial % 2 ? 0.05f : 3.0f), 0.8f);
    }
    std::vector<WeightedToken> sorted;
    for (size_t i = 0; i < vocab; ++i) sorted.push_back({w[i], static_cast<int32_t>(i)});
    std::sort(sorted.begin(), sorted.end(), RankedBefore);
    for (size_t k : {size_t{1}, size_t{50}, vocab / 2 + 1, vocab}) {
      if (k > vocab) continue;
      TopK(w, k, &scratch);
      for (size_t i = 0; i < k; ++i) {
        ASSERT_EQ(scratch.candidates[i].token, sorted[i].token)
            << "vocab " << vocab << " k " << k << " rank " << i;
        ASSERT_EQ(scratch.candidates[i].weight, sorted[i].weight);
      }
    }
  }
}

TEST(SamplingMathTest, NucleusCutOverEqualWeightsKeepsTheLowestIds) {
  SamplingScratch scratch;
  const std::vector<float> w(1000, 0.5f);
  const WeightedToken cut = NucleusCut(w, 0.5f, &scratch);
  EXPECT_EQ(cut.token, 499);
  EXPECT_EQ(cut.weight, 0.5f);
  EXPECT_EQ(NucleusCut(std::vector<float>(10, 0.0f), 0.5f, &scratch).weight,
            kKeepAll.weight);
}

TEST(SamplingMathTest, DrawKeptWalksTheKeptTokensInIdOrder) {
  // A uniform in the middle of token i's share of the kept mass draws i.
  std::mt19937 rng(9);
  std::vector<double> block_mass;
  for (size_t vocab : {size_t{5}, size_t{512}, size_t{513}, size_t{5000}}) {
    const std::vector<float> w = Weights(RandomLogits(vocab, rng, 1.5f), 1.0f);
    std::vector<float> sorted = w;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const WeightedToken cut{sorted[vocab / 3], static_cast<int32_t>(vocab)};
    long double total = 0;
    for (size_t i = 0; i < vocab; ++i) {
      if (w[i] >= cut.weight) total += w[i];
    }
    long double before = 0;
    int drawn = 0;
    for (size_t i = 0; i < vocab; ++i) {
      if (w[i] < cut.weight) continue;
      const double uniform = static_cast<double>((before + w[i] / 2) / total);
      before += w[i];
      if (i % 7 != 0 && vocab > 600) continue;  // a sample of the tokens
      ASSERT_EQ(DrawKept(w, cut, uniform, &block_mass), static_cast<int32_t>(i))
          << "vocab " << vocab;
      ++drawn;
    }
    EXPECT_GT(drawn, 0);
  }
  EXPECT_EQ(DrawKept(std::vector<float>(100, 0.0f), kKeepAll, 0.5, &block_mass), -1);
  {
    // 2,048 ids: kept mass only in the second block of 512 (ids 600 and
    // 700), blocks with no mass before and after it.
    std::vector<float> sparse(2048, 0.0f);
    sparse[600] = 0.25f;
    sparse[700] = 0.75f;
    sparse[1500] = 0.125f;  // below the cut: not kept
    const WeightedToken cut{0.25f, 2047};
    EXPECT_EQ(DrawKept(sparse, cut, 0.0, &block_mass), 600);
    EXPECT_EQ(DrawKept(sparse, cut, 0.2, &block_mass), 600);
    EXPECT_EQ(DrawKept(sparse, cut, 0.3, &block_mass), 700);
    EXPECT_EQ(DrawKept(sparse, cut, 1.0 - 0x1.0p-53, &block_mass), 700);
    // A uniform of 1 leaves mass unspent (rounding does the same): the
    // last kept token with weight, never one past the cut.
    EXPECT_EQ(DrawKept(sparse, cut, 1.0, &block_mass), 700);
    EXPECT_EQ(DrawKept(sparse, kKeepAll, 1.0, &block_mass), 1500);
  }
  // Uniform just below 1: the last kept token.
  const std::vector<float> w = {0.5f, 1.0f, 0.25f, 0.0f};
  EXPECT_EQ(DrawKept(w, WeightedToken{0.5f, 0}, 0.9999999, &block_mass), 1);
  // The cut token itself is kept (ties up to its id).
  EXPECT_EQ(DrawKept(w, WeightedToken{0.5f, 0}, 0.1, &block_mass), 0);
  EXPECT_EQ(DrawKept(w, kKeepAll, 0.9999999, &block_mass), 2);
}

}  // namespace
}  // namespace weft::sampling
