// Per-sequence sampling: one row of raw logits -> one token id, with the
// OpenAI / vLLM sampling parameters.
//
// Order of processing (vLLM's, HF's for the filters):
//   1. logit bias (added to the raw logit)
//   2. repetition penalty (prompt + output tokens), then frequency and
//      presence penalties (output tokens)
//   3. greedy: argmax here (lowest id on ties); otherwise
//   4. temperature, top-k, top-p (over the top-k set), min-p, draw.
// Top-k, top-p and min-p each keep a prefix of the tokens ordered by
// probability (ties: lower id first); the kept set is their intersection.
// Min-p's threshold is relative to the most likely token, which neither
// top-k nor top-p removes, so this is min-p applied after them (HF's and
// vLLM V0's order; vLLM V1 applies min-p first, which changes the mass
// top-p counts, e.g. weights 1, 0.5 and 100 × 0.01 with min_p 0.1 and
// top_p 0.6 keep the first two here and only the first there).
//
// Determinism: each SequenceSampler owns a std::mt19937_64 stream derived
// from (seed, index) through std::seed_seq (both fully specified by the
// standard) and converts 53 bits to a uniform itself, so a sample's tokens
// depend only on its seed, its index and its own history - never on the
// batch, other samplers, or the platform. Every non-greedy Sample() call
// takes exactly one draw from the stream; the token is then found by a
// scan in token-id order, which is also platform independent.
#ifndef WEFT_RUNTIME_SAMPLER_H_
#define WEFT_RUNTIME_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/sampling_math.h"

namespace weft {

// Most top log-probs a request may ask for (OpenAI's and vLLM's limit).
inline constexpr int kMaxLogprobs = 20;
// Most parallel samples per request.
inline constexpr int kMaxSamplesPerRequest = 16;

struct TokenLogprob {
  int32_t token;
  float logprob;

  bool operator==(const TokenLogprob&) const = default;
};

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy (anything below 1e-5 is)
  float top_p = 1.0f;               // (0, 1]
  int top_k = 0;                    // 0 = all
  float min_p = 0.0f;               // [0, 1]: drop tokens with p < min_p * p_max
  float repetition_penalty = 1.0f;  // > 0; HF/vLLM semantics, prompt + output
  float presence_penalty = 0.0f;    // [-2, 2], OpenAI semantics, output tokens
  float frequency_penalty = 0.0f;   // [-2, 2], OpenAI semantics, output tokens
  // (token, bias added to its logit); bias in [-100, 100], each token once.
  std::vector<std::pair<int32_t, float>> logit_bias = {};
  std::optional<uint64_t> seed = {};  // none: drawn at submission
  int logprobs = -1;         // -1: none; k in [0, 20]: sampled token's + top k
  int prompt_logprobs = -1;  // same, for prompt tokens
  int n = 1;                 // parallel samples, [1, 16]

  // InvalidArgument naming the offending field.
  absl::Status Validate(int vocab_size) const;
};

struct SampledToken {
  int32_t token;
  // Log-softmax of the raw logits (see SequenceSampler::Sample); 0 when no
  // log-probs were asked for.
  float logprob;
  // The top `logprobs` tokens by raw logit, descending, ties by lower id.
  std::vector<TokenLogprob> top;
  // Prompt tokens (ScoreToken): how many tokens' raw logits are at least
  // this one's (vLLM's rank: 1 for the most likely); 0 for sampled tokens.
  int32_t rank = 0;
};

class SequenceSampler {
 public:
  // `seed`: the resolved seed (the request's, or one drawn at submission).
  // Sample `index` of n gets its own stream derived from (seed, index).
  // `params` must have passed Validate().
  SequenceSampler(const SamplingParams& params, uint64_t seed, int index);

  // logits: raw model logits [vocab]; prompt / output: the sequence's
  // tokens so far (ids outside [0, vocab) are ignored by the penalties).
  // Reported log-probs are the log-softmax of the raw logits, before bias,
  // penalties, temperature and filters - vLLM's default ("raw_logprobs"):
  // they describe the model, not the sampling procedure.
  // Allocates only the member scratch on the first call (and the returned
  // `top` when log-probs are asked for).
  // `banned` tokens are never drawn (the engine bans stop tokens until
  // min_tokens are out, as vLLM does). `allowed`, when not empty, is a
  // structured output's mask (GrammarMatcher::NextTokenMask: bit t % 32 of
  // word t / 32): only the tokens set in it are drawn. Both apply before
  // the bias and penalties, like vLLM's grammar bitmask; the log-probs
  // stay those of the raw logits.
  SampledToken Sample(absl::Span<const float> logits,
                      absl::Span<const int32_t> prompt,
                      absl::Span<const int32_t> output,
                      absl::Span<const int32_t> banned = {},
                      absl::Span<const uint32_t> allowed = {});

  // Whether Sample(logits, …, banned) with `any_banned` == !banned.empty()
  // and no `allowed` mask is just {ArgMax(logits), 0, {}}: greedy, no bias
  // or penalties, nothing banned, no log-probs asked for (and no draw from
  // the stream). The
  // engine then asks the model for the argmax alone
  // (StepExecutor::ExecuteArgMax).
  bool OnlyArgMax(bool any_banned) const;

  const SamplingParams& params() const { return params_; }

 private:
  using Candidate = sampling::WeightedToken;
  // Ranked after every token: keeps them all.
  static constexpr Candidate kKeepAll = sampling::kKeepAll;

  // Most likely first; ties by id, so that the order is total and the kept
  // set is the same whatever the sort algorithm.
  static bool Higher(const Candidate& a, const Candidate& b);

  // Uniform in [0, 1) from 53 random bits: the same on every platform.
  double Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  bool greedy() const;
  // No logit bias and no penalties.
  bool unprocessed() const;
  // Sets the logits of the tokens `allowed` leaves out to -inf.
  void ApplyMask(absl::Span<const uint32_t> allowed);
  void ApplyBiasAndPenalties(absl::Span<const int32_t> prompt,
                             absl::Span<const int32_t> output);
  // Turns processed_ into weights; returns the least likely token that
  // top-k, top-p and min-p keep (kKeepAll when none filters).
  Candidate ApplyFilters();
  // Draws among the tokens ranked at or before `last_kept`.
  int32_t Draw(const Candidate& last_kept);

  SamplingParams params_;
  std::mt19937_64 rng_;
  // Scratch sized to the vocabulary on first use (16 bytes per token at
  // most; only processed_ without penalties, top-k and top-p).
  std::vector<float> processed_;        // [vocab] logits, then weights
  std::vector<int32_t> occurrences_;    // [vocab] penalties only; 0 between
  sampling::SamplingScratch scratch_;   // top-k's candidates too
};

// Prompt log-probs for one position: the log-prob of `next_token` under
// `logits` (log-softmax of the raw logits) and the top `top_k` tokens.
SampledToken ScoreToken(absl::Span<const float> logits, int32_t next_token,
                        int top_k);

// The index of the largest logit (the lowest index among equals). NaN
// logits are skipped; 0 when every logit is NaN.
int32_t ArgMax(absl::Span<const float> logits);

}  // namespace weft

#endif  // WEFT_RUNTIME_SAMPLER_H_
