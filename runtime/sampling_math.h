// The vocabulary-sized passes of sampling a token (SequenceSampler): the
// logits' maximum, the tempered softmax weights, the top-k and top-p cuts
// and the draw. The weights and the draw's sums are vector loops; top-k
// and top-p are scalar histogram passes that leave only a few hundred
// tokens to sort. At Llama-3's 128k tokens a row samples in ~0.5 ms on one
// core, where the scalar std::exp, a quickselect on mass and a branchy
// draw took ~4 ms (bench/README.md, scheduler_bench; an AVX-512 host).
//
// Every result is the same on every x86-64: ToWeights and KeptMass are
// compiled for AVX-512, AVX2 and the baseline (internal::Variants) from
// additions, multiplications, divisions, conversions and selects only
// (weft_runtime builds with -ffp-contract=off), each rounded alike at any
// vector width, with sums in fixed lanes combined in a fixed order. A
// seeded request draws the same tokens on any machine.
#ifndef WEFT_RUNTIME_SAMPLING_MATH_H_
#define WEFT_RUNTIME_SAMPLING_MATH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/casts.h"
#include "absl/types/span.h"

namespace weft::sampling {

// A token and its unnormalized probability.
struct WeightedToken {
  float weight;
  int32_t token;
};

// The sampler's total order: higher weight first, then lower id.
inline bool RankedBefore(const WeightedToken& a, const WeightedToken& b) {
  return a.weight != b.weight ? a.weight > b.weight : a.token < b.token;
}

// Ranked after every token (weights are >= 0): a cut that keeps them all.
inline constexpr WeightedToken kKeepAll{-1.0f, 0};

// e^x for x <= 0 (Cephes' expf: range reduction by ln 2, degree-5
// polynomial, within 2 ulp of e^x), 0 below -87 and for NaN, exactly 1 at
// 0. Plain multiplies and adds, so every vector width rounds alike.
inline float ExpNonPositive(float x) {
  const float c = x >= -87.0f ? x : -87.0f;
  // n = round(c·log2 e): adding 1.5·2^23 rounds to an integer.
  const float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + (r + 1.0f);
  // 2^n for n in [-126, 0].
  const float scale = absl::bit_cast<float>(
      static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return x >= -87.0f ? p * scale : 0.0f;
}

// The largest of values[0, n), NaN ignored; -inf when there is none.
float MaxValue(const float* values, size_t n);

// values[i] = ExpNonPositive((values[i] - max_logit) / temperature): the
// tempered softmax weights, in [0, 1], 0 for NaN logits (never drawn).
void ToWeights(float* values, size_t n, float max_logit, float temperature);

// Σ weights[i] over i in [begin, end), begin <= end, ranked at or before
// `cut` (the tokens a filter keeps), in double.
double KeptMass(const float* weights, size_t begin, size_t end,
                WeightedToken cut);

// The first i in [begin, end) with values[i] > threshold (NaN never is);
// `end` when there is none.
size_t FirstAbove(const float* values, size_t begin, size_t end, float threshold);

namespace internal {

// MaxValue, ToWeights, KeptMass and FirstAbove compiled for one
// instruction set. They give
// bit-identical results; the public functions run the first of
// Variants(), the widest this processor has (tests compare them all).
struct Variant {
  const char* name;
  void (*to_weights)(float* values, size_t n, float max_logit, float temperature);
  double (*kept_mass)(const float* weights, size_t begin, size_t end,
                      WeightedToken cut);
  size_t (*first_above)(const float* values, size_t begin, size_t end,
                        float threshold);
  float (*max_value)(const float* values, size_t n);
};
std::vector<Variant> Variants();  // "avx512f", "avx2" where supported, "baseline"

}  // namespace internal

// Scratch of the passes below, sized to the vocabulary on first use.
struct SamplingScratch {
  std::vector<double> bucket_mass;        // top-p histogram
  std::vector<int32_t> bucket_count;      // top-k histogram
  std::vector<WeightedToken> candidates;  // top-k's pool, top-p's cut bucket
  std::vector<double> block_mass;         // draw: kept mass per 512 ids
};

// Top-k over `weights` (each in [0, 1]), 0 < k <= weights.size() (the
// caller's guarantee): the k
// most likely tokens in RankedBefore order, in scratch->candidates[0, k).
// A histogram of the weights finds the bucket of the k-th; only the tokens
// at or above it are selected and sorted.
void TopK(absl::Span<const float> weights, size_t k, SamplingScratch* scratch);

// Top-p over all of `weights` (each in [0, 1]): the last token, in
// RankedBefore order, of the smallest set of most likely tokens whose mass
// reaches top_p of the total (kKeepAll when that takes every token or all
// weights are 0).
WeightedToken NucleusCut(absl::Span<const float> weights, float top_p,
                         SamplingScratch* scratch);

// The token drawn with probability proportional to its weight among those
// ranked at or before `last_kept`, for `uniform` in [0, 1): the first id,
// in id order, where the kept mass so far exceeds uniform · total. -1 when
// the kept mass is 0.
int32_t DrawKept(absl::Span<const float> weights, WeightedToken last_kept,
                 double uniform, std::vector<double>* block_mass);

}  // namespace weft::sampling

#endif  // WEFT_RUNTIME_SAMPLING_MATH_H_
