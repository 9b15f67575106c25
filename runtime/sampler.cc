#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/sampling_math.h"

namespace weft {
namespace {

// vLLM's _SAMPLING_EPS: temperatures below it mean greedy (dividing by
// them would overflow anyway).
constexpr float kGreedyTemperature = 1e-5f;

absl::Status Invalid(absl::string_view field, absl::string_view requirement,
                     double value) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be ", requirement, ", got ", value));
}

// log(sum(exp(logits))), accumulated in double; NaN logits count as -inf.
// The sampler's vectorized passes over chunks of 512 (a scalar std::exp
// made scoring a prompt position of Llama-3's vocabulary take ~1 ms).
double LogSumExp(absl::Span<const float> logits) {
  const float max_logit = sampling::MaxValue(logits.data(), logits.size());
  if (!std::isfinite(max_logit)) return max_logit;
  constexpr size_t kChunk = 512;
  float chunk[kChunk];
  double sum = 0;
  for (size_t begin = 0; begin < logits.size(); begin += kChunk) {
    const size_t n = std::min(kChunk, logits.size() - begin);
    std::copy_n(logits.begin() + begin, n, chunk);
    sampling::ToWeights(chunk, n, max_logit, 1.0f);  // e^(x - max)
    sum += sampling::KeptMass(chunk, 0, n, sampling::kKeepAll);
  }
  return max_logit + std::log(sum);
}

// The `k` largest logits as log-probs, descending, lower id first on ties.
// k is at most kMaxLogprobs, so insertion into a short sorted list beats a
// vocabulary-sized scratch.
std::vector<TokenLogprob> TopLogprobs(absl::Span<const float> logits,
                                      double log_sum_exp, int k) {
  std::vector<TokenLogprob> top;
  if (k <= 0) return top;
  top.reserve(k + 1);
  const size_t n = logits.size();
  for (size_t i = 0; i < n; ++i) {
    // Once the list is full, only a logit above its last entry can enter:
    // find the next one with vector comparisons.
    const bool full = static_cast<int>(top.size()) == k;
    if (full) {
      i = sampling::FirstAbove(logits.data(), i, n, top.back().logprob);
      if (i == n) break;
    }
    const float x = logits[i];
    if (std::isnan(x)) continue;
    // After every entry with a logit >= x: earlier ids win ties.
    auto at = std::upper_bound(
        top.begin(), top.end(), x,
        [](float value, const TokenLogprob& e) { return value > e.logprob; });
    top.insert(at, TokenLogprob{static_cast<int32_t>(i), x});
    if (static_cast<int>(top.size()) > k) top.pop_back();
  }
  for (TokenLogprob& entry : top) {
    entry.logprob = static_cast<float>(entry.logprob - log_sum_exp);
  }
  return top;
}

float LogprobOf(absl::Span<const float> logits, double log_sum_exp,
                int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= logits.size()) {
    return -std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(logits[token] - log_sum_exp);
}

}  // namespace

absl::Status SamplingParams::Validate(int vocab_size) const {
  if (vocab_size <= 0) return Invalid("vocab_size", "> 0", vocab_size);
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return Invalid("temperature", ">= 0", temperature);
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return Invalid("top_p", "in (0, 1]", top_p);
  }
  if (top_k < 0) return Invalid("top_k", ">= 0 (0 = all)", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return Invalid("min_p", "in [0, 1]", min_p);
  }
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return Invalid("repetition_penalty", "> 0", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return Invalid("presence_penalty", "in [-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return Invalid("frequency_penalty", "in [-2, 2]", frequency_penalty);
  }
  std::vector<int32_t> biased;
  biased.reserve(logit_bias.size());
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias token ", token, " is outside the vocabulary [0, ",
          vocab_size, ")"));
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias for token ", token, " must be in [-100, 100], got ",
          bias));
    }
    biased.push_back(token);
  }
  std::sort(biased.begin(), biased.end());
  if (auto dup = std::adjacent_find(biased.begin(), biased.end());
      dup != biased.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("logit_bias lists token ", *dup, " more than once"));
  }
  if (logprobs < -1 || logprobs > kMaxLogprobs) {
    return Invalid("logprobs", absl::StrCat("in [0, ", kMaxLogprobs,
                                            "] (or -1 for none)"),
                   logprobs);
  }
  if (prompt_logprobs < -1 || prompt_logprobs > kMaxLogprobs) {
    return Invalid("prompt_logprobs",
                   absl::StrCat("in [0, ", kMaxLogprobs, "] (or -1 for none)"),
                   prompt_logprobs);
  }
  if (n < 1 || n > kMaxSamplesPerRequest) {
    return Invalid("n", absl::StrCat("in [1, ", kMaxSamplesPerRequest, "]"),
                   n);
  }
  return absl::OkStatus();
}

