// What the CUDA end-to-end test (cuda_model_test.cc) compares and with what
// tolerance, shared with bf16_rounding_test.cc, which checks on the CPU that
// this tolerance holds for the GPU's bf16 roundings.
#ifndef WEFT_TESTS_MODEL_GREEDY_COMPARE_H_
#define WEFT_TESTS_MODEL_GREEDY_COMPARE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/types/span.h"

namespace weft::test {

// Greedy steps are compared until the CPU's top-2 logit gap falls below
// this (bf16 rounding may flip such a step) ...
inline constexpr double kBf16MinTopTwoGap = 0.1;
// ... and every logit of a compared step within atol + rtol · |cpu logit|.
inline constexpr double kBf16LogitAtol = 0.75;
inline constexpr double kBf16LogitRtol = 0.03;

inline int32_t Argmax(absl::Span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

inline double TopTwoGap(absl::Span<const float> v) {
  float first = -INFINITY, second = -INFINITY;
  for (float x : v) {
    if (x > first) {
      second = first;
      first = x;
    } else if (x > second) {
      second = x;
    }
  }
  return double(first) - second;
}

}  // namespace weft::test

#endif  // WEFT_TESTS_MODEL_GREEDY_COMPARE_H_
