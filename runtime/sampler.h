// Turns one row of logits into a token id: greedy, or temperature with
// top-k / top-p, from a per-request seeded generator so that a request's
// samples do not depend on anything else running. The serving core extends
// this with penalties, min-p, logit bias and log-probs.
#ifndef WEFT_RUNTIME_SAMPLER_H_
#define WEFT_RUNTIME_SAMPLER_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace weft {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int top_k = 0;             // 0 = all
  uint64_t seed = 0;

  absl::Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params)
      : params_(params), rng_(params.seed) {}

  int32_t Sample(absl::Span<const float> logits);

 private:
  // Uniform in [0, 1) from 53 random bits: the same on every platform.
  double Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// The index of the largest logit (the lowest index among equals).
int32_t ArgMax(absl::Span<const float> logits);

}  // namespace weft

#endif  // WEFT_RUNTIME_SAMPLER_H_
