#include "runtime/sampling_math.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace weft::sampling {
namespace {

// Top-k's and top-p's histogram: a weight in [0, 1] by its exponent and 3
// top mantissa bits (float bits 20-30), which order like the weights; 1.0f
// is the last bucket.
constexpr int kBucketShift = 20;
constexpr size_t kBuckets = (0x3F800000u >> kBucketShift) + 1;
inline size_t Bucket(float weight) {
  // The sign bit masked: -0.0f goes with 0 (weights are never negative).
  return std::min<size_t>(
      (absl::bit_cast<uint32_t>(weight) & 0x7FFFFFFFu) >> kBucketShift,
      kBuckets - 1);
}

// Draw's blocks of ids: the kept mass of each is summed by vector code,
// and only the block where the draw lands is walked token by token.
constexpr size_t kDrawBlock = 512;

inline bool Kept(float weight, size_t id, WeightedToken cut) {
  return weight > cut.weight ||
         (weight == cut.weight && static_cast<int64_t>(id) <= cut.token);
}

}  // namespace

namespace {

// The loops of ToWeights and KeptMass, compiled once per instruction set
// below. Only additions, multiplications, divisions, conversions and
// selects: every variant rounds alike (-ffp-contract=off for all of
// weft_runtime; -fno-trapping-math for this file, so that GCC turns the
// selects into vector blends at every width instead of leaving the AVX2
// and baseline loops scalar).
[[gnu::always_inline]] inline void ToWeightsLoop(float* values, size_t n,
                                                 float max_logit,
                                                 float temperature) {
  for (size_t i = 0; i < n; ++i) {
    values[i] = ExpNonPositive((values[i] - max_logit) / temperature);
  }
}

[[gnu::always_inline]] inline double KeptMassLoop(const float* weights,
                                                  size_t begin, size_t end,
                                                  WeightedToken cut) {
  // The weights above the cut in eight double lanes (element i in lane
  // (i - begin) % 8), written with GCC vector types (a plain loop stays
  // scalar), added in a fixed order; the ties are counted and added as
  // count · weight.
  using Floats = float __attribute__((vector_size(32)));
  using Doubles = double __attribute__((vector_size(64)));
  constexpr int kLanes = 8;
  const Doubles above = Doubles{} + static_cast<double>(cut.weight);
  Doubles sums = {};
  size_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    Floats w;
    std::memcpy(&w, weights + i, sizeof(w));
    const Doubles wide = __builtin_convertvector(w, Doubles);
    sums += wide > above ? wide : Doubles{};
  }
  double lane[kLanes];
  std::memcpy(lane, &sums, sizeof(lane));
  for (int j = 0; i < end; ++i, ++j) {
    if (weights[i] > cut.weight) lane[j] += weights[i];
  }
  // Equal weights count up to the cut's id only.
  int64_t ties = 0;
  const size_t tie_end =
      cut.token < 0
          ? begin
          : std::clamp(static_cast<size_t>(cut.token) + 1, begin, end);
  for (size_t k = begin; k < tie_end; ++k) ties += weights[k] == cut.weight;
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
         ((lane[4] + lane[5]) + (lane[6] + lane[7])) +
         static_cast<double>(ties) * cut.weight;
}

float MaxValueScalar(const float* values, size_t begin, size_t n, float best) {
  for (size_t i = begin; i < n; ++i) best = values[i] > best ? values[i] : best;
  return best;
}

size_t FirstAboveScalar(const float* values, size_t begin, size_t end,
                        float threshold) {
  for (size_t i = begin; i < end; ++i) {
    if (values[i] > threshold) return i;
  }
  return end;
}