int32_t ArgMax(absl::Span<const float> logits) {
  // Two passes: the maximum over eight independent lanes (which the
  // compiler turns into SIMD max instructions), then its first index. A
  // vocabulary-sized scan per sequence per step is on the engine's hot path.
  constexpr int kLanes = 8;
  const size_t n = logits.size();
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  // `x > max ? x : max` keeps the maximum when x is NaN (NaN compares
  // false); the other way round a NaN would replace it, and a lane ending
  // on a NaN made the scan below find nothing (token 0).
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
    }
  }
  float best = *std::max_element(lane, lane + kLanes);
  for (; i < n; ++i) best = logits[i] > best ? logits[i] : best;
  for (size_t k = 0; k < n; ++k) {
    if (logits[k] == best) return static_cast<int32_t>(k);
  }
  return 0;  // every logit NaN
}

SampledToken ScoreToken(absl::Span<const float> logits, int32_t next_token,
                        int top_k) {
  const double log_sum_exp = LogSumExp(logits);
  SampledToken scored{next_token, LogprobOf(logits, log_sum_exp, next_token),
                      TopLogprobs(logits, log_sum_exp, top_k)};
  // NaN counts as -infinity, as in the log-probs.
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  auto value = [](float logit) { return std::isnan(logit) ? kMinusInf : logit; };
  const float own = value(logits[static_cast<size_t>(next_token)]);
  int32_t rank = 0;
  for (float logit : logits) rank += value(logit) >= own ? 1 : 0;
  scored.rank = rank;
  return scored;
}

SequenceSampler::SequenceSampler(const SamplingParams& params, uint64_t seed,
                                 int index)
    : params_(params) {
  std::seed_seq seq{static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index)};
  rng_.seed(seq);
}

bool SequenceSampler::greedy() const {
  return params_.temperature < kGreedyTemperature;
}

bool SequenceSampler::unprocessed() const {
  return params_.logit_bias.empty() && params_.repetition_penalty == 1.0f &&
         params_.frequency_penalty == 0.0f && params_.presence_penalty == 0.0f;
}

bool SequenceSampler::OnlyArgMax(bool any_banned) const {
  return greedy() && unprocessed() && !any_banned && params_.logprobs < 0;
}

SampledToken SequenceSampler::Sample(absl::Span<const float> logits,
                                     absl::Span<const int32_t> prompt,
                                     absl::Span<const int32_t> output,
                                     absl::Span<const int32_t> banned,
                                     absl::Span<const uint32_t> allowed) {
  const size_t vocab = logits.size();
  SampledToken result{0, 0.0f, {}};
  if (greedy() && unprocessed() && banned.empty() && allowed.empty()) {
    result.token = ArgMax(logits);  // nothing to process: no copy
  } else {
    processed_.resize(vocab);
    std::copy(logits.begin(), logits.end(), processed_.begin());
    ApplyMask(allowed);
    ApplyBiasAndPenalties(prompt, output);
    for (int32_t token : banned) {
      if (token >= 0 && static_cast<size_t>(token) < vocab) {
        processed_[token] = -std::numeric_limits<float>::infinity();
      }
    }
    result.token = greedy() ? ArgMax(processed_) : Draw(ApplyFilters());
  }
  if (params_.logprobs >= 0) {
    const double log_sum_exp = LogSumExp(logits);
    result.logprob = LogprobOf(logits, log_sum_exp, result.token);
    result.top = TopLogprobs(logits, log_sum_exp, params_.logprobs);
  }
  return result;
}

void SequenceSampler::ApplyMask(absl::Span<const uint32_t> allowed) {
  if (allowed.empty()) return;
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  const size_t vocab = processed_.size();
  for (size_t word = 0; word * 32 < vocab; ++word) {
    const uint32_t bits = word < allowed.size() ? allowed[word] : 0u;
    if (bits == ~0u) continue;
    const size_t end = std::min(vocab, word * 32 + 32);
    if (bits == 0u) {  // most words, in most grammar states
      std::fill(processed_.begin() + word * 32, processed_.begin() + end, kMinusInf);
      continue;
    }
    for (size_t t = word * 32; t < end; ++t) {
      if ((bits >> (t % 32) & 1u) == 0) processed_[t] = kMinusInf;
    }
  }
}

