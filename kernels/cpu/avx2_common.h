// Helpers shared by the AVX2 kernel files (cpu_kernels_avx2.cc,
// attention_avx2.cc, quant_matmul_avx2.h). Include it only from files
// compiled with the AVX2 flags: everything here has internal linkage (an
// anonymous namespace), so no copy built for AVX2 can be merged into
// baseline code.
#ifndef WEFT_KERNELS_CPU_AVX2_COMMON_H_
#define WEFT_KERNELS_CPU_AVX2_COMMON_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx2 {
namespace {

inline int64_t MinI64(int64_t a, int64_t b) { return a < b ? a : b; }

// y[m][16g .. 16g + 16) = (lo, hi) + bias, the columns past the matrix's
// `rows` left alone: the end of every group tile.
inline void StoreGroupRow(OutputRows y, int64_t m, int64_t g, int64_t rows,
                          const float* bias, __m256 lo, __m256 hi) {
  const int64_t col0 = g * kPackRows;
  const int64_t valid = MinI64(kPackRows, rows - col0);
  alignas(32) float out[kPackRows];
  _mm256_store_ps(out, lo);
  _mm256_store_ps(out + 8, hi);
  float* dst = y.data + m * y.stride + col0;
  for (int64_t i = 0; i < valid; ++i) {
    dst[i] = out[i] + (bias != nullptr ? bias[col0 + i] : 0.0f);
  }
}

inline float HorizontalSum(__m256 v) {
  const __m128 sum4 =
      _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  return _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)));
}

inline float HorizontalMax(__m256 v) {
  const __m128 m4 =
      _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
}

// e^x for x in fp32 (Cephes' expf: range reduction by ln 2 and a degree-5
// polynomial; relative error ~2e-7 over [-87, 88], 0 below).
inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f),
                              _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i pow2n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}

}  // namespace
}  // namespace weft::cpu::avx2

#endif  // WEFT_KERNELS_CPU_AVX2_COMMON_H_