void ToWeightsBaseline(float* values, size_t n, float max_logit, float temperature) {
  ToWeightsLoop(values, n, max_logit, temperature);
}
double KeptMassBaseline(const float* weights, size_t begin, size_t end,
                        WeightedToken cut) {
  return KeptMassLoop(weights, begin, end, cut);
}
#if defined(__x86_64__) && defined(__GNUC__)
#define WEFT_SAMPLING_X86 1
// MaxValue a vector at a time: MAXPS(v, best) returns its second operand
// when v is NaN, so NaN never wins; the lanes are combined at the end (a
// maximum is exact: the order does not matter).
float MaxValueBaseline(const float* values, size_t n) {
  __m128 best = _mm_set1_ps(-std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 4 <= n; i += 4) best = _mm_max_ps(_mm_loadu_ps(values + i), best);
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, best);
  return MaxValueScalar(values, i, n, MaxValueScalar(lanes, 0, 4, lanes[0]));
}
__attribute__((target("avx2"))) float MaxValueAvx2(const float* values, size_t n) {
  __m256 best = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) best = _mm256_max_ps(_mm256_loadu_ps(values + i), best);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, best);
  return MaxValueScalar(values, i, n, MaxValueScalar(lanes, 0, 8, lanes[0]));
}
__attribute__((target("avx512f"))) float MaxValueAvx512(const float* values,
                                                       size_t n) {
  __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  size_t i = 0;
  // The masked form: GCC 12's plain _mm512_max_ps trips -Wmaybe-uninitialized.
  for (; i + 16 <= n; i += 16) {
    best = _mm512_mask_max_ps(best, 0xFFFF, _mm512_loadu_ps(values + i), best);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, best);
  return MaxValueScalar(values, i, n, MaxValueScalar(lanes, 0, 16, lanes[0]));
}
// FirstAbove a vector at a time: an ordered greater-than (false for NaN)
// and the first set bit of its mask.
size_t FirstAboveBaseline(const float* values, size_t begin, size_t end,
                          float threshold) {
  const __m128 t = _mm_set1_ps(threshold);
  size_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const int mask = _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(values + i), t));
    if (mask != 0) return i + __builtin_ctz(mask);
  }
  return FirstAboveScalar(values, i, end, threshold);
}
__attribute__((target("avx2"))) size_t FirstAboveAvx2(const float* values,
                                                      size_t begin, size_t end,
                                                      float threshold) {
  const __m256 t = _mm256_set1_ps(threshold);
  size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const int mask = _mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_loadu_ps(values + i), t, _CMP_GT_OQ));
    if (mask != 0) return i + __builtin_ctz(mask);
  }
  return FirstAboveScalar(values, i, end, threshold);
}
__attribute__((target("avx512f"))) size_t FirstAboveAvx512(const float* values,
                                                           size_t begin,
                                                           size_t end,
                                                           float threshold) {
  const __m512 t = _mm512_set1_ps(threshold);
  size_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __mmask16 mask =
        _mm512_cmp_ps_mask(_mm512_loadu_ps(values + i), t, _CMP_GT_OQ);
    if (mask != 0) return i + __builtin_ctz(mask);
  }
  return FirstAboveScalar(values, i, end, threshold);
}
#else
float MaxValueBaseline(const float* values, size_t n) {
  return MaxValueScalar(values, 0, n, -std::numeric_limits<float>::infinity());
}
size_t FirstAboveBaseline(const float* values, size_t begin, size_t end,
                          float threshold) {
  return FirstAboveScalar(values, begin, end, threshold);
}
#endif
#ifdef WEFT_SAMPLING_X86
__attribute__((target("avx2"))) void ToWeightsAvx2(float* values, size_t n,
                                                   float max_logit,
                                                   float temperature) {
  ToWeightsLoop(values, n, max_logit, temperature);
}
__attribute__((target("avx2"))) double KeptMassAvx2(const float* weights,
                                                    size_t begin, size_t end,
                                                    WeightedToken cut) {
  return KeptMassLoop(weights, begin, end, cut);
}
__attribute__((target("avx512f"))) void ToWeightsAvx512(float* values, size_t n,
                                                        float max_logit,
                                                        float temperature) {
  ToWeightsLoop(values, n, max_logit, temperature);
}
__attribute__((target("avx512f"))) double KeptMassAvx512(const float* weights,
                                                         size_t begin, size_t end,
                                                         WeightedToken cut) {
  return KeptMassLoop(weights, begin, end, cut);
}
#endif

const internal::Variant& Best() {
  static const internal::Variant best = internal::Variants().front();
  return best;
}

}  // namespace

