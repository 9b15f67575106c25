// Helpers shared by the AVX-512 kernel files (cpu_kernels_avx512.cc,
// attention_avx512.cc, amx_kernels.cc). Include it only from files compiled
// with the AVX-512 flags: everything here has internal linkage (an
// anonymous namespace), so no copy built for AVX-512 can be merged into
// code that runs on an AVX2-only processor.
#ifndef WEFT_KERNELS_CPU_AVX512_COMMON_H_
#define WEFT_KERNELS_CPU_AVX512_COMMON_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx512 {
namespace {

inline int64_t MinI64(int64_t a, int64_t b) { return a < b ? a : b; }

// Sum of the 16 lanes (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized).
inline float HorizontalSum(__m512 v) {
  const __m512 halves = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  const __m512 quarters =
      _mm512_add_ps(halves, _mm512_shuffle_f32x4(halves, halves, 0xB1));
  const __m128 sum4 = _mm512_castps512_ps128(quarters);
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  return _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)));
}

// A block's two activation levels' int32 sums as one integer, 254·sq + sr
// (exact: |sq| ≤ 32·127·255 before the zero-point correction, so the
// result stays far inside int32), for one conversion and one multiply-add
// in BlockEpilogue instead of two of each.
inline __m512i CombineLevels(__m512i sq, __m512i sr) {
  return _mm512_add_epi32(
      _mm512_mullo_epi32(sq, _mm512_set1_epi32(static_cast<int32_t>(kSecondLevel))),
      sr);
}

// The fp32 epilogue of one (weight group, block, activation row): acc +=
// s · d · dx/254 (+ the Q4_1 minimum times dx·Σ). The VNNI and AMX
// kernels both end every block here with the same integers, so their
// outputs are bit-identical.
template <bool kHasMin>
inline __m512 BlockEpilogue(__m512 acc, __m512i s, __m512 d, __m512 mn,
                            float scale, float scaled_sum) {
  const __m512 ds = _mm512_mul_ps(d, _mm512_set1_ps(scale * (1.0f / kSecondLevel)));
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds, acc);
  if constexpr (kHasMin) {
    acc = _mm512_fmadd_ps(mn, _mm512_set1_ps(scaled_sum), acc);
  }
  return acc;
}

// Writes y[m0 + t][16g .. 16g + 16) = acc(t) + bias for t < mt, the lanes
// past the matrix's `rows` masked off: the end of every packed-group tile.
template <typename Acc>
inline void StoreGroupRows(OutputRows y, int64_t m0, int mt, int64_t g,
                           int64_t rows, const float* bias, Acc acc) {
  const int64_t col0 = g * kPackRows;
  const int64_t valid = MinI64(kPackRows, rows - col0);
  const __mmask16 mask =
      valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
  const __m512 bv = bias != nullptr ? _mm512_maskz_loadu_ps(mask, bias + col0)
                                    : _mm512_setzero_ps();
  for (int t = 0; t < mt; ++t) {
    _mm512_mask_storeu_ps(y.data + (m0 + t) * y.stride + col0, mask,
                          _mm512_add_ps(acc(t), bv));
  }
}

}  // namespace
}  // namespace weft::cpu::avx512

#endif  // WEFT_KERNELS_CPU_AVX512_COMMON_H_
