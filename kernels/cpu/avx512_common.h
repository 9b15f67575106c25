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

// A packed (group, block)'s scales d of its 16 weight rows as fp32, and
// for Q4_1 their minimums (zero for the other types).
struct BlockScales {
  __m512 d;
  __m512 mn;
};
template <DType kType>
inline BlockScales LoadBlockScales(const PackedQuant& w, const uint8_t* block) {
  const uint8_t* scales = block + w.qs_bytes;
  BlockScales out{_mm512_cvtph_ps(_mm256_loadu_si256(
                      reinterpret_cast<const __m256i*>(scales))),
                  _mm512_setzero_ps()};
  if constexpr (kType == DType::kQ4_1) {
    out.mn = _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 32)));
  }
  return out;
}

// The fp32 epilogue of one (weight group, block, activation row): acc +=
// (254·sq + sr) · d · fine (+ the Q4_1 minimum times dx·Σ), where sq, sr
// are the block's two activation levels' int32 sums (zero points already
// corrected) and fine = dx/254. 254·sq + sr is formed in int32 and rounded
// to fp32 once, so the VNNI and AMX kernels, reaching the same integers,
// give bit-identical outputs (and the same as AVX2's multiply-add of the
// exact conversions of sq and sr, which rounds the same integer once). The
// integer form keeps the epilogue off the multiply units VPDPBUSD runs
// on (on Zen 4 a multiply-add costs a VPDPBUSD slot, a shift or an add
// does not).
template <bool kHasMin>
inline __m512 BlockEpilogue(__m512 acc, __m512i sq, __m512i sr, __m512 d,
                            __m512 mn, float fine, float scaled_sum) {
  // 254·sq + sr = 256·sq - 2·sq + sr (|·| < 2^28).
  const __m512i s_int = _mm512_add_epi32(
      _mm512_sub_epi32(_mm512_slli_epi32(sq, 8), _mm512_add_epi32(sq, sq)), sr);
  const __m512 s = _mm512_cvtepi32_ps(s_int);
  acc = _mm512_fmadd_ps(s, _mm512_mul_ps(d, _mm512_set1_ps(fine)), acc);
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
  // Unrolled to the tile height so that acc(t) sees constant indices: the
  // callers' accumulator arrays then stay in registers (a loop to a
  // run-time mt made GCC keep AMX's 16 accumulators on the stack, a load
  // and a store per row and block).
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t) {
    if (t >= mt) break;
    _mm512_mask_storeu_ps(y.data + (m0 + t) * y.stride + col0, mask,
                          _mm512_add_ps(acc(t), bv));
  }
}

}  // namespace
}  // namespace weft::cpu::avx512

#endif  // WEFT_KERNELS_CPU_AVX512_COMMON_H_