namespace internal {

std::vector<Variant> Variants() {
  std::vector<Variant> variants;
#ifdef WEFT_SAMPLING_X86
  if (__builtin_cpu_supports("avx512f")) {
    variants.push_back({"avx512f", ToWeightsAvx512, KeptMassAvx512, FirstAboveAvx512, MaxValueAvx512});
  }
  if (__builtin_cpu_supports("avx2")) {
    variants.push_back({"avx2", ToWeightsAvx2, KeptMassAvx2, FirstAboveAvx2, MaxValueAvx2});
  }
#endif
  variants.push_back({"baseline", ToWeightsBaseline, KeptMassBaseline, FirstAboveBaseline,
                      MaxValueBaseline});
  return variants;
}

}  // namespace internal

void ToWeights(float* values, size_t n, float max_logit, float temperature) {
  Best().to_weights(values, n, max_logit, temperature);
}

double KeptMass(const float* weights, size_t begin, size_t end,
                WeightedToken cut) {
  return Best().kept_mass(weights, begin, end, cut);
}

size_t FirstAbove(const float* values, size_t begin, size_t end, float threshold) {
  return Best().first_above(values, begin, end, threshold);
}

float MaxValue(const float* values, size_t n) {
  return Best().max_value(values, n);
}

void TopK(absl::Span<const float> weights, size_t k, SamplingScratch* scratch) {
  const size_t vocab = weights.size();
  // Token counts per bucket (four copies, as in NucleusCut), then the
  // bucket where the count from the top reaches k.
  constexpr size_t kCopies = 4;
  std::vector<int32_t>& count_of = scratch->bucket_count;
  count_of.assign(kCopies * kBuckets, 0);
  for (size_t i = 0; i < vocab; ++i) {
    ++count_of[(i % kCopies) * kBuckets + Bucket(weights[i])];
  }
  size_t above = 0;
  size_t cut = 0;
  for (size_t b = kBuckets; b-- > 0;) {
    size_t here = 0;
    for (size_t c = 0; c < kCopies; ++c) here += count_of[c * kBuckets + b];
    if (above + here >= k) {
      cut = b;
      break;
    }
    above += here;
  }
  // The tokens at or above the cut bucket (at least k), without a branch
  // per token; the k first of them in rank order.
  std::vector<WeightedToken>& candidates = scratch->candidates;
  if (candidates.size() < vocab) candidates.resize(vocab);
  size_t count = 0;
  for (size_t i = 0; i < vocab; ++i) {
    candidates[count] = WeightedToken{weights[i], static_cast<int32_t>(i)};
    count += Bucket(weights[i]) >= cut;
  }
  std::nth_element(candidates.begin(), candidates.begin() + (k - 1),
                   candidates.begin() + count, RankedBefore);
  std::sort(candidates.begin(), candidates.begin() + k, RankedBefore);
}