void SequenceSampler::ApplyBiasAndPenalties(absl::Span<const int32_t> prompt,
                                            absl::Span<const int32_t> output) {
  const size_t vocab = processed_.size();
  auto in_vocab = [vocab](int32_t token) {
    return token >= 0 && static_cast<size_t>(token) < vocab;
  };
  for (const auto& [token, bias] : params_.logit_bias) {
    if (in_vocab(token)) processed_[token] += bias;
  }
  const float repetition = params_.repetition_penalty;
  const float frequency = params_.frequency_penalty;
  const float presence = params_.presence_penalty;
  if (repetition == 1.0f && frequency == 0.0f && presence == 0.0f) return;

  // occurrences_[t]: 0 = not penalized, else 1 + t's count in the output.
  // Every penalized token is visited once, which zeroes its entry again
  // for the next call.
  if (occurrences_.size() != vocab) occurrences_.assign(vocab, 0);
  for (int32_t token : output) {
    if (in_vocab(token)) occurrences_[token] += occurrences_[token] ? 1 : 2;
  }
  if (repetition != 1.0f) {
    for (int32_t token : prompt) {
      if (in_vocab(token) && !occurrences_[token]) occurrences_[token] = 1;
    }
  }
  auto penalize = [&](int32_t token) {
    if (!in_vocab(token) || !occurrences_[token]) return;
    float& logit = processed_[token];
    if (repetition != 1.0f) {
      logit = logit > 0 ? logit / repetition : logit * repetition;
    }
    if (const int32_t count = occurrences_[token] - 1; count > 0) {
      logit -= frequency * static_cast<float>(count);
      logit -= presence;
    }
    occurrences_[token] = 0;
  };
  for (int32_t token : output) penalize(token);
  for (int32_t token : prompt) penalize(token);
}

SequenceSampler::Candidate SequenceSampler::ApplyFilters() {
  const size_t vocab = processed_.size();
  const float max_logit = sampling::MaxValue(processed_.data(), vocab);
  if (max_logit == std::numeric_limits<float>::infinity()) {
    // An overflowed logit: e^(x - max) would be NaN for it and 0 for the
    // rest, leaving nothing to draw. The +inf tokens take all the mass, as
    // greedy's argmax takes the first of them.
    for (float& value : processed_) {
      value = value == max_logit ? 1.0f : 0.0f;
    }
  } else {
    sampling::ToWeights(processed_.data(), vocab, max_logit, params_.temperature);
  }

  // Each filter keeps the tokens ranked at or before some candidate; the
  // intersection keeps those at or before the earliest-ranked of them.
  Candidate last_kept = kKeepAll;
  auto tighten = [&last_kept](const Candidate& c) {
    if (Higher(c, last_kept)) last_kept = c;
  };
  const bool top_k =
      params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab;
  if (top_k) {
    // Sorted, so that the top-p sums below run in one defined order.
    const size_t pool = params_.top_k;
    sampling::TopK(processed_, pool, &scratch_);
    tighten(scratch_.candidates[pool - 1]);
    if (params_.top_p < 1.0f) {
      // The nucleus is taken within the top-k set, as vLLM does: the
      // first of the sorted pool at which the mass reaches the target.
      double total = 0;
      for (size_t i = 0; i < pool; ++i) total += scratch_.candidates[i].weight;
      const double target = params_.top_p * total;
      double mass = 0;
      for (size_t i = 0; target > 0 && i + 1 < pool; ++i) {
        mass += scratch_.candidates[i].weight;
        if (mass >= target) {
          tighten(scratch_.candidates[i]);
          break;
        }
      }
    }
  } else if (params_.top_p < 1.0f) {
    tighten(sampling::NucleusCut(processed_, params_.top_p, &scratch_));
  }
  if (params_.min_p > 0.0f) {
    // Weights are relative to the most likely token (weight 1), so the
    // threshold is min_p itself; every token of the lowest kept weight is
    // kept, whatever its id.
    Candidate lowest{1.0f, std::numeric_limits<int32_t>::max()};
    for (float weight : processed_) {
      if (weight >= params_.min_p) {
        lowest.weight = std::min(lowest.weight, weight);
      }
    }
    tighten(lowest);
  }
  return last_kept;
}

bool SequenceSampler::Higher(const Candidate& a, const Candidate& b) {
  return sampling::RankedBefore(a, b);
}

int32_t SequenceSampler::Draw(const Candidate& last_kept) {
  const int32_t chosen =
      sampling::DrawKept(processed_, last_kept, Uniform(), &scratch_.block_mass);
  // Only when every weight is 0 (e.g. all logits -inf): fall back to argmax.
  return chosen >= 0 ? chosen : ArgMax(processed_);
}

}  // namespace weft