WeightedToken NucleusCut(absl::Span<const float> weights, float top_p,
                         SamplingScratch* scratch) {
  // One pass sums each bucket's mass; the bucket where the running mass
  // from the top reaches the target holds the cut. Within it the next 12
  // bits of the weights, then the last 8, narrow the cut the same way, so
  // a flat row (most tokens in one bucket) costs no sort of the
  // vocabulary; a few hundred tokens left are sorted. (A quickselect on
  // mass did the same in expected O(vocab), with a mispredicted branch per
  // token and pass.)
  const size_t vocab = weights.size();
  // Four histograms, token i in copy i % 4: neighbouring tokens often
  // share a bucket, and one copy would chain their additions.
  constexpr size_t kCopies = 4;
  std::vector<double>& mass_of = scratch->bucket_mass;
  mass_of.assign(kCopies * kBuckets, 0.0);
  for (size_t i = 0; i < vocab; ++i) {
    mass_of[(i % kCopies) * kBuckets + Bucket(weights[i])] += weights[i];
  }
  double total = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    double sum = 0;
    for (size_t c = 0; c < kCopies; ++c) sum += mass_of[c * kBuckets + b];
    mass_of[b] = sum;  // copy 0's entry b is not read again
    total += sum;
  }
  const double target = top_p * total;
  if (!(target > 0)) return kKeepAll;  // all weights 0
  double mass = 0;  // of the tokens ranked above the current set
  size_t cut = kBuckets;
  for (size_t b = kBuckets; b-- > 0;) {
    if (mass + mass_of[b] >= target) {
      cut = b;
      break;
    }
    mass += mass_of[b];
  }
  if (cut == kBuckets) return kKeepAll;  // rounding: the target not reached
  // The cut bucket's tokens in id order, without a branch per token.
  std::vector<WeightedToken>& set = scratch->candidates;
  if (set.size() < vocab) set.resize(vocab);
  size_t count = 0;
  for (size_t i = 0; i < vocab; ++i) {
    set[count] = WeightedToken{weights[i], static_cast<int32_t>(i)};
    count += Bucket(weights[i]) == cut;
  }
  // The set's least likely token: what keeping all of it means.
  auto last_of_set = [&] {
    WeightedToken last = set[0];
    for (size_t i = 1; i < count; ++i) {
      if (RankedBefore(last, set[i])) last = set[i];
    }
    return last;
  };
  constexpr size_t kSortAtMost = 256;
  bool equal_weights = false;
  for (const int shift : {8, 0}) {
    if (count <= kSortAtMost) break;
    const uint32_t keys = shift == 8 ? 1u << 12 : 1u << 8;
    auto key = [&](float weight) {
      return (absl::bit_cast<uint32_t>(weight) >> shift) & (keys - 1);
    };
    mass_of.assign(keys, 0.0);
    for (size_t i = 0; i < count; ++i) mass_of[key(set[i].weight)] += set[i].weight;
    uint32_t sub = keys;
    for (uint32_t k = keys; k-- > 0;) {
      if (mass + mass_of[k] >= target) {
        sub = k;
        break;
      }
      mass += mass_of[k];
    }
    // Rounding (the set's mass summed in another grouping): all of it.
    if (sub == keys) return last_of_set();
    size_t kept = 0;
    for (size_t i = 0; i < count; ++i) {
      set[kept] = set[i];
      kept += key(set[i].weight) == sub;
    }
    count = kept;
    equal_weights = shift == 0;  // every bit of the weights compared
  }
  // Equal weights are already in rank order (id order).
  if (!equal_weights) std::sort(set.begin(), set.begin() + count, RankedBefore);
  for (size_t i = 0; i < count; ++i) {
    mass += set[i].weight;
    if (mass >= target) return set[i];
  }
  // Rounding again: all of the set.
  return set[count - 1];
}

int32_t DrawKept(absl::Span<const float> weights, WeightedToken last_kept,
                 double uniform, std::vector<double>* block_mass) {
  // The kept mass per block of ids, then the block where uniform · total
  // falls, then the token within it: the draw follows id order, so it
  // does not depend on how a filter arranged the candidates.
  const size_t vocab = weights.size();
  const size_t blocks = (vocab + kDrawBlock - 1) / kDrawBlock;
  block_mass->resize(blocks);
  double total = 0;
  size_t last_block = 0;  // the last with any mass
  for (size_t b = 0; b < blocks; ++b) {
    const double mass = KeptMass(weights.data(), b * kDrawBlock,
                                 std::min(vocab, (b + 1) * kDrawBlock), last_kept);
    (*block_mass)[b] = mass;
    total += mass;
    if (mass > 0) last_block = b;
  }
  if (!(total > 0)) return -1;
  double remaining = uniform * total;
  size_t b = 0;
  while (b < last_block && remaining >= (*block_mass)[b]) {
    remaining -= (*block_mass)[b++];
  }
  int32_t chosen = -1;
  for (size_t i = b * kDrawBlock; i < std::min(vocab, (b + 1) * kDrawBlock); ++i) {
    const float weight = weights[i];
    if (!(weight > 0) || !Kept(weight, i, last_kept)) continue;
    chosen = static_cast<int32_t>(i);
    remaining -= weight;
    if (remaining < 0) break;
  }
  // Rounding left some mass unspent: the block's last kept token.
  return chosen;
}

}  // namespace weft::sampling
